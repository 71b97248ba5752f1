"""kpy-dns's naming rules (`kpy.dns.records.answer`), table by table, over a
small cluster held in memory; the cases follow Kubernetes' "DNS for Services
and Pods" and CoreDNS's kubernetes plugin tests.

Each case is a question (name, type) and the answer as short strings:
the rcode, then `TYPE data` per answer record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api import codec
from kpy.api.core.v1 import Service
from kpy.api.discovery.v1 import EndpointSlice
from kpy.dns import records
from kpy.dns.main import parse_address
from kpy.dns.process import service_ip

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


def svc(
    name: str, cluster_ip: str, ports: list[dict[str, Any]] | None = None, **spec: Any
) -> Service:
    doc = {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": cluster_ip, "ports": ports or [], **spec},
    }
    return codec.from_dict(Service, doc)


def endpoint_slice(
    service: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]]
) -> EndpointSlice:
    doc = {
        "metadata": {
            "name": f"{service}-abc",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }
    return codec.from_dict(EndpointSlice, doc)


WEB_PORTS: list[dict[str, Any]] = [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 8443}]
DB_PORTS: list[dict[str, Any]] = [{"name": "pg", "port": 5432, "protocol": "TCP"}]


def ready(ip: str, hostname: str = "", ok: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": [ip], "conditions": {"ready": ok}}
    if hostname:
        out["hostname"] = hostname
    return out


@dataclass
class FakeCluster:
    items: Sequence[Service]
    slices: Sequence[EndpointSlice]
    pod_ips: frozenset[tuple[str, str]] = frozenset()

    def service(self, namespace: str, name: str) -> Service | None:
        for s in self.items:
            if (s.metadata.namespace, s.metadata.name) == (namespace, name):
                return s
        return None

    def endpoint_slices(self, namespace: str, service: str) -> Sequence[EndpointSlice]:
        return [
            s
            for s in self.slices
            if s.metadata.namespace == namespace
            and s.metadata.labels["kubernetes.io/service-name"] == service
        ]

    def services(self) -> Iterable[Service]:
        return self.items

    def pod_has_ip(self, namespace: str, ip: str) -> bool:
        return (namespace, ip) in self.pod_ips


CLUSTER = FakeCluster(
    items=[
        svc("web", "127.96.0.20", WEB_PORTS),
        svc("db", "None", DB_PORTS),
        svc("empty", "None", DB_PORTS),
        svc("search", "", type="ExternalName", externalName="search.example.com"),
    ],
    slices=[
        endpoint_slice("web", [ready("127.0.1.5")], [{"name": "http", "port": 8080}]),
        endpoint_slice(
            "db",
            [ready("127.0.1.7", "db-0"), ready("127.0.1.8", "db-1"), ready("127.0.1.9", ok=False)],
            [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        ),
    ],
    pod_ips=frozenset({("default", "127.0.1.5")}),
)

SOA = "SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"

CASES = [
    # (case name, question name, type, expected answer)
    ("service: its cluster IP", "web.default.svc.cluster.local", "A", ["NOERROR", "A 127.96.0.20"]),
    ("absolute, upper case", "WEB.Default.SVC.cluster.local.", "A", ["NOERROR", "A 127.96.0.20"]),
    (
        "headless: the ready endpoints only",
        "db.default.svc.cluster.local",
        "A",
        ["NOERROR", "A 127.0.1.7", "A 127.0.1.8"],
    ),
    ("headless without endpoints: no data", "empty.default.svc.cluster.local", "A", ["NOERROR"]),
    (
        "ExternalName: a CNAME",
        "search.default.svc.cluster.local",
        "A",
        ["NOERROR", "CNAME search.example.com."],
    ),
    (
        "StatefulSet pod by hostname",
        "db-1.db.default.svc.cluster.local",
        "A",
        ["NOERROR", "A 127.0.1.8"],
    ),
    (
        "endpoint by dashed address",
        "127-0-1-5.web.default.svc.cluster.local",
        "A",
        ["NOERROR", "A 127.0.1.5"],
    ),
    ("not-ready endpoint: unknown", "127-0-1-9.db.default.svc.cluster.local", "A", ["NXDOMAIN"]),
    ("unknown hostname", "db-7.db.default.svc.cluster.local", "A", ["NXDOMAIN"]),
    (
        "SRV of a named port: the service",
        "_http._tcp.web.default.svc.cluster.local",
        "SRV",
        ["NOERROR", "SRV 0 100 80 web.default.svc.cluster.local."],
    ),
    (
        "SRV of a headless service: each endpoint",
        "_pg._tcp.db.default.svc.cluster.local",
        "SRV",
        [
            "NOERROR",
            "SRV 0 100 5432 db-0.db.default.svc.cluster.local.",
            "SRV 0 100 5432 db-1.db.default.svc.cluster.local.",
        ],
    ),
    ("SRV: wrong protocol", "_http._udp.web.default.svc.cluster.local", "SRV", ["NXDOMAIN"]),
    ("SRV: unknown port name", "_ftp._tcp.web.default.svc.cluster.local", "SRV", ["NXDOMAIN"]),
    ("AAAA of a service: no data", "web.default.svc.cluster.local", "AAAA", ["NOERROR"]),
    ("unknown service", "nope.default.svc.cluster.local", "A", ["NXDOMAIN"]),
    ("other namespace", "web.other.svc.cluster.local", "A", ["NXDOMAIN"]),
    ("namespace name: exists, no records", "default.svc.cluster.local", "A", ["NOERROR"]),
    ("bare domain under the zone", "hello.cluster.local", "A", ["NXDOMAIN"]),
    ("too many labels", "a.b.c.d.e.default.svc.cluster.local", "A", ["NXDOMAIN"]),
    ("zone apex SOA", "cluster.local", "SOA", ["NOERROR", SOA]),
    ("pod by its address", "127-0-1-5.default.pod.cluster.local", "A", ["NOERROR", "A 127.0.1.5"]),
    ("no pod with that address", "127-0-1-6.default.pod.cluster.local", "A", ["NXDOMAIN"]),
    ("not an address", "web.default.pod.cluster.local", "A", ["NXDOMAIN"]),
    (
        "PTR of a cluster IP",
        "20.0.96.127.in-addr.arpa",
        "PTR",
        ["NOERROR", "PTR web.default.svc.cluster.local."],
    ),
    (
        "PTR of a named endpoint",
        "7.1.0.127.in-addr.arpa.",
        "PTR",
        ["NOERROR", "PTR db-0.db.default.svc.cluster.local."],
    ),
    ("PTR of an address kpy does not know", "8.8.8.8.in-addr.arpa", "PTR", ["REFUSED out"]),
    ("outside the domain", "example.com", "A", ["REFUSED out"]),
    ("a suffix that is not the domain", "notcluster.local", "A", ["REFUSED out"]),
]


def show(response: records.Response) -> list[str]:
    head = response.rcode + ("" if response.in_zone else " out")
    return [head, *(f"{r.type} {r.data}" for r in response.answer)]


@pytest.mark.parametrize(("name", "qname", "qtype", "want"), CASES, ids=[c[0] for c in CASES])
def test_answer(name: str, qname: str, qtype: str, want: list[str]) -> None:
    got = show(records.answer(CLUSTER, qname, qtype))
    assert got == want, name


NEGATIVE = [
    # (case name, question, type, whether the zone's SOA comes with it)
    ("NXDOMAIN carries the SOA", "nope.default.svc.cluster.local", "A", True),
    ("no data carries the SOA", "web.default.svc.cluster.local", "AAAA", True),
    ("an answer does not", "web.default.svc.cluster.local", "A", False),
    ("outside the zone: nothing", "example.com", "A", False),
]


@pytest.mark.parametrize(
    ("name", "qname", "qtype", "with_soa"), NEGATIVE, ids=[c[0] for c in NEGATIVE]
)
def test_negative_answers_carry_the_soa(name: str, qname: str, qtype: str, with_soa: bool) -> None:
    response = records.answer(CLUSTER, qname, qtype)
    assert (response.authority == (records.soa("cluster.local"),)) is with_soa, name


def test_another_cluster_domain() -> None:
    got = show(records.answer(CLUSTER, "web.default.svc.kpy.test", "A", domain="kpy.test."))
    assert got == ["NOERROR", "A 127.96.0.20"]
    assert (
        show(records.answer(CLUSTER, "web.default.svc.cluster.local", "A", domain="kpy.test"))[0]
        == "REFUSED out"
    )


SERVICE_IPS = [
    # (case name, Service range, DNS address or the error's words)
    ("the default process range", "127.96.0.0/16", "127.96.0.10"),
    ("a cluster's own loopback range", "127.97.0.0/16", "127.97.0.10"),
    ("a Docker service range", "172.30.128.0/20", "172.30.128.10"),
    ("Kubernetes' default", "10.96.0.0/12", "10.96.0.10"),
    ("too small", "127.96.0.0/29", "too small"),
]


@pytest.mark.parametrize(("name", "cidr", "want"), SERVICE_IPS, ids=[c[0] for c in SERVICE_IPS])
def test_service_ip(name: str, cidr: str, want: str) -> None:
    try:
        got = service_ip(cidr)
    except ValueError as e:
        got = str(e)
    assert want in got, name


ADDRESSES = [
    # (case name, flag value, (host, port) or the error's words)
    ("address and port", "127.96.0.10:53", ("127.96.0.10", 53)),
    ("address alone: port 53", "10.0.0.53", ("10.0.0.53", 53)),
    ("a free port", "127.0.0.1:0", ("127.0.0.1", 0)),
    ("a name is not an address", "dns.example:53", "is not IP:PORT"),
    ("port out of range", "1.2.3.4:70000", "the port must be 0-65535"),
]


@pytest.mark.parametrize(("name", "text", "want"), ADDRESSES, ids=[c[0] for c in ADDRESSES])
def test_listen_and_upstream_flags(name: str, text: str, want: tuple[str, int] | str) -> None:
    got: tuple[str, int] | str
    try:
        got = parse_address(text)
    except ValueError as e:
        got = str(e)
    if isinstance(want, str):
        assert want in str(got), name
    else:
        assert got == want, name

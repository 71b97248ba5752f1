"""kpy-proxy's rule set (kpy.proxy.rules) and its iptables-restore text
(kpy.proxy.iptables): pure functions, table-driven."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from kpy.api.core.v1 import ClientIPConfig, Service, ServicePort, SessionAffinityConfig
from kpy.api.discovery.v1 import Endpoint, EndpointConditions, EndpointPort, EndpointSlice
from kpy.proxy import hairpin, iptables
from kpy.proxy.rules import ServicePortRule, desired

if TYPE_CHECKING:
    from pathlib import Path

NODE_IP = "127.0.0.1"


def service(
    name: str = "web",
    *,
    cluster_ip: str = "127.96.0.10",
    type_: str = "ClusterIP",
    ports: tuple[tuple[str, int, int], ...] = (("http", 80, 0),),
    affinity: int | None = None,
) -> Service:
    svc = Service()
    svc.metadata.name, svc.metadata.namespace = name, "default"
    svc.spec.cluster_ip, svc.spec.type = cluster_ip, type_
    for port_name, port, node_port in ports:
        svc.spec.ports.append(ServicePort(name=port_name, port=port, node_port=node_port or None))
    if affinity is not None:
        svc.spec.session_affinity = "ClientIP"
        svc.spec.session_affinity_config.CopyFrom(
            SessionAffinityConfig(client_ip=ClientIPConfig(timeout_seconds=affinity or None))
        )
    return svc


def endpoint(ip: str, *, ready: bool | None = True, terminating: bool = False) -> Endpoint:
    conditions = EndpointConditions(ready=ready, serving=ready, terminating=terminating)
    return Endpoint(addresses=[ip], conditions=conditions)


def slice_(
    service: str = "web", *endpoints: Endpoint, port: tuple[str, int] = ("http", 8080)
) -> EndpointSlice:
    s = EndpointSlice(
        address_type="IPv4",
        endpoints=list(endpoints),
        ports=[EndpointPort(name=port[0], port=port[1], protocol="TCP")],
    )
    s.metadata.name, s.metadata.namespace = f"{service}-abc", "default"
    s.metadata.labels["kubernetes.io/service-name"] = service
    return s


def rule(**kwargs: object) -> ServicePortRule:
    base: dict[str, object] = {
        "namespace": "default",
        "name": "web",
        "port_name": "http",
        "protocol": "TCP",
        "cluster_ip": "127.96.0.10",
        "port": 80,
    }
    return ServicePortRule(**{**base, **kwargs})  # type: ignore[arg-type]


@dataclass
class Case:
    name: str
    services: list[Service]
    slices: list[EndpointSlice] = field(default_factory=list)
    want: list[ServicePortRule] = field(default_factory=list)


CASES = [
    Case(
        "two ready endpoints, sorted",
        [service()],
        [slice_("web", endpoint("127.1.0.3"), endpoint("127.1.0.2"))],
        [rule(endpoints=("127.1.0.2:8080", "127.1.0.3:8080"))],
    ),
    Case(
        "not ready and terminating endpoints are left out",
        [service()],
        [
            slice_(
                "web",
                endpoint("127.1.0.2"),
                endpoint("127.1.0.3", ready=False),
                endpoint("127.1.0.4", ready=False, terminating=True),
            )
        ],
        [rule(endpoints=("127.1.0.2:8080",))],
    ),
    Case(
        "an unset ready condition counts as ready (as kube-proxy reads nil)",
        [service()],
        [slice_("web", endpoint("127.1.0.2", ready=None))],
        [rule(endpoints=("127.1.0.2:8080",))],
    ),
    Case("no slice: a port to reject", [service()], [], [rule()]),
    Case(
        "a slice of another service is not used",
        [service()],
        [slice_("other", endpoint("127.1.0.2"))],
        [rule()],
    ),
    Case(
        "ports are matched by name",
        [service(ports=(("http", 80, 0), ("metrics", 9090, 0)))],
        [slice_("web", endpoint("127.1.0.2"), port=("metrics", 9100))],
        [rule(), rule(port_name="metrics", port=9090, endpoints=("127.1.0.2:9100",))],
    ),
    Case(
        "NodePort: the node IP and node port",
        [service(type_="NodePort", ports=(("http", 80, 30080),))],
        [slice_("web", endpoint("127.1.0.2"))],
        [rule(node_ip=NODE_IP, node_port=30080, endpoints=("127.1.0.2:8080",))],
    ),
    Case(
        "ClientIP affinity with its timeout",
        [service(affinity=60)],
        [],
        [rule(affinity_seconds=60)],
    ),
    Case(
        "ClientIP affinity without a timeout: 3 hours",
        [service(affinity=0)],
        [],
        [rule(affinity_seconds=10800)],
    ),
    Case("headless: no rules", [service(cluster_ip="None")], [slice_("web", endpoint("1.2.3.4"))]),
    Case("ExternalName: no rules", [service(cluster_ip="", type_="ExternalName")]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_desired(case: Case) -> None:
    got = desired(case.services, case.slices, NODE_IP)
    assert got == case.want, case.name


PREFIX = iptables.chain_prefix("0123456789abcdef")
EMPTY = iptables.Tables({"nat": set(), "filter": set()}, {"nat": [], "filter": []})


@dataclass
class RenderCase:
    name: str
    rules: list[ServicePortRule]
    current: iptables.Tables
    present: list[str]  # lines that must be in the text
    absent: list[str] = field(default_factory=list)  # substrings that must not


S_CHAIN = f"{PREFIX}S-"
RENDER_CASES = [
    RenderCase(
        "fresh tables: our chains declared and the jumps inserted",
        [],
        EMPTY,
        [
            f":{PREFIX}SVC - [0:0]",
            f":{PREFIX}FW - [0:0]",
            f"-I OUTPUT 1 -j {PREFIX}SVC",
            f"-I PREROUTING 1 -j {PREFIX}SVC",
            f"-I POSTROUTING 1 -j {PREFIX}POST",
            f"-I FORWARD 1 -j {PREFIX}FW",
            f"-I INPUT 1 -j {PREFIX}FW",
            f"-A {PREFIX}POST -m mark --mark 0x10000/0x10000 -j MASQUERADE",
        ],
        ["DOCKER"],
    ),
    RenderCase(
        "jumps present: not inserted again",
        [],
        iptables.parse_save(
            f"*nat\n:OUTPUT ACCEPT [0:0]\n:{PREFIX}SVC - [0:0]\n-A OUTPUT -j {PREFIX}SVC\n"
            "-A OUTPUT -j DOCKER\nCOMMIT\n",
            PREFIX,
        ),
        [f"-I PREROUTING 1 -j {PREFIX}SVC"],
        [f"-I OUTPUT 1 -j {PREFIX}SVC"],
    ),
    RenderCase(
        "no endpoints: REJECT in the filter chain, no DNAT",
        [rule(node_ip=NODE_IP, node_port=30080)],
        EMPTY,
        [
            f"-A {PREFIX}FW -d 127.96.0.10/32 -p tcp -m tcp --dport 80 -m comment --comment "
            '"default/web:http/TCP" -j REJECT --reject-with icmp-port-unreachable',
            f"-A {PREFIX}FW -d 127.0.0.1/32 -p tcp -m tcp --dport 30080 -m comment --comment "
            '"default/web:http/TCP" -j REJECT --reject-with icmp-port-unreachable',
        ],
        ["DNAT", S_CHAIN],
    ),
    RenderCase(
        "three endpoints: the 1/3, 1/2, rest ladder and a DNAT each",
        [rule(endpoints=("127.1.0.2:8080", "127.1.0.3:8080", "127.1.0.4:8080"))],
        EMPTY,
        [
            "-m statistic --mode random --probability 0.3333333333 -j",
            "-m statistic --mode random --probability 0.5000000000 -j",
            "-j DNAT --to-destination 127.1.0.2:8080",
            "-j DNAT --to-destination 127.1.0.3:8080",
            "-j DNAT --to-destination 127.1.0.4:8080",
            f"-A {PREFIX}SVC -d 127.96.0.10/32 -p tcp -m tcp --dport 80",
        ],
        ["REJECT", "recent", "MARK --set"],
    ),
    RenderCase(
        "ClientIP affinity: recent --rcheck, then --set with the DNAT",
        [rule(endpoints=("127.1.0.2:8080",), affinity_seconds=60)],
        EMPTY,
        ["--rsource --rcheck --seconds 60 --reap -j", "--rsource --set -j DNAT"],
    ),
    RenderCase(
        "a Docker endpoint: hairpin traffic marked for MASQUERADE",
        [rule(cluster_ip="172.30.128.10", endpoints=("172.30.0.5:80",))],
        EMPTY,
        [
            "-s 172.30.0.5/32 -j MARK --set-xmark 0x10000/0x10000",
            "-s 127.0.0.0/8 -j MARK --set-xmark 0x10000/0x10000",
        ],
    ),
    RenderCase(
        "a chain of ours no longer wanted: flushed and deleted",
        [],
        iptables.parse_save(f"*nat\n:{PREFIX}S-OLD - [0:0]\nCOMMIT\n", PREFIX),
        [f":{PREFIX}S-OLD - [0:0]", f"-X {PREFIX}S-OLD"],
    ),
    RenderCase(
        "another cluster's chain is never named",
        [],
        iptables.parse_save(
            "*nat\n:KPY-FFFFFFFF-SVC - [0:0]\n-A OUTPUT -j KPY-FFFFFFFF-SVC\nCOMMIT\n", PREFIX
        ),
        [],
        ["FFFFFFFF"],
    ),
]


@pytest.mark.parametrize("case", RENDER_CASES, ids=[c.name for c in RENDER_CASES])
def test_render(case: RenderCase) -> None:
    text = iptables.render(case.rules, PREFIX, case.current)
    lines = text.splitlines()
    for want in case.present:
        assert any(want in line for line in lines), f"{case.name}: no {want!r} in\n{text}"
    for unwanted in case.absent:
        assert unwanted not in text, f"{case.name}: {unwanted!r} in\n{text}"
    assert text.count("COMMIT") == 2, case.name


SAVED = f"""# Generated by iptables-save
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:{PREFIX}SVC - [0:0]
:{PREFIX}S-ABC - [0:0]
:KPY-FFFFFFFF-SVC - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A PREROUTING -j {PREFIX}SVC
-A OUTPUT -j KPY-FFFFFFFF-SVC
-A OUTPUT -j {PREFIX}SVC
-A {PREFIX}SVC -d 127.96.0.10/32 -p tcp -m tcp --dport 80 -j {PREFIX}S-ABC
COMMIT
*filter
:INPUT ACCEPT [0:0]
:{PREFIX}FW - [0:0]
-A INPUT -j {PREFIX}FW
COMMIT
"""


def test_cleanup_text_names_only_this_clusters_chains() -> None:
    text = iptables.cleanup_text(iptables.parse_save(SAVED, PREFIX))
    assert text.splitlines() == [
        "*nat",
        f":{PREFIX}S-ABC - [0:0]",
        f":{PREFIX}SVC - [0:0]",
        f"-D PREROUTING -j {PREFIX}SVC",
        f"-D OUTPUT -j {PREFIX}SVC",
        f"-X {PREFIX}S-ABC",
        f"-X {PREFIX}SVC",
        "COMMIT",
        "*filter",
        f":{PREFIX}FW - [0:0]",
        f"-D INPUT -j {PREFIX}FW",
        f"-X {PREFIX}FW",
        "COMMIT",
    ]
    assert iptables.cleanup_text(iptables.parse_save("*nat\nCOMMIT\n", PREFIX)) == ""


@pytest.mark.parametrize(
    ("uid", "want"),
    [("0123456789abcdef", "KPY-01234567-"), ("", "KPY-E3B0C442-")],
    ids=["hex uid", "empty uid hashed"],
)
def test_chain_prefix(uid: str, want: str) -> None:
    assert iptables.chain_prefix(uid) == want
    assert len(want + "E-" + "X" * 10) <= 28  # iptables' chain name limit


def test_hairpin_mode_is_turned_on_for_every_port_of_the_bridge(tmp_path: Path) -> None:
    ports = tmp_path / "docker0" / "brif"
    for name, mode in (("veth1", "0"), ("veth2", "1")):
        (ports / name).mkdir(parents=True)
        (ports / name / "hairpin_mode").write_text(mode + "\n")
    (tmp_path / "docker0" / "route_localnet").write_text("0\n")
    assert hairpin.enable("docker0", tmp_path) == ["veth1"]
    assert (ports / "veth1" / "hairpin_mode").read_text() == "1"
    assert hairpin.enable("docker0", tmp_path) == [], "already on: nothing to change"
    assert hairpin.enable("nobridge", tmp_path) == [], "no such bridge"
    assert (tmp_path / "docker0" / "route_localnet").read_text() == "1"

"""Cluster DNS names to records: the rules of Kubernetes' "DNS for Services
and Pods" (CoreDNS's kubernetes plugin), as pure logic over API objects.

Contract:

- `answer(cluster, qname, qtype, domain=...)` never blocks and never
  mutates what `cluster` returns; it reads the cluster through the small
  `Cluster` protocol (the kpy-dns informer caches, or a table in a test).
- Names are matched case-insensitively, with or without the final dot;
  record names in the result are absolute (end with a dot) and lower-case.
- In the cluster domain (`cluster.local` by default):
  `<svc>.<ns>.svc.<domain>` A: the ClusterIP, or for a headless service
  (`clusterIP: None`) the ready endpoint addresses; CNAME for ExternalName.
  `<host>.<svc>.<ns>.svc.<domain>` A: the endpoint of that service whose
  hostname is `<host>` (a StatefulSet pod through its headless service),
  or whose address written with dashes is `<host>` (1-2-3-4).
  `_<port>._<proto>.<svc>.<ns>.svc.<domain>` SRV: one per named port (a
  ClusterIP service: the service name as target; a headless one: one per
  ready endpoint, its own name as target). `<a-b-c-d>.<ns>.pod.<domain>`
  A: that address, when a pod of `<ns>` has it. An existing name asked
  for another type is NOERROR with no answer; anything else in the domain
  is NXDOMAIN, with the zone's SOA for negative caching.
- `<reversed ip>.in-addr.arpa` PTR: a ClusterIP's service name, or a named
  endpoint's name; an address kpy does not know is outside the zone.
- Any other name is outside the zone (`Response.in_zone` False, rcode
  REFUSED): the server forwards it when an upstream is configured.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from kpy.api.core.v1 import Service
    from kpy.api.discovery.v1 import EndpointSlice

__all__ = [
    "DEFAULT_DOMAIN",
    "NOERROR",
    "NXDOMAIN",
    "REFUSED",
    "TTL",
    "Cluster",
    "Record",
    "Response",
    "answer",
    "soa",
]

DEFAULT_DOMAIN: Final = "cluster.local"
TTL: Final = 5  # seconds; the kubernetes plugin's default: services change
NOERROR: Final = "NOERROR"
NXDOMAIN: Final = "NXDOMAIN"
REFUSED: Final = "REFUSED"
HEADLESS: Final = "None"
_REVERSE: Final = ".in-addr.arpa"


class Cluster(Protocol):
    """What the records need of the cluster's state."""

    def service(self, namespace: str, name: str) -> Service | None: ...

    def endpoint_slices(self, namespace: str, service: str) -> Sequence[EndpointSlice]:
        """The slices labelled kubernetes.io/service-name=<service>."""
        ...

    def services(self) -> Iterable[Service]: ...

    def pod_has_ip(self, namespace: str, ip: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record; `data` is its rdata in zone-file text
    ("127.96.0.10", "0 100 80 hello.default.svc.cluster.local.")."""

    name: str
    type: str
    data: str
    ttl: int = TTL


@dataclass(frozen=True, slots=True)
class Response:
    rcode: str
    answer: tuple[Record, ...] = ()
    # The SOA sent with a negative answer (NXDOMAIN, or a name without records of that type).
    authority: tuple[Record, ...] = ()
    in_zone: bool = True


@dataclass(frozen=True, slots=True)
class _Endpoint:
    address: str
    hostname: str
    ports: dict[tuple[str, str], int]  # (port name, protocol) -> port

    @property
    def label(self) -> str:
        """Its name under the service: the hostname, else the address with dashes."""
        return self.hostname or self.address.replace(".", "-").replace(":", "-")


def soa(domain: str) -> Record:
    """The zone's SOA, as CoreDNS writes it."""
    zone = _absolute(domain)
    return Record(zone, "SOA", f"ns.dns.{zone} hostmaster.{zone} 1 7200 1800 86400 {TTL}")


def answer(cluster: Cluster, qname: str, qtype: str, *, domain: str = DEFAULT_DOMAIN) -> Response:
    """The response to a question; see the module docstring."""
    name = qname.lower().rstrip(".")
    qtype = qtype.upper()
    zone = domain.lower().rstrip(".")
    if name.endswith(_REVERSE):
        return _reverse(cluster, name, qtype, zone)
    if name != zone and not name.endswith("." + zone):
        return Response(REFUSED, in_zone=False)
    labels = name[: -len(zone)].rstrip(".").split(".") if name != zone else []
    records = _lookup(cluster, labels, zone)
    if records is None:
        return Response(NXDOMAIN, authority=(soa(zone),))
    if name == zone and qtype == "SOA":
        return Response(NOERROR, (soa(zone),))
    wanted = tuple(r for r in records if r.type == qtype or qtype == "ANY" or r.type == "CNAME")
    if not wanted:
        return Response(NOERROR, authority=(soa(zone),))
    return Response(NOERROR, wanted)


def _lookup(cluster: Cluster, labels: list[str], zone: str) -> list[Record] | None:
    """The records of a name in the zone (its labels before the zone), or
    None when the name does not exist. Names that exist only as parents of
    others (the zone, `svc.<zone>`, `<ns>.svc.<zone>`) have no records."""
    if len(labels) <= 2:
        parent = not labels or labels[-1] in ("svc", "pod")
        return [] if parent else None
    *head, namespace, kind = labels
    if kind == "pod":
        return _pod(cluster, head, namespace, zone)
    if kind != "svc":
        return None
    if len(head) == 1:
        return _service(cluster, namespace, head[0], zone)
    if len(head) == 2:
        return _endpoint(cluster, namespace, head[1], head[0], zone)
    if len(head) == 3 and head[0].startswith("_") and head[1].startswith("_"):
        return _srv(cluster, namespace, head[2], head[0][1:], head[1][1:], zone)
    return None


def _service_name(namespace: str, name: str, zone: str) -> str:
    return f"{name}.{namespace}.svc.{zone}."


def _service(cluster: Cluster, namespace: str, name: str, zone: str) -> list[Record] | None:
    svc = cluster.service(namespace, name)
    if svc is None:
        return None
    owner = _service_name(namespace, name, zone)
    spec = svc.spec
    if spec.type == "ExternalName":
        return [Record(owner, "CNAME", _absolute(spec.external_name))]
    if spec.cluster_ip and spec.cluster_ip != HEADLESS:
        return [Record(owner, "A", spec.cluster_ip)]
    return [Record(owner, "A", e.address) for e in _ready(cluster, namespace, name)]


def _endpoint(
    cluster: Cluster, namespace: str, service: str, label: str, zone: str
) -> list[Record] | None:
    if cluster.service(namespace, service) is None:
        return None
    owner = f"{label}.{_service_name(namespace, service, zone)}"
    ready = _ready(cluster, namespace, service)
    return [Record(owner, "A", e.address) for e in ready if e.label == label] or None


def _srv(
    cluster: Cluster, namespace: str, service: str, port: str, proto: str, zone: str
) -> list[Record] | None:
    svc = cluster.service(namespace, service)
    if svc is None:
        return None
    owner = f"_{port}._{proto}.{_service_name(namespace, service, zone)}"
    target = _service_name(namespace, service, zone)
    if svc.spec.cluster_ip and svc.spec.cluster_ip != HEADLESS:
        return [
            Record(owner, "SRV", f"0 100 {p.port} {target}")
            for p in svc.spec.ports
            if p.name and p.name == port and (p.protocol or "TCP").lower() == proto
        ] or None
    records = [
        Record(owner, "SRV", f"0 100 {e.ports[key]} {e.label}.{target}")
        for e in _ready(cluster, namespace, service)
        for key in e.ports
        if key == (port, proto)
    ]
    return records or None


def _pod(cluster: Cluster, head: list[str], namespace: str, zone: str) -> list[Record] | None:
    if len(head) != 1:
        return None
    ip = head[0].replace("-", ".")
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        return None
    if not cluster.pod_has_ip(namespace, ip):
        return None
    return [Record(f"{head[0]}.{namespace}.pod.{zone}.", "A", ip)]


def _ready(cluster: Cluster, namespace: str, service: str) -> list[_Endpoint]:
    """The service's ready endpoints, one per IPv4 address, in slice order,
    without repeats (an address may be in two slices while they change)."""
    seen: set[str] = set()
    out: list[_Endpoint] = []
    for piece in cluster.endpoint_slices(namespace, service):
        if piece.address_type and piece.address_type != "IPv4":
            continue
        ports = {(p.name, (p.protocol or "TCP").lower()): p.port for p in piece.ports if p.name}
        for endpoint in piece.endpoints:
            conditions = endpoint.conditions
            if conditions.HasField("ready") and not conditions.ready:
                continue  # unset means ready, as Kubernetes reads it
            for address in endpoint.addresses:
                if address not in seen:
                    seen.add(address)
                    out.append(_Endpoint(address, endpoint.hostname, ports))
    return out


def _reverse(cluster: Cluster, name: str, qtype: str, zone: str) -> Response:
    octets = name[: -len(_REVERSE)].split(".")
    try:
        ip = str(ipaddress.IPv4Address(".".join(reversed(octets))))
    except ValueError:
        return Response(REFUSED, in_zone=False)
    names = _names_of(cluster, ip, zone)
    if not names:
        return Response(REFUSED, in_zone=False)
    if qtype not in ("PTR", "ANY"):
        return Response(NOERROR)
    return Response(NOERROR, tuple(Record(name + ".", "PTR", n) for n in names))


def _names_of(cluster: Cluster, ip: str, zone: str) -> list[str]:
    """The names an address answers to: services whose ClusterIP it is,
    endpoints with a hostname that have it (sorted, without repeats)."""
    names: set[str] = set()
    for svc in cluster.services():
        m = svc.metadata
        if svc.spec.cluster_ip == ip:
            names.add(_service_name(m.namespace, m.name, zone))
        elif svc.spec.cluster_ip == HEADLESS:
            for e in _ready(cluster, m.namespace, m.name):
                if e.address == ip and e.hostname:
                    names.add(f"{e.hostname}.{_service_name(m.namespace, m.name, zone)}")
    return sorted(names)


def _absolute(name: str) -> str:
    return name.lower().rstrip(".") + "."

"""What kpy-proxy must route, as data: a pure function of the Services, the
EndpointSlices and the node's IP (kube-proxy's service and endpoint change
trackers, without the caching).

`desired(services, slices, node_ip)` returns one `ServicePortRule` per TCP
or UDP port of every Service that has a cluster IP (headless and
ExternalName Services get none, as in kube-proxy):

- `endpoints`: the ready endpoints of that port, `ip:port`, sorted, without
  duplicates: an endpoint counts when its `ready` condition is true or
  unset (kube-proxy's reading of a nil condition), which the EndpointSlice
  controller sets for serving, not terminating pods. The slices are those
  labelled `kubernetes.io/service-name: <service>` in the Service's
  namespace; a slice's port is matched to the Service port by name.
- `cluster_ip:port` and, for NodePort and LoadBalancer Services,
  `node_ip:node_port` lead to those endpoints; with no endpoint at all the
  port is to be refused (`endpoints` empty: the backends REJECT it).
- `affinity_seconds`: the ClientIP session affinity timeout, or None.

Both backends (kpy.proxy.iptables, kpy.proxy.userspace) only render these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kpy.api.core.v1 import Service
    from kpy.api.discovery.v1 import EndpointSlice

SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
DEFAULT_AFFINITY_SECONDS: Final = 10800  # Kubernetes' ClientIP default: 3 hours
_PROTOCOLS: Final = ("TCP", "UDP")  # SCTP is not proxied
_NODE_PORT_TYPES: Final = ("NodePort", "LoadBalancer")


@dataclass(frozen=True, slots=True, order=True)
class ServicePortRule:
    """One port of one Service, and where its traffic goes."""

    namespace: str
    name: str
    port_name: str
    protocol: str
    cluster_ip: str
    port: int
    node_ip: str = ""  # set with node_port
    node_port: int = 0  # 0: none
    endpoints: tuple[str, ...] = ()  # "ip:port", sorted
    affinity_seconds: int | None = None

    @property
    def key(self) -> str:
        """`namespace/name:port_name/protocol`, unique in a rule set."""
        return f"{self.namespace}/{self.name}:{self.port_name}/{self.protocol}"


def desired(
    services: Iterable[Service], slices: Iterable[EndpointSlice], node_ip: str
) -> list[ServicePortRule]:
    """The rule set (see the module docstring), sorted by namespace, name
    and port."""
    by_service: dict[tuple[str, str], list[EndpointSlice]] = {}
    for slice_ in slices:
        owner = slice_.metadata.labels.get(SERVICE_NAME_LABEL)
        if owner:
            by_service.setdefault((slice_.metadata.namespace, owner), []).append(slice_)
    rules = []
    for svc in services:
        spec = svc.spec
        if spec.type == "ExternalName" or spec.cluster_ip in ("", "None"):
            continue
        affinity = None
        if spec.session_affinity == "ClientIP":
            timeout = spec.session_affinity_config.client_ip.timeout_seconds
            affinity = timeout or DEFAULT_AFFINITY_SECONDS
        key = (svc.metadata.namespace, svc.metadata.name)
        for port in spec.ports:
            protocol = port.protocol or "TCP"
            if protocol not in _PROTOCOLS:
                continue
            node_port = port.node_port if spec.type in _NODE_PORT_TYPES else 0
            rules.append(
                ServicePortRule(
                    namespace=key[0],
                    name=key[1],
                    port_name=port.name,
                    protocol=protocol,
                    cluster_ip=spec.cluster_ip,
                    port=port.port,
                    node_ip=node_ip if node_port else "",
                    node_port=node_port,
                    endpoints=_ready_endpoints(by_service.get(key, []), port.name, protocol),
                    affinity_seconds=affinity,
                )
            )
    return sorted(rules)


def _ready_endpoints(slices: list[EndpointSlice], port_name: str, protocol: str) -> tuple[str, ...]:
    found: set[str] = set()
    for slice_ in slices:
        if slice_.address_type not in ("", "IPv4"):
            continue
        numbers = [
            p.port
            for p in slice_.ports
            if p.name == port_name and (p.protocol or "TCP") == protocol and p.port
        ]
        if not numbers:
            continue
        for endpoint in slice_.endpoints:
            conditions = endpoint.conditions
            if conditions.HasField("ready") and not conditions.ready:
                continue
            for address in endpoint.addresses:
                found.update(f"{address}:{n}" for n in numbers)
    return tuple(sorted(found, key=_sort_key))


def _sort_key(endpoint: str) -> tuple[int, ...]:
    ip, _, port = endpoint.rpartition(":")
    return (*(int(octet) for octet in ip.split(".")), int(port))

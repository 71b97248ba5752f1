"""The `kubernetes` Service of `default`: how pods find the API server
(Kubernetes' master endpoint reconciler, its `lease` type, which lets
several API servers each add themselves).

Contract (one `Reconciler` per API server started with `--token-port`):

- Every `interval` seconds (10, as Kubernetes) it renews its Lease
  `kube-system/apiserver-endpoint-<ip>-<port>` (holder `<ip>:<port>`,
  `leaseDurationSeconds` = `ttl`, 15 as Kubernetes; labelled
  `LEASE_LABEL`), then makes the cluster match the Leases still live
  (renewed less than their duration ago):
  - Service `default/kubernetes`, created when missing: type ClusterIP,
    clusterIP the first usable address of `--service-cluster-ip-range`
    (`kubernetes_service_ip`, as Kubernetes), port 443 named `https` to
    the token port of the server that made it, labels `component:
    apiserver` and `provider: kubernetes`, no selector (the endpoints
    controllers leave it alone). An existing one is left as it is.
  - Its EndpointSlices (labelled `kubernetes.io/service-name: kubernetes`
    and `endpointslice.kubernetes.io/managed-by: kpy-apiserver`): one per
    token port in use, since a slice has one port set; the lowest port's is
    named `kubernetes` (the one slice when every server uses the same
    port, as in Kubernetes), the others `kubernetes-<port>`. Each lists
    the IPs serving that port, ready, sorted.
  - Endpoints `default/kubernetes`: one subset per port, the same IPs.
  Objects already right are not written. A Lease past its duration is
  deleted by the first server that sees it (guarded by its resourceVersion).
- `withdraw()` (the server is stopping) deletes its own Lease and takes
  its address out of the EndpointSlices and Endpoints (a slice left empty
  is deleted), so no new connection is sent to a server that is going. It
  reads and writes etcd directly: the watch caches stop with the server.
- Two servers writing at once: the loser's Conflict or AlreadyExists is
  logged at debug level and the next round, reading afresh, converges. A
  clusterIP another Service already holds is logged once (a warning
  naming the flag to change) and tried again every round.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import time
from typing import TYPE_CHECKING, Any, Final

import anyio

from kpy.api import errors
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import Endpoints, Service
from kpy.api.discovery.v1 import EndpointSlice
from kpy.api.meta.v1 import DeleteOptions
from kpy.api.selection import parse_predicate
from kpy.apiserver.registry import copy_message

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from google.protobuf.message import Message

    from kpy.apiserver.registry import Registry
    from kpy.apiserver.service_alloc import ServiceRanges
    from kpy.storage import Store

log = logging.getLogger("kpy.apiserver.master_endpoints")

__all__ = [
    "INTERVAL",
    "LEASE_LABEL",
    "LEASE_NAMESPACE",
    "MANAGED_BY",
    "NAME",
    "NAMESPACE",
    "PORT",
    "PORT_NAME",
    "TTL",
    "Reconciler",
    "advertised",
    "kubernetes_service_ip",
]

NAME: Final = "kubernetes"
NAMESPACE: Final = "default"
PORT: Final = 443
PORT_NAME: Final = "https"
LEASE_NAMESPACE: Final = "kube-system"
LEASE_LABEL: Final = "apiserver.kpy.io/endpoint"
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
MANAGED_BY_LABEL: Final = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY: Final = "kpy-apiserver"
INTERVAL: Final = 10.0  # seconds between rounds (Kubernetes' --endpoint-reconciler interval)
TTL: Final = 15  # seconds a Lease lives unrenewed (Kubernetes' master lease TTL)
_WITHDRAW_TIMEOUT: Final = 3.0  # seconds `withdraw` may take while the server stops

_SERVICES = ("", "v1", "services")
_ENDPOINTS = ("", "v1", "endpoints")
_SLICES = ("discovery.k8s.io", "v1", "endpointslices")
_LEASES = ("coordination.k8s.io", "v1", "leases")


def kubernetes_service_ip(network: ipaddress.IPv4Network) -> str:
    """The `kubernetes` Service's cluster IP in a service range: its first
    usable address (127.96.0.1 in 127.96.0.0/16), as Kubernetes. The API
    server's serving certificate should name it: pods dial it."""
    first = int(network.network_address) + (1 if network.prefixlen < 31 else 0)
    return str(ipaddress.IPv4Address(first))


def advertised(bind_address: str) -> str:
    """The IP other processes reach a server bound to `bind_address` at:
    the address itself, or 127.0.0.1 for a wildcard (0.0.0.0, ::, "")."""
    if bind_address in ("", "0.0.0.0", "::", "localhost"):
        return "127.0.0.1"
    return bind_address


class Reconciler:
    """Keeps this server in the `kubernetes` Service's endpoints; see the
    module docstring."""

    def __init__(
        self,
        registries: Mapping[tuple[str, str, str], Registry],
        ip: str,
        port: int,
        ranges: ServiceRanges,
        *,
        interval: float = INTERVAL,
        ttl: int = TTL,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._services = registries[_SERVICES]
        self._endpoints = registries[_ENDPOINTS]
        self._slices = registries[_SLICES]
        self._leases = registries[_LEASES]
        self.ip = ip
        self.port = port
        self.cluster_ip = kubernetes_service_ip(ranges.cluster_ips)
        self.interval = interval
        self.ttl = ttl
        self._now = now
        self._warned_ip = False

    @property
    def lease_name(self) -> str:
        return f"apiserver-endpoint-{self.ip.replace(':', '-')}-{self.port}"

    async def run(self) -> None:
        """A round now, then every `interval`, until cancelled; a round that
        fails is logged and the next one tries again."""
        while True:
            try:
                await self.reconcile()
            except errors.StatusError as e:
                log.warning("could not update the kubernetes Service's endpoints: %s", e)
            await anyio.sleep(self.interval)

    async def reconcile(self) -> None:
        """One round: renew this server's Lease, then write what the live
        Leases say."""
        await self._renew()
        await self._write(await self._live())

    async def withdraw(self, store: Store) -> None:
        """Leaves the endpoints (best effort, within a few seconds), through
        `store`: the watch caches may be stopping already."""
        with anyio.move_on_after(_WITHDRAW_TIMEOUT):
            try:
                with contextlib.suppress(errors.NotFound):
                    await store.delete(self._leases.info, LEASE_NAMESPACE, self.lease_name)
                slices = await store.list(self._slices.info, NAMESPACE)
                for item in slices.items:
                    obj: Any = item
                    if obj.metadata.labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
                        continue
                    if self.port not in [p.port for p in obj.ports]:
                        continue
                    kept = [e for e in obj.endpoints if self.ip not in e.addresses]
                    if len(kept) == len(obj.endpoints):
                        continue
                    if kept:
                        del obj.endpoints[:]
                        obj.endpoints.extend(kept)
                        await store.update(self._slices.info, obj)
                    else:
                        await store.delete(self._slices.info, NAMESPACE, obj.metadata.name)
                with contextlib.suppress(errors.NotFound):
                    endpoints: Any = await store.get(self._endpoints.info, NAMESPACE, NAME)
                    subsets = [_without(s, self.ip, self.port) for s in endpoints.subsets]
                    del endpoints.subsets[:]
                    endpoints.subsets.extend(s for s in subsets if s.addresses)
                    await store.update(self._endpoints.info, endpoints)
            except errors.StatusError as e:
                log.warning("could not withdraw from the kubernetes Service's endpoints: %s", e)

    # -- the Lease ------------------------------------------------------------------

    async def _renew(self) -> None:
        now = self._now()
        try:
            current = await self._leases.get(LEASE_NAMESPACE, self.lease_name)
        except errors.NotFound:
            lease = Lease()
            lease.metadata.name = self.lease_name
            lease.metadata.labels[LEASE_LABEL] = "true"
            self._fill(lease, now)
            lease.spec.acquire_time.FromNanoseconds(int(now * 1e9))
            with contextlib.suppress(errors.AlreadyExists):
                await self._leases.create(lease, namespace=LEASE_NAMESPACE)
            return
        renewed: Any = copy_message(current)
        self._fill(renewed, now)
        await self._leases.update(renewed, namespace=LEASE_NAMESPACE, name=self.lease_name)

    def _fill(self, lease: Any, now: float) -> None:
        lease.spec.holder_identity = f"{self.ip}:{self.port}"
        lease.spec.lease_duration_seconds = self.ttl
        lease.spec.renew_time.FromNanoseconds(int(now * 1e9))

    async def _live(self) -> set[tuple[str, int]]:
        """(ip, port) of every live Lease; expired ones are deleted."""
        predicate = parse_predicate("Lease", label_selector=f"{LEASE_LABEL}=true")
        leases = await self._leases.list(LEASE_NAMESPACE, predicate)
        now = self._now()
        live: set[tuple[str, int]] = set()
        for lease in leases.items:
            spec: Any = lease.spec  # type: ignore[attr-defined]
            ip, _, port = spec.holder_identity.rpartition(":")
            expires = spec.renew_time.ToNanoseconds() / 1e9 + spec.lease_duration_seconds
            if ip and port.isdigit() and expires > now:
                live.add((ip, int(port)))
                continue
            options = DeleteOptions()
            options.preconditions.resource_version = lease.metadata.resource_version  # type: ignore[attr-defined]
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                await self._leases.delete(LEASE_NAMESPACE, lease.metadata.name, options)  # type: ignore[attr-defined]
        return live

    # -- the Service and its endpoints ---------------------------------------------

    async def _write(self, live: set[tuple[str, int]]) -> None:
        await self._ensure_service()
        by_port: dict[int, list[str]] = {}
        for ip, port in sorted(live, key=lambda e: (ipaddress.ip_address(e[0]), e[1])):
            by_port.setdefault(port, []).append(ip)
        await self._write_slices(by_port)
        await self._write_endpoints(by_port)

    async def _ensure_service(self) -> None:
        try:
            await self._services.get(NAMESPACE, NAME)
            return
        except errors.NotFound:
            pass
        svc = Service()
        svc.metadata.name = NAME
        svc.metadata.labels.update({"component": "apiserver", "provider": "kubernetes"})
        svc.spec.type = "ClusterIP"
        svc.spec.cluster_ip = self.cluster_ip
        svc.spec.session_affinity = "None"
        port = svc.spec.ports.add(name=PORT_NAME, port=PORT, protocol="TCP")
        port.target_port.int_val = self.port
        try:
            await self._services.create(svc, namespace=NAMESPACE)
        except errors.AlreadyExists:
            pass
        except errors.Invalid as e:
            if not self._warned_ip:
                self._warned_ip = True
                log.warning(
                    "cannot create Service default/kubernetes at %s (%s): another Service "
                    "holds that address; delete that Service, or give "
                    "--service-cluster-ip-range a range whose first address is free",
                    self.cluster_ip,
                    e,
                )
            # The endpoints are still written: they are harmless without it.

    async def _write_slices(self, by_port: dict[int, list[str]]) -> None:
        wanted: dict[str, EndpointSlice] = {}
        for i, (port, ips) in enumerate(sorted(by_port.items())):
            name = NAME if i == 0 else f"{NAME}-{port}"
            wanted[name] = _slice(name, port, ips)
        selector = f"{SERVICE_NAME_LABEL}={NAME},{MANAGED_BY_LABEL}={MANAGED_BY}"
        current = await self._slices.list(
            NAMESPACE, parse_predicate("EndpointSlice", label_selector=selector)
        )
        existing = {obj.metadata.name: obj for obj in current.items}  # type: ignore[attr-defined]
        for name, want in wanted.items():
            await self._put(self._slices, existing.get(name), want, _slice_content)
        for name, obj in existing.items():
            if name not in wanted:
                options = DeleteOptions()
                options.preconditions.resource_version = obj.metadata.resource_version  # type: ignore[attr-defined]
                with contextlib.suppress(errors.NotFound, errors.Conflict):
                    await self._slices.delete(NAMESPACE, name, options)

    async def _write_endpoints(self, by_port: dict[int, list[str]]) -> None:
        want = Endpoints()
        want.metadata.name = NAME
        for port, ips in sorted(by_port.items()):
            subset = want.subsets.add()
            for ip in ips:
                subset.addresses.add(ip=ip)
            subset.ports.add(name=PORT_NAME, port=port, protocol="TCP")
        try:
            current: Message | None = await self._endpoints.get(NAMESPACE, NAME)
        except errors.NotFound:
            current = None
        await self._put(self._endpoints, current, want, _endpoints_content)

    async def _put(
        self,
        registry: Registry,
        current: Message | None,
        want: Any,
        content: Callable[[Any], object],
    ) -> None:
        """Creates `want`, or updates `current` to its content when it differs."""
        try:
            if current is None:
                await registry.create(want, namespace=NAMESPACE)
                return
            if content(current) == content(want):
                return
            new: Any = copy_message(current)
            new.metadata.labels.update(want.metadata.labels)
            _set_content(new, want)
            await registry.update(new, namespace=NAMESPACE, name=want.metadata.name)
        except (errors.AlreadyExists, errors.Conflict) as e:
            log.debug("another API server wrote %s first: %s", want.metadata.name, e)


def _without(subset: Any, ip: str, port: int) -> Any:
    """A copy of an Endpoints subset without `ip`, if it serves `port`."""
    out = copy_message(subset)
    if port in [p.port for p in subset.ports]:
        del out.addresses[:]
        out.addresses.extend(a for a in subset.addresses if a.ip != ip)
    return out


def _slice(name: str, port: int, ips: list[str]) -> EndpointSlice:
    out = EndpointSlice()
    out.metadata.name = name
    out.metadata.labels.update({SERVICE_NAME_LABEL: NAME, MANAGED_BY_LABEL: MANAGED_BY})
    out.address_type = "IPv4"
    for ip in ips:
        endpoint = out.endpoints.add()
        endpoint.addresses.append(ip)
        endpoint.conditions.ready = True
    out.ports.add(name=PORT_NAME, port=port, protocol="TCP")
    return out


def _slice_content(obj: Any) -> object:
    return (
        obj.address_type,
        [(list(e.addresses), e.conditions.ready) for e in obj.endpoints],
        [(p.name, p.port, p.protocol) for p in obj.ports],
        obj.metadata.labels.get(SERVICE_NAME_LABEL),
        obj.metadata.labels.get(MANAGED_BY_LABEL),
    )


def _endpoints_content(obj: Any) -> object:
    return [
        ([a.ip for a in s.addresses], [(p.name, p.port, p.protocol) for p in s.ports])
        for s in obj.subsets
    ]


def _set_content(new: Any, want: Any) -> None:
    """Copies what a reconciler owns of `want` (slice or Endpoints) into `new`."""
    if isinstance(want, EndpointSlice):
        new.address_type = want.address_type
        del new.endpoints[:]
        new.endpoints.extend(want.endpoints)
        del new.ports[:]
        new.ports.extend(want.ports)
    else:
        del new.subsets[:]
        new.subsets.extend(want.subsets)

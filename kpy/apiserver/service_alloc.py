"""Cluster IPs and node ports of Services, allocated in etcd (Kubernetes'
service IP and node port allocators, with a key per allocation).

Contract:
- Every cluster IP and NodePort a Service holds is a claim key in etcd
  (`ranges/serviceips/<ip>`, `ranges/servicenodeports/<port>`, valued with
  the Service's `<namespace>/<name>/<uid>`), written in the same etcd
  transaction as the Service itself (`Store.create`/`update` with claims). A
  key can be created once only, so two API servers never hand out the same
  address or port, and a Service is never stored without its claims.
- A claim is released after the Service that held it is removed, or after
  an update that dropped it; a claim whose release was lost (the server
  stopped in between) is freed by `repair`, run at every API server start:
  claims and Services are read at the same revision, and a claim no Service
  held then is released, guarded by its value so a claim taken again since
  is never touched.
- A requested IP or port outside its range, or already claimed, is refused
  as Invalid on the field (`provided IP is already allocated`); one left
  empty is picked at random among the free ones.
- The ranges can never route off this machine: cluster IPs come from the
  loopback network, or from the part of kpy's own Docker bridge that no
  container gets (`deploy/docker-engine.sh` starts the engine with
  `--bip 172.30.0.1/16 --fixed-cidr 172.30.0.0/17`); any other range is
  refused when the server starts.

The pure parts (what a Service defaults to, what an update keeps of the
stored one) are functions used by the Service strategy; `ServiceAllocator`
is the one part that writes.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from kpy.api import errors
from kpy.storage.store import ClaimTaken

if TYPE_CHECKING:
    from collections.abc import Mapping

    from google.protobuf.message import Message

    from kpy.api.scheme import ResourceInfo
    from kpy.storage import Store

log = logging.getLogger("kpy.apiserver")

DEFAULT_CLUSTER_IP_RANGE: Final = "127.96.0.0/16"
DEFAULT_NODE_PORT_RANGE: Final = "30000-32767"
LOOPBACK: Final = ipaddress.IPv4Network("127.0.0.0/8")
DOCKER_BRIDGE: Final = ipaddress.IPv4Network("172.30.0.0/16")
"""kpy's Docker bridge subnet (`--bip` in deploy/docker-engine.sh)."""
DOCKER_CONTAINERS: Final = ipaddress.IPv4Network("172.30.0.0/17")
"""The part of it containers get (`--fixed-cidr`); the rest is never given
to a container, so service IPs may come from it."""
DOCKER_SERVICES: Final = ipaddress.IPv4Network("172.30.128.0/17")
DEFAULT_AFFINITY_TIMEOUT: Final = 10800  # seconds: Kubernetes' ClientIP default (3 hours)
IP_CLAIMS: Final = "ranges/serviceips"
PORT_CLAIMS: Final = "ranges/servicenodeports"
_NODE_PORT_TYPES: Final = ("NodePort", "LoadBalancer")
_ATTEMPTS: Final = 8


@dataclass(frozen=True, slots=True)
class PortRange:
    """Node ports `first` to `last`, both included."""

    first: int
    last: int

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


@dataclass(frozen=True, slots=True)
class ServiceRanges:
    """What the allocator hands out: `--service-cluster-ip-range` and
    `--service-node-port-range`."""

    cluster_ips: ipaddress.IPv4Network
    node_ports: PortRange

    def usable_ips(self) -> range:
        """The integer values of the addresses a Service may get: every one
        but the network and broadcast addresses (a /31 or /32 has no such)."""
        first, last = int(self.cluster_ips.network_address), int(self.cluster_ips.broadcast_address)
        if self.cluster_ips.prefixlen < 31:
            first, last = first + 1, last - 1
        return range(first, last + 1)


def parse_cluster_ip_range(text: str) -> ipaddress.IPv4Network:
    """`--service-cluster-ip-range`: an IPv4 CIDR inside the loopback network
    or inside kpy's Docker service part; ValueError saying why otherwise."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as e:
        raise ValueError(
            f'"{text}" is not a CIDR such as {DEFAULT_CLUSTER_IP_RANGE}: {e}'
        ) from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise ValueError(f'"{text}" is IPv6; kpy allocates IPv4 cluster IPs only')
    if network.subnet_of(LOOPBACK) or network.subnet_of(DOCKER_SERVICES):
        return network
    raise ValueError(
        f'"{text}" could route off this machine: use a range inside {LOOPBACK} (loopback, '
        f"such as {DEFAULT_CLUSTER_IP_RANGE}) or inside {DOCKER_SERVICES} (the part of kpy's "
        f"Docker bridge {DOCKER_BRIDGE} that no container gets; see deploy/docker-engine.sh)"
    )


def parse_node_port_range(text: str) -> PortRange:
    """`--service-node-port-range`: "FIRST-LAST" (both included, 1-65535);
    ValueError saying why otherwise."""
    first, sep, last = text.strip().partition("-")
    if not sep or not first.isdigit() or not last.isdigit():
        raise ValueError(f'"{text}" is not a port range such as {DEFAULT_NODE_PORT_RANGE}')
    ports = PortRange(int(first), int(last))
    if not 1 <= ports.first <= ports.last <= 65535:
        raise ValueError(f'"{text}": ports must satisfy 1 <= FIRST <= LAST <= 65535')
    return ports


DEFAULT_RANGES: Final = ServiceRanges(
    parse_cluster_ip_range(DEFAULT_CLUSTER_IP_RANGE), parse_node_port_range(DEFAULT_NODE_PORT_RANGE)
)


# -- pure rules (the Service strategy) ----------------------------------------


def _has_cluster_ip(spec: Any) -> bool:
    return bool(spec.type != "ExternalName")


def prepare_for_create(svc: Any) -> None:
    """What the server sets on a new Service before defaults and validation:
    `clusterIP` taken from `clusterIPs` when only that is given, headless
    `clusterIPs: [None]`, the IP family fields, and ClientIP affinity's
    default timeout."""
    spec = svc.spec
    if not spec.cluster_ip and spec.cluster_ips:
        spec.cluster_ip = spec.cluster_ips[0]
    if spec.cluster_ip and not spec.cluster_ips:
        spec.cluster_ips.append(spec.cluster_ip)
    _ip_families(spec)
    _affinity(spec)


def prepare_for_update(new: Any, old: Any) -> None:
    """An update that leaves clusterIP or a nodePort empty keeps the stored
    one (Kubernetes' patchAllocatedValues: a manifest applied again does not
    name what the server allocated), as long as the type still has it; a
    type change drops the stored values the new type has no use for
    (Kubernetes' dropTypeDependentFields: a patch of `type` alone works)."""
    spec, was = new.spec, old.spec
    same_ips = spec.cluster_ip == was.cluster_ip and spec.cluster_ips == was.cluster_ips
    if not _has_cluster_ip(spec) and _has_cluster_ip(was) and same_ips:
        spec.ClearField("cluster_ip")
        del spec.cluster_ips[:]
    if spec.type not in _NODE_PORT_TYPES and was.type in _NODE_PORT_TYPES:
        stored_ports = {p.node_port for p in was.ports if p.node_port}
        for port in spec.ports:
            if port.node_port in stored_ports:
                port.ClearField("node_port")
    if _has_cluster_ip(spec) and not spec.cluster_ip and not spec.cluster_ips and was.cluster_ip:
        spec.cluster_ip = was.cluster_ip
        spec.cluster_ips.extend(was.cluster_ips)
    if spec.type in _NODE_PORT_TYPES and was.type in _NODE_PORT_TYPES:
        stored = {(p.port, p.protocol): p.node_port for p in was.ports if p.node_port}
        for port in spec.ports:
            if not port.node_port:
                node_port = stored.get((port.port, port.protocol or "TCP"), 0)
                if node_port:
                    port.node_port = node_port
    prepare_for_create(new)


def _ip_families(spec: Any) -> None:
    if not _has_cluster_ip(spec):
        spec.ClearField("ip_families")
        spec.ClearField("ip_family_policy")
        return
    if not spec.ip_families:
        spec.ip_families.append("IPv4")
    if not spec.HasField("ip_family_policy"):
        spec.ip_family_policy = "SingleStack"


def _affinity(spec: Any) -> None:
    if spec.session_affinity != "ClientIP":
        return
    client_ip = spec.session_affinity_config.client_ip
    if not client_ip.HasField("timeout_seconds"):
        client_ip.timeout_seconds = DEFAULT_AFFINITY_TIMEOUT


def held(svc: Any) -> dict[str, bytes]:
    """The claims `svc` holds as stored: its cluster IP and node ports."""
    owner = owner_of(svc)
    claims: dict[str, bytes] = {}
    if _has_cluster_ip(svc.spec) and svc.spec.cluster_ip not in ("", "None"):
        claims[f"{IP_CLAIMS}/{svc.spec.cluster_ip}"] = owner
    if svc.spec.type in _NODE_PORT_TYPES:
        for port in svc.spec.ports:
            if port.node_port:
                claims[f"{PORT_CLAIMS}/{port.node_port}"] = owner
    return claims


def owner_of(svc: Any) -> bytes:
    """A claim's value: which Service (and which incarnation of it) holds it."""
    m = svc.metadata
    return f"{m.namespace}/{m.name}/{m.uid}".encode()


def check_requested(
    svc: Any, ranges: ServiceRanges, held_before: Mapping[str, bytes] | None = None
) -> list[errors.FieldError]:
    """A requested cluster IP or node port outside its range; values the
    Service already held (`held_before`, on an update) are not checked
    again, so a range changed since does not block the Service's updates."""
    causes: list[errors.FieldError] = []
    spec = svc.spec
    before = held_before or {}
    if (
        _has_cluster_ip(spec)
        and spec.cluster_ip not in ("", "None")
        and f"{IP_CLAIMS}/{spec.cluster_ip}" not in before
    ):
        try:
            inside = int(ipaddress.ip_address(spec.cluster_ip)) in ranges.usable_ips()
        except ValueError:
            inside = True  # not an IP: validation reports it
        if not inside:
            causes.append(
                _invalid_ip(
                    spec.cluster_ip,
                    "provided IP is not in the valid range. The range of valid IPs is "
                    f"{ranges.cluster_ips}",
                )
            )
    if spec.type in _NODE_PORT_TYPES:
        for i, port in enumerate(spec.ports):
            if (
                port.node_port
                and port.node_port not in ranges.node_ports
                and f"{PORT_CLAIMS}/{port.node_port}" not in before
            ):
                causes.append(
                    _invalid_port(
                        i,
                        port.node_port,
                        "provided port is not in the valid range. The range of valid ports "
                        f"is {ranges.node_ports}",
                    )
                )
    return causes


def _invalid_ip(ip: str, why: str) -> errors.FieldError:
    return errors.FieldError("spec.clusterIP", errors.INVALID, f'Invalid value: "{ip}": {why}')


def _invalid_port(index: int, port: int, why: str) -> errors.FieldError:
    return errors.FieldError(
        f"spec.ports[{index}].nodePort", errors.INVALID, f"Invalid value: {port}: {why}"
    )


# -- the allocator --------------------------------------------------------------


class ServiceAllocator:
    """Writes Services together with their claims; see the module docstring.
    Holds no state of its own besides what it was given: every decision is
    made against etcd, so any number of API servers may run one."""

    def __init__(
        self,
        store: Store,
        info: ResourceInfo,
        ranges: ServiceRanges = DEFAULT_RANGES,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._info = info
        self.ranges = ranges
        self._rng = rng or random.SystemRandom()

    async def create(self, svc: Message) -> Message:
        """Stores the new Service `svc` (which this call may change: the
        picked IP and ports are written into it) with its claims.
        AlreadyExists as `Store.create`; Invalid on a requested IP or port
        out of range or taken, or when a range has no free value left;
        Timeout when other API servers kept taking the values picked."""
        self._check(svc, None)
        return await self._write(svc, None)

    async def update(self, new: Message, old: Message) -> Message:
        """Stores `new` over `old` (`new` carries the version read), claiming
        what it holds that `old` did not, then releases what `old` held that
        `new` does not. Errors as `Store.update`, and as `create`."""
        self._check(new, old)
        written = await self._write(new, old)
        await self._release(held(old), held(written))
        return written

    async def release(self, svc: Message) -> None:
        """Frees the claims of `svc`, which has just been removed."""
        await self._release(held(svc), {})

    async def repair(self) -> int:
        """Frees every claim no Service holds (one left by a server that
        stopped between removing a Service and releasing its claims);
        returns how many. Safe to run while other API servers allocate."""
        ips, revision = await self._store.list_claims(IP_CLAIMS)
        ports, _ = await self._store.list_claims(PORT_CLAIMS, revision=revision)
        services = await self._store.list(self._info, resource_version=revision)
        holding: dict[str, bytes] = {}
        for svc in services.items:
            holding.update(held(svc))
        claims = {f"{IP_CLAIMS}/{k}": v for k, v in ips.items()}
        claims.update({f"{PORT_CLAIMS}/{k}": v for k, v in ports.items()})
        leaked = {name: v for name, v in claims.items() if holding.get(name) != v}
        released = await self._store.release_claims(leaked) if leaked else ()
        if released:
            log.info("freed %d service allocations no Service holds", len(released))
        return len(released)

    # -- internals --------------------------------------------------------------

    def _check(self, svc: Message, old: Message | None) -> None:
        causes = check_requested(svc, self.ranges, held(old) if old is not None else None)
        if causes:
            raise _invalid(svc, causes)

    async def _write(self, svc: Any, old: Any | None) -> Message:
        before = held(old) if old is not None else {}
        picked: set[str] = set()  # claims this call chose itself (may be re-picked)
        taken: set[str] = set()
        for _ in range(_ATTEMPTS):
            picked |= await self._pick(svc, taken)
            wanted = {k: v for k, v in held(svc).items() if before.get(k) != v}
            try:
                if old is None:
                    return await self._store.create(self._info, svc, claims=wanted)
                return await self._store.update(self._info, svc, claims=wanted)
            except ClaimTaken as e:
                refused = [c for c in e.claims if c not in picked]
                if refused:
                    raise _invalid(svc, [_taken(svc, c) for c in refused]) from None
                taken.update(e.claims)
                for claim in e.claims:
                    _unset(svc, claim)
                picked -= set(e.claims)
        raise errors.Timeout(
            f'could not allocate for services "{svc.metadata.name}": other API servers took every '
            "value tried; retry"
        )

    async def _pick(self, svc: Any, taken: set[str]) -> set[str]:
        """Fills the Service's empty cluster IP and node ports with free
        values; returns the claims so chosen."""
        chosen: set[str] = set()
        spec = svc.spec
        if _has_cluster_ip(spec) and not spec.cluster_ip:
            free = await self._free(svc, "spec.clusterIP", IP_CLAIMS, self._ips(), taken)
            ip = str(ipaddress.IPv4Address(free))
            spec.cluster_ip = ip
            del spec.cluster_ips[:]
            spec.cluster_ips.append(ip)
            chosen.add(f"{IP_CLAIMS}/{ip}")
        if spec.type in _NODE_PORT_TYPES:
            used = {f"{PORT_CLAIMS}/{p.node_port}" for p in spec.ports if p.node_port}
            ports = range(self.ranges.node_ports.first, self.ranges.node_ports.last + 1)
            for i, port in enumerate(spec.ports):
                if not port.node_port:
                    path = f"spec.ports[{i}].nodePort"
                    port.node_port = await self._free(svc, path, PORT_CLAIMS, ports, taken | used)
                    used.add(f"{PORT_CLAIMS}/{port.node_port}")
                    chosen.add(f"{PORT_CLAIMS}/{port.node_port}")
        return chosen

    def _ips(self) -> range:
        return self.ranges.usable_ips()

    async def _free(self, svc: Any, path: str, prefix: str, values: range, taken: set[str]) -> int:
        """A free value of `values`: a random guess first (a large range is
        mostly free), else one read from the claims stored; Invalid on
        `path` of `svc` when none is left."""
        # The range's first IP is the `kubernetes` Service's (kpy.apiserver.
        # master_endpoints): given out only when nothing else is left.
        reserved = values[0] if prefix == IP_CLAIMS and len(values) > 1 else None
        guess = self._rng.choice(values[1:] if reserved is not None else values)
        name = str(ipaddress.IPv4Address(guess)) if prefix == IP_CLAIMS else str(guess)
        if f"{prefix}/{name}" not in taken:
            return guess
        stored, _ = await self._store.list_claims(prefix)
        used = {f"{prefix}/{k}" for k in stored} | taken
        free = [v for v in values if f"{prefix}/{_name(prefix, v)}" not in used]
        if not free:
            if prefix == IP_CLAIMS:
                what, where, flag = "cluster IPs", str(self.ranges.cluster_ips), "cluster-ip"
            else:
                what, where, flag = "node ports", str(self.ranges.node_ports), "node-port"
            detail = (
                f"Invalid value: no free {what} left in {where}; delete Services that no "
                f"longer serve, or widen --service-{flag}-range"
            )
            raise _invalid(svc, [errors.FieldError(path, errors.INVALID, detail)])
        return self._rng.choice([v for v in free if v != reserved] or free)

    async def _release(self, before: dict[str, bytes], after: dict[str, bytes]) -> None:
        """Releases what `before` held and `after` does not. The write they
        follow has succeeded, so a failure here is logged, not raised: the
        next API server start's `repair` frees what is left."""
        gone = {k: v for k, v in before.items() if after.get(k) != v}
        if not gone:
            return
        try:
            await self._store.release_claims(gone)
        except errors.StatusError as e:
            log.warning(
                "could not release service allocations %s (%s); the next API server start "
                "frees them",
                ", ".join(sorted(gone)),
                e,
            )


def _name(prefix: str, value: int) -> str:
    return str(ipaddress.IPv4Address(value)) if prefix == IP_CLAIMS else str(value)


def _unset(svc: Any, claim: str) -> None:
    """Forgets a picked value that turned out taken, so `_pick` picks again."""
    prefix, _, value = claim.rpartition("/")
    if prefix == IP_CLAIMS:
        svc.spec.ClearField("cluster_ip")
        del svc.spec.cluster_ips[:]
        return
    for port in svc.spec.ports:
        if str(port.node_port) == value:
            port.ClearField("node_port")


def _taken(svc: Any, claim: str) -> errors.FieldError:
    prefix, _, value = claim.rpartition("/")
    if prefix == IP_CLAIMS:
        return _invalid_ip(value, "provided IP is already allocated")
    index = next(i for i, p in enumerate(svc.spec.ports) if str(p.node_port) == value)
    return _invalid_port(index, int(value), "provided port is already allocated")


def _invalid(svc: Any, causes: list[errors.FieldError]) -> errors.Invalid:
    return errors.Invalid(causes, kind="Service", name=svc.metadata.name)

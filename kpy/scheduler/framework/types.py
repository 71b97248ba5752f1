"""The scheduler's record of a node (kube-scheduler's `framework/types.go`:
NodeInfo, HostPortInfo).

`NodeInfo` is the scheduler's own mutable record of a node and the pods
assigned (or assumed) to it, with what they request summed; it is not
thread-safe. The Pods and Nodes it holds are shared with informer caches
and are never mutated. Its `generation` changes on every mutation, so a
reader (a snapshot, the equivalence cache) can tell what moved.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

from kpy.api.core.v1 import Node
from kpy.scheduler.resources import (
    PodResource,
    Resource,
    compute_pod_resource,
    node_allocatable,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kpy.api.core.v1 import Pod

__all__ = [
    "DEFAULT_BIND_ALL_HOST_IP",
    "HostPort",
    "HostPortInfo",
    "NodeInfo",
    "pod_host_ports",
    "pod_key",
]

DEFAULT_BIND_ALL_HOST_IP: Final = "0.0.0.0"

HostPort = tuple[str, str, int]
_K = TypeVar("_K")


def _sanitize(ip: str, protocol: str) -> tuple[str, str]:
    return ip or DEFAULT_BIND_ALL_HOST_IP, protocol or "TCP"


def pod_host_ports(pod: Pod) -> tuple[HostPort, ...]:
    """The (hostIP, protocol, hostPort) triples a pod takes on its node: ports
    with hostPort > 0 of app containers and sidecar init containers, with an
    empty IP read as 0.0.0.0 and an empty protocol as TCP."""
    ports: list[HostPort] = []
    spec = pod.spec
    containers = [
        *spec.containers,
        *(c for c in spec.init_containers if c.restart_policy == "Always"),
    ]
    for container in containers:
        for p in container.ports:
            if p.host_port > 0:
                ip, protocol = _sanitize(p.host_ip, p.protocol)
                ports.append((ip, protocol, p.host_port))
    return tuple(ports)


class HostPortInfo:
    """Host ports in use on a node, counted per pod so that removing one of
    two pods that share a port leaves it in use. 0.0.0.0 conflicts with
    every IP on the same (protocol, port), as in Kubernetes' HostPortInfo."""

    __slots__ = ("_by_ip", "_by_port")

    def __init__(self) -> None:
        self._by_ip: dict[HostPort, int] = {}
        self._by_port: dict[tuple[str, int], int] = {}

    def add(self, ip: str, protocol: str, port: int) -> None:
        if port <= 0:
            return
        ip, protocol = _sanitize(ip, protocol)
        key = (ip, protocol, port)
        self._by_ip[key] = self._by_ip.get(key, 0) + 1
        self._by_port[protocol, port] = self._by_port.get((protocol, port), 0) + 1

    def remove(self, ip: str, protocol: str, port: int) -> None:
        if port <= 0:
            return
        ip, protocol = _sanitize(ip, protocol)
        _decrement(self._by_ip, (ip, protocol, port))
        _decrement(self._by_port, (protocol, port))

    def check_conflict(self, ip: str, protocol: str, port: int) -> bool:
        """Whether (ip, protocol, port) is already taken on this node."""
        if port <= 0:
            return False
        ip, protocol = _sanitize(ip, protocol)
        if ip == DEFAULT_BIND_ALL_HOST_IP:
            return (protocol, port) in self._by_port
        by_ip = self._by_ip
        return (ip, protocol, port) in by_ip or (DEFAULT_BIND_ALL_HOST_IP, protocol, port) in by_ip

    def clone(self) -> HostPortInfo:
        other = HostPortInfo()
        other._by_ip = dict(self._by_ip)
        other._by_port = dict(self._by_port)
        return other

    def __len__(self) -> int:
        return len(self._by_ip)


def _decrement(counts: dict[_K, int], key: _K) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def pod_key(pod: Pod) -> str:
    """How NodeInfo tells pods apart: the UID, else namespace/name."""
    meta = pod.metadata
    if meta.uid:
        return meta.uid
    return f"{meta.namespace}/{meta.name}" if meta.name else ""


_generation = itertools.count(1)


def _assigned_pod_resource(pod: Pod) -> PodResource:
    # A pod already on a node whose quantities cannot be parsed (stored
    # before the API server refused them) still takes its place there, with
    # requests of nothing: the scheduler cannot know more, and must not die
    # of it. The cache logs such pods when they arrive.
    try:
        return compute_pod_resource(pod)
    except ValueError:
        return PodResource(Resource(), 0, 0)


@dataclass(frozen=True, slots=True)
class _PodEntry:
    pod: Pod
    resource: PodResource
    ports: tuple[HostPort, ...]
    # Any pod (anti-)affinity at all; required anti-affinity in particular.
    affinity: bool
    required_anti_affinity: bool


def _affinity_flags(pod: Pod) -> tuple[bool, bool]:
    if not pod.spec.HasField("affinity"):
        return False, False
    a = pod.spec.affinity
    has_affinity = a.HasField("pod_affinity") or a.HasField("pod_anti_affinity")
    required_anti = bool(a.pod_anti_affinity.required_during_scheduling_ignored_during_execution)
    return has_affinity, required_anti


class NodeInfo:
    """A node and the pods on it, with what they request cached.

    - `requested`: the sum of the pods' effective requests (what filtering
      compares with `allocatable`); `non_zero_requested`: the same cpu and
      memory with kube-scheduler's non-zero defaults (what scoring counts).
    - `allocatable`: `status.allocatable` (or capacity when empty), including
      `allowed_pod_number` from "pods".
    - `used_ports`: host ports taken by the pods.
    - `pods_with_affinity`, `pods_with_required_anti_affinity`: how many of
      the pods have pod (anti-)affinity, so inter-pod affinity visits only
      the nodes that hold such pods.
    - `name` and `labels` are copied from the node once, because reading a
      protobuf field costs more than a dict lookup and filters read them for
      every pod; `node_cache` holds what plugins derive from the node (parsed
      taints, say) and is emptied whenever the node changes.
    - `generation` changes on every mutation, so a snapshot can tell what
      moved.

    Pods are keyed by UID (else namespace/name; else the object's identity);
    adding a pod whose key is present replaces it.
    """

    __slots__ = (
        "_pods",
        "allocatable",
        "generation",
        "labels",
        "name",
        "node",
        "node_cache",
        "non_zero_requested",
        "pods_with_affinity",
        "pods_with_required_anti_affinity",
        "requested",
        "used_ports",
    )

    node: Node
    name: str
    labels: dict[str, str]
    allocatable: Resource
    node_cache: dict[str, object]

    def __init__(self, node: Node | None = None, pods: Iterable[Pod] = ()) -> None:
        self._pods: dict[str, _PodEntry] = {}
        self.pods_with_affinity = 0
        self.pods_with_required_anti_affinity = 0
        self.requested = Resource()
        self.non_zero_requested = Resource()
        self.used_ports = HostPortInfo()
        self.generation = next(_generation)
        self.set_node(node if node is not None else Node())
        for pod in pods:
            self.add_pod(pod)

    def set_node(self, node: Node) -> None:
        self.node = node
        self.name = node.metadata.name
        self.labels = dict(node.metadata.labels)
        self.allocatable = node_allocatable(node)
        self.node_cache = {}
        self.generation = next(_generation)

    @property
    def pods(self) -> list[Pod]:
        return [entry.pod for entry in self._pods.values()]

    @property
    def pod_count(self) -> int:
        return len(self._pods)

    def has_pod(self, pod: Pod) -> bool:
        return self._key(pod) in self._pods

    def add_pod(self, pod: Pod) -> None:
        key = self._key(pod)
        if key in self._pods:
            self._forget(self._pods.pop(key))
        entry = _PodEntry(
            pod, _assigned_pod_resource(pod), pod_host_ports(pod), *_affinity_flags(pod)
        )
        self._pods[key] = entry
        self.pods_with_affinity += entry.affinity
        self.pods_with_required_anti_affinity += entry.required_anti_affinity
        self.requested.add_resource(entry.resource.resource)
        self.non_zero_requested.milli_cpu += entry.resource.non_zero_milli_cpu
        self.non_zero_requested.memory += entry.resource.non_zero_memory
        for ip, protocol, port in entry.ports:
            self.used_ports.add(ip, protocol, port)
        self.generation = next(_generation)

    def remove_pod(self, pod: Pod) -> bool:
        """Take the pod off the node; False if it was not there."""
        entry = self._pods.pop(self._key(pod), None)
        if entry is None:
            return False
        self._forget(entry)
        self.generation = next(_generation)
        return True

    def clone(self) -> NodeInfo:
        """An independent copy (pods and node objects shared, not copied)."""
        other = NodeInfo.__new__(NodeInfo)
        other._pods = dict(self._pods)
        other.pods_with_affinity = self.pods_with_affinity
        other.pods_with_required_anti_affinity = self.pods_with_required_anti_affinity
        other.requested = self.requested.clone()
        other.non_zero_requested = self.non_zero_requested.clone()
        other.used_ports = self.used_ports.clone()
        other.generation = self.generation
        other.node = self.node
        other.name = self.name
        other.labels = self.labels
        other.allocatable = self.allocatable
        other.node_cache = self.node_cache
        return other

    def _forget(self, entry: _PodEntry) -> None:
        self.pods_with_affinity -= entry.affinity
        self.pods_with_required_anti_affinity -= entry.required_anti_affinity
        self.requested.add_resource(entry.resource.resource, -1)
        self.non_zero_requested.milli_cpu -= entry.resource.non_zero_milli_cpu
        self.non_zero_requested.memory -= entry.resource.non_zero_memory
        for ip, protocol, port in entry.ports:
            self.used_ports.remove(ip, protocol, port)

    @staticmethod
    def _key(pod: Pod) -> str:
        # Anonymous pods (tests build them) must not collide with each other.
        return pod_key(pod) or f"@{id(pod)}"

    def __repr__(self) -> str:
        return f"NodeInfo({self.name!r}, pods={len(self._pods)})"

"""What a pod requests, and what a node offers, as kube-scheduler counts them.

Contract (Kubernetes' component-helpers `resource.PodRequests` and the
scheduler's `framework.Resource`):

- A pod's effective request for each resource is
  max(sum of app containers + sum of sidecars, max over init containers of
  (that init container + the sidecars started before it)), where a sidecar is
  an init container with restartPolicy Always. Pod-level requests
  (`spec.resources.requests` for cpu, memory and hugepages-*) replace the
  container aggregate for the resources they name; `spec.overhead` is added
  last. Arithmetic is exact (Quantity), converted once at the end: cpu in
  millicores, everything else in whole units, both rounded up as Kubernetes'
  MilliValue()/Value() do.
- Filtering uses the requests as written: a container that asks for nothing
  asks for nothing. Only scoring substitutes kube-scheduler's non-zero
  defaults (100m cpu, 200Mi memory) for a container that omits cpu or memory
  (`non_zero` below; an explicit "0" stays 0), so that many request-less pods
  do not all land on one node.
- A node offers `status.allocatable`, or `status.capacity` when allocatable is
  empty (the API server's defaulting does the same).
- Nothing here mutates a Pod or Node; results are new objects. Quantity
  strings are parsed through a small cache because the same few strings
  ("100m", "1Gi") recur across thousands of pods.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from kpy.api.names import is_qualified_name
from kpy.api.quantity import Quantity

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from kpy.api.core.v1 import Container, Node, Pod
    from kpy.api.meta.v1 import Quantity as QuantityMessage

__all__ = [
    "CPU",
    "DEFAULT_MEMORY_REQUEST",
    "DEFAULT_MILLI_CPU_REQUEST",
    "EPHEMERAL_STORAGE",
    "MEMORY",
    "PODS",
    "PodResource",
    "Resource",
    "ResourceList",
    "allocatable_and_requested",
    "compute_pod_resource",
    "invalid_node_quantities",
    "invalid_pod_quantities",
    "is_extended_resource_name",
    "is_pod_level_requests_set",
    "is_prefixed_native_resource",
    "is_scalar_resource_name",
    "node_allocatable",
    "parse_quantity",
    "pod_request_resource",
    "pod_requests",
    "pod_score_requests",
]

CPU: Final = "cpu"
MEMORY: Final = "memory"
PODS: Final = "pods"
EPHEMERAL_STORAGE: Final = "ephemeral-storage"

#: kube-scheduler's stand-ins for an omitted request, used only when scoring.
DEFAULT_MILLI_CPU_REQUEST: Final = 100
DEFAULT_MEMORY_REQUEST: Final = 200 * 1024 * 1024

_HUGEPAGES_PREFIX: Final = "hugepages-"
_ATTACHABLE_VOLUMES_PREFIX: Final = "attachable-volumes-"
_NATIVE_PREFIX: Final = "kubernetes.io/"
_QUOTA_REQUESTS_PREFIX: Final = "requests."
_RESTART_ALWAYS: Final = "Always"
_ZERO: Final = Quantity(0)

ResourceList = dict[str, Quantity]


@functools.lru_cache(maxsize=4096)
def parse_quantity(text: str) -> Quantity:
    """A quantity string as a Quantity; the empty string is zero. Cached."""
    return Quantity.parse(text) if text else _ZERO


def _resource_list(messages: Mapping[str, QuantityMessage]) -> ResourceList:
    return {name: parse_quantity(q.string) for name, q in messages.items()}


def _invalid(path: str, messages: Mapping[str, QuantityMessage]) -> list[str]:
    bad: list[str] = []
    for name, q in sorted(messages.items()):
        try:
            parse_quantity(q.string)
        except ValueError:
            bad.append(f'{path}.{name}: invalid quantity "{q.string}"')
    return bad


def invalid_pod_quantities(pod: Pod) -> list[str]:
    """Each resource quantity of `pod` the scheduler cannot parse, as
    `<field path>: invalid quantity "<text>"` (requests of every container,
    pod-level requests, overhead); empty when all parse. The API server
    refuses such pods now, but objects stored before may still hold them."""
    bad: list[str] = []
    spec = pod.spec
    for kind, containers in (
        ("initContainers", spec.init_containers),
        ("containers", spec.containers),
    ):
        for i, container in enumerate(containers):
            bad += _invalid(f"spec.{kind}[{i}].resources.requests", container.resources.requests)
    bad += _invalid("spec.resources.requests", spec.resources.requests)
    bad += _invalid("spec.overhead", spec.overhead)
    return bad


def invalid_node_quantities(node: Node) -> list[str]:
    """Each quantity of the node's status.allocatable and status.capacity
    that cannot be parsed, as invalid_pod_quantities words them."""
    return _invalid("status.allocatable", node.status.allocatable) + _invalid(
        "status.capacity", node.status.capacity
    )


# --- resource names (Kubernetes' v1helper and scheduler util) ---


def is_prefixed_native_resource(name: str) -> bool:
    return _NATIVE_PREFIX in name


def _is_native_resource(name: str) -> bool:
    return "/" not in name or is_prefixed_native_resource(name)


@functools.lru_cache(maxsize=1024)
def is_extended_resource_name(name: str) -> bool:
    """A vendor resource such as `example.com/gpu` (v1helper.IsExtendedResourceName)."""
    if _is_native_resource(name) or name.startswith(_QUOTA_REQUESTS_PREFIX):
        return False
    return not is_qualified_name(_QUOTA_REQUESTS_PREFIX + name)


@functools.lru_cache(maxsize=1024)
def is_scalar_resource_name(name: str) -> bool:
    """Counted as a plain integer besides cpu, memory and ephemeral storage:
    extended, hugepages-*, kubernetes.io/-prefixed and attachable-volumes-*."""
    return (
        is_extended_resource_name(name)
        or name.startswith((_HUGEPAGES_PREFIX, _ATTACHABLE_VOLUMES_PREFIX))
        or is_prefixed_native_resource(name)
    )


# --- aggregation (component-helpers resource.PodRequests) ---


def _add_list(into: ResourceList, more: Mapping[str, Quantity]) -> None:
    for name, q in more.items():
        have = into.get(name)
        into[name] = q if have is None else have + q


def _max_list(into: ResourceList, more: Mapping[str, Quantity]) -> None:
    for name, q in more.items():
        have = into.get(name)
        if have is None or q > have:
            into[name] = q


def _container_requests(
    container: Container, non_missing: Mapping[str, Quantity] | None
) -> ResourceList:
    reqs = _resource_list(container.resources.requests)
    if non_missing:
        # Only an absent key is defaulted; an explicit "0" is a request of zero.
        for name, q in non_missing.items():
            reqs.setdefault(name, q)
    return reqs


def _aggregate_container_requests(
    pod: Pod, non_missing: Mapping[str, Quantity] | None
) -> ResourceList:
    result: ResourceList = {}
    for container in pod.spec.containers:
        _add_list(result, _container_requests(container, non_missing))
    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for container in pod.spec.init_containers:
        reqs = _container_requests(container, non_missing)
        if container.restart_policy == _RESTART_ALWAYS:
            # A sidecar keeps running beside the app containers, and beside
            # every init container that starts after it.
            _add_list(result, reqs)
            _add_list(sidecars, reqs)
            reqs = dict(sidecars)
        else:
            _add_list(reqs, sidecars)
        _max_list(init_peak, reqs)
    _max_list(result, init_peak)
    return result


def _is_supported_pod_level_resource(name: str) -> bool:
    return name in (CPU, MEMORY) or name.startswith(_HUGEPAGES_PREFIX)


def is_pod_level_requests_set(pod: Pod) -> bool:
    """Whether `spec.resources.requests` names cpu, memory or hugepages-*."""
    if not pod.spec.HasField("resources"):
        return False
    return any(_is_supported_pod_level_resource(n) for n in pod.spec.resources.requests)


def pod_requests(pod: Pod, *, non_missing: Mapping[str, Quantity] | None = None) -> ResourceList:
    """The pod's effective requests (see the module docstring), including
    overhead. `non_missing` fills in requests a container omits."""
    reqs = _aggregate_container_requests(pod, non_missing)
    if is_pod_level_requests_set(pod):
        for name, q in _resource_list(pod.spec.resources.requests).items():
            if _is_supported_pod_level_resource(name):
                reqs[name] = q
    if pod.spec.overhead:
        _add_list(reqs, _resource_list(pod.spec.overhead))
    return reqs


_NON_ZERO_DEFAULTS: Final[Mapping[str, Quantity]] = {
    CPU: Quantity.from_milli(DEFAULT_MILLI_CPU_REQUEST),
    MEMORY: Quantity.from_int(DEFAULT_MEMORY_REQUEST),
}


def _non_missing_defaults(requests: ResourceList, pod_level_set: bool) -> Mapping[str, Quantity]:
    # With pod-level requests, a default is only due where neither the pod
    # nor any container says anything (scheduler getNonMissingContainerRequests).
    if not pod_level_set:
        return _NON_ZERO_DEFAULTS
    return {name: q for name, q in _NON_ZERO_DEFAULTS.items() if name not in requests}


# --- Resource: the scheduler's integer view ---


@dataclass(slots=True)
class Resource:
    """Amounts in the scheduler's units: millicores, bytes, counts."""

    milli_cpu: int = 0
    memory: int = 0
    ephemeral_storage: int = 0
    allowed_pod_number: int = 0
    scalar: dict[str, int] = field(default_factory=dict)

    def add(self, requests: Mapping[str, Quantity]) -> None:
        """Add a resource list (Kubernetes' Resource.Add)."""
        for name, q in requests.items():
            if name == CPU:
                self.milli_cpu += q.milli_value()
            elif name == MEMORY:
                self.memory += q.value()
            elif name == PODS:
                self.allowed_pod_number += q.value()
            elif name == EPHEMERAL_STORAGE:
                self.ephemeral_storage += q.value()
            elif is_scalar_resource_name(name):
                self.scalar[name] = self.scalar.get(name, 0) + q.value()

    def add_resource(self, other: Resource, sign: int = 1) -> None:
        """Add (sign 1) or subtract (sign -1) another Resource."""
        self.milli_cpu += sign * other.milli_cpu
        self.memory += sign * other.memory
        self.ephemeral_storage += sign * other.ephemeral_storage
        self.allowed_pod_number += sign * other.allowed_pod_number
        for name, value in other.scalar.items():
            self.scalar[name] = self.scalar.get(name, 0) + sign * value

    def clone(self) -> Resource:
        return Resource(
            self.milli_cpu,
            self.memory,
            self.ephemeral_storage,
            self.allowed_pod_number,
            dict(self.scalar),
        )


@dataclass(frozen=True, slots=True)
class PodResource:
    """What an assigned pod takes from its node: its requests, plus the
    non-zero cpu and memory that scoring counts instead."""

    resource: Resource
    non_zero_milli_cpu: int
    non_zero_memory: int


def compute_pod_resource(pod: Pod) -> PodResource:
    """A pod's requests as NodeInfo accounts them (PodInfo.CalculateResource)."""
    requests = pod_requests(pod)
    non_missing = _non_missing_defaults(requests, is_pod_level_requests_set(pod))
    non_zero = pod_requests(pod, non_missing=non_missing) if non_missing else requests
    resource = Resource()
    resource.add(requests)
    return PodResource(
        resource,
        non_zero.get(CPU, _ZERO).milli_value(),
        non_zero.get(MEMORY, _ZERO).value(),
    )


def pod_request_resource(pod: Pod) -> Resource:
    """The request NodeResourcesFit checks (computePodResourceRequest): each
    resource at least zero; `pods` is not a request and is left out."""
    result = Resource()
    for name, q in pod_requests(pod).items():
        if name == CPU:
            result.milli_cpu = max(result.milli_cpu, q.milli_value())
        elif name == MEMORY:
            result.memory = max(result.memory, q.value())
        elif name == EPHEMERAL_STORAGE:
            result.ephemeral_storage = max(result.ephemeral_storage, q.value())
        elif is_scalar_resource_name(name):
            result.scalar[name] = max(result.scalar.get(name, 0), q.value())
    return result


def pod_score_requests(pod: Pod, resources: Sequence[str], *, use_requested: bool) -> list[int]:
    """The pod's request for each named resource as the allocation scorers see
    it: with the non-zero defaults unless `use_requested`, cpu in millicores."""
    reqs = pod_requests(pod, non_missing=None if use_requested else _NON_ZERO_DEFAULTS)
    out: list[int] = []
    for name in resources:
        q = reqs.get(name, _ZERO)
        out.append(q.milli_value() if name == CPU else q.value())
    return out


def node_allocatable(node: Node) -> Resource:
    """What the node offers: allocatable, or capacity when allocatable is empty."""
    source = node.status.allocatable or node.status.capacity
    result = Resource()
    result.add(_resource_list(source))
    return result


def allocatable_and_requested(
    allocatable: Resource,
    requested: Resource,
    non_zero_requested: Resource,
    name: str,
    pod_request: int,
    *,
    use_requested: bool,
) -> tuple[int, int]:
    """(what the node offers, what would be requested with this pod) for one
    resource, as resourceAllocationScorer computes it; (0, 0) means "leave
    this resource out of the score"."""
    if pod_request == 0 and is_scalar_resource_name(name):
        return 0, 0
    counted = requested if use_requested else non_zero_requested
    if name == CPU:
        return allocatable.milli_cpu, counted.milli_cpu + pod_request
    if name == MEMORY:
        return allocatable.memory, counted.memory + pod_request
    if name == EPHEMERAL_STORAGE:
        return allocatable.ephemeral_storage, requested.ephemeral_storage + pod_request
    if name in allocatable.scalar:
        return allocatable.scalar[name], requested.scalar.get(name, 0) + pod_request
    return 0, 0

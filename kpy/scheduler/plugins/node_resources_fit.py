"""NodeResourcesFit: the pod's requests must fit in what the node has left;
among feasible nodes, prefer the least allocated.

Mirrors kube-scheduler's noderesources Fit plugin with the LeastAllocated
scoring strategy (fit.go, least_allocated.go, resource_allocation.go):

- Filter compares the pod's effective request (see kpy.scheduler.resources)
  with allocatable minus what the node's pods request: "Too many pods" when
  the node's pod count is at its "pods" allocatable, then "Insufficient cpu",
  "Insufficient memory", "Insufficient ephemeral-storage", "Insufficient
  <name>" for extended, hugepages-* and other scalar resources. A resource the
  pod does not request is not checked. All reasons are reported together;
  the status is UnschedulableAndUnresolvable when some request exceeds the
  node's whole allocatable (no preemption could help), else Unschedulable.
  `ignored_resources` / `ignored_resource_groups` exempt extended resources
  (by full name / by the part before "/").
- Score (LeastAllocated): per resource (cpu and memory, weight 1 each, by
  default) (allocatable - requested) * 100 / allocatable in integer
  arithmetic, 0 when over; requested counts kube-scheduler's non-zero
  defaults for pods that omit cpu or memory; resources the node does not
  offer (and scalar ones the pod does not request) are left out; the result
  is the weighted mean, rounded down.
- Filter without PreFilter is an Error, as in Kubernetes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

from kpy.scheduler.framework import MAX_NODE_SCORE, SUCCESS, Code, Status, new_status
from kpy.scheduler.resources import (
    CPU,
    EPHEMERAL_STORAGE,
    MEMORY,
    PODS,
    Resource,
    allocatable_and_requested,
    is_extended_resource_name,
    pod_request_resource,
    pod_score_requests,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from kpy.api.core.v1 import Pod
    from kpy.scheduler.framework import (
        BoolArray,
        CycleState,
        IntArray,
        NodeInfo,
        NodeTable,
        PreFilterResult,
    )

__all__ = [
    "DEFAULT_SCORING_RESOURCES",
    "NAME",
    "InsufficientResource",
    "NodeResourcesFit",
    "fits_request",
    "least_requested_score",
]

NAME: Final = "NodeResourcesFit"
DEFAULT_SCORING_RESOURCES: Final = ((CPU, 1), (MEMORY, 1))

_PRE_FILTER_KEY: Final = "PreFilter" + NAME
_PRE_SCORE_KEY: Final = "PreScore" + NAME
_NO_STATE: Final = new_status(Code.ERROR, f'reading "{_PRE_FILTER_KEY}" from cycleState: not found')
_NO_RESOURCES: Final = new_status(Code.ERROR, "resources not found")


@dataclass(frozen=True, slots=True)
class InsufficientResource:
    """Why a pod does not fit, for one resource (Kubernetes' InsufficientResource)."""

    resource_name: str
    reason: str
    requested: int
    used: int
    capacity: int
    # The request exceeds the node's whole allocatable: preemption cannot help.
    unresolvable: bool = False


def _scalar_checked(name: str, ignored: frozenset[str], ignored_groups: frozenset[str]) -> bool:
    if not is_extended_resource_name(name):
        return True
    return name not in ignored and name.split("/", 1)[0] not in ignored_groups


def fits_request(
    request: Resource,
    node_info: NodeInfo,
    ignored: frozenset[str] = frozenset(),
    ignored_groups: frozenset[str] = frozenset(),
) -> list[InsufficientResource]:
    """Every resource the request does not fit in on this node (fitsRequest)."""
    out: list[InsufficientResource] = []
    alloc, used = node_info.allocatable, node_info.requested
    pods = node_info.pod_count
    if pods + 1 > alloc.allowed_pod_number:
        out.append(InsufficientResource(PODS, "Too many pods", 1, pods, alloc.allowed_pod_number))
    storage = EPHEMERAL_STORAGE
    for name, want, have, capacity in (
        (CPU, request.milli_cpu, used.milli_cpu, alloc.milli_cpu),
        (MEMORY, request.memory, used.memory, alloc.memory),
        (storage, request.ephemeral_storage, used.ephemeral_storage, alloc.ephemeral_storage),
    ):
        if want > 0 and want > capacity - have:
            out.append(_insufficient(name, want, have, capacity))
    for name, want in request.scalar.items():
        if want == 0 or not _scalar_checked(name, ignored, ignored_groups):
            continue
        have, capacity = used.scalar.get(name, 0), alloc.scalar.get(name, 0)
        if want > capacity - have:
            out.append(_insufficient(name, want, have, capacity))
    return out


def _insufficient(name: str, want: int, have: int, capacity: int) -> InsufficientResource:
    return InsufficientResource(name, f"Insufficient {name}", want, have, capacity, want > capacity)


def least_requested_score(requested: int, capacity: int) -> int:
    """Unused capacity on a 0..100 scale: more room scores higher."""
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


@dataclass(frozen=True, slots=True)
class _PreScoreState:
    pod_requests: list[int]


class NodeResourcesFit:
    name: Final = NAME

    def __init__(
        self,
        *,
        ignored_resources: Iterable[str] = (),
        ignored_resource_groups: Iterable[str] = (),
        scoring_resources: Sequence[tuple[str, int]] = DEFAULT_SCORING_RESOURCES,
    ) -> None:
        """`scoring_resources`: (resource name, weight 1..100) pairs for
        LeastAllocated. Raises ValueError on a weight out of range."""
        for i, (name, weight) in enumerate(scoring_resources):
            if not 1 <= weight <= MAX_NODE_SCORE:
                raise ValueError(
                    f"scoringStrategy.resources[{i}].weight: Invalid value: {weight}: "
                    f"resource weight of {name} should be in a range [1, {MAX_NODE_SCORE}]"
                )
        self._ignored = frozenset(ignored_resources)
        self._ignored_groups = frozenset(ignored_resource_groups)
        self._resources = tuple(scoring_resources)
        self._resource_names = tuple(name for name, _ in scoring_resources)
        self._cpu_memory_only = all(name in (CPU, MEMORY) for name in self._resource_names)

    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status]:
        state.write(_PRE_FILTER_KEY, pod_request_resource(pod))
        return None, SUCCESS

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status:
        request = state.get(_PRE_FILTER_KEY)
        if not isinstance(request, Resource):
            return _NO_STATE
        if _fits_quickly(request, node_info):
            return SUCCESS
        insufficient = fits_request(request, node_info, self._ignored, self._ignored_groups)
        if not insufficient:
            return SUCCESS
        unresolvable = any(r.unresolvable for r in insufficient)
        code = Code.UNSCHEDULABLE_AND_UNRESOLVABLE if unresolvable else Code.UNSCHEDULABLE
        return Status(code, tuple(r.reason for r in insufficient))

    def filter_table(self, state: CycleState, pod: Pod, table: NodeTable) -> BoolArray | None:
        """`filter` over the table; None for a pod that asks for a scalar
        resource (the table has no column for those)."""
        request = state.get(_PRE_FILTER_KEY)
        if not isinstance(request, Resource) or any(request.scalar.values()):
            return None
        passed: BoolArray = table.pods < table.alloc_pods
        for want, used, capacity in (
            (request.milli_cpu, table.req_cpu, table.alloc_cpu),
            (request.memory, table.req_memory, table.alloc_memory),
            (request.ephemeral_storage, table.req_ephemeral, table.alloc_ephemeral),
        ):
            if want > 0:
                passed &= want <= capacity - used
        return passed

    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status:
        requests = pod_score_requests(pod, self._resource_names, use_requested=False)
        state.write(_PRE_SCORE_KEY, _PreScoreState(requests))
        return SUCCESS

    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status]:
        scores, status = self.score_nodes(state, pod, (node_info,))
        return (scores[0] if scores else 0), status

    def score_nodes(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[list[int], Status]:
        if not self._resources:
            return [0] * len(nodes), _NO_RESOURCES
        s = state.get(_PRE_SCORE_KEY)
        if isinstance(s, _PreScoreState):
            requests = s.pod_requests
        else:
            requests = pod_score_requests(pod, self._resource_names, use_requested=False)
        resources = self._resources
        score = _least_allocated_cpu_memory if self._cpu_memory_only else _least_allocated
        return [score(resources, requests, n) for n in nodes], SUCCESS

    def score_table(
        self, state: CycleState, pod: Pod, table: NodeTable, rows: IntArray
    ) -> IntArray | None:
        """`score_nodes` over the table, for the default cpu and memory
        scoring; None for other scoring resources."""
        if not self._resources or not self._cpu_memory_only:
            return None
        s = state.get(_PRE_SCORE_KEY)
        if isinstance(s, _PreScoreState):
            requests = s.pod_requests
        else:
            requests = pod_score_requests(pod, self._resource_names, use_requested=False)
        node_score = np.zeros(len(rows), np.int64)
        weight_sum = np.zeros(len(rows), np.int64)
        for (name, weight), pod_request in zip(self._resources, requests, strict=True):
            if name == CPU:
                capacity, requested = table.alloc_cpu[rows], table.nz_cpu[rows] + pod_request
            else:
                capacity, requested = table.alloc_memory[rows], table.nz_memory[rows] + pod_request
            offered = capacity > 0
            fits = offered & (requested <= capacity)
            # All terms are >= 0 where used, so floor division is Go's.
            room = (capacity - requested) * MAX_NODE_SCORE // np.where(offered, capacity, 1)
            node_score += np.where(fits, room, 0) * weight
            weight_sum += np.where(offered, weight, 0)
        return np.where(weight_sum > 0, node_score // np.maximum(weight_sum, 1), 0)


def _least_allocated(
    resources: Sequence[tuple[str, int]], requests: Sequence[int], node_info: NodeInfo
) -> int:
    node_score = weight_sum = 0
    for (name, weight), pod_request in zip(resources, requests, strict=True):
        allocatable, requested = allocatable_and_requested(
            node_info.allocatable,
            node_info.requested,
            node_info.non_zero_requested,
            name,
            pod_request,
            use_requested=False,
        )
        if allocatable == 0:
            continue
        node_score += least_requested_score(requested, allocatable) * weight
        weight_sum += weight
    return node_score // weight_sum if weight_sum else 0


def _least_allocated_cpu_memory(
    resources: Sequence[tuple[str, int]], requests: Sequence[int], node_info: NodeInfo
) -> int:
    # _least_allocated for cpu and memory only, without the per-resource
    # dispatch: Score runs for hundreds of nodes per pod.
    alloc, counted = node_info.allocatable, node_info.non_zero_requested
    node_score = weight_sum = 0
    for (name, weight), pod_request in zip(resources, requests, strict=True):
        if name == CPU:
            capacity, requested = alloc.milli_cpu, counted.milli_cpu + pod_request
        else:
            capacity, requested = alloc.memory, counted.memory + pod_request
        if capacity:
            if requested <= capacity:
                node_score += (capacity - requested) * MAX_NODE_SCORE // capacity * weight
            weight_sum += weight
    return node_score // weight_sum if weight_sum else 0


def _fits_quickly(request: Resource, node_info: NodeInfo) -> bool:
    # The common case, decided without building a list: room for one more pod
    # and for its cpu and memory, and nothing else requested.
    alloc, used = node_info.allocatable, node_info.requested
    return (
        node_info.pod_count < alloc.allowed_pod_number
        and request.milli_cpu <= alloc.milli_cpu - used.milli_cpu
        and request.memory <= alloc.memory - used.memory
        and request.ephemeral_storage == 0
        and not request.scalar
    )

"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would be
used in similar proportions once the pod is placed.

Mirrors kube-scheduler's noderesources/balanced_allocation.go:

- For each resource (cpu and memory by default) the fraction
  (requested on the node + the pod's request) / allocatable, capped at 1;
  requests are counted as written (no non-zero defaults), and a resource the
  node does not offer (or a scalar one the pod does not request) is left out.
- score = int((1 - std) * 100), where std is |f1 - f2| / 2 for two
  fractions, the population standard deviation for more, and 0 for fewer
  (float64 arithmetic, truncated, as Kubernetes computes it).
- PreScore skips the plugin for a pod that requests none of the resources
  (a best-effort pod), so such pods are not all drawn to one node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

from kpy.scheduler.framework import MAX_NODE_SCORE, SUCCESS, Code, Status, new_status
from kpy.scheduler.resources import CPU, MEMORY, allocatable_and_requested, pod_score_requests

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.core.v1 import Pod
    from kpy.scheduler.framework import CycleState, IntArray, NodeInfo, NodeTable

__all__ = ["DEFAULT_RESOURCES", "NAME", "BalancedAllocation", "balanced_resource_score"]

NAME: Final = "NodeResourcesBalancedAllocation"
DEFAULT_RESOURCES: Final = (CPU, MEMORY)

_PRE_SCORE_KEY: Final = "PreScore" + NAME
_SKIP: Final = new_status(Code.SKIP)


def balanced_resource_score(requested: Sequence[int], allocatable: Sequence[int]) -> int:
    """(1 - standard deviation of the used fractions) on a 0..100 scale."""
    fractions: list[float] = []
    total = 0.0
    for want, have in zip(requested, allocatable, strict=True):
        if have == 0:
            continue
        fraction = min(float(want) / float(have), 1.0)
        total += fraction
        fractions.append(fraction)
    std = 0.0
    if len(fractions) == 2:
        std = abs((fractions[0] - fractions[1]) / 2)
    elif len(fractions) > 2:
        mean = total / len(fractions)
        spread = 0.0
        for fraction in fractions:
            spread = spread + (fraction - mean) * (fraction - mean)
        std = math.sqrt(spread / len(fractions))
    return int((1 - std) * MAX_NODE_SCORE)


@dataclass(frozen=True, slots=True)
class _PreScoreState:
    pod_requests: list[int]


class BalancedAllocation:
    name: Final = NAME

    def __init__(self, *, resources: Sequence[str] = DEFAULT_RESOURCES) -> None:
        self._resources = tuple(resources)
        self._cpu_then_memory = self._resources == (CPU, MEMORY)

    def _pod_requests(self, pod: Pod) -> list[int]:
        return pod_score_requests(pod, self._resources, use_requested=True)

    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status:
        requests = self._pod_requests(pod)
        if not any(requests):
            return _SKIP
        state.write(_PRE_SCORE_KEY, _PreScoreState(requests))
        return SUCCESS

    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status]:
        scores, status = self.score_nodes(state, pod, (node_info,))
        return scores[0], status

    def score_nodes(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[list[int], Status]:
        s = state.get(_PRE_SCORE_KEY)
        requests = s.pod_requests if isinstance(s, _PreScoreState) else self._pod_requests(pod)
        if not any(requests):
            return [0] * len(nodes), SUCCESS
        if self._cpu_then_memory:
            return [_balanced_cpu_memory(requests, n) for n in nodes], SUCCESS
        resources = self._resources
        return [_balanced(resources, requests, n) for n in nodes], SUCCESS

    def score_table(
        self, state: CycleState, pod: Pod, table: NodeTable, rows: IntArray
    ) -> IntArray | None:
        """`score_nodes` over the table for (cpu, memory), in the same
        float64 operations in the same order (so the same truncated
        results); None for other resources."""
        if not self._cpu_then_memory:
            return None
        s = state.get(_PRE_SCORE_KEY)
        requests = s.pod_requests if isinstance(s, _PreScoreState) else self._pod_requests(pod)
        if not any(requests):
            return np.zeros(len(rows), np.int64)
        cpu, memory = table.alloc_cpu[rows], table.alloc_memory[rows]
        both = (cpu != 0) & (memory != 0)
        cpu_fraction = (table.req_cpu[rows] + requests[0]).astype(np.float64) / np.where(
            both, cpu, 1
        ).astype(np.float64)
        memory_fraction = (table.req_memory[rows] + requests[1]).astype(np.float64) / np.where(
            both, memory, 1
        ).astype(np.float64)
        cpu_fraction = np.minimum(cpu_fraction, 1.0)
        memory_fraction = np.minimum(memory_fraction, 1.0)
        spread = (1 - np.abs((cpu_fraction - memory_fraction) / 2)) * MAX_NODE_SCORE
        # int() truncates toward zero; the scores are >= 0, so astype does the same.
        return np.where(both, spread.astype(np.int64), MAX_NODE_SCORE)


def _balanced(resources: Sequence[str], requests: Sequence[int], node_info: NodeInfo) -> int:
    wanted: list[int] = []
    offered: list[int] = []
    for name, pod_request in zip(resources, requests, strict=True):
        allocatable, requested = allocatable_and_requested(
            node_info.allocatable,
            node_info.requested,
            node_info.non_zero_requested,
            name,
            pod_request,
            use_requested=True,
        )
        wanted.append(requested if allocatable else 0)
        offered.append(allocatable)
    return balanced_resource_score(wanted, offered)


def _balanced_cpu_memory(requests: Sequence[int], node_info: NodeInfo) -> int:
    # balanced_resource_score for exactly (cpu, memory), without building
    # lists: Score runs for hundreds of nodes per pod.
    alloc, used = node_info.allocatable, node_info.requested
    cpu, memory = alloc.milli_cpu, alloc.memory
    if not cpu or not memory:
        return MAX_NODE_SCORE  # one fraction or none: no spread
    cpu_fraction = float(used.milli_cpu + requests[0]) / float(cpu)
    memory_fraction = float(used.memory + requests[1]) / float(memory)
    cpu_fraction = 1.0 if cpu_fraction > 1.0 else cpu_fraction
    memory_fraction = 1.0 if memory_fraction > 1.0 else memory_fraction
    return int((1 - abs((cpu_fraction - memory_fraction) / 2)) * MAX_NODE_SCORE)

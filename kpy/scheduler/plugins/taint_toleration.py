"""TaintToleration: a pod may run on a node only if it tolerates every
NoSchedule and NoExecute taint there; among feasible nodes it prefers those
with fewer PreferNoSchedule taints it does not tolerate.

Mirrors kube-scheduler's tainttoleration plugin:

- A toleration matches a taint as `kpy.api.taints.tolerates` says (v1
  Toleration.ToleratesTaint; re-exported here). tolerationSeconds only
  matters for eviction, not for scheduling.
- Filter reports the first untolerated taint in the node's order as
  "node(s) had untolerated taint {key: value}", UnschedulableAndUnresolvable.
- Score counts untolerated PreferNoSchedule taints, considering only the
  pod's tolerations whose effect is empty or PreferNoSchedule; NormalizeScore
  maps the counts to 0..100 reversed (fewest taints scores highest).

The pod's tolerations are parsed once per cycle (`pod_tolerations`, also used
by NodeUnschedulable) and each node's taints once per node version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

from kpy.api.taints import (
    NO_EXECUTE,
    NO_SCHEDULE,
    PREFER_NO_SCHEDULE,
    TaintKey,
    TolerationKey,
    tolerated,
    tolerates,
)
from kpy.scheduler.framework import (
    MAX_NODE_SCORE,
    SUCCESS,
    Code,
    Status,
    default_normalize_score,
    default_normalize_table,
    new_status,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.core.v1 import Pod
    from kpy.scheduler.framework import (
        BoolArray,
        CycleState,
        IntArray,
        NodeInfo,
        NodeScore,
        NodeTable,
    )

__all__ = [
    "NAME",
    "TaintKey",
    "TaintToleration",
    "TolerationKey",
    "hard_taints",
    "pod_tolerations",
    "tolerates",
    "untolerated_taint_reason",
]

NAME: Final = "TaintToleration"

_TOLERATIONS_KEY: Final = "Tolerations" + NAME
_PRE_SCORE_KEY: Final = "PreScore" + NAME


def untolerated_taint_reason(taint: TaintKey) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


@dataclass(frozen=True, slots=True)
class _Tolerations:
    all: tuple[TolerationKey, ...]


def pod_tolerations(state: CycleState, pod: Pod) -> tuple[TolerationKey, ...]:
    """The pod's tolerations, parsed once per scheduling cycle."""
    cached = state.get(_TOLERATIONS_KEY)
    if isinstance(cached, _Tolerations):
        return cached.all
    parsed = tuple(
        TolerationKey(t.key, t.operator, t.value, t.effect) for t in pod.spec.tolerations
    )
    state.write(_TOLERATIONS_KEY, _Tolerations(parsed))
    return parsed


@dataclass(frozen=True, slots=True)
class _NodeTaints:
    # NoSchedule and NoExecute taints, in the node's order: what Filter checks.
    hard: tuple[TaintKey, ...]
    # PreferNoSchedule taints: what Score counts.
    soft: tuple[TaintKey, ...]


def _node_taints(node_info: NodeInfo) -> _NodeTaints:
    cached = node_info.node_cache.get(NAME)
    if isinstance(cached, _NodeTaints):
        return cached
    taints = [TaintKey(t.key, t.value, t.effect) for t in node_info.node.spec.taints]
    parsed = _NodeTaints(
        tuple(t for t in taints if t.effect in (NO_SCHEDULE, NO_EXECUTE)),
        tuple(t for t in taints if t.effect == PREFER_NO_SCHEDULE),
    )
    node_info.node_cache[NAME] = parsed
    return parsed


def hard_taints(node_info: NodeInfo) -> tuple[TaintKey, ...]:
    """The node's NoSchedule and NoExecute taints, in its order: what Filter
    reads of a node (a NodeTable class key; PodTopologySpread's too)."""
    return _node_taints(node_info).hard


def _soft_taints(node_info: NodeInfo) -> tuple[TaintKey, ...]:
    # What Score reads of a node.
    return _node_taints(node_info).soft


@dataclass(frozen=True, slots=True)
class _PreScoreState:
    tolerations_prefer_no_schedule: tuple[TolerationKey, ...]


def _prefer_no_schedule_tolerations(state: CycleState, pod: Pod) -> _PreScoreState:
    # An empty effect means every effect, PreferNoSchedule included.
    return _PreScoreState(
        tuple(t for t in pod_tolerations(state, pod) if t.effect in ("", PREFER_NO_SCHEDULE))
    )


def _prefer_state(state: CycleState, pod: Pod) -> tuple[TolerationKey, ...]:
    s = state.get(_PRE_SCORE_KEY)
    if not isinstance(s, _PreScoreState):
        s = _prefer_no_schedule_tolerations(state, pod)
    return s.tolerations_prefer_no_schedule


def _intolerable(tolerations: tuple[TolerationKey, ...], node_info: NodeInfo) -> int:
    """How many of the node's PreferNoSchedule taints are not tolerated."""
    taints = _node_taints(node_info).soft
    if not taints:
        return 0
    return sum(1 for t in taints if not tolerated(tolerations, t))


class TaintToleration:
    name: Final = NAME

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status:
        taints = _node_taints(node_info).hard
        if not taints:
            return SUCCESS
        tolerations = pod_tolerations(state, pod)
        for taint in taints:
            if not tolerated(tolerations, taint):
                return new_status(
                    Code.UNSCHEDULABLE_AND_UNRESOLVABLE, untolerated_taint_reason(taint)
                )
        return SUCCESS

    def filter_table(self, state: CycleState, pod: Pod, table: NodeTable) -> BoolArray:
        return table.per_class(hard_taints, lambda rep: not self.filter(state, pod, rep).code)

    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status:
        state.write(_PRE_SCORE_KEY, _prefer_no_schedule_tolerations(state, pod))
        return SUCCESS

    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status]:
        return _intolerable(_prefer_state(state, pod), node_info), SUCCESS

    def score_nodes(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[list[int], Status]:
        tolerations = _prefer_state(state, pod)
        return [_intolerable(tolerations, n) for n in nodes], SUCCESS

    def normalize_score(self, state: CycleState, pod: Pod, scores: list[NodeScore]) -> Status:
        return default_normalize_score(MAX_NODE_SCORE, True, scores)

    def score_table(
        self, state: CycleState, pod: Pod, table: NodeTable, rows: IntArray
    ) -> IntArray:
        tolerations = _prefer_state(state, pod)
        ids, reps = table.classes(_soft_taints)
        per_class = np.fromiter(
            (_intolerable(tolerations, rep) for rep in reps), np.int64, len(reps)
        )
        return default_normalize_table(MAX_NODE_SCORE, True, per_class[ids[rows]])

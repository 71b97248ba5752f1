"""The extension points a plugin may implement, and what they return
(kube-scheduler's `framework/interface.go`).

A plugin is any object with a `name` and one or more of the methods below;
the Profile that lists it decides where it runs. Binding is a plugin too
(DefaultBinder), handed the API call by the scheduler. A plugin whose
verdict on a node depends on pods of other nodes (inter-pod affinity,
topology spread) sets `cluster_wide = True`: the equivalence cache never
remembers its verdicts. Reserve and PreBind run after a node is chosen:
Reserve (synchronous, while the pod is assumed on the node) claims what
the plugin will need, Unreserve gives it back when anything later fails,
and PreBind (awaited before Bind) makes the API calls that must land
before the pod is bound (VolumeBinding binds the pod's claims there). A
PostFilter plugin that needs the framework
itself (preemption re-runs filters) offers `bind_framework(framework)`,
which the framework calls once, as kube-scheduler hands plugins a Handle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kpy.api.core.v1 import Pod
    from kpy.scheduler.framework.cycle_state import CycleState
    from kpy.scheduler.framework.fit_error import Diagnosis
    from kpy.scheduler.framework.node_table import BoolArray, IntArray, NodeTable
    from kpy.scheduler.framework.status import Status
    from kpy.scheduler.framework.types import NodeInfo

    # How the runtime holds what plugins offer (types only).
    #: A Score plugin's `score_nodes`: raw scores aligned with `nodes`.
    ScoreNodes = Callable[[CycleState, Pod, Sequence[NodeInfo]], tuple[list[int], Status]]
    #: One cycle's Filter over one node: SUCCESS, or the first failure
    #: stamped with its plugin's name.
    NodeFilter = Callable[[NodeInfo], Status]
    #: Builds a cycle's NodeFilter once, after PreFilter (the skips known).
    FilterRunner = Callable[[CycleState, Pod], NodeFilter]

__all__ = [
    "MAX_NODE_SCORE",
    "MIN_NODE_SCORE",
    "BatchScorePlugin",
    "BindPlugin",
    "FilterPlugin",
    "FilterTablePlugin",
    "NodeScore",
    "NormalizeScorePlugin",
    "Plugin",
    "PostFilterPlugin",
    "PostFilterResult",
    "PreBindPlugin",
    "PreFilterPlugin",
    "PreFilterResult",
    "PreScorePlugin",
    "ReservePlugin",
    "ScorePlugin",
    "ScoreTablePlugin",
    "is_cluster_wide",
]

MAX_NODE_SCORE: Final = 100
MIN_NODE_SCORE: Final = 0


@dataclass(frozen=True, slots=True)
class PreFilterResult:
    """Nodes a PreFilter plugin already knows are the only candidates;
    None means every node."""

    node_names: frozenset[str] | None = None

    def all_nodes(self) -> bool:
        return self.node_names is None

    def merge(self, other: PreFilterResult | None) -> PreFilterResult | None:
        """The intersection of two results (None and all-nodes are neutral)."""
        if other is None or other.node_names is None:
            return self if self.node_names is not None else None
        if self.node_names is None:
            return other
        return PreFilterResult(self.node_names & other.node_names)


@dataclass(frozen=True, slots=True)
class PostFilterResult:
    """A PostFilter plugin's proposal: the node preemption makes room on
    ("" clears a nomination), and the pods to evict for it (the scheduler
    evicts them: plugins do not call the API)."""

    nominated_node_name: str = ""
    victims: tuple[Pod, ...] = ()


@dataclass(slots=True)
class NodeScore:
    """One node's score from one plugin; NormalizeScore rewrites `score`."""

    name: str
    score: int


@runtime_checkable
class Plugin(Protocol):
    @property
    def name(self) -> str:
        """Kubernetes' plugin name, e.g. "NodeAffinity"."""
        ...


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status]:
        """Compute per-pod data once per cycle. Skip turns this plugin's
        Filter off; a rejection rejects the pod on every node."""
        ...


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status:
        """Whether the pod may run on this node. Runs per node: keep it cheap."""
        ...


@runtime_checkable
class PostFilterPlugin(Plugin, Protocol):
    def post_filter(
        self, state: CycleState, pod: Pod, diagnosis: Diagnosis
    ) -> tuple[PostFilterResult | None, Status]:
        """Try to make an unschedulable pod schedulable (e.g. preemption)."""
        ...


@runtime_checkable
class PreScorePlugin(Plugin, Protocol):
    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status:
        """Compute per-pod scoring data; Skip turns this plugin's Score off."""
        ...


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status]:
        """A raw score for the node; within 0..MAX_NODE_SCORE unless the plugin
        also normalizes."""
        ...


@runtime_checkable
class ReservePlugin(Plugin, Protocol):
    def reserve(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        """Claim, in the plugin's own books, what the pod will use on the
        chosen node (it is assumed there already); a failure unreserves
        every Reserve plugin and sends the pod back to be retried. Runs
        between awaits: keep it synchronous."""
        ...

    def unreserve(self, state: CycleState, pod: Pod, node_name: str) -> None:
        """Give back what `reserve` claimed (Reserve or a later step failed).
        Must be idempotent and never fail: it may run for a plugin whose
        `reserve` did not."""
        ...


@runtime_checkable
class PreBindPlugin(Plugin, Protocol):
    async def pre_bind(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        """What must happen in the API before the pod is bound (may wait);
        a failure unreserves and sends the pod back to be retried."""
        ...


@runtime_checkable
class BindPlugin(Plugin, Protocol):
    async def bind(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        """Bind the pod to the node; Skip lets the next bind plugin try. A
        failure is raised (the API's error), so the scheduler can tell a pod
        bound elsewhere from one to retry. `state` is the cycle's own, as
        PreFilter and Filter left it."""
        ...


@runtime_checkable
class BatchScorePlugin(ScorePlugin, Protocol):
    def score_nodes(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[list[int], Status]:
        """`score` for many nodes in one call, with the same results; the
        framework prefers it, sparing a call and a state lookup per node."""
        ...


@runtime_checkable
class NormalizeScorePlugin(ScorePlugin, Protocol):
    def normalize_score(self, state: CycleState, pod: Pod, scores: list[NodeScore]) -> Status:
        """Rewrite every `scores[i].score` into 0..MAX_NODE_SCORE, in place."""
        ...


@runtime_checkable
class FilterTablePlugin(FilterPlugin, Protocol):
    def filter_table(self, state: CycleState, pod: Pod, table: NodeTable) -> BoolArray | None:
        """`filter` for every row of the table at once: True where the node
        passes. The same verdicts as `filter`, which still serves Explain and
        the nodes the table does not hold. None: not for this pod (say, it
        asks for a resource the table has no column for); the framework then
        calls `filter` per node."""
        ...


@runtime_checkable
class ScoreTablePlugin(ScorePlugin, Protocol):
    def score_table(
        self, state: CycleState, pod: Pod, table: NodeTable, rows: IntArray
    ) -> IntArray | None:
        """The scores of the nodes at `rows` (after PreScore), as `score`
        then `normalize_score` (when the plugin has one) would give them for
        exactly those nodes. None: not for this pod; the framework then
        scores per node."""
        ...


def is_cluster_wide(plugin: object) -> bool:
    """Whether a plugin's verdict on a node depends on other nodes' pods
    (it sets `cluster_wide = True`), so no equivalence cache may remember it."""
    return bool(getattr(plugin, "cluster_wide", False))

"""The Framework that runs one Profile's plugins (kube-scheduler's
`framework/runtime/framework.go`, with schedulePod, findNodesThatFit,
numFeasibleNodesToFind and selectHost of `schedule_one.go`).

Contract:

- One scheduling cycle = one pod = one `CycleState`. A PreFilter (or
  PreScore) that returns Skip switches its plugin's Filter (or Score) off
  for this cycle. The framework sets `CycleState.all_nodes` before PreFilter.
- Filter plugins run in profile order and the first rejection decides a
  node (later filters are not run), as in Kubernetes. With the profile's
  equivalence cache the node-local filters run first and the cluster-wide
  ones after them (framework/equivalence.py); the runner only calls what
  it was given.
- `find_nodes_that_fit` stops once it has found kube-scheduler's number of
  feasible nodes (all of them below 100 nodes; about 42% of 1,000),
  starting each search where the last one stopped, unless `find_all=True`.
- Scores: each plugin's scores are normalized (when it has
  `normalize_score`) to 0..MAX_NODE_SCORE, checked to be in that range,
  then multiplied by the plugin's weight and summed per node. `select_host`
  picks the highest total, breaking ties uniformly at random.
- PostFilter plugins (preemption) get the framework through
  `bind_framework`, to re-run filters on a node with pods removed
  (`filter_node_with`); they propose, the scheduler acts.
- After a node is chosen: Reserve plugins run in order (the first
  failure unreserves them all, in reverse order), then PreBind plugins,
  then Bind. Whoever sees a later step fail calls `run_unreserve`.
- A plugin's Error (not a rejection) is a bug or an outage, not an answer:
  the aggregate runners (`find_nodes_that_fit`, `run_score_plugins`,
  `run_score`, `schedule_pod`) raise `PluginError` carrying the status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple

import numpy as np

from kpy.scheduler.framework.cycle_state import CycleState
from kpy.scheduler.framework.equivalence import EquivalenceCache
from kpy.scheduler.framework.fit_error import Diagnosis
from kpy.scheduler.framework.interface import (
    MAX_NODE_SCORE,
    MIN_NODE_SCORE,
    BatchScorePlugin,
    NodeScore,
    NormalizeScorePlugin,
    PreFilterResult,
    ScoreTablePlugin,
    is_cluster_wide,
)
from kpy.scheduler.framework.status import SUCCESS, Code, PluginError, Status, new_status

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Sequence

    from kpy.api.core.v1 import Pod
    from kpy.scheduler.framework.interface import (
        FilterRunner,
        NodeFilter,
        PostFilterResult,
        ScoreNodes,
        ScorePlugin,
    )
    from kpy.scheduler.framework.node_table import BoolArray, IntArray, NodeTable
    from kpy.scheduler.framework.profile import Profile
    from kpy.scheduler.framework.types import NodeInfo

    _FilterFn = Callable[[CycleState, Pod, NodeInfo], Status]
    _Filter = tuple[str, _FilterFn]
    FilterTable = Callable[[CycleState, Pod, NodeTable], BoolArray | None]
    ScoreTable = Callable[[CycleState, Pod, NodeTable, IntArray], IntArray | None]
    _Normalize = Callable[[CycleState, Pod, list[NodeScore]], Status]

__all__ = ["Framework", "ScheduleResult", "ScoredNode"]

# kube-scheduler's numFeasibleNodesToFind constants.
_MIN_FEASIBLE_NODES_TO_FIND: Final = 100
_MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: Final = 5


class ScoredNode(NamedTuple):
    node_info: NodeInfo
    score: int


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    """The outcome of `Framework.schedule_pod`: the chosen node (None when the
    pod fits nowhere; then `fit_error_message(num_nodes, diagnosis)` says why),
    how many nodes were looked at, and how many fit."""

    node_info: NodeInfo | None
    evaluated_nodes: int
    feasible_nodes: int
    diagnosis: Diagnosis


class Framework:
    """Runs one Profile's plugins. See the module docstring for the contract.

    Typical cycle (what `schedule_pod` does)::

        state = CycleState()
        feasible, diagnosis = fw.find_nodes_that_fit(pod, node_infos, state=state)
        fw.run_pre_score(state, pod, feasible)
        host = fw.select_host(fw.run_score(state, pod, feasible), rng)
    """

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        filters: list[_Filter] = [(p.name, p.filter) for p in profile.filter]
        scores = [(p.name, _score_nodes(p)) for p in profile.score]
        self._plain_filter = _filter_chain(filters)
        self._filter: FilterRunner = self._plain_filter
        self.equivalence = EquivalenceCache() if profile.equivalence_cache else None
        if self.equivalence is not None:
            wide = {p.name for p in (*profile.filter, *profile.score) if is_cluster_wide(p)}
            self._filter = self.equivalence.filter(
                _filter_chain([f for f in filters if f[0] not in wide]),
                _filter_chain([f for f in filters if f[0] in wide]),
            )
            scores = [
                (name, run if name in wide else self.equivalence.score(name, run))
                for name, run in scores
            ]
        self._scores = [
            (
                p.name,
                run,
                p.normalize_score if isinstance(p, NormalizeScorePlugin) else None,
                profile.weight(p.name),
            )
            for p, (_, run) in zip(profile.score, scores, strict=True)
        ]
        # The vectorised forms plugins offer (FilterTablePlugin,
        # ScoreTablePlugin), looked up once: schedule_table prefers them.
        self._filter_tables: list[tuple[str, FilterTable | None, _FilterFn]] = [
            (p.name, getattr(p, "filter_table", None), p.filter) for p in profile.filter
        ]
        self._score_tables: dict[str, ScoreTable] = {
            p.name: p.score_table for p in profile.score if isinstance(p, ScoreTablePlugin)
        }
        # Where the next search starts, so successive pods spread over nodes.
        self._next_start_node_index = 0
        # Plugins that need the framework itself (preemption re-runs filters)
        # get it here, as kube-scheduler hands plugins a Handle.
        for plugin in profile.post_filter:
            bind_framework = getattr(plugin, "bind_framework", None)
            if bind_framework is not None:
                bind_framework(self)

    # --- PreFilter / Filter / PostFilter ---

    def run_pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo] = ()
    ) -> tuple[PreFilterResult | None, Status]:
        """Run every PreFilter plugin; record Skips in the state; merge the
        node sets they return. Stops at the first rejection or error."""
        state.all_nodes = nodes
        result, status, _ = self._pre_filter(state, pod, nodes)
        return result, status

    def _pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status, list[str]]:
        result: PreFilterResult | None = None
        narrowing: list[str] = []
        for plugin in self.profile.pre_filter:
            r, status = plugin.pre_filter(state, pod, nodes)
            if status.code is Code.SKIP:
                state.skip_filter_plugins.add(plugin.name)
                continue
            if status.code:
                if status.is_rejected():
                    return None, status.with_plugin(plugin.name), narrowing
                msg = f'running PreFilter plugin "{plugin.name}": {status.message()}'
                return None, Status(Code.ERROR, (msg,), plugin.name), narrowing
            if r is not None and not r.all_nodes():
                narrowing.append(plugin.name)
            result = r.merge(result) if r is not None else result
            if result is not None and result.node_names is not None and not result.node_names:
                if len(narrowing) == 1:
                    msg = f"node(s) didn't satisfy plugin {narrowing[0]}"
                else:
                    msg = f"node(s) didn't satisfy plugin(s) {_go_list(narrowing)} simultaneously"
                return result, new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, msg), narrowing
        return result, SUCCESS, narrowing

    def run_filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status:
        """Run the Filter plugins not skipped this cycle on one node; the first
        non-success decides, stamped with its plugin's name. Nothing is
        remembered."""
        return self._plain_filter(state, pod)(node_info)

    def filter_node_with(self, pod: Pod, node_info: NodeInfo, nodes: Sequence[NodeInfo]) -> Status:
        """Whether `pod` fits `node_info` (say, a clone with pods removed) in a
        cluster of `nodes` (which holds `node_info` in place of the original):
        PreFilter over `nodes` in a fresh cycle, then Filter on the node. For
        preemption's what-ifs; nothing is remembered."""
        state = CycleState()
        state.all_nodes = nodes
        result, status, narrowing = self._pre_filter(state, pod, nodes)
        if status.code:
            return status
        names = result.node_names if result is not None else None
        if names is not None and node_info.name not in names:
            return _not_in_pre_filter_result(narrowing)
        return self.run_filter(state, pod, node_info)

    def find_nodes_that_fit(
        self,
        pod: Pod,
        node_infos: Sequence[NodeInfo],
        *,
        state: CycleState | None = None,
        find_all: bool = False,
    ) -> tuple[list[NodeInfo], Diagnosis]:
        """PreFilter, then Filter over the nodes: the feasible nodes found and
        why each rejected node was rejected. Raises PluginError on an Error."""
        state = state if state is not None else CycleState()
        state.all_nodes = node_infos
        pre_filtered = self._pre_filter(state, pod, node_infos)
        return self._filter_after_pre_filter(state, pod, node_infos, pre_filtered, find_all)

    def _filter_after_pre_filter(
        self,
        state: CycleState,
        pod: Pod,
        node_infos: Sequence[NodeInfo],
        pre_filtered: tuple[PreFilterResult | None, Status, list[str]],
        find_all: bool,
    ) -> tuple[list[NodeInfo], Diagnosis]:
        result, status, narrowing = pre_filtered
        diagnosis = Diagnosis()
        diagnosis.unschedulable_plugins.update(narrowing)
        if status.code is Code.ERROR:
            raise PluginError(status)
        if status.code:
            # Rejected before any node was looked at: every node shares the verdict.
            diagnosis.pre_filter_msg = status.message()
            if status.plugin:
                diagnosis.unschedulable_plugins.add(status.plugin)
            diagnosis.node_to_status.update((n.name, status) for n in node_infos)
            return [], diagnosis
        nodes = node_infos
        if result is not None and result.node_names is not None:
            keep = result.node_names
            absent = _not_in_pre_filter_result(narrowing)
            nodes = [n for n in node_infos if n.name in keep]
            diagnosis.node_to_status.update(
                (n.name, absent) for n in node_infos if n.name not in keep
            )
        to_find = len(nodes) if find_all else self.num_feasible_nodes_to_find(len(nodes))
        feasible = self._filter_nodes(self._filter(state, pod), nodes, to_find, diagnosis)
        return feasible, diagnosis

    def _filter_nodes(
        self, check: NodeFilter, nodes: Sequence[NodeInfo], to_find: int, diagnosis: Diagnosis
    ) -> list[NodeInfo]:
        """Up to `to_find` nodes that pass `check`, starting where the last
        search stopped; the rejected ones go into `diagnosis`."""
        count = len(nodes)
        if count == 0:
            return []
        start = self._next_start_node_index % count
        feasible: list[NodeInfo] = []
        processed = 0
        for i in range(count):
            node_info = nodes[(start + i) % count]
            processed += 1
            status = check(node_info)
            if status.code:
                if status.code is Code.ERROR:
                    raise PluginError(status)
                diagnosis.node_to_status[node_info.name] = status
                diagnosis.unschedulable_plugins.add(status.plugin)
                continue
            feasible.append(node_info)
            if len(feasible) >= to_find:
                break
        self._next_start_node_index = (start + processed) % count
        return feasible

    def num_feasible_nodes_to_find(self, num_all_nodes: int) -> int:
        """How many feasible nodes are enough (kube-scheduler's
        numFeasibleNodesToFind): all below 100 nodes, else an adaptive share
        (50% minus 1% per 125 nodes, at least 5%) but never under 100."""
        if num_all_nodes < _MIN_FEASIBLE_NODES_TO_FIND:
            return num_all_nodes
        percentage = self.profile.percentage_of_nodes_to_score
        if percentage == 0:
            percentage = max(50 - num_all_nodes // 125, _MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
        return max(num_all_nodes * percentage // 100, _MIN_FEASIBLE_NODES_TO_FIND)

    def schedule_table(
        self,
        pod: Pod,
        table: NodeTable,
        rng: random.Random,
        *,
        state: CycleState | None = None,
    ) -> ScheduleResult:
        """`schedule_pod(pod, table.infos, rng)` with filters and scores run
        over the table's columns: the same node for the same input, the
        same draw from `rng`, the same next search start. Plugins without
        a table form (or that decline this pod) run per node, Filter only
        on the nodes the table forms let through. Differences, by design:
        when a node is found, the diagnosis is empty (the rejected nodes
        were never looked at one by one); when none is, or PreFilter
        rejects or narrows, the per-node path runs and words it all."""
        table.refresh()
        nodes = table.infos
        state = state if state is not None else CycleState()
        if not nodes:
            return ScheduleResult(None, 0, 0, Diagnosis())
        if not table.safe:
            return self.schedule_pod(pod, nodes, rng, state=state)
        state.all_nodes = nodes
        state.node_table = table
        pre_filtered = self._pre_filter(state, pod, nodes)
        result, status = pre_filtered[0], pre_filtered[1]
        if status.code or (result is not None and result.node_names is not None):
            return self._finish(state, pod, nodes, pre_filtered, rng)
        rows, processed = self._table_filter(state, pod, table)
        if not len(rows):
            # Fits nowhere: the per-node pass says why, node by node (it
            # visits every node, so the next start is left as it was).
            return self._finish(state, pod, nodes, pre_filtered, rng)
        if len(rows) == 1:
            return ScheduleResult(nodes[int(rows[0])], processed, 1, Diagnosis())
        feasible = [nodes[i] for i in rows.tolist()]
        status = self.run_pre_score(state, pod, feasible)
        if status.code:
            raise PluginError(status)
        totals = self._table_score(state, pod, table, rows, feasible)
        ties = np.flatnonzero(totals == totals.max())
        # The draw select_host makes: one uniform pick among the best.
        pick = int(ties[rng.randrange(len(ties))]) if len(ties) > 1 else int(ties[0])
        return ScheduleResult(feasible[pick], processed, len(rows), Diagnosis())

    def _finish(
        self,
        state: CycleState,
        pod: Pod,
        nodes: Sequence[NodeInfo],
        pre_filtered: tuple[PreFilterResult | None, Status, list[str]],
        rng: random.Random,
    ) -> ScheduleResult:
        """schedule_pod's per-node path, PreFilter already run."""
        feasible, diagnosis = self._filter_after_pre_filter(state, pod, nodes, pre_filtered, False)
        return self._score_and_select(state, pod, feasible, diagnosis, rng)

    def _table_filter(self, state: CycleState, pod: Pod, table: NodeTable) -> tuple[IntArray, int]:
        """The rows `_filter_nodes` would find feasible (same start, same
        number to find, same order) and how many nodes it would process."""
        count = len(table)
        mask: BoolArray | None = None
        everywhere = table.everywhere()
        per_node: list[_Filter] = []
        skipped = state.skip_filter_plugins
        for name, filter_table, filter_one in self._filter_tables:
            if name in skipped:
                continue
            passed = filter_table(state, pod, table) if filter_table is not None else None
            if passed is None:
                per_node.append((name, filter_one))
            elif passed is not everywhere:
                mask = passed if mask is None else mask & passed
        candidates = np.flatnonzero(mask) if mask is not None else np.arange(count)
        start = self._next_start_node_index % count
        to_find = self.num_feasible_nodes_to_find(count)
        # The rows in search order: from `start` to the end, then from 0.
        split = int(np.searchsorted(candidates, start))
        found: IntArray
        if per_node:
            ordered = np.concatenate((candidates[split:], candidates[:split])).tolist()
            survivors = self._filter_rows(state, pod, table.infos, per_node, ordered, to_find)
            found = np.array(survivors, np.int64)
        else:
            tail = candidates[split : split + to_find]
            head = candidates[: min(to_find - len(tail), split)]
            found = np.concatenate((tail, head)) if len(head) else tail
        # The search stops on the to_find-th feasible node, or visits all.
        processed = (int(found[-1]) - start) % count + 1 if len(found) >= to_find else count
        self._next_start_node_index = (start + processed) % count
        return found, processed

    @staticmethod
    def _filter_rows(
        state: CycleState,
        pod: Pod,
        infos: Sequence[NodeInfo],
        filters: Sequence[_Filter],
        rows: list[int],
        to_find: int,
    ) -> list[int]:
        """The first `to_find` of `rows` that pass `filters` per node."""
        found: list[int] = []
        for i in rows:
            info = infos[i]
            for name, run in filters:
                status = run(state, pod, info)
                if status.code:
                    if not status.is_rejected():
                        raise PluginError(_filter_failure(name, status))
                    break
            else:
                found.append(i)
                if len(found) >= to_find:
                    break
        return found

    def _table_score(
        self,
        state: CycleState,
        pod: Pod,
        table: NodeTable,
        rows: IntArray,
        feasible: Sequence[NodeInfo],
    ) -> IntArray:
        """`run_score`'s totals for the nodes at `rows` (`feasible`)."""
        totals = np.zeros(len(feasible), np.int64)
        for name, score_nodes, normalize, weight in self._scores:
            if name in state.skip_score_plugins:
                continue
            score_table = self._score_tables.get(name)
            values = score_table(state, pod, table, rows) if score_table is not None else None
            if values is None:
                one = self._score_one(state, pod, feasible, name, score_nodes, normalize)
                values = np.array(one, np.int64)
            elif len(values) and (values.min() < MIN_NODE_SCORE or values.max() > MAX_NODE_SCORE):
                _check_range(name, values.tolist())
            totals += values * weight if weight != 1 else values
        return totals

    def run_post_filter(
        self, state: CycleState, pod: Pod, diagnosis: Diagnosis
    ) -> tuple[PostFilterResult | None, Status]:
        """Run PostFilter plugins until one succeeds or gives up for good."""
        result: PostFilterResult | None = None
        reasons: list[str] = []
        rejector = ""
        for plugin in self.profile.post_filter:
            r, status = plugin.post_filter(state, pod, diagnosis)
            if status.is_success():
                return r, status
            if status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return r, status.with_plugin(plugin.name)
            if not status.is_rejected():
                return None, Status(Code.ERROR, status.reasons, plugin.name)
            result = r if r is not None else result
            reasons.extend(status.reasons)
            rejector = rejector or plugin.name
        return result, Status(Code.UNSCHEDULABLE, tuple(reasons), rejector)

    # --- PreScore / Score ---

    def run_pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status:
        """Run every PreScore plugin, recording Skips in the state."""
        for plugin in self.profile.pre_score:
            status = plugin.pre_score(state, pod, nodes)
            if status.code is Code.SKIP:
                state.skip_score_plugins.add(plugin.name)
            elif status.code:
                msg = f'running PreScore plugin "{plugin.name}": {status.message()}'
                return Status(Code.ERROR, (msg,), plugin.name)
        return SUCCESS

    def run_score_plugins(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> dict[str, list[int]]:
        """Each active Score plugin's normalized, weighted scores, aligned with
        `nodes`. Raises PluginError on an Error or an out-of-range score."""
        out: dict[str, list[int]] = {}
        for name, score_nodes, normalize, weight in self._scores:
            if name in state.skip_score_plugins:
                continue
            values = self._score_one(state, pod, nodes, name, score_nodes, normalize)
            out[name] = [value * weight for value in values] if weight != 1 else values
        return out

    @staticmethod
    def _score_one(
        state: CycleState,
        pod: Pod,
        nodes: Sequence[NodeInfo],
        name: str,
        score_nodes: ScoreNodes,
        normalize: _Normalize | None,
    ) -> list[int]:
        """One Score plugin's normalized scores for `nodes`, checked."""
        values, status = score_nodes(state, pod, nodes)
        if status.code:
            raise PluginError(Status(Code.ERROR, status.reasons, name))
        if normalize is not None:
            scores = [NodeScore(n.name, v) for n, v in zip(nodes, values, strict=True)]
            status = normalize(state, pod, scores)
            if status.code:
                raise PluginError(Status(Code.ERROR, status.reasons, name))
            values = [s.score for s in scores]
        _check_range(name, values)
        return values

    def run_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> list[ScoredNode]:
        """Every node with its total: the sum over Score plugins of
        normalized score x weight."""
        totals = [0] * len(nodes)
        for scores in self.run_score_plugins(state, pod, nodes).values():
            for i, value in enumerate(scores):
                totals[i] += value
        return [ScoredNode(n, t) for n, t in zip(nodes, totals, strict=True)]

    @staticmethod
    def select_host(scored: Sequence[ScoredNode], rng: random.Random) -> NodeInfo:
        """The highest-scoring node; ties broken uniformly at random (the
        distribution of kube-scheduler's selectHost)."""
        if not scored:
            raise ValueError("select_host: no nodes to choose from")
        # Two passes and one draw: the same uniform choice among the best as
        # kube-scheduler's reservoir sampling, without a draw per tie.
        best = max(total for _, total in scored)
        ties = [node_info for node_info, total in scored if total == best]
        return ties[rng.randrange(len(ties))] if len(ties) > 1 else ties[0]

    # --- Reserve / PreBind / Bind ---

    def run_reserve(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        """Every Reserve plugin in order; on the first non-success all are
        unreserved (reverse order) and that status, stamped with its
        plugin, is returned."""
        for plugin in self.profile.reserve:
            status = plugin.reserve(state, pod, node_name)
            if status.code:
                self.run_unreserve(state, pod, node_name)
                return status.with_plugin(plugin.name)
        return SUCCESS

    def run_unreserve(self, state: CycleState, pod: Pod, node_name: str) -> None:
        """Every Reserve plugin's `unreserve`, in reverse order."""
        for plugin in reversed(self.profile.reserve):
            plugin.unreserve(state, pod, node_name)

    async def run_pre_bind(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        """Every PreBind plugin in order; the first non-success (a Skip is
        a success here) is returned stamped with its plugin. The caller
        unreserves."""
        for plugin in self.profile.pre_bind:
            status = await plugin.pre_bind(state, pod, node_name)
            if status.code and not status.is_skip():
                return status.with_plugin(plugin.name)
        return SUCCESS

    async def run_bind(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        """The first bind plugin that does not Skip binds the pod; errors
        propagate. Skip when no plugin took it (a profile without binder).
        `state` is the cycle's own, as PreFilter and Filter left it."""
        for plugin in self.profile.bind:
            status = await plugin.bind(state, pod, node_name)
            if status.code is not Code.SKIP:
                return status.with_plugin(plugin.name) if status.code else status
        return new_status(Code.SKIP, "no bind plugin bound the pod")

    def schedule_pod(
        self,
        pod: Pod,
        node_infos: Sequence[NodeInfo],
        rng: random.Random,
        *,
        state: CycleState | None = None,
    ) -> ScheduleResult:
        """One scheduling decision, as kube-scheduler's schedulePod: filter,
        and unless a single node fits, score and select. With no nodes at all
        the pod fits nowhere and the message is NO_NODES_AVAILABLE."""
        state = state if state is not None else CycleState()
        if not node_infos:
            return ScheduleResult(None, 0, 0, Diagnosis())
        feasible, diagnosis = self.find_nodes_that_fit(pod, node_infos, state=state)
        return self._score_and_select(state, pod, feasible, diagnosis, rng)

    def _score_and_select(
        self,
        state: CycleState,
        pod: Pod,
        feasible: list[NodeInfo],
        diagnosis: Diagnosis,
        rng: random.Random,
    ) -> ScheduleResult:
        evaluated = len(feasible) + len(diagnosis)
        if not feasible:
            return ScheduleResult(None, evaluated, 0, diagnosis)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0], evaluated, 1, diagnosis)
        status = self.run_pre_score(state, pod, feasible)
        if status.code:
            raise PluginError(status)
        host = self.select_host(self.run_score(state, pod, feasible), rng)
        return ScheduleResult(host, evaluated, len(feasible), diagnosis)


def _filter_chain(filters: Sequence[_Filter]) -> FilterRunner:
    """The Filter plugins in order, minus those skipped this cycle; the
    first non-success decides, stamped with its plugin's name."""

    def for_cycle(state: CycleState, pod: Pod) -> NodeFilter:
        skipped = state.skip_filter_plugins
        active = [(name, run) for name, run in filters if name not in skipped]

        def check(node_info: NodeInfo) -> Status:
            for name, run in active:
                status = run(state, pod, node_info)
                if status.code:
                    return _filter_failure(name, status)
            return SUCCESS

        return check

    return for_cycle


def _score_nodes(plugin: ScorePlugin) -> ScoreNodes:
    """The plugin's own `score_nodes`, or one that calls `score` per node."""
    if isinstance(plugin, BatchScorePlugin):
        return plugin.score_nodes

    def score_nodes(
        state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[list[int], Status]:
        values: list[int] = []
        for node_info in nodes:
            value, status = plugin.score(state, pod, node_info)
            if status.code:
                return values, status
            values.append(value)
        return values, SUCCESS

    return score_nodes


def _check_range(name: str, values: Sequence[int]) -> None:
    """PluginError on the first score outside MIN..MAX_NODE_SCORE."""
    for value in values:
        if not MIN_NODE_SCORE <= value <= MAX_NODE_SCORE:
            msg = (
                f'plugin "{name}" returns an invalid score {value}, it should in the '
                f"range of [{MIN_NODE_SCORE}, {MAX_NODE_SCORE}] after normalizing"
            )
            raise PluginError(Status(Code.ERROR, (msg,), name))


def _filter_failure(name: str, status: Status) -> Status:
    if status.is_rejected():
        return status.with_plugin(name)
    msg = f'running "{name}" filter plugin: {status.message()}'
    return Status(Code.ERROR, (msg,), name)


def _not_in_pre_filter_result(narrowing: Sequence[str]) -> Status:
    """A node left out by the PreFilter plugins that named the only candidates."""
    return new_status(
        Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
        f"node(s) didn't satisfy plugin(s) {_go_list(sorted(narrowing))}",
    )


def _go_list(items: Sequence[str]) -> str:
    # How Go's %v prints a []string.
    return "[" + " ".join(items) + "]"

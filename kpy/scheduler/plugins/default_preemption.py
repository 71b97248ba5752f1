"""DefaultPreemption: when a pod fits nowhere, find the node where evicting
the fewest and least important lower-priority pods lets it fit.

Mirrors kube-scheduler's defaultpreemption plugin and framework/preemption:

- Not eligible: a pod with preemptionPolicy Never ("not eligible due to
  preemptionPolicy=Never."), and a pod already nominated to a node where a
  lower-priority pod is still terminating ("not eligible due to a
  terminating pod on the nominated node.": the room is being made).
- Only nodes that failed with a plain Unschedulable can be helped; a node
  rejected as UnschedulableAndUnresolvable (a taint, a selector) counts as
  "Preemption is not helpful for scheduling".
- On each such node (kube-scheduler's selectVictimsOnNode): remove every
  pod of lower priority; if none, "No preemption victims found for
  incoming pod"; if the pod still does not fit, the filter's reason. Else
  put the victims back one by one, most important first (higher priority,
  then earlier start), keeping each one whose return still lets the pod
  fit: the rest are the victims.
- Among the candidate nodes (pickOneNodeForPreemption): a node needing no
  victims; else the lowest highest-victim priority; the lowest sum of
  victim priorities; the fewest victims; the latest start among the
  highest-priority victims; the first in node order.
- The plugin decides only: it returns the nominated node and the victims
  in PostFilterResult; the scheduler sets status.nominatedNodeName and
  deletes the victims (plugins do not call the API). With no candidate the
  status reads "preemption: 0/N nodes are available: ...", except when no
  node holds any pod of lower priority: then kube-scheduler's "N No
  preemption victims found for incoming pod" would only repeat that
  preemption cannot help, and the status carries no message, so the pod's
  message stays the filters' alone ("0/3 nodes are available: 3 node(s)
  didn't match pod anti-affinity rules.").
- PodDisruptionBudgets are not consulted (kpy's scheduler has no lister
  for them); nominated pods of other preemptors are not added to nodes
  while victims are chosen.

Checking a modified node runs PreFilter again over the nodes with that
node replaced (`Framework.filter_node_with`), so cluster-wide plugins
(inter-pod affinity) see the victims gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from kpy.api.scheduling import PREEMPT_NEVER
from kpy.scheduler.framework import (
    Code,
    PostFilterResult,
    Status,
    fit_error_message,
    new_status,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.core.v1 import Pod
    from kpy.scheduler.framework import CycleState, Diagnosis, Framework, NodeInfo

__all__ = ["NAME", "DefaultPreemption", "pod_priority"]

NAME: Final = "DefaultPreemption"
NOT_HELPFUL: Final = "Preemption is not helpful for scheduling"
NO_VICTIMS: Final = "No preemption victims found for incoming pod"
_INT32_SPAN: Final = 2**31  # MaxInt32 + 1: makes every priority positive in the sum


def pod_priority(pod: Pod) -> int:
    """corev1helpers.PodPriority: spec.priority, 0 when unset."""
    return pod.spec.priority if pod.spec.HasField("priority") else 0


def _start_time(pod: Pod) -> float:
    ts = (
        pod.status.start_time
        if pod.status.HasField("start_time")
        else pod.metadata.creation_timestamp
    )
    return ts.seconds + ts.nanos / 1e9


def _importance(pod: Pod) -> tuple[int, float]:
    # Sorting on this key puts the most important first: higher priority, then older.
    return -pod_priority(pod), _start_time(pod)


def _unschedulable(message: str) -> Status:
    return new_status(Code.UNSCHEDULABLE, f"preemption: {message}")


class DefaultPreemption:
    name: Final = NAME

    def __init__(self) -> None:
        self._framework: Framework | None = None

    def bind_framework(self, framework: Framework) -> None:
        """The framework hands itself over (kube-scheduler's Handle)."""
        self._framework = framework

    def post_filter(
        self, state: CycleState, pod: Pod, diagnosis: Diagnosis
    ) -> tuple[PostFilterResult | None, Status]:
        nodes = state.all_nodes
        reason = self._ineligible(pod, nodes, diagnosis)
        if reason:
            return None, _unschedulable(reason)
        statuses: dict[str, Status] = {}
        candidates: list[tuple[NodeInfo, list[Pod]]] = []
        for node_info in nodes:
            status = diagnosis.get(node_info.name)
            if status is None or status.code is not Code.UNSCHEDULABLE:
                statuses[node_info.name] = new_status(
                    Code.UNSCHEDULABLE_AND_UNRESOLVABLE, NOT_HELPFUL
                )
                continue
            victims, status = self._select_victims(pod, node_info, nodes)
            if victims is None:
                statuses[node_info.name] = status
                continue
            candidates.append((node_info, victims))
        if not candidates:
            if all(st.reasons in ((NOT_HELPFUL,), (NO_VICTIMS,)) for st in statuses.values()):
                # Nothing of lower priority anywhere: nothing to say about preemption.
                return PostFilterResult(), new_status(Code.UNSCHEDULABLE)
            return PostFilterResult(), _unschedulable(fit_error_message(len(nodes), statuses))
        chosen, victims = _pick(candidates)
        return PostFilterResult(chosen.name, tuple(victims)), Status()

    def _ineligible(self, pod: Pod, nodes: Sequence[NodeInfo], diagnosis: Diagnosis) -> str:
        if pod.spec.preemption_policy == PREEMPT_NEVER:
            return "not eligible due to preemptionPolicy=Never."
        nominated = pod.status.nominated_node_name
        if not nominated:
            return ""
        status = diagnosis.get(nominated)
        if status is not None and status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            return ""  # the nominated node cannot take it any more: preempt afresh
        priority = pod_priority(pod)
        for node_info in nodes:
            if node_info.name != nominated:
                continue
            for p in node_info.pods:
                if pod_priority(p) < priority and p.metadata.HasField("deletion_timestamp"):
                    return "not eligible due to a terminating pod on the nominated node."
        return ""

    def _select_victims(
        self, pod: Pod, node_info: NodeInfo, nodes: Sequence[NodeInfo]
    ) -> tuple[list[Pod] | None, Status]:
        framework = self._framework
        if framework is None:
            return None, new_status(Code.ERROR, "DefaultPreemption has no framework")
        priority = pod_priority(pod)
        trial = node_info.clone()
        potential = [p for p in trial.pods if pod_priority(p) < priority]
        if not potential:
            return None, new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, NO_VICTIMS)
        for p in potential:
            trial.remove_pod(p)
        others = [trial if n is node_info else n for n in nodes]
        status = framework.filter_node_with(pod, trial, others)
        if status.code:
            return None, status
        victims: list[Pod] = []
        for p in sorted(potential, key=_importance):
            trial.add_pod(p)
            if framework.filter_node_with(pod, trial, others).code:
                trial.remove_pod(p)
                victims.append(p)
        return victims, Status()


def _pick(candidates: list[tuple[NodeInfo, list[Pod]]]) -> tuple[NodeInfo, list[Pod]]:
    """pickOneNodeForPreemption, without PodDisruptionBudgets."""
    for candidate in candidates:
        if not candidate[1]:
            return candidate

    def rank(candidate: tuple[NodeInfo, list[Pod]]) -> tuple[int, int, int, float]:
        victims = candidate[1]
        highest = max(pod_priority(v) for v in victims)
        total = sum(pod_priority(v) + _INT32_SPAN for v in victims)
        earliest = min(_start_time(v) for v in victims if pod_priority(v) == highest)
        return highest, total, len(victims), -earliest

    return min(candidates, key=rank)

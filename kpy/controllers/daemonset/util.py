"""Pure helpers of the DaemonSet controller (Kubernetes'
pkg/controller/daemon/util and NodeShouldRunDaemonPod).

- `Placement.of(ds).should_run(node)` (`node_should_run`): whether a daemon
  pod should be placed on the node (its name, nodeSelector and required node affinity match and it
  tolerates the node's NoSchedule/NoExecute taints), and whether one already
  there may keep running (the same, but only NoExecute taints count).
- `daemon_pod_template(ds, hash)`: the template a daemon pod is made from:
  the DaemonSet's, with the `controller-revision-hash` label and the
  tolerations Kubernetes adds to every daemon pod.
- `with_node_affinity(spec, node)`: pins a pod to one node the way
  Kubernetes does, through a required node affinity on `metadata.name`, so
  the scheduler places it (and reports why it cannot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from kpy.api.core.v1 import NodeSelectorRequirement, Pod, PodTemplateSpec, Toleration
from kpy.api.intstr import get_scaled_value_from_int_or_percent
from kpy.api.nodeaffinity import OBJECT_NAME_FIELD, RequiredNodeAffinity, required_node_affinity
from kpy.api.taints import (
    NO_EXECUTE,
    NO_SCHEDULE,
    TaintKey,
    TolerationKey,
    find_untolerated_taint,
    pod_toleration_keys,
    taint_key,
)

# The revision hash (Kubernetes' apps.DefaultDaemonSetUniqueLabelKey) is shared with StatefulSets.
from kpy.controllers.history import REVISION_HASH_LABEL, template_hash

if TYPE_CHECKING:
    from kpy.api.apps.v1 import DaemonSet
    from kpy.api.core.v1 import Node, PodSpec

__all__ = [
    "DAEMON_TOLERATIONS",
    "REVISION_HASH_LABEL",
    "Placement",
    "daemon_pod_template",
    "is_pod_updated",
    "node_should_run",
    "rolling_counts",
    "target_node_name",
    "template_hash",
    "with_node_affinity",
]


#: Added to every daemon pod (Kubernetes' AddOrUpdateDaemonPodTolerations): a
#: daemon keeps running through node trouble and lands on cordoned nodes.
DAEMON_TOLERATIONS: Final = (
    ("node.kubernetes.io/not-ready", NO_EXECUTE),
    ("node.kubernetes.io/unreachable", NO_EXECUTE),
    ("node.kubernetes.io/disk-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/memory-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/pid-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/unschedulable", NO_SCHEDULE),
)
_HOST_NETWORK_TOLERATION: Final = ("node.kubernetes.io/network-unavailable", NO_SCHEDULE)


def _add_daemon_tolerations(spec: PodSpec) -> None:
    wanted = list(DAEMON_TOLERATIONS)
    if spec.host_network:
        wanted.append(_HOST_NETWORK_TOLERATION)
    for key, effect in wanted:
        # Kubernetes replaces a toleration with the same key and effect.
        kept = [t for t in spec.tolerations if not (t.key == key and t.effect == effect)]
        if len(kept) != len(spec.tolerations):
            del spec.tolerations[:]
            spec.tolerations.extend(kept)
        spec.tolerations.append(Toleration(key=key, operator="Exists", effect=effect))


def daemon_pod_template(ds: DaemonSet, revision_hash: str) -> PodTemplateSpec:
    """Kubernetes' CreatePodTemplate: the DaemonSet's template with the
    daemon tolerations and, if given, the revision hash label."""
    template = PodTemplateSpec()
    template.CopyFrom(ds.spec.template)
    _add_daemon_tolerations(template.spec)
    if revision_hash:
        template.metadata.labels[REVISION_HASH_LABEL] = revision_hash
    return template


def with_node_affinity(spec: PodSpec, node_name: str) -> None:
    """Kubernetes' ReplaceDaemonSetPodNodeNameNodeAffinity: the required node
    affinity becomes one term, `metadata.name In [node_name]` (the node
    already satisfies the template's own terms); preferences stay."""
    required = spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    del required.node_selector_terms[:]
    term = required.node_selector_terms.add()
    term.match_fields.append(
        NodeSelectorRequirement(key=OBJECT_NAME_FIELD, operator="In", values=[node_name])
    )


def target_node_name(pod: Pod) -> str:
    """The node a daemon pod is for (Kubernetes' GetTargetNodeName): its
    nodeName, or before scheduling the node its affinity pins; "" if none."""
    if pod.spec.node_name:
        return pod.spec.node_name
    if not pod.spec.HasField("affinity"):
        return ""
    required = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    for term in required.node_selector_terms:
        for field in term.match_fields:
            if field.key == OBJECT_NAME_FIELD and field.operator == "In" and field.values:
                return str(field.values[0])
    return ""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a DaemonSet's pods may go, parsed once per sync: the template's
    nodeName, nodeSelector and required affinity, and its tolerations with
    the daemon tolerations added."""

    node_name: str
    affinity: RequiredNodeAffinity
    tolerations: tuple[TolerationKey, ...]

    @classmethod
    def of(cls, ds: DaemonSet) -> Placement:
        probe = Pod()
        probe.spec.CopyFrom(daemon_pod_template(ds, "").spec)
        return cls(
            ds.spec.template.spec.node_name,
            required_node_affinity(probe),
            pod_toleration_keys(probe),
        )

    def should_run(self, node: Node) -> tuple[bool, bool]:
        """(should run, should continue running): Kubernetes' NodeShouldRunDaemonPod.

        A new daemon pod goes only where its name, nodeSelector and required
        affinity match and every NoSchedule and NoExecute taint is tolerated;
        one already running stays unless a NoExecute taint is not tolerated or
        the node stopped matching."""
        name = node.metadata.name
        if self.node_name and self.node_name != name:
            return False, False
        if not self.affinity.matches(node.metadata.labels, name):
            return False, False
        taints = [taint_key(t) for t in node.spec.taints]
        if find_untolerated_taint(taints, self.tolerations, _blocks_scheduling):
            evicts = find_untolerated_taint(taints, self.tolerations, _evicts)
            return False, evicts is None
        return True, True


def _blocks_scheduling(taint: TaintKey) -> bool:
    return taint.effect in (NO_SCHEDULE, NO_EXECUTE)


def _evicts(taint: TaintKey) -> bool:
    return taint.effect == NO_EXECUTE


def node_should_run(node: Node, ds: DaemonSet) -> tuple[bool, bool]:
    """`Placement.of(ds).should_run(node)`, for a single question."""
    return Placement.of(ds).should_run(node)


def is_pod_updated(pod: Pod, revision_hash: str) -> bool:
    """Whether the pod runs the DaemonSet's current template (Kubernetes'
    IsPodUpdated, by hash: kpy keeps no templateGeneration annotation)."""
    return bool(revision_hash) and pod.metadata.labels.get(REVISION_HASH_LABEL) == revision_hash


def rolling_counts(ds: DaemonSet, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) for `desired` scheduled pods, percentages
    rounded up; both zero (which validation forbids) means unavailable 1."""
    rolling = ds.spec.update_strategy.rolling_update
    surge = (
        get_scaled_value_from_int_or_percent(rolling.max_surge, desired, True)
        if rolling.HasField("max_surge")
        else 0
    )
    unavailable = (
        get_scaled_value_from_int_or_percent(rolling.max_unavailable, desired, True)
        if rolling.HasField("max_unavailable")
        else 1
    )
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable

"""One sync of a StatefulSet, planned (Kubernetes'
pkg/controller/statefulset/stateful_set_control.go updateStatefulSet).

`plan_update` looks at the set's pods and claims and returns the writes to
make, in order, as `Step`s; the caller makes them. The plan, as Kubernetes:

1. Pods whose ordinal is in `[start, start + replicas)` are the replicas,
   the others with an ordinal are condemned (deleted highest first).
2. For each replica, lowest ordinal first: a Failed or Succeeded pod is
   deleted (the next sync creates it again); a missing pod is created with
   its claims (from the current revision below `start + partition` during a
   RollingUpdate, from the update revision otherwise), unless one of its
   claims is being deleted, which blocks it until the claim is gone; a pod
   whose identity labels are wrong is fixed; claims whose owner references
   disagree with the retention policy are fixed; a Pending pod gets back a
   claim that went missing.
   Under OrderedReady (`monotonic`) the plan stops at the first creation or
   deletion, and at the first pod that is terminating, not Running and
   Ready, or not yet available for minReadySeconds.
3. Condemned pods, highest ordinal first, their claims handed to the pod
   first when whenScaled is Delete: under OrderedReady one at a time, only
   once none is terminating and every pod of a lower ordinal is Running
   and Ready (the documented guarantee "all of its predecessors must be
   Running and Ready"; the condemned pod itself may be unhealthy).
4. RollingUpdate: while fewer than maxUnavailable (default 1) replicas are
   unavailable, the highest-ordinal pods at or above `start + partition`
   that do not run the update revision are deleted (recreated at the
   update revision on later syncs). OnDelete does nothing more.

Planning is pure: `now` is passed in, claims come as a name-to-claim map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from kpy.api.core.v1 import PersistentVolumeClaim, Pod
from kpy.api.intstr import get_scaled_value_from_int_or_percent
from kpy.controllers.statefulset.identity import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    claim_owners_match,
    claims_for,
    identity_matches,
    is_available,
    is_healthy,
    new_stateful_pod,
    parent_and_ordinal,
    pod_revision,
    start_ordinal,
    with_retention_owners,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from kpy.api.apps.v1 import StatefulSet
    from kpy.api.core.v1 import PodTemplateSpec

__all__ = [
    "CreateClaim",
    "CreatePod",
    "DeletePod",
    "Plan",
    "Revisions",
    "Step",
    "UpdateClaim",
    "UpdatePod",
    "plan_update",
]

#: why a pod is deleted, for its event
FAILED: Final = "failed"
SCALE_DOWN: Final = "scale down"
UPDATE: Final = "update"


@dataclass(frozen=True, slots=True)
class Revisions:
    """The current and update revisions, by name, with their templates."""

    current: str
    current_template: PodTemplateSpec
    update: str
    update_template: PodTemplateSpec


@dataclass(frozen=True, slots=True)
class CreatePod:
    """Create `claims` that do not exist yet, then `pod`."""

    pod: Pod
    claims: list[PersistentVolumeClaim]


@dataclass(frozen=True, slots=True)
class DeletePod:
    pod: Pod
    reason: str


@dataclass(frozen=True, slots=True)
class UpdatePod:
    """Write `pod` (a fixed copy of a live pod) back."""

    pod: Pod


@dataclass(frozen=True, slots=True)
class CreateClaim:
    """A claim missing under a pod that has not started yet."""

    claim: PersistentVolumeClaim


@dataclass(frozen=True, slots=True)
class UpdateClaim:
    """Write `claim` (a copy with its owner references fixed) back."""

    claim: PersistentVolumeClaim


Step = CreatePod | DeletePod | UpdatePod | CreateClaim | UpdateClaim


@dataclass(slots=True)
class Plan:
    steps: list[Step] = field(default_factory=list)
    #: why the plan stopped early, for the log ("" if it did not)
    waiting: str = ""
    #: claims blocking a creation because they are being deleted
    blocked_by: list[str] = field(default_factory=list)
    #: sync again after this many seconds (a pod becoming available), if set
    requeue_after: float | None = None


def _terminating(obj: Pod | PersistentVolumeClaim) -> bool:
    return obj.metadata.HasField("deletion_timestamp")


def _finished(pod: Pod) -> bool:
    return pod.status.phase in ("Failed", "Succeeded")


def max_unavailable(sts: StatefulSet) -> int:
    """maxUnavailable scaled to replicas (rounded down), at least 1."""
    rolling = sts.spec.update_strategy.rolling_update
    if not rolling.HasField("max_unavailable"):
        return 1
    value = get_scaled_value_from_int_or_percent(rolling.max_unavailable, sts.spec.replicas, False)
    return max(value, 1)


def _partition(sts: StatefulSet) -> int:
    strategy = sts.spec.update_strategy
    if strategy.type != "RollingUpdate":
        return 0
    return strategy.rolling_update.partition


class _Planner:
    def __init__(
        self,
        sts: StatefulSet,
        revisions: Revisions,
        claims: Mapping[str, PersistentVolumeClaim],
        now: float,
    ) -> None:
        self.sts = sts
        self.revisions = revisions
        self.claims = claims
        self.now = now
        self.monotonic = sts.spec.pod_management_policy != "Parallel"
        self.min_ready = sts.spec.min_ready_seconds
        self.plan = Plan()

    def wait(self, why: str, pod: Pod | None = None) -> Plan:
        if pod is not None and is_healthy(pod) and self.min_ready > 0:
            self.plan.requeue_after = float(self.min_ready)
        self.plan.waiting = why
        return self.plan

    def available(self, pod: Pod) -> bool:
        return is_available(pod, self.min_ready, self.now)

    def new_pod(self, ordinal: int) -> Pod:
        sts, revs = self.sts, self.revisions
        below_partition = ordinal < start_ordinal(sts) + _partition(sts)
        if sts.spec.update_strategy.type == "RollingUpdate" and below_partition:
            return new_stateful_pod(sts, revs.current_template, revs.current, ordinal)
        return new_stateful_pod(sts, revs.update_template, revs.update, ordinal)

    def create_missing_claims(self, pod: Pod) -> None:
        """Claims of a pod that has not started yet that are missing (not
        those being deleted: they are never recreated)."""
        _, ordinal = parent_and_ordinal(pod)
        for wanted in claims_for(self.sts, ordinal):
            if wanted.metadata.name not in self.claims:
                self.plan.steps.append(CreateClaim(with_retention_owners(wanted, self.sts, pod)))

    def fix_claims(self, pod: Pod) -> None:
        """Owner references that disagree with the retention policy."""
        _, ordinal = parent_and_ordinal(pod)
        for wanted in claims_for(self.sts, ordinal):
            claim = self.claims.get(wanted.metadata.name)
            if claim is None or _terminating(claim) or claim_owners_match(claim, self.sts, pod):
                continue
            self.plan.steps.append(UpdateClaim(with_retention_owners(claim, self.sts, pod)))


def plan_update(
    sts: StatefulSet,
    pods: Sequence[Pod],
    revisions: Revisions,
    claims: Mapping[str, PersistentVolumeClaim],
    now: float,
) -> Plan:
    """See the module docstring. `pods`: the set's pods; `claims`: the
    namespace's claims by name; `now`: epoch seconds."""
    p = _Planner(sts, revisions, claims, now)
    start, count = start_ordinal(sts), sts.spec.replicas
    replicas: list[Pod | None] = [None] * count
    condemned: list[Pod] = []
    for pod in pods:
        _, ordinal = parent_and_ordinal(pod)
        if start <= ordinal < start + count:
            replicas[ordinal - start] = pod
        elif ordinal >= 0:
            condemned.append(pod)
    condemned.sort(key=lambda pod: parent_and_ordinal(pod)[1], reverse=True)
    if sts.metadata.HasField("deletion_timestamp"):
        return p.plan
    for i, replica in enumerate(replicas):
        if (done := _replica(p, start + i, replica)) is not None:
            return done
    for victim in condemned:
        p.fix_claims(victim)
    for i, victim in enumerate(condemned):
        below_healthy = all(is_healthy(lower) for lower in condemned[i + 1 :])
        if (done := _condemned(p, victim, below_healthy)) is not None:
            return done
    if sts.spec.update_strategy.type != "RollingUpdate":
        return p.plan
    return _rolling_update(p, replicas)


def _replica(p: _Planner, ordinal: int, pod: Pod | None) -> Plan | None:
    """The steps for one replica; a Plan when the plan stops here."""
    if pod is not None and _finished(pod) and not _terminating(pod):
        p.plan.steps.append(DeletePod(pod, FAILED))
        return p.wait(f"pod {pod.metadata.name} {pod.status.phase}") if p.monotonic else None
    if pod is None:
        new = p.new_pod(ordinal)
        claims = claims_for(p.sts, ordinal)
        deleting = [
            c.metadata.name
            for c in claims
            if (found := p.claims.get(c.metadata.name)) is not None and _terminating(found)
        ]
        if deleting:
            p.plan.blocked_by += deleting
            return p.wait(f"claims {', '.join(deleting)} being deleted") if p.monotonic else None
        missing = [
            with_retention_owners(c, p.sts, new) for c in claims if c.metadata.name not in p.claims
        ]
        p.plan.steps.append(CreatePod(new, missing))
        return p.wait(f"creating {new.metadata.name}") if p.monotonic else None
    name = pod.metadata.name
    if pod.status.phase in ("Pending", "") and not _terminating(pod):
        p.create_missing_claims(pod)
    if _terminating(pod):
        return p.wait(f"pod {name} terminating") if p.monotonic else None
    if not is_healthy(pod):
        return p.wait(f"pod {name} not running and ready") if p.monotonic else None
    if not p.available(pod):
        return p.wait(f"pod {name} not available yet", pod) if p.monotonic else None
    if not identity_matches(p.sts, pod):
        fixed = Pod()
        fixed.CopyFrom(pod)
        fixed.metadata.labels[POD_NAME_LABEL] = name
        fixed.metadata.labels[POD_INDEX_LABEL] = str(ordinal)
        p.plan.steps.append(UpdatePod(fixed))
    p.fix_claims(pod)
    return None


def _condemned(p: _Planner, pod: Pod, below_healthy: bool) -> Plan | None:
    """`below_healthy`: every condemned pod of a lower ordinal is healthy
    (the replicas are, or the plan stopped before)."""
    name = pod.metadata.name
    if _terminating(pod):
        return p.wait(f"condemned pod {name} terminating") if p.monotonic else None
    if p.monotonic and not below_healthy:
        return p.wait(f"a pod below condemned pod {name} is not running and ready")
    p.plan.steps.append(DeletePod(pod, SCALE_DOWN))
    return p.wait(f"deleting {name}") if p.monotonic else None


def _rolling_update(p: _Planner, replicas: Sequence[Pod | None]) -> Plan:
    budget = max_unavailable(p.sts)
    unavailable = sum(1 for pod in replicas if pod is None or not p.available(pod))
    if unavailable >= budget:
        waiting = next((pod for pod in replicas if pod is not None and not p.available(pod)), None)
        return p.wait("rolling update waits for unavailable pods", waiting)
    room = budget - unavailable
    update_min = _partition(p.sts)
    for index in range(len(replicas) - 1, update_min - 1, -1):
        pod = replicas[index]
        if pod is None or _terminating(pod) or pod_revision(pod) == p.revisions.update:
            continue
        p.plan.steps.append(DeletePod(pod, UPDATE))
        room -= 1
        if room == 0:
            break
    return p.plan

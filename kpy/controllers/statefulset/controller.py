"""The StatefulSet controller (Kubernetes' pkg/controller/statefulset).

Keeps `replicas` pods of every StatefulSet, each with a stable name,
hostname and claims, created and removed in order:

- Handlers: a StatefulSet change enqueues it; a pod change enqueues its
  StatefulSet (an orphan enqueues every set whose selector matches it); a
  ControllerRevision change enqueues its owner; a claim that goes enqueues
  the sets whose selector matches it (a pod waiting for it may now be
  created). Pod creations and deletions are counted against the set's
  expectations.
- `sync(key)`: claims the pods named `<set>-<ordinal>` that match the
  selector, finds the update revision (the set's template) and the current
  one (`status.currentRevision`) through `History`, then, once earlier
  creations and deletions have come back through the watch, makes the
  writes `update.plan_update` plans (create, delete, fix pods and claims),
  deletes revisions beyond `revisionHistoryLimit` that no pod runs, and
  writes the status (`status.statefulset_status`) with observedGeneration.
- A set being deleted gets its status only: its pods go with the garbage
  collector, and its claims too where whenDeleted is Delete.

Reads come from listers only. Pod names are fixed, so a creation the
lister has not seen yet would be AlreadyExists: the expectations keep a
sync from acting before the watch caught up.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from kpy.api import errors
from kpy.api.apps.v1 import ControllerRevision, StatefulSet
from kpy.api.core.v1 import PersistentVolumeClaim, Pod
from kpy.api.labels import selector_from_label_selector
from kpy.cache.events import NORMAL, WARNING
from kpy.cache.expectations import ControllerExpectations
from kpy.cache.informer import EventHandler
from kpy.cache.store import meta_namespace_key, split_key
from kpy.controllers.base import Controller, deleted_object
from kpy.controllers.history import History, revision_template
from kpy.controllers.owned_pods import OwnedPods
from kpy.controllers.ownership import (
    ControllerRefManager,
    get_controller_of,
    new_controller_ref,
)
from kpy.controllers.replicaset import POD_OWNER_INDEX, pods_informer_with_owner_index
from kpy.controllers.statefulset.identity import is_member_of, pod_revision
from kpy.controllers.statefulset.status import statefulset_status
from kpy.controllers.statefulset.update import (
    CreateClaim,
    CreatePod,
    DeletePod,
    Revisions,
    Step,
    UpdateClaim,
    UpdatePod,
    plan_update,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kpy.cache.events import EventRecorder
    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.statefulset")

__all__ = ["StatefulSetController", "new_statefulset_controller"]


class StatefulSetController(Controller):
    name = "statefulset"

    def __init__(
        self,
        client: ClientProtocol,
        statefulsets: SharedInformer[StatefulSet],
        pods: SharedInformer[Pod],
        revisions: SharedInformer[ControllerRevision],
        claims: SharedInformer[PersistentVolumeClaim],
        *,
        metrics: Metrics | None = None,
        recorder: EventRecorder | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """`now`: wall-clock seconds, for availability (minReadySeconds)."""
        super().__init__(metrics=metrics, recorder=recorder)
        self._client = client
        self._sets: Lister[StatefulSet] = statefulsets.lister()
        self._pods = pods
        self._claims: Lister[PersistentVolumeClaim] = claims.lister()
        self._history = History(client, revisions.lister())
        self._now = now
        self.expectations = ControllerExpectations()
        statefulsets.add_event_handler(
            EventHandler(
                on_add=lambda sts, _initial: self.enqueue(sts),
                on_update=lambda _old, new: self.enqueue(new),
                on_delete=self._delete_set,
            )
        )
        self._owned = OwnedPods(self, "StatefulSet", self._sets, self.expectations)
        pods.add_event_handler(self._owned.handler())
        revisions.add_event_handler(
            EventHandler(
                on_add=lambda r, _initial: self._revision_changed(r),
                on_update=lambda _old, new: self._revision_changed(new),
                on_delete=self._revision_changed,
            )
        )
        claims.add_event_handler(
            EventHandler(
                on_add=lambda _c, _initial: None,
                on_update=self._update_claim,
                on_delete=self._claim_gone,
            )
        )

    # -- handlers -------------------------------------------------------------------------

    def _delete_set(self, obj: Any) -> None:
        sts = deleted_object(obj)
        key = meta_namespace_key(sts) if sts is not None else str(obj.key)
        self.expectations.delete(key)
        self.enqueue_key(key)

    def _revision_changed(self, obj: Any) -> None:
        revision = deleted_object(obj)
        if revision is None:
            return
        ref = get_controller_of(revision)
        if ref is None or ref.kind != "StatefulSet":
            return
        sts = self._sets.get(revision.metadata.namespace, ref.name)
        if sts is not None and sts.metadata.uid == ref.uid:
            self.enqueue(sts)

    def _update_claim(self, old: PersistentVolumeClaim, new: PersistentVolumeClaim) -> None:
        if new.metadata.HasField("deletion_timestamp") and not old.metadata.HasField(
            "deletion_timestamp"
        ):
            self._claim_gone(new)

    def _claim_gone(self, obj: Any) -> None:
        claim = deleted_object(obj)
        if claim is None:
            return
        for sts in self._owned.matching(claim.metadata.namespace, claim.metadata.labels):
            self.enqueue(sts)

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        sts = self._sets.get(namespace, name)
        if sts is None:
            self.expectations.delete(key)
            return
        if selector_from_label_selector(sts.spec.selector).empty():
            self.record(
                sts,
                WARNING,
                "SelectingAll",
                "This stateful set is selecting all pods. A non-empty selector is required.",
            )
            return
        update, others = await self._history.construct(sts)
        current = next(
            (r for r in others if r.metadata.name == sts.status.current_revision), update
        )
        revisions = Revisions(
            current=current.metadata.name,
            current_template=(
                sts.spec.template if current is update else revision_template(current)
            ),
            update=update.metadata.name,
            update_template=sts.spec.template,
        )
        pods = await self._claim(sts)
        if sts.metadata.HasField("deletion_timestamp") or not self.expectations.satisfied(key):
            # Only the counts: this sync does not act on this generation.
            await self._update_status(sts, pods, revisions, observed=False)
            return
        failure: errors.StatusError | None = None
        try:
            pods = await self._act(key, sts, pods, revisions)
            live = {pod_revision(p) for p in pods} | {revisions.current, revisions.update}
            await self._history.cleanup(sts, [r for r in others if r is not current], live)
        except errors.StatusError as e:
            failure = e
        await self._update_status(sts, pods, revisions, observed=True)
        if failure is not None:
            raise failure

    async def _claim(self, sts: StatefulSet) -> list[Pod]:
        """The set's pods: its own, and orphans named for it that match its selector."""
        index = self._pods.indexer
        owned = index.by_index(POD_OWNER_INDEX, sts.metadata.uid)
        orphans = [
            p
            for p in index.by_index(POD_OWNER_INDEX, f"orphan/{sts.metadata.namespace}")
            if is_member_of(sts, p)
        ]
        selector = selector_from_label_selector(sts.spec.selector)
        ref = new_controller_ref(sts, "apps/v1", "StatefulSet")

        async def recheck() -> Any:
            return await self._client.get(
                StatefulSet, sts.metadata.name, namespace=sts.metadata.namespace
            )

        manager = ControllerRefManager(self._client, sts, selector, ref, recheck)
        return await manager.claim(owned + orphans)

    async def _act(
        self, key: str, sts: StatefulSet, pods: list[Pod], revisions: Revisions
    ) -> list[Pod]:
        """Makes the planned writes; returns the pods, deleted ones marked terminating."""
        claims = {c.metadata.name: c for c in self._claims.list(sts.metadata.namespace)}
        plan = plan_update(sts, pods, revisions, claims, self._now())
        if plan.requeue_after is not None:
            self.enqueue_after(sts, plan.requeue_after)
        if plan.blocked_by:
            self.record(
                sts,
                WARNING,
                "FailedCreate",
                f"create Pod blocked: PersistentVolumeClaim {', '.join(plan.blocked_by)} "
                "is being deleted; the pod is created once the claim is gone",
            )
        self.expectations.expect_creations(key, sum(isinstance(s, CreatePod) for s in plan.steps))
        self.expectations.expect_deletions(
            key, [meta_namespace_key(s.pod) for s in plan.steps if isinstance(s, DeletePod)]
        )
        deleted: set[str] = set()
        for i, step in enumerate(plan.steps):
            try:
                await self._step(sts, step)
            except errors.StatusError:
                self._forget_unmade(key, plan.steps[i:])
                raise
            if isinstance(step, DeletePod):
                deleted.add(step.pod.metadata.name)
        if plan.steps or plan.waiting:
            log.info(
                "synced",
                extra={
                    "controller": self.name,
                    "key": key,
                    "steps": len(plan.steps),
                    "waiting": plan.waiting,
                },
            )
        return [_as_terminating(p, self._now()) if p.metadata.name in deleted else p for p in pods]

    def _forget_unmade(self, key: str, unmade: Sequence[Step]) -> None:
        """The failed step and those after it will never be observed."""
        creations = sum(isinstance(s, CreatePod) for s in unmade)
        if creations:
            self.expectations.lower_creations(key, creations)
        for step in unmade:
            if isinstance(step, DeletePod):
                self.expectations.deletion_observed(key, meta_namespace_key(step.pod))

    async def _step(self, sts: StatefulSet, step: Step) -> None:
        match step:
            case CreatePod(pod=pod, claims=claims):
                for claim in claims:
                    await self._create_claim(sts, claim, pod)
                await self._write(
                    sts,
                    self._client.create(pod),
                    "SuccessfulCreate",
                    "FailedCreate",
                    f"create Pod {pod.metadata.name} in StatefulSet {sts.metadata.name}",
                )
            case DeletePod(pod=pod, reason=reason):
                await self._write(
                    sts,
                    self._client.delete(Pod, pod.metadata.name, namespace=pod.metadata.namespace),
                    "SuccessfulDelete",
                    "FailedDelete",
                    f"delete Pod {pod.metadata.name} in StatefulSet {sts.metadata.name}",
                    missing_ok=True,
                )
                log.info(
                    "deleted pod",
                    extra={"controller": self.name, "pod": pod.metadata.name, "reason": reason},
                )
            case UpdatePod(pod=pod):
                await self._write(
                    sts,
                    self._client.update(pod),
                    "",
                    "FailedUpdate",
                    f"update Pod {pod.metadata.name} in StatefulSet {sts.metadata.name}",
                )
            case CreateClaim(claim=claim):
                await self._create_claim(sts, claim, None)
            case UpdateClaim(claim=claim):
                await self._write(
                    sts,
                    self._client.update(claim),
                    "",
                    "FailedUpdate",
                    f"update Claim {claim.metadata.name} in StatefulSet {sts.metadata.name}",
                    missing_ok=True,
                )

    async def _create_claim(
        self, sts: StatefulSet, claim: PersistentVolumeClaim, pod: Pod | None
    ) -> None:
        what = f"create Claim {claim.metadata.name}"
        if pod is not None:
            what += f" Pod {pod.metadata.name}"
        try:
            await self._client.create(claim)
        except errors.AlreadyExists:
            return  # the lister was behind; the claim is there
        except errors.StatusError as e:
            self.record(
                sts,
                WARNING,
                "FailedCreate",
                f"{what} in StatefulSet {sts.metadata.name} failed error: {e}",
            )
            raise
        self.record(
            sts, NORMAL, "SuccessfulCreate", f"{what} in StatefulSet {sts.metadata.name} success"
        )

    async def _write(
        self,
        sts: StatefulSet,
        call: Any,
        ok_reason: str,
        failed_reason: str,
        what: str,
        *,
        missing_ok: bool = False,
    ) -> None:
        """Awaits one write; events in Kubernetes' words ("create Pod web-0 in
        StatefulSet web successful")."""
        try:
            await call
        except errors.NotFound:
            if missing_ok:
                return
            self.record(sts, WARNING, failed_reason, f"{what} failed error: object not found")
            raise
        except errors.StatusError as e:
            self.record(sts, WARNING, failed_reason, f"{what} failed error: {e}")
            raise
        if ok_reason:
            self.record(sts, NORMAL, ok_reason, f"{what} successful")

    async def _update_status(
        self, sts: StatefulSet, pods: Sequence[Pod], revisions: Revisions, *, observed: bool
    ) -> None:
        status = statefulset_status(sts, pods, revisions.current, revisions.update, self._now())
        if observed:
            status.observed_generation = sts.metadata.generation
        if sts.spec.min_ready_seconds > 0 and status.ready_replicas != status.available_replicas:
            # A ready pod becomes available with time alone: no event will say so.
            self.enqueue_after(sts, sts.spec.min_ready_seconds)
        if status == sts.status:
            return
        fresh = StatefulSet()
        fresh.CopyFrom(sts)
        fresh.status.CopyFrom(status)
        try:
            await self._client.update_status(fresh)
        except errors.Conflict:
            self.enqueue(sts)  # our copy is stale; retry on the fresh one
        except errors.NotFound:
            return


def _as_terminating(pod: Pod, now: float) -> Pod:
    copy = Pod()
    copy.CopyFrom(pod)
    copy.metadata.deletion_timestamp.FromSeconds(int(now))
    return copy


def new_statefulset_controller(ctx: ControllerContext) -> StatefulSetController:
    return StatefulSetController(
        ctx.client,
        ctx.informers.informer(StatefulSet),
        pods_informer_with_owner_index(ctx),
        ctx.informers.informer(ControllerRevision),
        ctx.informers.informer(PersistentVolumeClaim),
        metrics=ctx.metrics,
        recorder=ctx.events.new_recorder("statefulset-controller"),
    )

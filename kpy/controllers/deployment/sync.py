"""Steps shared by every way a Deployment is synced (Kubernetes'
pkg/controller/deployment/sync.go): finding or creating the new ReplicaSet
and keeping revisions in step, proportional scaling, cleaning up history and
computing status.

`DeploymentSyncer` holds what these steps need (the client, the ReplicaSet
lister, an event recorder and the clock) and nothing else: no queue, no
handlers. The controller builds one and hands it to the strategies
(`RollingUpdate`, `Recreate`) and to `RolloutProgress`, where Kubernetes
spreads the methods of one DeploymentController over several files. Every
method takes the Deployment as a private copy that it may change (status,
annotations); ReplicaSets are lister objects and are copied before any
change.

Writes and what they carry:
- ReplicaSets: `create`; `update` (spec.replicas and the replicas
  annotations together, or the revision annotations and minReadySeconds);
  `delete` of old ones. A stale resourceVersion raises Conflict and the sync
  is retried on fresh state.
- the Deployment: its revision annotation through the main path (`update`),
  which keeps the stored status; status through `update_status`, which keeps
  everything but the status (kpy's status subresource ignores metadata).
  After each write the copy takes the new resourceVersion, so one sync can
  write twice without conflicting with itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from kpy.api import errors
from kpy.api.apps.v1 import Deployment, DeploymentStatus, ReplicaSet
from kpy.api.core.v1 import PodTemplateSpec
from kpy.cache.events import NORMAL, WARNING
from kpy.controllers.deployment import util
from kpy.controllers.ownership import get_controller_of, new_controller_ref

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.cache.informer import Lister
    from kpy.client import ClientProtocol

Recorder = Callable[[Any, str, str, str], None]
"""Records an Event: (object, type, reason, message), as `Controller.record`."""

log = logging.getLogger("kpy.controllers.deployment")

__all__ = ["CONTROLLER", "DeploymentSyncer", "calculate_status", "copy_of"]

#: the controller's name, in logs.
CONTROLLER: Final = "deployment"


def copy_of(rs: ReplicaSet) -> ReplicaSet:
    out = ReplicaSet()
    out.CopyFrom(rs)
    return out


class DeploymentSyncer:
    """The steps of sync.go over one client and ReplicaSet lister; see the
    module docstring."""

    def __init__(
        self,
        client: ClientProtocol,
        rs_lister: Lister[ReplicaSet],
        *,
        record: Recorder | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.rs_lister = rs_lister
        self.record: Recorder = record or _no_events
        #: wall-clock seconds, for condition times and the progress deadline.
        self.now = now

    # -- the new ReplicaSet and revisions -------------------------------------------------

    async def get_all_replica_sets_and_sync_revision(
        self, d: Deployment, rs_list: Sequence[ReplicaSet], create_if_not_existed: bool
    ) -> tuple[ReplicaSet | None, list[ReplicaSet]]:
        """(new ReplicaSet or None, all old ReplicaSets), the new one's
        revision raised above every old one and copied to the Deployment."""
        _, all_old = util.find_old_replica_sets(d, rs_list)
        new_rs = await self.get_new_replica_set(d, rs_list, all_old, create_if_not_existed)
        return new_rs, all_old

    async def get_new_replica_set(
        self,
        d: Deployment,
        rs_list: Sequence[ReplicaSet],
        old_rss: Sequence[ReplicaSet],
        create_if_not_existed: bool,
    ) -> ReplicaSet | None:
        """The ReplicaSet running the Deployment's template, its annotations
        synced; created (named `<deployment>-<hash>`) when missing and asked to."""
        existing = util.find_new_replica_set(d, rs_list)
        new_revision = str(util.max_revision(old_rss) + 1)
        if existing is not None:
            return await self._sync_existing_new_replica_set(d, existing, new_revision)
        if not create_if_not_existed:
            return None
        return await self._create_new_replica_set(d, old_rss, new_revision)

    async def _sync_existing_new_replica_set(
        self, d: Deployment, existing: ReplicaSet, new_revision: str
    ) -> ReplicaSet:
        rs = copy_of(existing)
        annotations_updated = util.set_new_replica_set_annotations(d, rs, new_revision, True)
        if annotations_updated or rs.spec.min_ready_seconds != d.spec.min_ready_seconds:
            rs.spec.min_ready_seconds = d.spec.min_ready_seconds
            # The Deployment's own revision follows on the sync this update triggers.
            return await self.client.update(rs)
        revision_changed = util.set_deployment_revision(
            d, rs.metadata.annotations.get(util.REVISION_ANNOTATION, "")
        )
        status_changed = False
        progressing = util.get_deployment_condition(d.status, util.DEPLOYMENT_PROGRESSING)
        if util.has_progress_deadline(d) and progressing is None:
            # Progress is measured from the first time the new ReplicaSet was seen.
            self._progressing(
                d, util.FOUND_NEW_RS_REASON, f'Found new replica set "{rs.metadata.name}"'
            )
            status_changed = True
        await self.write_deployment(d, metadata=revision_changed, status=status_changed)
        return rs

    async def _create_new_replica_set(
        self, d: Deployment, old_rss: Sequence[ReplicaSet], new_revision: str
    ) -> ReplicaSet:
        rs = new_replica_set_for(d)
        rs.spec.replicas = util.new_rs_new_replicas(d, [*old_rss, rs], rs)
        util.set_new_replica_set_annotations(d, rs, new_revision, False)
        already_exists = False
        try:
            created = await self.client.create(rs)
        except errors.AlreadyExists:
            found = self._own_replica_set_named(d, rs.metadata.name)
            if found is None:
                await self._record_collision(d)
                raise
            created, already_exists = found, True
        except errors.StatusError as e:
            await self._record_create_failure(d, rs, e)
            raise
        if not already_exists:
            if created.spec.replicas > 0:
                self.record(
                    d,
                    NORMAL,
                    "ScalingReplicaSet",
                    f"Scaled up replica set {created.metadata.name} to {created.spec.replicas}",
                )
            log.info(
                "created new replica set",
                extra={
                    "controller": CONTROLLER,
                    "key": f"{d.metadata.namespace}/{d.metadata.name}",
                    "replicaset": created.metadata.name,
                    "replicas": created.spec.replicas,
                },
            )
        revision_changed = util.set_deployment_revision(d, new_revision)
        status_changed = False
        if not already_exists and util.has_progress_deadline(d):
            self._progressing(
                d, util.NEW_REPLICA_SET_REASON, f'Created new replica set "{created.metadata.name}"'
            )
            status_changed = True
        await self.write_deployment(d, metadata=revision_changed, status=status_changed)
        return created

    def _progressing(self, d: Deployment, reason: str, message: str) -> None:
        """Progressing=True with this reason, on the copy being synced."""
        util.set_deployment_condition(
            d.status,
            util.new_deployment_condition(
                util.DEPLOYMENT_PROGRESSING, "True", reason, message, now=self.now()
            ),
        )

    def _own_replica_set_named(self, d: Deployment, name: str) -> ReplicaSet | None:
        """The ReplicaSet of that name if it is this Deployment's new one (a
        slow cache made us create it twice); None when it is a hash collision.
        Raises AlreadyExists again when the cache has not seen it yet."""
        rs = self.rs_lister.get(d.metadata.namespace, name)
        if rs is None:
            raise errors.AlreadyExists(
                f'replicasets "{name}" already exists but is not in the cache yet',
                kind="replicasets",
                name=name,
            )
        ref = get_controller_of(rs)
        if (
            ref is not None
            and ref.uid == d.metadata.uid
            and util.equal_ignore_hash(d.spec.template, rs.spec.template)
        ):
            return rs
        return None

    async def _record_collision(self, d: Deployment) -> None:
        """Another template hashed to the same name: the next sync hashes with
        a bumped status.collisionCount."""
        before = d.status.collision_count
        d.status.collision_count = before + 1
        try:
            await self.write_deployment(d, status=True)
        except errors.StatusError:
            return
        log.info(
            "hash collision; bumped collisionCount",
            extra={
                "controller": CONTROLLER,
                "key": f"{d.metadata.namespace}/{d.metadata.name}",
                "collision_count": d.status.collision_count,
            },
        )

    async def _record_create_failure(
        self, d: Deployment, rs: ReplicaSet, e: errors.StatusError
    ) -> None:
        message = f'Failed to create new replica set "{rs.metadata.name}": {e}'
        self.record(d, WARNING, "FailedCreate", message)
        log.warning(
            "creating the new replica set failed",
            extra={
                "controller": CONTROLLER,
                "key": f"{d.metadata.namespace}/{d.metadata.name}",
                "replicaset": rs.metadata.name,
                "error": str(e),
            },
        )
        if not util.has_progress_deadline(d):
            return
        util.set_deployment_condition(
            d.status,
            util.new_deployment_condition(
                util.DEPLOYMENT_PROGRESSING,
                "False",
                util.FAILED_RS_CREATE_REASON,
                message,
                now=self.now(),
            ),
        )
        try:
            await self.write_deployment(d, status=True)
        except errors.StatusError:
            return  # the create failure is the error worth reporting

    async def write_deployment(
        self, d: Deployment, *, metadata: bool = False, status: bool = False
    ) -> None:
        """Writes the copy's annotations (main path) and/or status (status
        path); the copy takes each new resourceVersion."""
        if metadata:
            updated = await self.client.update(d)
            d.metadata.resource_version = updated.metadata.resource_version
        if status:
            updated = await self.client.update_status(d)
            d.metadata.resource_version = updated.metadata.resource_version

    # -- scaling ----------------------------------------------------------------------------

    async def sync_for_scaling(self, d: Deployment, rs_list: Sequence[ReplicaSet]) -> None:
        """Kubernetes' `sync`: a scaling event or a paused Deployment. Sizes
        change (proportionally), the template never rolls out."""
        new_rs, old_rss = await self.get_all_replica_sets_and_sync_revision(d, rs_list, False)
        await self.scale(d, new_rs, old_rss)
        if d.spec.paused:
            await self.cleanup_deployment(old_rss, d)
        await self.sync_deployment_status([*old_rss, new_rs], new_rs, d)

    async def sync_status_only(self, d: Deployment, rs_list: Sequence[ReplicaSet]) -> None:
        new_rs, old_rss = await self.get_all_replica_sets_and_sync_revision(d, rs_list, False)
        await self.sync_deployment_status([*old_rss, new_rs], new_rs, d)

    async def is_scaling_event(self, d: Deployment, rs_list: Sequence[ReplicaSet]) -> bool:
        """Whether an active ReplicaSet was sized for another replica count
        than the Deployment's (its desired-replicas annotation)."""
        new_rs, old_rss = await self.get_all_replica_sets_and_sync_revision(d, rs_list, False)
        for rs in util.filter_active_replica_sets([*old_rss, new_rs]):
            desired, ok = util.get_desired_replicas_annotation(rs)
            if ok and desired != d.spec.replicas:
                return True
        return False

    async def scale(
        self, deployment: Deployment, new_rs: ReplicaSet | None, old_rss: Sequence[ReplicaSet]
    ) -> None:
        """Brings the ReplicaSets to the Deployment's size: the only active (or
        newest) one takes it all; with a saturated new one the old go to 0;
        otherwise, for RollingUpdate, replicas are added or removed in
        proportion to each active ReplicaSet's size, the leftover going to the
        first in order (largest; newest when scaling up, oldest when down)."""
        replicas = deployment.spec.replicas
        latest = util.find_active_or_latest(new_rs, old_rss)
        if latest is not None:
            if latest.spec.replicas != replicas:
                await self.scale_replica_set_and_record_event(latest, replicas, deployment)
            return
        if util.is_saturated(deployment, new_rs):
            for old in util.filter_active_replica_sets(old_rss):
                await self.scale_replica_set_and_record_event(old, 0, deployment)
            return
        if util.is_rolling_update(deployment):
            await self._scale_proportionally(deployment, new_rs, old_rss)

    async def _scale_proportionally(
        self, deployment: Deployment, new_rs: ReplicaSet | None, old_rss: Sequence[ReplicaSet]
    ) -> None:
        active = util.filter_active_replica_sets([*old_rss, new_rs])
        allowed = 0
        if deployment.spec.replicas > 0:
            allowed = deployment.spec.replicas + util.max_surge(deployment)
        to_add = allowed - util.get_replica_count_for_replica_sets(active)
        operation = ""
        if to_add > 0:
            active = util.replica_sets_by_size_newer(active)
            operation = "up"
        elif to_add < 0:
            active = util.replica_sets_by_size_older(active)
            operation = "down"
        sizes = proportional_sizes(active, deployment, to_add)
        for rs in active:
            await self.scale_replica_set(rs, sizes[rs.metadata.name], deployment, operation)

    async def scale_replica_set_and_record_event(
        self, rs: ReplicaSet, new_scale: int, deployment: Deployment
    ) -> tuple[bool, ReplicaSet]:
        if rs.spec.replicas == new_scale:
            return False, rs
        operation = "up" if rs.spec.replicas < new_scale else "down"
        return await self.scale_replica_set(rs, new_scale, deployment, operation)

    async def scale_replica_set(
        self, rs: ReplicaSet, new_scale: int, deployment: Deployment, scaling_operation: str
    ) -> tuple[bool, ReplicaSet]:
        """Sets spec.replicas and the replicas annotations in one update;
        (whether the size changed, the ReplicaSet as now stored)."""
        desired = deployment.spec.replicas
        max_replicas = desired + util.max_surge(deployment)
        size_changes = rs.spec.replicas != new_scale
        if not size_changes and not util.replicas_annotations_need_update(
            rs, desired, max_replicas
        ):
            return False, rs
        old_scale = rs.spec.replicas
        fresh = copy_of(rs)
        fresh.spec.replicas = new_scale
        util.set_replicas_annotations(fresh, desired, max_replicas)
        updated = await self.client.update(fresh)
        if size_changes:
            self.record(
                deployment,
                NORMAL,
                "ScalingReplicaSet",
                f"Scaled {scaling_operation} replica set {rs.metadata.name} "
                f"to {new_scale} from {old_scale}",
            )
            log.info(
                "scaled replica set",
                extra={
                    "controller": CONTROLLER,
                    "key": f"{deployment.metadata.namespace}/{deployment.metadata.name}",
                    "replicaset": rs.metadata.name,
                    "direction": scaling_operation,
                    "from": old_scale,
                    "to": new_scale,
                },
            )
        return size_changes, updated

    # -- history and status -----------------------------------------------------------------

    async def cleanup_deployment(
        self, old_rss: Sequence[ReplicaSet], deployment: Deployment
    ) -> None:
        """Deletes the oldest ReplicaSets beyond revisionHistoryLimit, but only
        ones fully scaled down (no replicas wanted or running, status caught
        up with the spec) and not being deleted already."""
        if not util.has_revision_history_limit(deployment):
            return
        alive = [rs for rs in old_rss if not rs.metadata.HasField("deletion_timestamp")]
        diff = len(alive) - deployment.spec.revision_history_limit
        if diff <= 0:
            return
        for rs in util.replica_sets_by_revision(alive)[:diff]:
            if (
                rs.status.replicas != 0
                or rs.spec.replicas != 0
                or rs.metadata.generation > rs.status.observed_generation
            ):
                continue
            log.info(
                "deleting old replica set beyond the revision history limit",
                extra={"controller": CONTROLLER, "replicaset": rs.metadata.name},
            )
            try:
                await self.client.delete(
                    ReplicaSet, rs.metadata.name, namespace=rs.metadata.namespace
                )
            except errors.NotFound:
                continue

    async def sync_deployment_status(
        self, all_rss: Sequence[ReplicaSet | None], new_rs: ReplicaSet | None, d: Deployment
    ) -> None:
        status = calculate_status(all_rss, new_rs, d, now=self.now())
        if status == d.status:
            return
        d.status.CopyFrom(status)
        await self.write_deployment(d, status=True)

    async def check_paused_conditions(self, d: Deployment) -> None:
        """Progressing becomes Unknown/DeploymentPaused on pause and
        Unknown/DeploymentResumed on resume, so time spent paused never counts
        against progressDeadlineSeconds. A timed-out condition is kept."""
        if not util.has_progress_deadline(d):
            return
        cond = util.get_deployment_condition(d.status, util.DEPLOYMENT_PROGRESSING)
        if cond is not None and cond.reason == util.TIMED_OUT_REASON:
            return
        paused_recorded = cond is not None and cond.reason == util.PAUSED_DEPLOY_REASON
        if d.spec.paused and not paused_recorded:
            reason, message = util.PAUSED_DEPLOY_REASON, "Deployment is paused"
        elif not d.spec.paused and paused_recorded:
            reason, message = util.RESUMED_DEPLOY_REASON, "Deployment is resumed"
        else:
            return
        util.set_deployment_condition(
            d.status,
            util.new_deployment_condition(
                util.DEPLOYMENT_PROGRESSING, "Unknown", reason, message, now=self.now()
            ),
        )
        await self.write_deployment(d, status=True)


def _no_events(obj: Any, eventtype: str, reason: str, message: str) -> None:
    """The recorder of a syncer built without one."""


def new_replica_set_for(d: Deployment) -> ReplicaSet:
    """A new ReplicaSet (0 replicas, no annotations yet) for the Deployment's
    template: the hash label on its template, labels and selector, the name
    `<deployment>-<hash>` so that creating it twice is caught."""
    template = PodTemplateSpec()
    template.CopyFrom(d.spec.template)
    collisions = d.status.collision_count if d.status.HasField("collision_count") else None
    template_hash = util.compute_hash(template, collisions)
    template.metadata.labels[util.DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY] = template_hash
    rs = ReplicaSet()
    rs.metadata.name = f"{d.metadata.name}-{template_hash}"
    rs.metadata.namespace = d.metadata.namespace
    rs.metadata.owner_references.append(new_controller_ref(d, "apps/v1", "Deployment"))
    rs.metadata.labels.update(template.metadata.labels)
    rs.spec.replicas = 0
    rs.spec.min_ready_seconds = d.spec.min_ready_seconds
    rs.spec.selector.CopyFrom(
        util.clone_selector_and_add_label(
            d.spec.selector, util.DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY, template_hash
        )
    )
    rs.spec.template.CopyFrom(template)
    return rs


def proportional_sizes(
    active: Sequence[ReplicaSet], deployment: Deployment, to_add: int
) -> dict[str, int]:
    """The size of each active ReplicaSet (in scaling order) after adding
    `to_add` replicas (negative: removing) in proportion; what rounding
    leaves over goes to the first one, never below 0."""
    sizes: dict[str, int] = {}
    added = 0
    for rs in active:
        proportion = 0
        if to_add != 0:
            proportion = util.get_proportion(rs, deployment, to_add, added)
        sizes[rs.metadata.name] = rs.spec.replicas + proportion
        added += proportion
    if active and to_add != 0:
        first = active[0].metadata.name
        sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes


def calculate_status(
    all_rss: Sequence[ReplicaSet | None],
    new_rs: ReplicaSet | None,
    deployment: Deployment,
    *,
    now: float | None = None,
) -> DeploymentStatus:
    """The status the ReplicaSets give the Deployment: counters from their
    specs and statuses, the old conditions, and Available set from whether
    at least replicas - maxUnavailable pods are available."""
    available = util.get_available_replica_count_for_replica_sets(all_rss)
    total = util.get_replica_count_for_replica_sets(all_rss)
    status = DeploymentStatus(
        observed_generation=deployment.metadata.generation,
        replicas=util.get_actual_replica_count_for_replica_sets(all_rss),
        updated_replicas=util.get_actual_replica_count_for_replica_sets([new_rs]),
        ready_replicas=util.get_ready_replica_count_for_replica_sets(all_rss),
        available_replicas=available,
        # More available than wanted (a scale down in flight) is not negative.
        unavailable_replicas=max(0, total - available),
    )
    if deployment.status.HasField("collision_count"):
        status.collision_count = deployment.status.collision_count
    status.conditions.extend(deployment.status.conditions)
    if available >= deployment.spec.replicas - util.max_unavailable(deployment):
        condition = util.new_deployment_condition(
            util.DEPLOYMENT_AVAILABLE,
            "True",
            util.MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
            now=now,
        )
    else:
        condition = util.new_deployment_condition(
            util.DEPLOYMENT_AVAILABLE,
            "False",
            util.MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now=now,
        )
    util.set_deployment_condition(status, condition)
    return status

"""Status during a rollout, and the progress deadline (Kubernetes'
pkg/controller/deployment/progress.go).

`sync_rollout_status` writes the counters and conditions that `kubectl
rollout status` reads. With progressDeadlineSeconds set (and not MaxInt32),
the Progressing condition says:
- True / NewReplicaSetAvailable once the rollout is complete;
- True / ReplicaSetUpdated whenever the rollout made progress (its
  lastUpdateTime moves, its lastTransitionTime stays while it stays True);
- False / ProgressDeadlineExceeded once no progress was recorded for longer
  than the deadline.
A rollout that is neither complete nor timed out is requeued for the moment
its deadline passes (`requeue_stuck_deployment`), so a stuck rollout is
noticed without polling. ReplicaFailure conditions of the ReplicaSets (the
new one's first) are promoted to the Deployment.

`RolloutProgress` writes through the `DeploymentSyncer` and requeues
through the controller's work queue, the two things it is built from.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from kpy.controllers.base import key_of
from kpy.controllers.deployment import util
from kpy.controllers.deployment.sync import calculate_status

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.apps.v1 import Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet
    from kpy.cache.workqueue import RateLimitingQueue
    from kpy.controllers.deployment.sync import DeploymentSyncer

log = logging.getLogger("kpy.controllers.deployment")

__all__ = ["REQUEUE_MARGIN", "RolloutProgress", "get_replica_failures"]

#: seconds added to a progress check's delay so that it lands after the deadline.
REQUEUE_MARGIN: Final = 0.25


class RolloutProgress:
    """progress.go's two steps; see the module docstring."""

    def __init__(self, syncer: DeploymentSyncer, queue: RateLimitingQueue[str]) -> None:
        self._syncer = syncer
        self._queue = queue

    async def sync_rollout_status(
        self, all_rss: Sequence[ReplicaSet | None], new_rs: ReplicaSet | None, d: Deployment
    ) -> None:
        """The status of a Deployment mid-rollout; see the module docstring."""
        now = self._syncer.now()
        new_status = calculate_status(all_rss, new_rs, d, now=now)
        if not util.has_progress_deadline(d):
            util.remove_deployment_condition(new_status, util.DEPLOYMENT_PROGRESSING)
        current = util.get_deployment_condition(d.status, util.DEPLOYMENT_PROGRESSING)
        complete_before = (
            new_status.replicas == new_status.updated_replicas
            and current is not None
            and current.reason == util.NEW_RS_AVAILABLE_REASON
        )
        if util.has_progress_deadline(d) and not complete_before:
            _set_progressing(d, new_status, new_rs, current, now)
        failures = get_replica_failures(all_rss, new_rs)
        if failures:
            util.set_deployment_condition(new_status, failures[0])
        else:
            util.remove_deployment_condition(new_status, util.DEPLOYMENT_REPLICA_FAILURE)
        if new_status == d.status:
            self.requeue_stuck_deployment(d, new_status)
            return
        d.status.CopyFrom(new_status)
        await self._syncer.write_deployment(d, status=True)

    def requeue_stuck_deployment(
        self, d: Deployment, new_status: DeploymentStatus, now: float | None = None
    ) -> float:
        """Enqueues the Deployment for the moment its progress deadline passes;
        the delay in seconds, 0 when that is now (enqueued rate-limited), -1
        when there is nothing to check (no deadline, no Progressing condition,
        complete or already timed out)."""
        current = util.get_deployment_condition(d.status, util.DEPLOYMENT_PROGRESSING)
        if not util.has_progress_deadline(d) or current is None:
            return -1
        if util.deployment_complete(d, new_status) or current.reason == util.TIMED_OUT_REASON:
            return -1
        now = self._syncer.now() if now is None else now
        last_update = current.last_update_time.seconds + current.last_update_time.nanos / 1e9
        after = last_update + d.spec.progress_deadline_seconds - now
        if after < 1:
            if after > 0:
                # Kubernetes checks at once here because its condition times are
                # whole seconds; these are exact, so wait for the moment itself.
                self._queue.add_after(key_of(d), after + REQUEUE_MARGIN)
            else:
                self._queue.add_rate_limited(key_of(d))
            return 0
        self._queue.add_after(key_of(d), after + REQUEUE_MARGIN)
        return after


def _set_progressing(
    d: Deployment,
    new_status: DeploymentStatus,
    new_rs: ReplicaSet | None,
    current: DeploymentCondition | None,
    now: float,
) -> None:
    subject = (
        f'ReplicaSet "{new_rs.metadata.name}"'
        if new_rs is not None
        else f'Deployment "{d.metadata.name}"'
    )
    if util.deployment_complete(d, new_status):
        util.set_deployment_condition(
            new_status,
            util.new_deployment_condition(
                util.DEPLOYMENT_PROGRESSING,
                "True",
                util.NEW_RS_AVAILABLE_REASON,
                f"{subject} has successfully progressed.",
                now=now,
            ),
        )
    elif util.deployment_progressing(d, new_status):
        condition = util.new_deployment_condition(
            util.DEPLOYMENT_PROGRESSING,
            "True",
            util.REPLICA_SET_UPDATED_REASON,
            f"{subject} is progressing.",
            now=now,
        )
        # Unlike other conditions, this one is rewritten with the same reason
        # so that its lastUpdateTime records the latest progress.
        if current is not None:
            if current.status == "True":
                condition.last_transition_time.CopyFrom(current.last_transition_time)
            util.remove_deployment_condition(new_status, util.DEPLOYMENT_PROGRESSING)
        util.set_deployment_condition(new_status, condition)
    elif util.deployment_timed_out(d, new_status, now):
        util.set_deployment_condition(
            new_status,
            util.new_deployment_condition(
                util.DEPLOYMENT_PROGRESSING,
                "False",
                util.TIMED_OUT_REASON,
                f"{subject} has timed out progressing.",
                now=now,
            ),
        )


def get_replica_failures(
    all_rss: Sequence[ReplicaSet | None], new_rs: ReplicaSet | None
) -> list[DeploymentCondition]:
    """ReplicaFailure conditions as Deployment conditions: the new
    ReplicaSet's if it has any, else the others'."""
    if new_rs is not None:
        found = [
            util.replica_set_to_deployment_condition(c)
            for c in new_rs.status.conditions
            if c.type == util.DEPLOYMENT_REPLICA_FAILURE
        ]
        if found:
            return found
    return [
        util.replica_set_to_deployment_condition(c)
        for rs in all_rss
        if rs is not None
        for c in rs.status.conditions
        if c.type == util.DEPLOYMENT_REPLICA_FAILURE
    ]

"""The TTL-after-finished controller (Kubernetes'
pkg/controller/ttlafterfinished).

Deletes a finished Job `spec.ttlSecondsAfterFinished` after it finished
(the lastTransitionTime of its Complete or Failed condition), with
propagation Foreground so that the garbage collector deletes its pods
first:

- Handlers: a Job added or updated that has a TTL and is finished is
  enqueued.
- `sync(key)`: a Job not yet expired is requeued for the moment it
  expires (no polling); an expired one is read again from the API (the
  cache may be stale: its TTL may have been changed) and, still expired,
  deleted with a uid precondition, so a new Job of the same name is never
  hit.

The time comes from `now` (injected for tests).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from kpy.api import errors
from kpy.api.batch.v1 import Job
from kpy.api.meta.v1 import Preconditions
from kpy.cache.informer import EventHandler
from kpy.cache.store import split_key
from kpy.controllers.base import Controller

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.ttl_after_finished")

__all__ = [
    "TTLAfterFinishedController",
    "expire_at",
    "finish_time",
    "new_ttl_after_finished_controller",
]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def finish_time(job: Job) -> datetime | None:
    """When the Job finished (its Complete or Failed condition turned True)."""
    for c in job.status.conditions:
        if c.type in ("Complete", "Failed") and c.status == "True":
            if not c.HasField("last_transition_time"):
                return None
            return c.last_transition_time.ToDatetime(tzinfo=UTC)
    return None


def expire_at(job: Job) -> datetime | None:
    """When a finished Job with a TTL expires; None when it never does."""
    if not job.spec.HasField("ttl_seconds_after_finished"):
        return None
    finished = finish_time(job)
    if finished is None:
        return None
    return finished + timedelta(seconds=job.spec.ttl_seconds_after_finished)


class TTLAfterFinishedController(Controller):
    name = "ttl-after-finished"

    def __init__(
        self,
        client: ClientProtocol,
        jobs: SharedInformer[Job],
        *,
        metrics: Metrics | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        super().__init__(metrics=metrics)
        self._client = client
        self._jobs: Lister[Job] = jobs.lister()
        self._now = now
        jobs.add_event_handler(
            EventHandler(
                on_add=lambda job, _initial: self._maybe_enqueue(job),
                on_update=lambda _old, new: self._maybe_enqueue(new),
            )
        )

    def _maybe_enqueue(self, job: Job) -> None:
        if job.metadata.HasField("deletion_timestamp"):
            return
        if expire_at(job) is not None:
            self.enqueue(job)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        job = self._jobs.get(namespace, name)
        if job is None or job.metadata.HasField("deletion_timestamp"):
            return
        if not self._expired(key, job):
            return
        # The cache may be stale (the TTL changed since): decide on a fresh copy.
        try:
            fresh = await self._client.get(Job, name, namespace=namespace)
        except errors.NotFound:
            return
        if fresh.metadata.HasField("deletion_timestamp") or not self._expired(key, fresh):
            return
        log.info("deleting an expired finished Job", extra={"controller": self.name, "key": key})
        try:
            await self._client.delete(
                Job,
                name,
                namespace=namespace,
                propagation_policy="Foreground",
                preconditions=Preconditions(uid=fresh.metadata.uid),
            )
        except errors.NotFound:
            return

    def _expired(self, key: str, job: Job) -> bool:
        """Whether `job` expired; if it will, requeues `key` for then."""
        expires = expire_at(job)
        if expires is None:
            return False
        left = (expires - self._now()).total_seconds()
        if left > 0:
            self.enqueue_after(key, left)
            return False
        return True


def new_ttl_after_finished_controller(ctx: ControllerContext) -> TTLAfterFinishedController:
    return TTLAfterFinishedController(ctx.client, ctx.informers.informer(Job), metrics=ctx.metrics)

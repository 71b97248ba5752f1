"""The controller pattern, once (sample-controller's controller.go).

A controller subclasses `Controller` and is built from a
`ControllerContext` (client, informer factories, metrics, events):

- its constructor wires informer handlers to `enqueue` (or to
  `enqueue_key`), so every change ends as a key ("namespace/name") on one
  rate-limited work queue;
- `run(workers)` runs that many workers, each taking a key, calling
  `sync(key)` and then, on success, `forget(key)` (its failure history is
  dropped), or on an error `add_rate_limited(key)` (retried with per-key
  exponential back-off under an overall token bucket). After `max_retries`
  failures in a row a key is dropped and logged, as Kubernetes does for
  controllers that set a limit; the next event for it brings it back.
- Whatever a sync raises (an API error, or a ValueError from an object the
  controller cannot make sense of) fails only that key: it is logged with the
  key (with a traceback when it is not an API error) and retried with back-off,
  and every other key keeps syncing. Only cancellation ends a worker.
- `sync(key)` reads only from listers, looks at the whole current state of
  that one object and what it owns, and writes through the client. It must
  be idempotent: the queue guarantees one worker per key at a time, not
  exactly-once delivery.

The queue makes sure two workers never sync one key at once, and that a key
changed while being synced is synced once more afterwards. Cancelling `run`
shuts the queue down; workers finish the sync they are in.
"""

from __future__ import annotations

import abc
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from kpy.api import errors
from kpy.cache.informer import EventHandler, deleted_object, deletion_key
from kpy.cache.workqueue import RateLimitingQueue, ShutDown

if TYPE_CHECKING:
    from kpy.cache.events import EventBroadcaster, EventRecorder
    from kpy.cache.informer import SharedInformerFactory
    from kpy.client import ClientProtocol
    from kpy.clock import Clock
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers")

__all__ = ["Controller", "ControllerContext", "deleted_object", "key_of"]


key_of = deletion_key


@dataclass(frozen=True, slots=True)
class ControllerContext:
    """What a controller is built from: each controller module's
    `new_*_controller(ctx)` takes one, and the manager makes one per run.
    It lives here, beside `Controller`, so that controller modules never
    import the manager that imports them."""

    client: ClientProtocol
    informers: SharedInformerFactory
    metrics: Metrics
    #: cluster-scoped informers (nodes, namespaces) when `informers` is
    #: restricted to one namespace; the same factory otherwise.
    cluster_informers: SharedInformerFactory
    events: EventBroadcaster


class Controller(abc.ABC):
    """See the module docstring. Subclasses set `name` and implement `sync`."""

    name: str
    #: failures in a row after which a key is dropped; None retries forever.
    max_retries: ClassVar[int | None] = None

    def __init__(
        self,
        *,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        recorder: EventRecorder | None = None,
    ) -> None:
        self.queue: RateLimitingQueue[str] = RateLimitingQueue(clock=clock)
        self.recorder = recorder
        self._metrics = metrics
        if metrics is not None:
            metrics.add_queue(self.name, self.queue)

    # -- feeding the queue --------------------------------------------------------------

    def enqueue(self, obj: Any) -> None:
        self.queue.add(key_of(obj))

    def enqueue_key(self, key: str) -> None:
        self.queue.add(key)

    def enqueue_after(self, obj_or_key: Any, delay: float) -> None:
        key = obj_or_key if isinstance(obj_or_key, str) else key_of(obj_or_key)
        self.queue.add_after(key, delay)

    def enqueue_handler(self) -> EventHandler[Any]:
        """A handler that enqueues every added, updated or deleted object itself."""
        return EventHandler(
            on_add=lambda obj, _initial: self.enqueue(obj),
            on_update=lambda _old, new: self.enqueue(new),
            on_delete=self.enqueue,
        )

    def record(self, obj: Any, eventtype: str, reason: str, message: str) -> None:
        """An Event about `obj` for `describe` (dropped when there is no recorder)."""
        if self.recorder is not None:
            self.recorder.event(obj, eventtype, reason, message)

    # -- running --------------------------------------------------------------------------

    async def run(self, workers: int) -> None:
        """Runs `workers` workers until cancelled, then shuts the queue down."""
        log.info("starting workers", extra={"controller": self.name, "workers": workers})
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(workers):
                    tg.start_soon(self._worker)
        finally:
            self.queue.shut_down()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def process(self, key: str) -> None:
        """One sync of `key` with the queue's retry rules (see the module docstring)."""
        started = time.perf_counter()
        ok = False
        try:
            await self.sync(key)
            ok = True
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as e:
            self._retry(key, e)
        else:
            self.queue.forget(key)
        finally:
            if self._metrics is not None:
                self._metrics.observe_sync(self.name, time.perf_counter() - started, ok)

    def _retry(self, key: str, e: Exception) -> None:
        failures = self.queue.num_requeues(key)
        limit = self.max_retries
        if limit is not None and failures >= limit:
            log.warning(
                "dropping key after repeated failures",
                extra={
                    "controller": self.name,
                    "key": key,
                    "failures": failures,
                    "error": _describe(e),
                },
            )
            self.queue.forget(key)
            return
        # Requeue first: nothing below may keep the key from its retry.
        self.queue.add_rate_limited(key)
        # A conflict or a vanished object is routine: the next sync sees fresh state.
        routine = isinstance(e, errors.Conflict | errors.NotFound | errors.AlreadyExists)
        api_error = isinstance(e, errors.StatusError)
        # Anything that is not an API error is a bug or an object this
        # controller cannot handle: worth a traceback at ERROR.
        level = logging.DEBUG if routine else logging.WARNING if api_error else logging.ERROR
        log.log(
            level,
            "sync failed; will retry",
            exc_info=e if not routine and not api_error else None,
            extra={
                "controller": self.name,
                "key": key,
                "failures": failures + 1,
                "error": _describe(e),
            },
        )

    @abc.abstractmethod
    async def sync(self, key: str) -> None:
        """Make the world match the object named `key`; raise to be retried."""


def _describe(e: BaseException) -> str:
    """`str(e)` for the log, even when the exception's own __str__ fails."""
    try:
        return f"{type(e).__name__}: {e}"
    except Exception:
        return f"{type(e).__name__} (its message could not be formatted)"

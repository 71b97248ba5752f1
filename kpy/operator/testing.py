"""Test an operator without a cluster: `Harness` runs it on `kpy.client.fake`.

    async def test_webapp_gets_a_deployment() -> None:
        async with Harness(app, WebApp(metadata=ObjectMeta(name="shop"), spec={...})) as h:
            deployment = h.get(Deployment, "shop")
            assert deployment is not None
            h.client.stored(...)            # any object, no action recorded
            await h.update_status(...)      # play another controller, then
            await h.settle()                # let the operator react

The operator runs for real (informers on the fake client's watches, work
queues, workers, events) with two differences: its work queues run on a
`FakeClock`, so back-off and `Result(requeue_after=...)` wait until the test
calls `advance(seconds)`; and every handler call checks that the handler
did not change the cached object it was given (an AssertionError, reported
in `failures`). `settle()` returns once nothing is left to do now: no key
queued or being reconciled, no event undelivered, no API call for a while.

No garbage collector and no other controller runs: owned objects stay after
their owner is deleted, and a Deployment's status changes only when the
test writes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self, TypeVar

import anyio
import anyio.lowlevel

from kpy.api.core.v1 import Event
from kpy.client.fake import FakeClient
from kpy.clock import FakeClock
from kpy.operator._operator import Runtime

if TYPE_CHECKING:
    from types import TracebackType

    from google.protobuf.message import Message

    from kpy.operator._operator import Operator

__all__ = ["Harness"]

M = TypeVar("M")

#: scheduler turns with nothing happening after which the operator is idle
_QUIET_TURNS = 25


class Harness:
    """See the module docstring. `objects` are stored before the operator
    starts (as they are: no defaulting; give them a namespace or get
    "default"), so its first list sees them."""

    def __init__(
        self, operator: Operator, *objects: Message, client: FakeClient | None = None
    ) -> None:
        self.operator = operator
        self.client = client if client is not None else FakeClient()
        self.clock = FakeClock()
        self._seed = objects
        self._runtime: Runtime | None = None
        self._group: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Self:
        seeds = []
        for obj in self._seed:
            seed = type(obj)()
            seed.CopyFrom(obj)
            meta = seed.metadata  # type: ignore[attr-defined]
            meta.namespace = meta.namespace or self.client.namespace
            meta.uid = meta.uid or f"uid-{meta.namespace}-{meta.name}"
            meta.generation = meta.generation or 1
            seeds.append(seed)
        self.client.add(*seeds)
        runtime = Runtime(self.operator, self.client, clock=self.clock, check_mutations=True)
        self._runtime = runtime
        self._group = await anyio.create_task_group().__aenter__()
        self._group.start_soon(runtime.run)
        with anyio.fail_after(10):
            await runtime.started.wait()
        await self.settle()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._group is not None
        self._group.cancel_scope.cancel()
        return await self._group.__aexit__(exc_type, exc, tb)

    # -- driving -------------------------------------------------------------------

    async def settle(self, *, limit: float = 10.0) -> None:
        """Waits until the operator has nothing to do now (see the module
        docstring); TimeoutError if it keeps working for `limit` seconds
        (a reconcile that requeues itself at once, for instance)."""
        runtime = self._require()
        quiet, calls = 0, -1
        with anyio.fail_after(limit):
            while quiet < _QUIET_TURNS:
                await anyio.lowlevel.checkpoint()
                now = len(self.client.actions)
                if runtime.busy() or now != calls:
                    quiet, calls = 0, now
                else:
                    quiet += 1

    async def advance(self, seconds: float) -> None:
        """Moves the work queues' clock on (due requeues and back-offs fire),
        then settles."""
        self.clock.advance(seconds)
        await self.settle()

    # -- the world, as a test sees it ---------------------------------------------

    async def create(self, obj: M) -> M:
        """Creates `obj` through the fake API, then settles."""
        out = await self.client.create(obj)  # type: ignore[type-var]
        await self.settle()
        return out

    async def update(self, obj: M) -> M:
        out = await self.client.update(obj)  # type: ignore[type-var]
        await self.settle()
        return out

    async def update_status(self, obj: M) -> M:
        """Writes `obj`'s status, as another controller would, then settles."""
        out = await self.client.update_status(obj)  # type: ignore[type-var]
        await self.settle()
        return out

    async def delete(self, kind: type[M], name: str, namespace: str = "default") -> None:
        await self.client.delete(kind, name, namespace=namespace)  # type: ignore[type-var]
        await self.settle()

    def get(self, kind: type[M], name: str, namespace: str = "default") -> M | None:
        """The stored object (None if absent), without recording an action."""
        return self.client.stored(kind, name, namespace)  # type: ignore[type-var]

    def events(self, reason: str = "") -> list[Event]:
        """Events the operator recorded (with `reason`, if given)."""
        return [e for e in self.client.stored_list(Event) if not reason or e.reason == reason]

    @property
    def failures(self) -> dict[str, Exception]:
        """ "namespace/name" -> the error of its last reconcile, for keys that
        are failing now (each waits for its back-off: `advance` to retry)."""
        out: dict[str, Exception] = {}
        for controller in self._require().controllers:
            out.update(controller.failures)
        return out

    def _require(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("use the Harness as `async with Harness(app) as h:`")
        return self._runtime

"""One etcd read shared by every caller waiting for it.

A consistent read from the API server's cache first learns where etcd is
(its current revision, or a resource's `ResourceStat`) and then waits for
the cache to get there. Under load hundreds of requests ask at once; they
need not each send a request, but each must get an answer read *after* it
asked, or a write it has seen finish could be missing from the answer.

`Coalesced` gives both: callers arriving while no read is in flight start
one, which every caller joins until it is sent; callers arriving while one
is in flight join the next, which starts when it ends (its answer may
predate them). At most one read is in
flight and one is forming, so concurrent callers cost two requests, not
one each.

With `spacing`, a round that was queued behind another (callers arrived
while a read was in flight) begins no sooner than `spacing` seconds after
the previous read began: under a steady load of callers that caps the reads
at 1/spacing a second and lets each share among more callers, at the cost
of up to `spacing` of waiting for the callers of a busy moment. A caller
that finds no read in flight starts one at once, so a lone or sequential
caller never waits for the spacing. Every caller still gets a read that
began after it asked: a round closes when its read begins, not when it was
queued.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["Coalesced"]

T = TypeVar("T")


class Coalesced(Generic[T]):
    """`await coalesced()` returns `read()`'s result from a call that began
    after this one did; concurrent callers share calls (see the module
    docstring). `read`'s exceptions reach every caller of that round. A
    cancelled caller leaves the round running for the others. Use it from
    one event loop."""

    def __init__(self, read: Callable[[], Awaitable[T]], *, spacing: float = 0.0) -> None:
        self._read = read
        self._spacing = spacing
        self._forming: asyncio.Future[T] | None = None  # callers waiting for the next read
        self._running: asyncio.Task[None] | None = None  # the read in flight (or queued)
        self._began = 0.0  # loop time the last read began

    async def __call__(self) -> T:
        future = self._forming
        if future is None:
            future = self._forming = asyncio.get_running_loop().create_future()
        if self._running is None:
            self._running = asyncio.get_running_loop().create_task(self._round(0.0))
        return await asyncio.shield(future)

    async def _round(self, delay: float) -> None:
        if delay > 0:
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                future, self._forming, self._running = self._forming, None, None
                if future is not None:
                    future.cancel()
                raise
        # The round closes when its read begins (not when it was scheduled):
        # every caller until then joins it.
        future, self._forming = self._forming, None
        assert future is not None
        loop = asyncio.get_running_loop()
        self._began = loop.time()
        try:
            result = await self._read()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as e:
            future.set_exception(e)
            future.exception()  # retrieved: its callers may all have been cancelled
        else:
            future.set_result(result)
        finally:
            self._running = None
            if self._forming is not None:
                delay = self._began + self._spacing - loop.time()
                self._running = loop.create_task(self._round(delay))

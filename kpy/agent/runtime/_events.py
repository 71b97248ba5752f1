"""The event stream every runtime keeps: the one meaning of `events()`.

Events are kept from the runtime's `start()` until its `close()`, whether
or not anyone reads them yet: the agent starts its runtime, then its pod
workers, and only then its event reader, and it must not miss an exit that
happened in between. `events()` may be called before `start()`; its
iteration reads from the stream that `start()` opens. There is one reader:
each event goes to whichever iteration takes it first. `close()` ends the
stream after the events already kept, and a reader failure (`fail()`) ends
it with RuntimeError_ once those are read.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from kpy.agent.runtime.base import ContainerEvent, RuntimeError_

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

_Item = ContainerEvent | BaseException | None


class EventStream:
    """Buffers a runtime's container events from `open()` to `close()`."""

    def __init__(self, runtime: str) -> None:
        self._runtime = runtime
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._open = False
        # Whether `_queue` holds its end: the next open() needs a new one.
        self._ended = False

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        """Starts keeping events (the runtime's `start()`); a stream ended by
        `close()` is replaced by a new, empty one."""
        if self._ended:
            self._queue = asyncio.Queue()
            self._ended = False
        self._open = True

    def emit(self, event: ContainerEvent) -> None:
        """Keeps `event` for the reader; dropped while the stream is not open."""
        if self._open:
            self._queue.put_nowait(event)

    def fail(self, error: BaseException) -> None:
        """Ends the stream with `error` (after the events kept so far)."""
        self._end(error)

    def close(self) -> None:
        """Ends the stream after the events kept so far (also one never
        opened: its reader must not wait forever)."""
        self._end(None)

    def _end(self, last: BaseException | None) -> None:
        if not self._ended:
            self._queue.put_nowait(last)
            self._open, self._ended = False, True

    async def read(self) -> AsyncIterator[ContainerEvent]:
        """The events, until `close()` or `fail()`; see the module docstring."""
        queue = self._queue
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise RuntimeError_(f"the {self._runtime} event reader failed: {item}") from item
            yield item

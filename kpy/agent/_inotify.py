"""Linux inotify for asyncio, through ctypes.

`Inotify()` opens one inotify instance (non-blocking, close-on-exec);
`add_watch(path, mask)` watches a file or directory and returns its watch
descriptor; `async for event in inotify` yields an `InotifyEvent(wd, mask,
name)` per kernel record, in the order the kernel queued them.

Contract:
- The iterator is cancel-safe: a `__anext__` cancelled while it waits loses
  no event (records are read from the fd only when it is readable, and all of
  them are buffered before one is returned).
- `close()` (or leaving the `with` block) releases the fd; an iteration that
  is waiting, or any later one, ends with StopAsyncIteration. Closing twice
  is a no-op.
- One task iterates at a time; the instance belongs to the event loop that
  first iterates it.
- When the kernel's queue overflows, an event with `IN_Q_OVERFLOW` and wd -1
  is yielded: events were lost, and the caller must re-read what it watches.

Raises `OSError` with a message saying what to do when inotify is missing or
out of instances / watches.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import errno
import os
import struct
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "IN_ALL_EVENTS",
    "IN_ATTR",
    "IN_ATTRIB",
    "IN_CLOSE_WRITE",
    "IN_CREATE",
    "IN_DELETE",
    "IN_DELETE_SELF",
    "IN_IGNORED",
    "IN_ISDIR",
    "IN_MODIFY",
    "IN_MOVED_FROM",
    "IN_MOVED_TO",
    "IN_MOVE_SELF",
    "IN_ONLYDIR",
    "IN_Q_OVERFLOW",
    "Inotify",
    "InotifyEvent",
    "parse_events",
]

# Event bits, from <sys/inotify.h>.
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_ATTR = IN_ATTRIB
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_ALL_EVENTS = 0x00000FFF
# Bits the kernel sets on its own.
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ISDIR = 0x40000000
# Bits for add_watch only.
IN_ONLYDIR = 0x01000000

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len
# Large enough for many records at once; one record is at most 16 + NAME_MAX + 1.
_READ_SIZE = 64 * 1024


class InotifyEvent(NamedTuple):
    """One kernel record: `name` is the entry inside a watched directory
    ("" for events on the watched path itself)."""

    wd: int
    mask: int
    name: str


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    for symbol in ("inotify_init1", "inotify_add_watch", "inotify_rm_watch"):
        if not hasattr(libc, symbol):
            raise OSError(
                errno.ENOSYS,
                f"inotify is unavailable: the C library has no {symbol} (Linux only)",
            )
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    return libc


def _last_error(action: str, hint: str, path: str | None = None) -> OSError:
    code = ctypes.get_errno()
    message = f"{action}: {os.strerror(code)}"
    if hint and code in (errno.EMFILE, errno.ENOSPC):
        message += f"; {hint}"
    return OSError(code, message, path) if path is not None else OSError(code, message)


def parse_events(data: bytes) -> list[InotifyEvent]:
    """The records in one read of an inotify fd (a read returns whole records)."""
    events = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
        offset += _HEADER.size
        raw = data[offset : offset + length].split(b"\0", 1)[0]
        offset += length
        events.append(InotifyEvent(wd, mask, os.fsdecode(raw)))
    return events


class Inotify:
    """One inotify instance; see the module docstring for the contract."""

    def __init__(self) -> None:
        self._libc = _libc()
        fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise _last_error(
                "inotify_init1 failed",
                "raise the sysctl fs.inotify.max_user_instances or close other watchers",
            )
        self._fd: int | None = fd
        self._pending: collections.deque[InotifyEvent] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def closed(self) -> bool:
        return self._fd is None

    def add_watch(self, path: str | os.PathLike[str], mask: int) -> int:
        """Watch `path` for the events in `mask`; returns the watch descriptor
        (the same one again for a path already watched, with the new mask).
        Raises FileNotFoundError if `path` does not exist."""
        fd = self._open_fd()
        wd: int = self._libc.inotify_add_watch(fd, os.fsencode(path), mask)
        if wd < 0:
            raise _last_error(
                f'inotify_add_watch on "{os.fspath(path)}" failed',
                "raise the sysctl fs.inotify.max_user_watches",
                os.fspath(path),
            )
        return wd

    def rm_watch(self, wd: int) -> None:
        """Stop watching; the kernel then queues an IN_IGNORED event for `wd`."""
        if self._libc.inotify_rm_watch(self._open_fd(), wd) < 0:
            raise _last_error(f"inotify_rm_watch of watch {wd} failed", "")

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._waiter is not None:
            # Unregister before closing: the loop's selector knows the fd by number.
            assert self._loop is not None
            self._loop.remove_reader(fd)
            if not self._waiter.done():
                self._waiter.set_result(None)
        os.close(fd)

    def __enter__(self) -> Inotify:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> Inotify:
        return self

    async def __anext__(self) -> InotifyEvent:
        while not self._pending:
            if self._fd is None:
                raise StopAsyncIteration
            if not self._read():
                await self._readable(self._fd)
        return self._pending.popleft()

    def _open_fd(self) -> int:
        if self._fd is None:
            raise ValueError("this Inotify is closed; create a new one")
        return self._fd

    def _read(self) -> bool:
        """Buffers what the fd holds now; False if it held nothing."""
        assert self._fd is not None
        try:
            data = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return False
        self._pending.extend(parse_events(data))
        return True

    async def _readable(self, fd: int) -> None:
        self._loop = asyncio.get_running_loop()
        waiter = self._loop.create_future()
        self._waiter = waiter
        self._loop.add_reader(fd, _wake, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if self._fd is not None:
                self._loop.remove_reader(fd)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)

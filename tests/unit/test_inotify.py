"""The asyncio inotify wrapper, against the real kernel."""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

import anyio
import pytest

from kpy.agent import _inotify
from kpy.agent._inotify import (
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    Inotify,
    InotifyEvent,
)

if TYPE_CHECKING:
    from pathlib import Path

DIR_EVENTS = IN_CREATE | IN_DELETE | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO


async def next_events(inotify: Inotify, count: int) -> list[InotifyEvent]:
    with anyio.fail_after(5):
        return [await anext(inotify) for _ in range(count)]


async def test_create_write_move_delete_are_reported_in_order(tmp_path: Path) -> None:
    with Inotify() as inotify:
        wd = inotify.add_watch(tmp_path, DIR_EVENTS)
        (tmp_path / "a.yaml").write_text("x")
        (tmp_path / "a.yaml").rename(tmp_path / "b.yaml")
        (tmp_path / "b.yaml").unlink()
        events = await next_events(inotify, 5)
    assert [(e.wd, e.mask, e.name) for e in events] == [
        (wd, IN_CREATE, "a.yaml"),
        (wd, IN_CLOSE_WRITE, "a.yaml"),
        (wd, IN_MOVED_FROM, "a.yaml"),
        (wd, IN_MOVED_TO, "b.yaml"),
        (wd, IN_DELETE, "b.yaml"),
    ]


async def test_removing_the_watched_directory_reports_delete_self_then_ignored(
    tmp_path: Path,
) -> None:
    watched = tmp_path / "manifests"
    watched.mkdir()
    with Inotify() as inotify:
        wd = inotify.add_watch(watched, IN_DELETE_SELF)
        watched.rmdir()
        events = await next_events(inotify, 2)
    assert events == [InotifyEvent(wd, IN_DELETE_SELF, ""), InotifyEvent(wd, IN_IGNORED, "")]


async def test_close_ends_a_waiting_iteration(tmp_path: Path) -> None:
    inotify = Inotify()
    inotify.add_watch(tmp_path, DIR_EVENTS)
    ended = anyio.Event()

    async def iterate() -> None:
        async for _ in inotify:
            pytest.fail("no event was expected")
        ended.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(iterate)
        await anyio.sleep(0.05)
        inotify.close()
        with anyio.fail_after(5):
            await ended.wait()
    assert inotify.closed
    inotify.close()  # a second close is a no-op
    with pytest.raises(StopAsyncIteration):
        await anext(inotify)
    with pytest.raises(ValueError, match="closed"):
        inotify.add_watch(tmp_path, DIR_EVENTS)


async def test_a_cancelled_wait_loses_no_event(tmp_path: Path) -> None:
    with Inotify() as inotify:
        inotify.add_watch(tmp_path, DIR_EVENTS)
        with anyio.move_on_after(0.05):
            await anext(inotify)
        (tmp_path / "late.json").touch()
        (event,) = await next_events(inotify, 1)
    assert (event.mask, event.name) == (IN_CREATE, "late.json")


def test_watching_a_missing_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with Inotify() as inotify, pytest.raises(FileNotFoundError, match="nowhere"):
        inotify.add_watch(missing, DIR_EVENTS)


def test_each_instance_has_its_own_close_on_exec_fd() -> None:
    with Inotify() as a, Inotify() as b:
        fds = [x._fd for x in (a, b)]
        assert None not in fds
        assert fds[0] != fds[1]
        assert all(not os.get_inheritable(fd) for fd in fds if fd is not None)


def record(wd: int, mask: int, name: bytes, padded_to: int) -> bytes:
    return struct.pack("iIII", wd, mask, 0, padded_to) + name.ljust(padded_to, b"\0")


PARSE_CASES = [
    ("no records", b"", []),
    ("event on the watched path", record(1, IN_DELETE_SELF, b"", 0), [(1, IN_DELETE_SELF, "")]),
    (
        "names are NUL-padded",
        record(2, IN_CREATE, b"a.yaml", 16) + record(2, IN_DELETE, b"bb", 16),
        [(2, IN_CREATE, "a.yaml"), (2, IN_DELETE, "bb")],
    ),
    (
        "queue overflow",
        record(-1, _inotify.IN_Q_OVERFLOW, b"", 0),
        [(-1, _inotify.IN_Q_OVERFLOW, "")],
    ),
]


@pytest.mark.parametrize(("name", "data", "want"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse_events(name: str, data: bytes, want: list[tuple[int, int, str]]) -> None:
    got = [tuple(e) for e in _inotify.parse_events(data)]
    assert got == want, name

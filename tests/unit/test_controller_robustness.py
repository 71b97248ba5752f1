"""One object a controller cannot handle never stops the others: a sync that
raises is logged with its key and retried with back-off, while every other
key keeps syncing (Controller's worker loop, kpy/controllers/base.py)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar

import anyio
import pytest

from kpy.api import errors
from kpy.controllers.base import Controller

if TYPE_CHECKING:
    from collections.abc import Callable

BAD = "default/bad"


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


class Recording(Controller):
    """Fails every sync of BAD with `failure()`; records every sync."""

    name = "recording"

    def __init__(self, failure: Callable[[], Exception]) -> None:
        super().__init__()
        self.failure = failure
        self.synced: list[str] = []
        self.changed = anyio.Event()

    async def sync(self, key: str) -> None:
        self.synced.append(key)
        self.changed.set()
        self.changed = anyio.Event()
        if key == BAD:
            raise self.failure()

    async def wait_for(self, done: Callable[[], bool]) -> None:
        with anyio.fail_after(20):  # generous: the machine is shared
            while not done():
                await self.changed.wait()


class Limited(Recording):
    max_retries: ClassVar[int | None] = 2


FAILURES: list[tuple[str, Callable[[], Exception], int]] = [
    (
        "ValueError from a stored object",
        lambda: ValueError("invalid literal for int()"),
        logging.ERROR,
    ),
    ("KeyError", lambda: KeyError("spec"), logging.ERROR),
    ("an exception whose message fails", Unprintable, logging.ERROR),
    ("an API error", lambda: errors.Forbidden("nope"), logging.WARNING),
]


@pytest.mark.parametrize(("name", "failure", "level"), FAILURES, ids=[f[0] for f in FAILURES])
async def test_a_failing_key_is_retried_and_the_others_still_sync(
    name: str, failure: Callable[[], Exception], level: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kpy.controllers")
    controller = Recording(failure)
    for key in (BAD, "default/a", "default/b"):
        controller.enqueue_key(key)
    async with anyio.create_task_group() as tg:
        tg.start_soon(controller.run, 2)
        # Retried with back-off (5 ms, 10 ms, ...) while the others sync.
        await controller.wait_for(lambda: controller.synced.count(BAD) >= 3)
        assert {"default/a", "default/b"} <= set(controller.synced), name
        # A key that arrives later still syncs: the workers are alive.
        controller.enqueue_key("default/c")
        await controller.wait_for(lambda: "default/c" in controller.synced)
        assert controller.queue.num_requeues(BAD) >= 2, name
        tg.cancel_scope.cancel()
    assert controller.queue.num_requeues("default/a") == 0, name
    failed = [r for r in caplog.records if getattr(r, "key", None) == BAD]
    assert failed, f"{name}: no log record names the key"
    assert all(r.levelno == level for r in failed), name
    assert all(r.controller == "recording" for r in failed), name  # type: ignore[attr-defined]
    if level == logging.ERROR:
        assert all(r.exc_info is not None for r in failed), f"{name}: no traceback"


async def test_a_key_is_dropped_after_max_retries_and_comes_back_with_its_next_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="kpy.controllers")
    controller = Limited(lambda: ValueError("bad"))
    controller.enqueue_key(BAD)
    async with anyio.create_task_group() as tg:
        tg.start_soon(controller.run, 1)
        await controller.wait_for(lambda: controller.synced.count(BAD) == 3)
        await anyio.sleep(0.2)  # no fourth attempt: dropped
        assert controller.synced.count(BAD) == 3
        assert any(r.getMessage() == "dropping key after repeated failures" for r in caplog.records)
        controller.enqueue_key(BAD)  # its next event
        await controller.wait_for(lambda: controller.synced.count(BAD) == 4)
        tg.cancel_scope.cancel()

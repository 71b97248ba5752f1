"""The reflector's retries run on its injected clock: after a failed list it
waits 0.8 s (+0-50%), then double that, and a list/watch that stayed healthy
for a minute starts over at 0.8 s. A `FakeClock` steps the time."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from kpy.api import errors
from kpy.api.core.v1 import ConfigMap
from kpy.cache.reflector import Reflector
from kpy.client.fake import FakeClient
from kpy.clock import FakeClock

if TYPE_CHECKING:
    from collections.abc import Sequence


class NullStore:
    def add(self, obj: ConfigMap) -> None: ...

    def update(self, obj: ConfigMap) -> None: ...

    def delete(self, obj: ConfigMap) -> None: ...

    def replace(self, objects: Sequence[ConfigMap], resource_version: str) -> None: ...


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


def lists(client: FakeClient) -> int:
    return sum(1 for a in client.actions if a.matches("list", "ConfigMap"))


# (seconds to step the clock, list calls made by then)
STEPS = [
    (0.0, 1),  # the first list fails at once
    (0.79, 1),  # the first wait is at least 0.8 s
    (0.42, 2),  # ... and at most 1.2 s: the second try, which fails again
    (1.59, 2),  # the second wait is at least 1.6 s
    (0.82, 3),  # ... and at most 2.4 s
    (3.19, 3),  # the third at least 3.2 s
    (1.62, 4),  # ... and at most 4.8 s
]


async def test_failed_lists_back_off_on_the_injected_clock() -> None:
    client = FakeClient()
    client.fail("list", "ConfigMap", errors.Unavailable("etcd is down"))
    clock = FakeClock()
    reflector = Reflector(client, ConfigMap, NullStore(), namespace="default", clock=clock)
    task = asyncio.create_task(reflector.run())
    try:
        for i, (step, want) in enumerate(STEPS):
            clock.advance(step)
            await settle()
            assert lists(client) == want, f"step {i} (+{step}s, t={clock.now():.2f})"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

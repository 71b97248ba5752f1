"""EventBroadcaster's pacing (kpy/cache/events.py): while its owner is
busy, events wait in the queue instead of competing with the owner's own
writes; once it is not, they are all written, in the order recorded.

A frozen clock makes "at most busy_rate writes a second" mean "no second
write while busy", so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import pytest

from kpy.api.codec import from_dict
from kpy.api.core.v1 import ConfigMap, Event
from kpy.cache.events import NORMAL, EventBroadcaster
from kpy.client.fake import FakeClient

if TYPE_CHECKING:
    from collections.abc import Callable


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(2_000):  # 10 s at most
        if check():
            return
        await anyio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


async def _created(client: FakeClient) -> list[str]:
    return [e.message for e in (await client.list(Event, namespace="ns")).items]


@dataclass(frozen=True)
class Case:
    name: str
    busy: bool
    written_while_held: int  # before set_busy(False)


CASES = [
    Case("not busy: everything is written at once", busy=False, written_while_held=4),
    Case("busy: one write, then the queue waits", busy=True, written_while_held=1),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_busy_owner_holds_events_back_and_loses_none(case: Case) -> None:
    client = FakeClient()
    subject = await client.create(
        from_dict(ConfigMap, {"metadata": {"name": "subject", "namespace": "ns"}})
    )
    broadcaster = EventBroadcaster(client, host="h", busy_rate=1.0, clock=lambda: 0.0)
    recorder = broadcaster.new_recorder("test")
    broadcaster.set_busy(case.busy)
    for i in range(4):
        recorder.event(subject, NORMAL, "Tick", f"tick {i}")
    async with anyio.create_task_group() as tg:
        tg.start_soon(broadcaster.run)
        await _until(lambda: broadcaster.written >= case.written_while_held, case.name)
        for _ in range(20):  # give a wrongly paced writer every chance to write more
            await anyio.lowlevel.checkpoint()
        assert broadcaster.written == case.written_while_held, case.name
        assert broadcaster.queued == 4 - case.written_while_held, case.name
        broadcaster.set_busy(False)
        await _until(lambda: broadcaster.written == 4, case.name)
        tg.cancel_scope.cancel()
    assert sorted(await _created(client)) == [f"tick {i}" for i in range(4)], case.name
    assert broadcaster.dropped == 0, case.name


def test_busy_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="busy_rate must be positive"):
        EventBroadcaster(FakeClient(), busy_rate=0)

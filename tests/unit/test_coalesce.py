"""`kpy.storage._coalesce.Coalesced`: concurrent callers share reads, and
every caller gets a read that began after it asked."""

from __future__ import annotations

import asyncio

import pytest

from kpy.api.errors import Unavailable
from kpy.storage._coalesce import Coalesced


class Reads:
    """A read whose answers the test releases one at a time: each call
    returns the number of reads begun so far, once released."""

    def __init__(self) -> None:
        self.begun = 0
        self.began_at: list[float] = []  # loop time each read began
        self.release: asyncio.Queue[BaseException | None] = asyncio.Queue()

    async def __call__(self) -> int:
        self.begun += 1
        self.began_at.append(asyncio.get_running_loop().time())
        number = self.begun
        outcome = await self.release.get()
        if outcome is not None:
            raise outcome
        return number


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_callers_that_arrive_together_share_one_read() -> None:
    reads = Reads()
    shared = Coalesced(reads)
    callers = [asyncio.create_task(shared()) for _ in range(10)]
    await settle()
    reads.release.put_nowait(None)
    assert await asyncio.gather(*callers) == [1] * 10
    assert reads.begun == 1


async def test_a_caller_arriving_during_a_read_gets_the_next_one() -> None:
    # The read in flight may have been answered before the caller's own
    # write finished: it must not be handed to the caller.
    reads = Reads()
    shared = Coalesced(reads)
    first = asyncio.create_task(shared())
    await settle()
    late = [asyncio.create_task(shared()) for _ in range(5)]
    await settle()
    assert reads.begun == 1, "a second read began while the first was in flight"
    reads.release.put_nowait(None)
    assert await first == 1
    await settle()
    reads.release.put_nowait(None)
    assert await asyncio.gather(*late) == [2] * 5
    assert reads.begun == 2


async def test_a_failed_read_fails_every_caller_of_its_round_and_the_next_round_retries() -> None:
    reads = Reads()
    shared = Coalesced(reads)
    callers = [asyncio.create_task(shared()) for _ in range(3)]
    await settle()
    reads.release.put_nowait(Unavailable("etcd is down"))
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(o, Unavailable) for o in outcomes), outcomes
    after = asyncio.create_task(shared())
    await settle()
    reads.release.put_nowait(None)
    assert await after == 2


async def test_a_cancelled_caller_leaves_the_read_to_the_others() -> None:
    reads = Reads()
    shared = Coalesced(reads)
    leaving = asyncio.create_task(shared())
    staying = asyncio.create_task(shared())
    await settle()
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    reads.release.put_nowait(None)
    assert await staying == 1


async def test_a_queued_round_waits_for_the_spacing_and_gathers_the_callers_meanwhile() -> None:
    # Under a steady load the reads are spaced: callers arriving during the
    # read in flight, and during the spacing after it, share the next read,
    # which still begins after every one of them asked.
    reads = Reads()
    spacing = 0.3
    shared = Coalesced(reads, spacing=spacing)
    first = asyncio.create_task(shared())
    await settle()
    assert reads.begun == 1, "a caller finding no read in flight waited for the spacing"
    during = asyncio.create_task(shared())
    await settle()
    reads.release.put_nowait(None)
    assert await first == 1
    await settle()
    after = asyncio.create_task(shared())  # arrives while the next round waits
    await settle()
    assert reads.begun == 1, "the queued round began before the spacing ran out"
    await asyncio.sleep(spacing + 0.5)  # generous: a loaded machine
    assert reads.begun == 2, "the queued round never began"
    assert reads.began_at[1] - reads.began_at[0] >= spacing
    reads.release.put_nowait(None)
    assert list(await asyncio.gather(during, after)) == [2, 2]
    assert reads.begun == 2


async def test_a_lone_caller_after_a_quiet_spell_is_not_delayed() -> None:
    reads = Reads()
    shared = Coalesced(reads, spacing=60.0)
    for expected in (1, 2, 3):
        caller = asyncio.create_task(shared())
        await settle()
        assert reads.begun == expected, f"read {expected} waited for the spacing"
        reads.release.put_nowait(None)
        assert await caller == expected


async def test_cancelling_a_queued_round_fails_its_callers_and_frees_the_next() -> None:
    reads = Reads()
    shared = Coalesced(reads, spacing=60.0)
    first = asyncio.create_task(shared())
    await settle()
    queued = asyncio.create_task(shared())
    await settle()
    reads.release.put_nowait(None)
    assert await first == 1
    await settle()
    round_task = shared._running
    assert round_task is not None
    round_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    later = asyncio.create_task(shared())
    await settle()
    assert reads.begun == 2, "a cancelled queued round left the next caller stuck"
    reads.release.put_nowait(None)
    assert await later == 2

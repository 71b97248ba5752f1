"""Leader election over a Lease, through the real API server: one leader at a
time, hand-over on release, and a leader that cannot renew stops before a
spare can take over."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

from kpy.apiserver.process import APIServerProcess
from kpy.cache.leader_election import LeaderElectionConfig, LeaderElector
from kpy.client import Client

if TYPE_CHECKING:
    from kpy.storage import EtcdServer

FAST = {"lease_duration": 1.5, "renew_deadline": 1.0, "retry_period": 0.2}


def config(name: str, identity: str) -> LeaderElectionConfig:
    return LeaderElectionConfig(name=name, identity=identity, namespace="default", **FAST)


class Record:
    """When each candidate led, to check that leadership never overlaps."""

    def __init__(self) -> None:
        self.leading: set[str] = set()
        self.overlaps = 0
        self.started: dict[str, float] = {}
        self.stopped: dict[str, float] = {}
        self.became: dict[str, anyio.Event] = {}

    async def wait_leading(self, identity: str) -> None:
        with anyio.fail_after(10):
            await self.became.setdefault(identity, anyio.Event()).wait()

    def lead(self, identity: str) -> object:
        async def lead() -> None:
            if self.leading:
                self.overlaps += 1
            self.leading.add(identity)
            self.started[identity] = time.monotonic()
            self.became.setdefault(identity, anyio.Event()).set()
            try:
                await anyio.sleep_forever()
            finally:
                self.leading.discard(identity)
                self.stopped[identity] = time.monotonic()

        return lead


async def test_one_leader_and_hand_over_on_release(client: Client) -> None:
    name = f"lead-{uuid.uuid4().hex[:6]}"
    record = Record()
    a, b = LeaderElector(client, config(name, "a")), LeaderElector(client, config(name, "b"))
    async with anyio.create_task_group() as tg:
        a_scope = anyio.CancelScope()

        async def run_a() -> None:
            with a_scope:
                await a.run(record.lead("a"))  # type: ignore[arg-type]

        tg.start_soon(run_a)
        await record.wait_leading("a")
        tg.start_soon(b.run, record.lead("b"))
        await anyio.sleep(FAST["lease_duration"] * 1.5)  # b must not take a renewed lease
        assert record.leading == {"a"}
        assert b.leader == "a"

        a_scope.cancel()  # a stops cleanly and releases the lease
        await record.wait_leading("b")
        handed_over = record.started["b"] - record.stopped["a"]
        assert handed_over < FAST["lease_duration"], "a released lease is taken at once"
        tg.cancel_scope.cancel()
    assert record.overlaps == 0


async def test_a_leader_that_cannot_renew_stops_before_another_starts(
    etcd_server: EtcdServer, client: Client
) -> None:
    name = f"lead-{uuid.uuid4().hex[:6]}"
    own = APIServerProcess(etcd_server.endpoint)
    await asyncio.to_thread(own.start)
    pid = own.pid
    record = Record()
    try:
        async with (
            Client(own.address, retry_timeout=0.3) as cut_off,
            anyio.create_task_group() as tg,
        ):
            a = LeaderElector(cut_off, config(name, "a"))
            b = LeaderElector(client, config(name, "b"))
            tg.start_soon(a.run, record.lead("a"))
            await record.wait_leading("a")
            tg.start_soon(b.run, record.lead("b"))
            await anyio.sleep(0.5)
            own.kill()  # a's only API server is gone: a cannot renew
            await record.wait_leading("b")
            assert not a.is_leader
            assert record.stopped["a"] < record.started["b"], "leadership overlapped"
            tg.cancel_scope.cancel()
    finally:
        own.stop()
        own.log_path.unlink(missing_ok=True)
    assert not await anyio.Path(f"/proc/{pid}").exists()
    assert record.overlaps == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lease_duration": 10, "renew_deadline": 10}, "renew_deadline"),
        ({"renew_deadline": 2, "retry_period": 2}, "retry_period"),
        ({"identity": ""}, "identity"),
    ],
    ids=["deadline not below lease", "retry not below deadline", "no identity"],
)
def test_inconsistent_timings_are_refused(options: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {"name": "x", "identity": "me", **options}
    with pytest.raises(ValueError, match=message):
        LeaderElectionConfig(**settings)  # type: ignore[arg-type]

"""The pod workers' task group ends only when the agent stops it."""

from __future__ import annotations

from typing import Any, cast

import anyio
import pytest

from kpy.agent.backoff import Backoff
from kpy.agent.pods import NodeView, PodWorkers, PodWorkersStopped


def workers() -> PodWorkers:
    nothing = cast("Any", None)  # none of them is used while no pod is given
    return PodWorkers(
        client=nothing,
        runtime=nothing,
        node=NodeView("node", "127.0.0.1", dict),
        volumes=nothing,
        probes=nothing,
        objects=nothing,
        events=nothing,
        backoff=Backoff(),
    )


async def end_from_inside(w: PodWorkers) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(w.run)
        assert w._tg is not None
        w._tg.cancel_scope.cancel()  # as a stray cancellation would


async def test_pod_workers_that_end_by_themselves_stop_the_agent_saying_why() -> None:
    with anyio.fail_after(5), pytest.raises(ExceptionGroup) as raised:
        await end_from_inside(workers())
    assert raised.group_contains(PodWorkersStopped), raised.value
    assert "no pod would be synced" in str(raised.value.exceptions[0])


async def test_pod_workers_stop_quietly_with_the_agent() -> None:
    w = workers()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(w.run)
            tg.cancel_scope.cancel()

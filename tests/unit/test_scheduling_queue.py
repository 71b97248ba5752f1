"""The scheduling queue, after kube-scheduler's scheduling_queue_test.go.
Time is a FakeClock: back-off and the unschedulable safety net are stepped,
never slept."""

from __future__ import annotations

import asyncio

import pytest

from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod
from kpy.clock import FakeClock
from kpy.scheduler.queue import QueueClosedError, QueuedPodInfo, SchedulingQueue


def pod(name: str, priority: int | None = None, image: str = "i") -> Pod:
    spec: dict[str, object] = {"containers": [{"name": "c", "image": image}]}
    if priority is not None:
        spec["priority"] = priority
    return from_dict(Pod, {"metadata": {"name": name, "namespace": "ns"}, "spec": spec})


def add(q: SchedulingQueue, *pods: Pod) -> None:
    for p in pods:
        q.add(p, f"ns/{p.metadata.name}")


async def pop_now(q: SchedulingQueue) -> QueuedPodInfo | None:
    """The next pod if one is ready at once, else None."""
    task = asyncio.ensure_future(q.pop())
    for _ in range(5):
        await asyncio.sleep(0)
    if task.done():
        return task.result()
    task.cancel()
    return None


async def pop_names(q: SchedulingQueue) -> list[str]:
    names = []
    while (info := await pop_now(q)) is not None:
        names.append(info.pod.metadata.name)
    return names


async def fail(q: SchedulingQueue, info: QueuedPodInfo) -> None:
    q.add_unschedulable(info, q.scheduling_cycle)


async def test_active_order_is_priority_then_arrival() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock)
    add(q, pod("low-1", 1))
    clock.advance(1)
    add(q, pod("high", 10), pod("none"), pod("low-2", 1))
    assert await pop_names(q) == ["high", "low-1", "low-2", "none"]


async def test_adding_twice_queues_once() -> None:
    q = SchedulingQueue(clock=FakeClock())
    add(q, pod("a"), pod("a"))
    assert await pop_names(q) == ["a"]


@pytest.mark.parametrize(
    ("attempts", "backoff"),
    [(0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)],
    ids=lambda v: str(v),
)
def test_backoff_doubles_from_one_second_to_ten(attempts: int, backoff: float) -> None:
    assert SchedulingQueue(clock=FakeClock()).backoff_duration(attempts) == backoff


async def test_a_pod_in_backoff_becomes_active_when_it_expires() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock)
    add(q, pod("a"))
    for attempt, backoff in ((1, 1.0), (2, 2.0), (3, 4.0)):
        info = await pop_now(q)
        assert info is not None
        assert info.attempts == attempt
        cycle = q.scheduling_cycle
        q.move_all_to_active_or_backoff("NodeAdd")  # during its cycle: straight to backoff
        q.add_unschedulable(info, cycle)
        clock.advance(backoff - 0.01)
        assert await pop_now(q) is None, f"attempt {attempt}: out of backoff too early"
        clock.advance(0.02)


async def test_unschedulable_waits_for_a_cluster_change() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock)
    add(q, pod("a"))
    info = await pop_now(q)
    assert info is not None
    cycle = q.scheduling_cycle
    await asyncio.sleep(0)
    q.add_unschedulable(info, cycle)
    assert q.pending() == {"active": 0, "backoff": 0, "unschedulable": 1}
    clock.advance(60)
    assert await pop_now(q) is None  # nothing changed: still waiting
    q.move_all_to_active_or_backoff("NodeAdd")
    assert await pop_names(q) == ["a"]  # its 1 s back-off ran out long ago


async def test_a_change_during_the_cycle_sends_the_failure_to_backoff() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock)
    add(q, pod("a"))
    info = await pop_now(q)
    assert info is not None
    cycle = q.scheduling_cycle
    q.move_all_to_active_or_backoff("NodeAdd")  # while "a" was being scheduled
    q.add_unschedulable(info, cycle)
    assert q.pending() == {"active": 0, "backoff": 1, "unschedulable": 0}
    clock.advance(1.0)
    assert await pop_names(q) == ["a"]


async def test_unschedulable_pods_are_retried_after_five_minutes_anyway() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock)
    add(q, pod("a"))
    info = await pop_now(q)
    assert info is not None
    await fail(q, info)
    clock.advance(299)
    assert await pop_now(q) is None
    clock.advance(2)
    assert await pop_names(q) == ["a"]


async def test_a_spec_change_retries_an_unschedulable_pod() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock)
    add(q, pod("a"))
    info = await pop_now(q)
    assert info is not None
    await fail(q, info)
    q.update(pod("a", image="same"), "ns/a")  # an unrelated change would leave it waiting
    clock.advance(1)
    assert await pop_names(q) == ["a"]


async def test_delete_removes_a_pod_from_everywhere() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock)
    add(q, pod("a"), pod("b"), pod("c"))
    info = await pop_now(q)
    assert info is not None
    q.delete("ns/b")
    q.delete(info.key)
    q.add_unschedulable(info, q.scheduling_cycle)  # deleted while in flight: dropped
    assert await pop_names(q) == ["c"]
    assert len(q) == 0


async def test_pop_waits_and_close_wakes_it() -> None:
    q = SchedulingQueue(clock=FakeClock())
    waiter = asyncio.ensure_future(q.pop())
    await asyncio.sleep(0)
    add(q, pod("a"))
    info = await asyncio.wait_for(waiter, 1)
    assert info.pod.metadata.name == "a"
    waiter = asyncio.ensure_future(q.pop())
    await asyncio.sleep(0)
    q.close()
    with pytest.raises(QueueClosedError):
        await asyncio.wait_for(waiter, 1)

"""DeltaFIFO, after client-go's delta_fifo_test.go."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod
from kpy.cache.delta_fifo import (
    DeletedFinalStateUnknown,
    Delta,
    DeltaFIFO,
    Deltas,
    DeltaType,
    FIFOClosedError,
    RequeueError,
)
from kpy.cache.store import Indexer

ADDED, UPDATED, DELETED = DeltaType.ADDED, DeltaType.UPDATED, DeltaType.DELETED
REPLACED, SYNC = DeltaType.REPLACED, DeltaType.SYNC


def pod(name: str, rv: str = "1") -> Pod:
    return from_dict(Pod, {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}})


def known(*pods: Pod) -> Indexer[Pod]:
    idx: Indexer[Pod] = Indexer()
    for p in pods:
        idx.add(p)
    return idx


def summary(deltas: Deltas[Pod]) -> list[tuple[str, str]]:
    """(type, name@rv) per delta; a DeletedFinalStateUnknown reads `?name@rv`."""
    out = []
    for d in deltas:
        obj = d.object
        if isinstance(obj, DeletedFinalStateUnknown):
            inner = obj.object
            out.append(
                (d.type.value, f"?{obj.key}@{inner.metadata.resource_version if inner else ''}")
            )
        else:
            out.append((d.type.value, f"{obj.metadata.name}@{obj.metadata.resource_version}"))
    return out


async def drain(fifo: DeltaFIFO[Pod]) -> list[list[tuple[str, str]]]:
    popped: list[list[tuple[str, str]]] = []

    async def process(deltas: Deltas[Pod], _initial: bool) -> None:
        popped.append(summary(deltas))

    while len(fifo):
        await fifo.pop(process)
    return popped


Op = Callable[[DeltaFIFO[Pod]], None]


@dataclass
class Case:
    name: str
    ops: list[Op]
    want: list[list[tuple[str, str]]]
    known: list[Pod] = field(default_factory=list)


CASES = [
    Case(
        "keys pop in first-queued order with all their deltas",
        [
            lambda f: f.add(pod("a")),
            lambda f: f.add(pod("b")),
            lambda f: f.update(pod("a", "2")),
        ],
        [[("Added", "a@1"), ("Updated", "a@2")], [("Added", "b@1")]],
    ),
    Case(
        "added, updated and deleted are not compressed",
        [
            lambda f: f.add(pod("a")),
            lambda f: f.update(pod("a", "2")),
            lambda f: f.delete(pod("a", "2")),
        ],
        [[("Added", "a@1"), ("Updated", "a@2"), ("Deleted", "a@2")]],
    ),
    Case(
        "two deletes keep the first real object",
        [lambda f: f.delete(pod("a", "2")), lambda f: f.delete(pod("a", "3"))],
        [[("Deleted", "a@2")]],
        known=[pod("a")],
    ),
    Case(
        "a real delete replaces a DeletedFinalStateUnknown",
        [
            lambda f: f.delete(DeletedFinalStateUnknown("ns/a", pod("a", "1"))),
            lambda f: f.delete(pod("a", "2")),
        ],
        [[("Deleted", "a@2")]],
        known=[pod("a")],
    ),
    Case(
        "a DeletedFinalStateUnknown after a real delete is dropped",
        [
            lambda f: f.delete(pod("a", "2")),
            lambda f: f.delete(DeletedFinalStateUnknown("ns/a", pod("a", "1"))),
        ],
        [[("Deleted", "a@2")]],
        known=[pod("a")],
    ),
    Case(
        "delete of an object unknown to queue and store is ignored",
        [lambda f: f.delete(pod("ghost"))],
        [],
        known=[pod("a")],
    ),
    Case(
        "delete of a queued object without a store is queued",
        [lambda f: f.add(pod("a")), lambda f: f.delete(pod("a"))],
        [[("Added", "a@1"), ("Deleted", "a@1")]],
    ),
    Case(
        "replace: Replaced for listed, Deleted(unknown) for vanished known objects",
        [lambda f: f.replace([pod("a", "5")], "10")],
        [[("Replaced", "a@5")], [("Deleted", "?ns/gone@1")]],
        known=[pod("a"), pod("gone")],
    ),
    Case(
        "replace: vanished queued object is deleted with its newest state",
        [
            lambda f: f.add(pod("q", "1")),
            lambda f: f.update(pod("q", "2")),
            lambda f: f.replace([], "10"),
        ],
        [[("Added", "q@1"), ("Updated", "q@2"), ("Deleted", "?ns/q@2")]],
    ),
    Case(
        "replace: a key queued and known is deleted once",
        [lambda f: f.update(pod("a", "2")), lambda f: f.replace([], "10")],
        [[("Updated", "a@2"), ("Deleted", "?ns/a@2")]],
        known=[pod("a")],
    ),
    Case(
        "resync: Sync for known objects, skipping queued keys",
        [lambda f: f.update(pod("a", "2")), lambda f: f.resync()],
        [[("Updated", "a@2")], [("Sync", "b@1")]],
        known=[pod("a"), pod("b")],
    ),
    Case("resync without a store does nothing", [lambda f: f.resync()], []),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_semantics(case: Case) -> None:
    fifo: DeltaFIFO[Pod] = DeltaFIFO(known_objects=known(*case.known) if case.known else None)
    for op in case.ops:
        op(fifo)
    assert await drain(fifo) == case.want, case.name


@dataclass
class SyncCase:
    name: str
    ops: list[Op]
    synced_after_pops: list[bool]  # has_synced() before any pop, then after each pop


SYNC_CASES = [
    SyncCase("fresh queue is not synced", [], [False]),
    SyncCase("empty replace syncs at once", [lambda f: f.replace([], "1")], [True]),
    SyncCase(
        "replace syncs once its items are popped",
        [lambda f: f.replace([pod("a"), pod("b")], "1")],
        [False, False, True],
    ),
    SyncCase(
        "a second replace does not unsync",
        [lambda f: f.replace([pod("a")], "1"), lambda f: f.replace([pod("b")], "2")],
        [False, True, True],
    ),
    SyncCase(
        "an add before any replace counts as populated", [lambda f: f.add(pod("a"))], [True, True]
    ),
]


@pytest.mark.parametrize("case", SYNC_CASES, ids=[c.name for c in SYNC_CASES])
async def test_has_synced(case: SyncCase) -> None:
    fifo: DeltaFIFO[Pod] = DeltaFIFO()
    for op in case.ops:
        op(fifo)
    seen = [fifo.has_synced()]

    async def process(_deltas: Deltas[Pod], _initial: bool) -> None:
        pass

    while len(fifo):
        await fifo.pop(process)
        seen.append(fifo.has_synced())
    assert seen == case.synced_after_pops, case.name


async def test_pop_reports_initial_list() -> None:
    fifo: DeltaFIFO[Pod] = DeltaFIFO()
    fifo.replace([pod("a")], "1")
    fifo.add(pod("b"))
    flags: list[bool] = []

    async def process(_deltas: Deltas[Pod], initial: bool) -> None:
        flags.append(initial)

    await fifo.pop(process)
    await fifo.pop(process)
    assert flags == [True, False]


@dataclass
class RequeueCase:
    name: str
    raise_: BaseException
    want_raised: type[BaseException] | None
    update_meanwhile: bool
    want: list[list[tuple[str, str]]]


REQUEUE_CASES = [
    RequeueCase(
        "requeue without cause returns; the key goes to the back",
        RequeueError(),
        None,
        False,
        [[("Added", "b@1")], [("Added", "a@1")]],
    ),
    RequeueCase(
        "requeue with cause raises the cause",
        RequeueError(KeyError("x")),
        KeyError,
        False,
        [[("Added", "b@1")], [("Added", "a@1")]],
    ),
    RequeueCase(
        "deltas queued during process go after the requeued ones",
        RequeueError(),
        None,
        True,
        [[("Added", "b@1")], [("Added", "a@1"), ("Updated", "a@2")]],
    ),
]


@pytest.mark.parametrize("case", REQUEUE_CASES, ids=[c.name for c in REQUEUE_CASES])
async def test_requeue_on_error(case: RequeueCase) -> None:
    fifo: DeltaFIFO[Pod] = DeltaFIFO()
    fifo.add(pod("a"))
    fifo.add(pod("b"))

    async def failing(_deltas: Deltas[Pod], _initial: bool) -> None:
        if case.update_meanwhile:
            fifo.update(pod("a", "2"))
        raise case.raise_

    if case.want_raised is None:
        await fifo.pop(failing)
    else:
        with pytest.raises(case.want_raised):
            await fifo.pop(failing)
    assert await drain(fifo) == case.want, case.name


async def test_cancelled_process_requeues() -> None:
    fifo: DeltaFIFO[Pod] = DeltaFIFO()
    fifo.add(pod("a"))
    started = asyncio.Event()

    async def slow(_deltas: Deltas[Pod], _initial: bool) -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(fifo.pop(slow))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await drain(fifo) == [[("Added", "a@1")]]


async def test_other_errors_drop_the_deltas() -> None:
    fifo: DeltaFIFO[Pod] = DeltaFIFO()
    fifo.add(pod("a"))

    async def failing(_deltas: Deltas[Pod], _initial: bool) -> None:
        raise RuntimeError("handler bug")

    with pytest.raises(RuntimeError, match="handler bug"):
        await fifo.pop(failing)
    assert len(fifo) == 0


async def test_close_wakes_pop() -> None:
    fifo: DeltaFIFO[Pod] = DeltaFIFO()

    async def process(_deltas: Deltas[Pod], _initial: bool) -> None:
        pass

    waiter = asyncio.ensure_future(fifo.pop(process))
    await asyncio.sleep(0)
    assert not waiter.done()
    fifo.close()
    with pytest.raises(FIFOClosedError):
        await asyncio.wait_for(waiter, 1)


async def test_close_drains_queued_keys_first() -> None:
    fifo: DeltaFIFO[Pod] = DeltaFIFO()
    fifo.add(pod("a"))
    fifo.close()
    assert await drain(fifo) == [[("Added", "a@1")]]

    async def process(_deltas: Deltas[Pod], _initial: bool) -> None:
        pass

    with pytest.raises(FIFOClosedError):
        await fifo.pop(process)


async def test_pop_waits_for_an_add() -> None:
    fifo: DeltaFIFO[Pod] = DeltaFIFO()
    got: list[Deltas[Pod]] = []

    async def process(deltas: Deltas[Pod], _initial: bool) -> None:
        got.append(deltas)

    waiter = asyncio.ensure_future(fifo.pop(process))
    await asyncio.sleep(0)
    fifo.add(pod("a"))
    await asyncio.wait_for(waiter, 1)
    assert [list(d) for d in got] == [[Delta(ADDED, pod("a"))]]


async def test_wait_synced_returns_once_the_first_list_is_processed() -> None:
    empty: DeltaFIFO[Pod] = DeltaFIFO()
    empty.replace([], "1")
    await asyncio.wait_for(empty.wait_synced(), 1)  # nothing to pop: synced at once

    fifo: DeltaFIFO[Pod] = DeltaFIFO()
    fifo.replace([pod("a"), pod("b")], "1")
    waiter = asyncio.ensure_future(fifo.wait_synced())
    processed: list[str] = []

    async def process(deltas: Deltas[Pod], initial: bool) -> None:
        await asyncio.sleep(0)
        assert not waiter.done(), "synced before the last item was processed"
        processed.append(deltas[-1].object.metadata.name)

    await fifo.pop(process)
    await asyncio.sleep(0)
    assert not waiter.done()
    await fifo.pop(process)
    await asyncio.wait_for(waiter, 1)
    assert processed == ["a", "b"]

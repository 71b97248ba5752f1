"""Batched Events end to end (the API server's CreateEvents, issue 22 item 6):
a batch written item by item in one etcd transaction, an invalid or
forbidden item refused alone and by name, the batch limit, and a scheduler
whose 1,000-pod burst gets every Scheduled event through its broadcaster.

The plain tests run against an API server of this module's own (another
etcd key prefix), so the scheduler's nodes meet no other test's pods."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from kpy.api import errors
from kpy.api.codec import from_dict
from kpy.api.core.v1 import ConfigMap, Event, Namespace, Node, Pod
from kpy.api.rbac.v1 import Role, RoleBinding
from kpy.apiserver.limits import MAX_BATCH
from kpy.apiserver.process import APIServerProcess
from kpy.client import Client, load_config
from kpy.component import ElectionOptions
from kpy.scheduler.scheduler import Scheduler
from tests.integration._controllers import eventually
from tests.integration.test_apiserver_authorization import JANE, NODE_A, config_for
from tests.integration.test_apiserver_tls import ADMIN, mtls_server
from tests.integration.test_store import CONFIGMAPS, configmap
from tests.integration.test_watch_cache import running as running_cache

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from kpy.storage import EtcdServer, Store


@pytest.fixture(scope="module")
def cluster(etcd_server: EtcdServer) -> Iterator[APIServerProcess]:
    """An empty cluster for this module, stopped by pid."""
    server = APIServerProcess(
        etcd_server.endpoint,
        bookmark_interval=0.5,
        extra_args=("--etcd-prefix", "/event-batch-tests"),
    )
    server.start()
    pid = server.pid
    yield server
    server.stop()
    server.log_path.unlink(missing_ok=True)
    assert not Path(f"/proc/{pid}").exists()


@pytest.fixture
async def client(cluster: APIServerProcess, namespace: str) -> AsyncIterator[Client]:
    """A client of the module's cluster whose default namespace is fresh."""
    async with Client(cluster.address, retry_timeout=10.0) as c:
        ns = Namespace()
        ns.metadata.name = namespace
        await c.create(ns)
        c.config = dataclasses.replace(c.config, namespace=namespace)
        yield c


def event(namespace: str, i: int, *, type_: str = "Normal") -> Event:
    return from_dict(
        Event,
        {
            "metadata": {"name": f"subject.{i:04d}", "namespace": namespace},
            "involvedObject": {"kind": "ConfigMap", "name": "subject", "namespace": namespace},
            "reason": "Tick",
            "message": f"tick {i}",
            "type": type_,
            "count": 1,
            "source": {"component": "test"},
        },
    )


async def test_a_batch_of_100_lands_but_its_invalid_item(client: Client, namespace: str) -> None:
    sent = [event(namespace, i, type_="Bogus" if i == 37 else "Normal") for i in range(100)]
    seen: list[str] = []
    async with client.watch(Event, namespace=namespace) as stream:

        async def watch() -> None:
            async for change in stream:
                if change.type == "ADDED":
                    seen.append(change.object.metadata.name)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            results = await client.create_events(sent)

            async def all_seen() -> bool:
                return len(seen) >= 99

            await eventually(all_seen, timeout=60, what="99 watch events")
            tg.cancel_scope.cancel()

    refused = results[37]
    assert isinstance(refused, errors.Invalid)
    assert refused.name == "subject.0037"
    assert [(c.path, c.reason) for c in refused.causes] == [("type", "FieldValueNotSupported")]
    created = [r for i, r in enumerate(results) if i != 37 and isinstance(r, Event)]
    want = [e.metadata.name for e in sent if e.type != "Bogus"]
    assert [r.metadata.name for r in created] == want
    # One etcd transaction: every event at the same resource version.
    assert len({r.metadata.resource_version for r in created}) == 1
    stored = (await client.list(Event, namespace=namespace)).items
    assert sorted(e.metadata.name for e in stored) == want
    assert sorted(seen) == want, "the watch saw each event of the transaction once"


async def test_the_store_writes_a_batch_in_transactions_of_100(
    store: Store, namespace: str
) -> None:
    made = [configmap(namespace, f"cm-{i:03d}") for i in range(250)]
    await store.create(CONFIGMAPS, made[120])  # taken: fails alone, its chunk retried without it
    results = await store.create_many(CONFIGMAPS, made)
    taken = results[120]
    assert isinstance(taken, errors.AlreadyExists)
    assert taken.name == "cm-120"
    written = [r for i, r in enumerate(results) if i != 120]
    assert all(isinstance(r, ConfigMap) for r in written)
    versions = [int(r.metadata.resource_version) for r in written]  # type: ignore[union-attr]
    # Three transactions (100, 100, 50 keys), in order.
    assert versions == sorted(versions)
    assert len(set(versions)) == 3
    assert all(m.metadata.resource_version == "" for m in made), "the objects passed in changed"
    listed = await store.list(CONFIGMAPS, namespace)
    assert len(listed.items) == 250


async def test_a_replay_never_splits_a_transaction(store: Store, namespace: str) -> None:
    # A watcher resuming from the last version it saw must not skip the rest
    # of a transaction: a replay longer than the watcher's batch keeps each
    # revision whole.
    async with running_cache(store, watcher_queue_size=2) as cache:
        since = int(
            (
                await store.create(CONFIGMAPS, configmap(namespace, "before"))
            ).metadata.resource_version
        )
        made = await store.create_many(
            CONFIGMAPS, [configmap(namespace, f"t{i}") for i in range(3)]
        )
        version = int(made[0].metadata.resource_version)  # type: ignore[union-attr]
        await cache.wait_until_fresh(version)
        watcher = await cache.watch(namespace=namespace, resource_version=since)
        with anyio.fail_after(10):
            first = await anext(aiter(watcher))
        assert [(e.type, e.resource_version) for e in first] == [("ADDED", version)] * 3
        watcher.close()


async def test_items_fail_alone_a_name_taken_and_a_namespace_missing(
    client: Client, namespace: str
) -> None:
    await client.create_events([event(namespace, 1)])
    results = await client.create_events(
        [event(namespace, 1), event("no-such-namespace-here", 2), event(namespace, 3)]
    )
    assert isinstance(results[0], errors.AlreadyExists)
    missing = results[1]
    assert isinstance(missing, errors.NotFound)
    assert "no-such-namespace-here" in missing.message
    assert isinstance(results[2], Event)


async def test_a_batch_over_the_limit_is_refused_whole(client: Client, namespace: str) -> None:
    with pytest.raises(errors.TooLarge) as refused:
        await client.create_events([event(namespace, i) for i in range(MAX_BATCH + 1)])
    assert refused.value.message == (
        f"the CreateEvents request holds {MAX_BATCH + 1} objects; the API server accepts at "
        f"most {MAX_BATCH} per call: send them in batches of {MAX_BATCH} or fewer"
    )
    assert not (await client.list(Event, namespace=namespace)).items


@pytest.mark.timeout(120)
async def test_authorization_refuses_the_item_in_a_forbidden_namespace(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    dev, prod = f"dev-{uuid.uuid4().hex[:6]}", f"prod-{uuid.uuid4().hex[:6]}"
    async with (
        mtls_server(etcd_server) as server,
        Client(load_config(config_for(tmp_path, server, ADMIN))) as admin,
        Client(load_config(config_for(tmp_path, server, JANE))) as jane,
    ):
        for name in (dev, prod):
            await admin.create(from_dict(Namespace, {"metadata": {"name": name}}))
        await admin.create(
            from_dict(
                Role,
                {
                    "metadata": {"name": "event-writer", "namespace": dev},
                    "rules": [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}],
                },
            )
        )
        await admin.create(
            from_dict(
                RoleBinding,
                {
                    "metadata": {"name": "jane-events", "namespace": dev},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": "event-writer",
                    },
                    "subjects": [
                        {"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}
                    ],
                },
            )
        )

        async def allowed() -> list[Event | errors.StatusError] | None:
            # The binding counts once the server's cache has it (milliseconds).
            results = await jane.create_events([event(dev, n := len(attempts)), event(prod, n)])
            attempts.append(results)
            return results if isinstance(results[0], Event) else None

        attempts: list[list[Event | errors.StatusError]] = []
        results = await eventually(allowed, what="jane's event in dev written")
        # A node writes events anywhere (system:node), through NodeRestriction.
        async with Client(load_config(config_for(tmp_path, server, NODE_A))) as node_a:
            [by_node] = await node_a.create_events([event(prod, 9999)])
        assert isinstance(by_node, Event), by_node
    assert results is not None
    assert isinstance(results[0], Event)
    refused = results[1]
    assert isinstance(refused, errors.Forbidden)
    assert refused.message == (
        'events is forbidden: User "jane" cannot create resource "events" in API group "" '
        f'in the namespace "{prod}"'
    )


# -- the scheduler's burst ------------------------------------------------------------------


def _node(name: str) -> Node:
    return from_dict(
        Node,
        {
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
            },
        },
    )


def _pod(name: str, scheduler: str) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {"name": name},
            "spec": {
                "schedulerName": scheduler,
                "containers": [
                    {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "10m"}}}
                ],
            },
        },
    )


@contextlib.asynccontextmanager
async def _nodes(client: Client, names: list[str]) -> AsyncIterator[None]:
    try:
        for name in names:
            made = _node(name)
            created = await client.create(made)
            created.status.CopyFrom(made.status)
            await client.update_status(created)
        yield
    finally:
        for name in names:
            with contextlib.suppress(errors.NotFound):
                await client.delete(Node, name)


@pytest.mark.timeout(300)
async def test_a_burst_of_1000_pods_gets_every_scheduled_event(
    client: Client, namespace: str
) -> None:
    count = 1000
    sched = f"s-{namespace}"
    names = [f"{namespace[:40]}-n{i}" for i in range(4)]
    async with _nodes(client, names):
        limiter = anyio.CapacityLimiter(32)

        async def create(i: int) -> None:
            async with limiter:
                await client.create(_pod(f"p{i:04d}", sched))

        async with anyio.create_task_group() as tg:  # all waiting before the scheduler starts
            for i in range(count):
                tg.start_soon(create, i)
        scheduler = Scheduler(client, scheduler_name=sched, election=ElectionOptions(enabled=False))
        async with anyio.create_task_group() as tg:
            tg.start_soon(scheduler.run)

            async def every_event() -> dict[str, list[str]] | None:
                per_pod: dict[str, list[str]] = {}
                for e in (await client.list(Event, namespace=namespace)).items:
                    if e.reason == "Scheduled":
                        per_pod.setdefault(e.involved_object.name, []).append(e.message)
                return per_pod if len(per_pod) == count else None

            per_pod = await eventually(every_event, timeout=240, what=f"{count} Scheduled events")
            await anyio.sleep(0.5)  # room for a late duplicate
            per_pod = await every_event() or {}
            stats = scheduler.events.statistics()
            metrics = scheduler.metrics.exposition().decode()
            tg.cancel_scope.cancel()
        bound = {p.metadata.name: p.spec.node_name for p in (await client.list(Pod)).items}
    assert per_pod == {
        name: [f"Successfully assigned {namespace}/{name} to {node_name}"]
        for name, node_name in bound.items()
    }
    assert (stats.created, stats.dropped, stats.spam_filtered, stats.failed) == (count, 0, 0, 0)
    # Batched: far fewer calls than events. While pods wait the scheduler
    # sends at most 10 batches a second, so two events a call on average
    # holds while it schedules more than 20 pods a second (slack: ~10x).
    assert stats.batches <= count // 2, stats
    assert f'kpy_events_total{{outcome="created"}} {float(count)}' in metrics

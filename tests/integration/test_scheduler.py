"""The scheduler over the real API server: pods bound and spread, a pod that
fits nowhere told why and bound as soon as a node fits, the explain
service, and two replicas that never bind one pod twice.

Nodes are cluster-wide and other tests leave theirs behind, so these tests
run against a cluster of their own: an API server on the session's etcd
under another key prefix. Each test still gives its pods a scheduler name
of its own (the scheduler ignores every other pod) and deletes its nodes
when it ends."""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import grpc
import pytest

from kpy.api import errors
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Event, Namespace, Node, Pod
from kpy.api.scheduling.v1 import PriorityClass
from kpy.api.scheme import scheme
from kpy.apiserver.process import APIServerProcess
from kpy.client import Client
from kpy.component import ElectionOptions
from kpy.rpc.scheduler import v1 as rpc
from kpy.scheduler.process import SchedulerProcess
from kpy.scheduler.scheduler import Scheduler
from kpy.storage import Store
from tests.integration._controllers import elected_pair, eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    import aetcd

    from kpy.storage import EtcdServer

# A pod a cluster change lets in is scheduled within this, not after the
# queue's 300 s flush of unschedulable pods; the rest is a loaded machine's slack.
REQUEUED_WITHIN = 10.0


@pytest.fixture(scope="module")
def cluster(etcd_server: EtcdServer) -> Iterator[APIServerProcess]:
    """An empty cluster for this module, stopped by pid."""
    server = APIServerProcess(
        etcd_server.endpoint, bookmark_interval=0.5, extra_args=("--etcd-prefix", "/sched-tests")
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


@pytest.fixture
def api_namespace(client: Client, namespace: str) -> str:
    return namespace


def node(name: str, *, cpu: str = "2", memory: str = "4Gi", **spec: Any) -> Node:
    return from_dict(
        Node,
        {
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": spec,
            "status": {
                "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            },
        },
    )


def pod(name: str, scheduler: str, *, cpu: str = "500m", **spec: Any) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {"name": name},
            "spec": {
                "schedulerName": scheduler,
                "containers": [
                    {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}
                ],
                **spec,
            },
        },
    )


@contextlib.asynccontextmanager
async def nodes(client: Client, *made: Node) -> AsyncIterator[list[str]]:
    names = [n.metadata.name for n in made]
    try:
        for n in made:
            await _put_node(client, n)
        yield names
    finally:
        for name in names:
            with contextlib.suppress(errors.NotFound):
                await client.delete(Node, name)


async def _put_node(client: Client, n: Node) -> None:
    created = await client.create(n)
    created.status.CopyFrom(n.status)
    await client.update_status(created)


@contextlib.asynccontextmanager
async def scheduling(client: Client, name: str) -> AsyncIterator[Scheduler]:
    scheduler = Scheduler(
        client, scheduler_name=name, election=ElectionOptions(enabled=False), bind_concurrency=8
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        with anyio.fail_after(15):
            await scheduler.leading.wait()
        yield scheduler
        tg.cancel_scope.cancel()


async def node_of(client: Client, name: str) -> str:
    return (await client.get(Pod, name)).spec.node_name


async def scheduled_condition(client: Client, name: str) -> Any:
    found = await client.get(Pod, name)
    return next((c for c in found.status.conditions if c.type == "PodScheduled"), None)


async def test_pods_are_bound_and_spread(client: Client, api_namespace: str) -> None:
    sched = f"s-{api_namespace}"
    names = [f"{api_namespace[:40]}-n{i}" for i in range(3)]
    async with nodes(client, *(node(n) for n in names)), scheduling(client, sched) as scheduler:
        for i in range(6):
            await client.create(pod(f"p{i}", sched))

        async def placed() -> dict[str, int] | None:
            pods = (await client.list(Pod, namespace=api_namespace)).items
            if not all(p.spec.node_name for p in pods) or len(pods) != 6:
                return None
            counts: dict[str, int] = {}
            for p in pods:
                counts[p.spec.node_name] = counts.get(p.spec.node_name, 0) + 1
            return counts

        counts = await eventually(placed, what="6 pods bound")
        assert set(counts) == set(names)
        assert counts == dict.fromkeys(names, 2)  # least allocated spreads evenly
        condition = await scheduled_condition(client, "p0")
        assert (condition.status, condition.type) == ("True", "PodScheduled")
        metrics = scheduler.metrics.exposition().decode()
    for line in (
        'scheduler_schedule_attempts_total{result="scheduled"} 6.0',
        'scheduler_pending_pods{queue="active"} 0.0',
        'scheduler_pending_pods{queue="unschedulable"} 0.0',
        "scheduler_pod_scheduling_duration_seconds_count 6.0",
        "scheduler_scheduling_algorithm_duration_seconds_count 6.0",
    ):
        assert line in metrics, line


async def test_a_burst_of_pods_gets_every_scheduled_event_once_it_is_scheduled(
    client: Client, api_namespace: str
) -> None:
    # While pods wait the scheduler holds its events back (bindings first);
    # none may be lost or doubled for it.
    sched = f"s-{api_namespace}"
    names = [f"{api_namespace[:40]}-b{i}" for i in range(2)]
    count = 40
    async with nodes(client, *(node(n, cpu="64") for n in names)):
        for i in range(count):  # all waiting before the scheduler starts
            await client.create(pod(f"b{i}", sched, cpu="10m"))
        async with scheduling(client, sched) as scheduler:

            async def every_event() -> dict[str, list[str]] | None:
                per_pod: dict[str, list[str]] = {}
                for e in (await client.list(Event, namespace=api_namespace)).items:
                    if e.reason == "Scheduled":
                        per_pod.setdefault(e.involved_object.name, []).append(e.message)
                return per_pod if len(per_pod) == count else None

            per_pod = await eventually(every_event, timeout=30, what=f"{count} Scheduled events")
            await anyio.sleep(0.5)  # room for a late duplicate
            per_pod = await every_event() or {}
            listed = (await client.list(Pod, namespace=api_namespace)).items
            bound = {p.metadata.name: p.spec.node_name for p in listed}
            assert (scheduler.events.busy, scheduler.events.dropped) == (False, 0)
    assert per_pod == {
        name: [f"Successfully assigned {api_namespace}/{name} to {node_name}"]
        for name, node_name in bound.items()
    }


async def test_a_pod_that_fits_nowhere_is_told_why_and_bound_when_a_node_fits(
    client: Client, api_namespace: str
) -> None:
    sched = f"s-{api_namespace}"
    base = api_namespace[:40]
    small = [node(f"{base}-small{i}") for i in range(2)]
    tainted = node(
        f"{base}-tainted", cpu="8", taints=[{"key": "k1", "value": "v1", "effect": "NoSchedule"}]
    )
    async with nodes(client, *small, tainted), scheduling(client, sched):
        await client.create(pod("big", sched, cpu="4"))

        async def refused() -> Any:
            c = await scheduled_condition(client, "big")
            return c if c is not None and c.status == "False" else None

        condition = await eventually(refused, what="PodScheduled=False")
        assert condition.reason == "Unschedulable"
        assert condition.message == (
            "0/3 nodes are available: 1 node(s) had untolerated taint {k1: v1}, 2 Insufficient cpu."
        )

        async def failed_event() -> list[Event]:
            found = (await client.list(Event, namespace=api_namespace)).items
            return [
                e
                for e in found
                if e.reason == "FailedScheduling" and e.involved_object.name == "big"
            ]

        [event] = await eventually(failed_event, what="a FailedScheduling event")
        assert event.type == "Warning"
        assert event.message == condition.message

        # Removing the taint is the cluster change that lets it fit.
        fresh = await client.get(Node, tainted.metadata.name)
        del fresh.spec.taints[:]
        changed = time.monotonic()
        await client.update(fresh)
        bound_to = await eventually(lambda: node_of(client, "big"), what="bound after untaint")
        assert bound_to == tainted.metadata.name
        assert time.monotonic() - changed < REQUEUED_WITHIN


async def test_a_new_node_and_an_uncordon_let_waiting_pods_in(
    client: Client, api_namespace: str
) -> None:
    sched = f"s-{api_namespace}"
    base = api_namespace[:40]
    cordoned = node(f"{base}-cordoned", unschedulable=True)
    async with nodes(client, cordoned), scheduling(client, sched):
        await client.create(pod("a", sched))
        await client.create(pod("b", sched, cpu="3"))

        async def refused(name: str) -> bool:
            c = await scheduled_condition(client, name)
            return c is not None and c.status == "False"

        await eventually(lambda: refused("a"), what="a refused")
        await eventually(lambda: refused("b"), what="b refused")
        condition = await scheduled_condition(client, "a")
        assert condition.message == "0/1 nodes are available: 1 node(s) were unschedulable."

        fresh = await client.get(Node, cordoned.metadata.name)
        fresh.spec.unschedulable = False
        started = time.monotonic()
        await client.update(fresh)
        assert await eventually(lambda: node_of(client, "a")) == cordoned.metadata.name
        assert time.monotonic() - started < REQUEUED_WITHIN

        async with nodes(client, node(f"{base}-large", cpu="4")) as [large]:
            started = time.monotonic()
            assert await eventually(lambda: node_of(client, "b")) == large
            assert time.monotonic() - started < REQUEUED_WITHIN


async def test_without_nodes_the_pod_is_told_so(client: Client, api_namespace: str) -> None:
    sched = f"s-{api_namespace}"
    async with scheduling(client, sched) as scheduler:
        assert (
            scheduler.explain(pod("probe", sched)).message == "no nodes available to schedule pods"
        )
        await client.create(pod("lonely", sched))

        async def refused() -> Any:
            c = await scheduled_condition(client, "lonely")
            return c if c is not None and c.status == "False" else None

        condition = await eventually(refused, what="PodScheduled=False")
        assert condition.message == "no nodes available to schedule pods"


async def test_explain_lists_every_node_with_its_verdict(
    client: Client, api_namespace: str
) -> None:
    sched = f"s-{api_namespace}"
    base = api_namespace[:40]
    async with (
        nodes(client, node(f"{base}-fits", cpu="4"), node(f"{base}-tiny", cpu="100m")),
        scheduling(client, sched) as scheduler,
    ):
        answer = scheduler.explain(pod("probe", sched, cpu="1"))
    by_node = {n.node: n for n in answer.nodes}
    fits, tiny = by_node[f"{base}-fits"], by_node[f"{base}-tiny"]
    assert fits.feasible
    assert fits.score > 0
    assert set(fits.plugin_scores) >= {"NodeResourcesFit", "NodeResourcesBalancedAllocation"}
    assert (tiny.feasible, tiny.plugin, list(tiny.reasons)) == (
        False,
        "NodeResourcesFit",
        ["Insufficient cpu"],
    )
    assert answer.selected == f"{base}-fits"


@pytest.fixture
def schedulers(cluster: APIServerProcess, namespace: str) -> Iterator[dict[str, SchedulerProcess]]:
    def new(**kwargs: Any) -> SchedulerProcess:
        return SchedulerProcess(cluster.address, **kwargs)

    with elected_pair(new, f"s-{namespace}", f"--scheduler-name=s-{namespace}") as pair:
        yield pair


async def test_two_replicas_never_bind_a_pod_twice(
    client: Client, api_namespace: str, schedulers: dict[str, SchedulerProcess]
) -> None:
    sched = f"s-{api_namespace}"
    base = api_namespace[:40]
    a, b = schedulers["a"], schedulers["b"]
    async with nodes(client, *(node(f"{base}-n{i}", cpu="64") for i in range(3))):
        a.start()
        b.start()
        await anyio.to_thread.run_sync(a.wait_leading)
        for i in range(20):
            await client.create(pod(f"first-{i}", sched, cpu="10m"))
        a.kill()  # mid-flight: some pods bound, some assumed, some queued
        for i in range(20):
            await client.create(pod(f"second-{i}", sched, cpu="10m"))

        async def all_bound() -> bool:
            return all(
                p.spec.node_name for p in (await client.list(Pod, namespace=api_namespace)).items
            )

        await eventually(all_bound, timeout=20, what="40 pods bound")
        # The explain service answers on the standby-turned-leader too.
        async with grpc.aio.insecure_channel(b.explain_address) as channel:
            stub = rpc.SchedulerStub(channel)
            answer = await stub.Explain(rpc.ExplainRequest(namespace=api_namespace, name="first-0"))
            assert len(answer.nodes) >= 3
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.Explain(rpc.ExplainRequest(namespace=api_namespace, name="nope"))
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        await anyio.sleep(0.5)  # room for a late duplicate event
        events = [
            e
            for e in (await client.list(Event, namespace=api_namespace)).items
            if e.reason == "Scheduled"
        ]
    per_pod: dict[str, int] = {}
    for e in events:
        per_pod[e.involved_object.name] = per_pod.get(e.involved_object.name, 0) + e.count
    assert all(count == 1 for count in per_pod.values()), per_pod


async def test_required_anti_affinity_spreads_replicas_and_leaves_the_fourth_pending(
    client: Client, api_namespace: str
) -> None:
    sched = f"s-{api_namespace}"
    names = [f"{api_namespace[:40]}-aa{i}" for i in range(3)]
    anti = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    async with nodes(client, *(node(n) for n in names)), scheduling(client, sched):
        for i in range(4):
            replica = pod(f"web-{i}", sched, cpu="100m", affinity=anti)
            replica.metadata.labels["app"] = "web"
            await client.create(replica)

        async def three_bound() -> list[str] | None:
            placed = [
                p.spec.node_name for p in (await client.list(Pod, namespace=api_namespace)).items
            ]
            bound = [n for n in placed if n]
            return bound if len(bound) == 3 else None

        assert sorted(await eventually(three_bound, what="3 replicas bound")) == sorted(names)

        async def refused() -> Any:
            for p in (await client.list(Pod, namespace=api_namespace)).items:
                c = next((c for c in p.status.conditions if c.type == "PodScheduled"), None)
                if not p.spec.node_name and c is not None and c.status == "False":
                    return c
            return None

        condition = await eventually(refused, what="the fourth replica refused")
        assert condition.message == (
            "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
        )


@contextlib.asynccontextmanager
async def priority_classes(client: Client, **values: int) -> AsyncIterator[dict[str, str]]:
    """PriorityClasses (cluster-wide) named after the test, deleted after it."""
    made: dict[str, str] = {}
    try:
        for short, value in values.items():
            name = f"{client.config.namespace[:40]}-{short}"
            await client.create(
                from_dict(PriorityClass, {"metadata": {"name": name}, "value": value})
            )
            made[short] = name
        yield made
    finally:
        for name in made.values():
            with contextlib.suppress(errors.NotFound):
                await client.delete(PriorityClass, name)


async def test_a_pod_gets_its_priority_from_its_class_and_an_unknown_class_is_refused(
    client: Client, api_namespace: str
) -> None:
    sched = f"s-{api_namespace}"
    async with priority_classes(client, high=1000) as classes:
        made = await client.create(pod("classy", sched, priorityClassName=classes["high"]))
        assert (made.spec.priority, made.spec.preemption_policy) == (1000, "PreemptLowerPriority")
        made.spec.ClearField("priority")
        made.spec.ClearField("preemption_policy")
        made.spec.termination_grace_period_seconds = 5
        updated = await client.update(made)
        assert (updated.spec.priority, updated.spec.termination_grace_period_seconds) == (1000, 5)
        critical = await client.create(
            pod("critical", sched, priorityClassName="system-cluster-critical")
        )
        assert critical.spec.priority == 2_000_000_000
        builtin = await client.get(PriorityClass, "system-node-critical")
        assert (builtin.value, builtin.global_default) == (2_000_001_000, False)
        plain = await client.create(pod("plain", sched))
        assert plain.spec.priority == 0
        with pytest.raises(errors.Forbidden) as refused:
            await client.create(pod("lost", sched, priorityClassName="no-such-class"))
        assert "no PriorityClass with name no-such-class was found" in str(refused.value)


async def test_a_high_priority_pod_preempts_a_low_priority_one_on_a_full_node(
    client: Client, api_namespace: str
) -> None:
    sched = f"s-{api_namespace}"
    full = f"{api_namespace[:40]}-full"
    async with (
        priority_classes(client, low=10, high=1000) as classes,
        nodes(client, node(full, cpu="1")),
        scheduling(client, sched),
    ):
        # No agent here: a grace period of 0 lets the API server remove the victim at once.
        await client.create(
            pod(
                "low",
                sched,
                cpu="1",
                priorityClassName=classes["low"],
                terminationGracePeriodSeconds=0,
            )
        )
        assert await eventually(lambda: node_of(client, "low"), what="low bound") == full
        await client.create(pod("high", sched, cpu="1", priorityClassName=classes["high"]))
        assert await eventually(lambda: node_of(client, "high"), what="high bound") == full

        async def low_gone() -> bool:
            try:
                await client.get(Pod, "low")
            except errors.NotFound:
                return True
            return False

        assert await eventually(low_gone, what="the victim deleted")

        async def preempted_event() -> list[Event]:
            found = (await client.list(Event, namespace=api_namespace)).items
            return [e for e in found if e.reason == "Preempted" and e.involved_object.name == "low"]

        [event] = await eventually(preempted_event, what="a Preempted event")
        high = await client.get(Pod, "high")
        assert event.message == f"Preempted by pod {high.metadata.uid} on node {full}"


async def test_a_preempted_pod_is_marked_a_disruption_target(
    client: Client, api_namespace: str
) -> None:
    """The victim gets DisruptionTarget=True (PreemptionByScheduler) before its
    graceful delete, as kube-scheduler's prepareCandidate writes it."""
    sched = f"s-{api_namespace}"
    full = f"{api_namespace[:40]}-full"
    async with (
        priority_classes(client, low=10, high=1000) as classes,
        nodes(client, node(full, cpu="1")),
        scheduling(client, sched),
    ):
        # No agent: with a grace period the victim stays, terminating, to be read.
        low = pod("low", sched, cpu="1", priorityClassName=classes["low"])
        await client.create(low)
        assert await eventually(lambda: node_of(client, "low"), what="low bound") == full
        await client.create(pod("high", sched, cpu="1", priorityClassName=classes["high"]))

        async def marked() -> Pod | None:
            victim = await client.get(Pod, "low")
            return victim if victim.metadata.HasField("deletion_timestamp") else None

        victim = await eventually(marked, what="the victim terminating")
        assert victim is not None
        target = [c for c in victim.status.conditions if c.type == "DisruptionTarget"]
        assert [(c.status, c.reason) for c in target] == [("True", "PreemptionByScheduler")]
        assert target[0].message == f"{sched}: preempting to accommodate a higher priority pod"


async def test_a_pod_that_never_preempts_stays_pending(client: Client, api_namespace: str) -> None:
    sched = f"s-{api_namespace}"
    full = f"{api_namespace[:40]}-full"
    async with (
        priority_classes(client, low=10) as classes,
        nodes(client, node(full, cpu="1")),
        scheduling(client, sched),
    ):
        await client.create(pod("low", sched, cpu="1", priorityClassName=classes["low"]))
        assert await eventually(lambda: node_of(client, "low"), what="low bound") == full
        await client.create(
            from_dict(
                PriorityClass,
                {
                    "metadata": {"name": f"{api_namespace[:40]}-never"},
                    "value": 1000,
                    "preemptionPolicy": "Never",
                },
            )
        )
        try:
            await client.create(
                pod("waits", sched, cpu="1", priorityClassName=f"{api_namespace[:40]}-never")
            )

            async def refused() -> Any:
                c = await scheduled_condition(client, "waits")
                return c if c is not None and c.status == "False" else None

            condition = await eventually(refused, what="PodScheduled=False")
            assert condition.message == (
                "0/1 nodes are available: 1 Insufficient cpu. "
                "preemption: not eligible due to preemptionPolicy=Never."
            )
            assert await node_of(client, "low") == full
        finally:
            with contextlib.suppress(errors.NotFound):
                await client.delete(PriorityClass, f"{api_namespace[:40]}-never")


async def test_objects_that_cannot_be_parsed_do_not_stop_the_scheduler(
    client: Client, api_namespace: str, etcd_client: aetcd.Client
) -> None:
    """A pod and a node stored before the API server refused their
    quantities: the scheduler says what is wrong and goes on scheduling."""
    sched = f"s-{api_namespace}"
    base = api_namespace[:40]
    raw = Store(etcd_client, prefix="/sched-tests")
    bad_node = node(f"{base}-garbage")
    bad_node.status.allocatable["cpu"].string = "garbage!"
    bad_pod = pod("bad", sched)
    bad_pod.metadata.namespace = api_namespace
    bad_pod.metadata.uid = str(uuid.uuid4())
    bad_pod.spec.overhead["cpu"].string = "1.5.5Gi"
    await raw.create(scheme.for_message(Pod), bad_pod)
    await raw.create(scheme.for_message(Node), bad_node)
    try:
        async with nodes(client, node(f"{base}-good")) as [good], scheduling(client, sched):
            await client.create(pod("fine", sched))
            assert await eventually(lambda: node_of(client, "fine"), what="bound") == good

            async def refused(name: str) -> Any:
                c = await scheduled_condition(client, name)
                return c if c is not None and c.status == "False" else None

            async def told() -> list[Event]:
                found = (await client.list(Event, namespace=api_namespace)).items
                return [
                    e
                    for e in found
                    if e.reason == "FailedScheduling" and e.involved_object.name == "bad"
                ]

            [event, *_] = await eventually(told, what="the bad pod told")
            assert 'spec.overhead.cpu: invalid quantity "1.5.5Gi"' in event.message
            await client.create(pod("big", sched, cpu="4"))
            condition = await eventually(lambda: refused("big"), what="big refused")
            assert condition.message == (
                "0/2 nodes are available: 1 Insufficient cpu, "
                "1 node(s) had invalid resource quantities."
            )
            await client.create(pod("after", sched))
            assert await eventually(lambda: node_of(client, "after"), what="still binding") == good
    finally:
        with contextlib.suppress(errors.NotFound):
            await client.delete(Node, bad_node.metadata.name)
        with contextlib.suppress(errors.NotFound):
            await client.delete(Pod, "bad")

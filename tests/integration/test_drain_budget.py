"""`kpyctl drain` honours a PodDisruptionBudget on a real cluster: the API
server and etcd of the session, two node agents (simulated runtime), the
deployment, replicaset and disruption controllers, and a test binder in
place of the scheduler so that two of the three replicas start on node A.

With `minAvailable: 2`, draining node A evicts one of its pods at once; the
eviction of the second is refused (kubectl's retry line) until the first
one's replacement is Ready on node B, and at no moment are fewer than two
pods Ready and not terminating."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from kpy.api import errors
from kpy.api.apps.v1 import Deployment
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Node, Pod
from kpy.api.policy.v1 import PodDisruptionBudget
from kpy.controllers.ownership import is_pod_ready
from tests.integration._agent import running_agent
from tests.integration._controllers import eventually, running, workload
from tests.integration._kpyctl import kpyctl

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client

REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."


@dataclass(frozen=True)
class Seen:
    """One pod as a watch event showed it."""

    at: float
    name: str
    node: str
    ready: bool
    deleting: bool
    gone: bool


async def bind_pending(client: Client, ns: str, a: str, b: str) -> None:
    """The test's scheduler: a pending pod goes to node A while A is
    schedulable and holds fewer than two live pods, else to node B."""
    while True:
        pods = (await client.list(Pod, namespace=ns)).items
        live_on_a = sum(
            1
            for p in pods
            if p.spec.node_name == a and not p.metadata.HasField("deletion_timestamp")
        )
        a_open = not (await client.get(Node, a)).spec.unschedulable
        for pod in pods:
            if pod.spec.node_name or pod.metadata.HasField("deletion_timestamp"):
                continue
            target = a if a_open and live_on_a < 2 else b
            live_on_a += target == a
            with contextlib.suppress(errors.Conflict, errors.NotFound):
                await client.bind(pod.metadata.name, target, namespace=ns)
        await anyio.sleep(0.1)


async def record(client: Client, ns: str, seen: list[Seen]) -> None:
    async with client.watch(Pod, namespace=ns) as events:
        async for event in events:
            pod = event.object
            seen.append(
                Seen(
                    time.monotonic(),
                    pod.metadata.name,
                    pod.spec.node_name,
                    is_pod_ready(pod),
                    pod.metadata.HasField("deletion_timestamp"),
                    event.type == "DELETED",
                )
            )


async def _at_least(seen: list[Seen], n: int) -> bool:
    return len(seen) >= n


def healthy_counts(seen: list[Seen]) -> list[int]:
    """After each event, how many pods are Ready and not terminating."""
    state: dict[str, Seen] = {}
    counts = []
    for s in seen:
        state[s.name] = s
        counts.append(sum(1 for p in state.values() if p.ready and not p.deleting and not p.gone))
    return counts


async def test_a_drain_evicts_one_pod_at_a_time_under_a_budget(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    async with (
        running_agent(client, runtime="simulated", root=tmp_path) as node_a,
        running_agent(client, runtime="simulated", root=tmp_path) as node_b,
        running(client, ns, "deployment", "replicaset", "disruption"),
        anyio.create_task_group() as tg,
    ):
        a, b = node_a.node_name, node_b.node_name
        tg.start_soon(bind_pending, client, ns, a, b)
        await client.create(workload(Deployment, "web", 3))
        await client.create(
            from_dict(
                PodDisruptionBudget,
                {
                    "metadata": {"name": "web"},
                    "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
                },
            )
        )

        async def settled() -> list[Pod] | None:
            pods = [p for p in (await client.list(Pod, namespace=ns)).items if is_pod_ready(p)]
            pdb = await client.get(PodDisruptionBudget, "web")
            on_a = [p for p in pods if p.spec.node_name == a]
            ok = len(pods) == 3 and len(on_a) == 2 and pdb.status.disruptions_allowed == 1
            return pods if ok else None

        before = await eventually(settled, 45, "3 ready pods, 2 on node A, 1 disruption")
        originals = {p.metadata.name for p in before}
        names = sorted(p.metadata.name for p in before if p.spec.node_name == a)
        code, out, err = await kpyctl(apiserver, ns, "get", "pdb")
        assert code == 0, err
        header, row = out.splitlines()
        assert header.split() == [
            *("NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE")
        ]
        assert row.split()[:4] == ["web", "2", "N/A", "1"]

        seen: list[Seen] = []
        tg.start_soon(record, client, ns, seen)
        await eventually(lambda: _at_least(seen, 3), 10, "the watch's initial events")
        replayed = len(seen)

        code, out, err = await kpyctl(apiserver, ns, "drain", a, "--timeout", "60s")

        assert code == 0, err
        lines = out.splitlines()
        assert lines[0] == f"node/{a} cordoned"
        assert lines[-1] == f"node/{a} drained"
        assert sorted(line for line in lines if line.endswith(" evicted")) == [
            f"pod/{n} evicted" for n in names
        ]
        retries = [line for line in err.splitlines() if "will retry after 5s" in line]
        assert retries, err
        assert all(line.endswith(f"): {REFUSED}") for line in retries), err

        # One at a time: the second pod of node A went only after a
        # replacement was Ready on node B, and never were fewer than 2 healthy.
        evicted_at: dict[str, float] = {}
        for s in seen:
            if s.name in names and (s.deleting or s.gone):
                evicted_at.setdefault(s.name, s.at)
        first, second = sorted(names, key=lambda n: evicted_at[n])
        replacement_ready = min(
            s.at for s in seen if s.node == b and s.ready and s.name not in originals
        )
        assert evicted_at[first] < replacement_ready <= evicted_at[second], seen
        assert min(healthy_counts(seen)[replayed - 1 :]) >= 2, seen
        tg.cancel_scope.cancel()

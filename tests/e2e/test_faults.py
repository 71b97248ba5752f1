"""Fault injection, as Kubernetes' maintainers test their control plane: a
`kpy up --ha` cluster (three etcd members, two API servers, two controller
managers and schedulers, three simulated agents) runs a workload while
processes are killed at random points: an etcd member, an API server, the
leading controller manager and scheduler, and an agent. `kpy up`'s
supervisor brings each control-plane process back; the killed agent's node
is left lost (as systemd's Restart=on-failure leaves a killed kubelet) until
the test starts it again after the faults with `kpy start-node`, as an
operator would. Afterwards the invariants a user relies on hold:

- no object lost: every create the SDK reported as done is stored;
- none duplicated: every create is stored at most once, `generateName`
  ones included, and a create reported as failed is not stored;
- every Deployment is back at its replicas, scaled after the faults;
- every watch is consistent: its events, replayed, give exactly the final
  list, with no event delivered twice and versions only growing.

The run is seeded (`KPY_FAULT_SEED` repeats one); the seed is in the
failure message."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import pytest

from kpy.api import codec
from kpy.api.apps.v1 import Deployment
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import ConfigMap, Namespace, Pod
from kpy.api.errors import StatusError
from kpy.client import Client
from kpy.cluster.local import ClusterState, Member, client_config, running
from tests.e2e._ports import two_free_ports

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kpy.client.client import WatchEvent

ROOT = Path(__file__).resolve().parents[2]
KPY = str(Path(sys.executable).parent / "kpy")
NAMESPACE = "faults"
CREATES = 400
DEPLOYMENTS = 3

pytestmark = [pytest.mark.timeout(480), pytest.mark.cluster]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    port = two_free_ports()
    env = {k: v for k, v in os.environ.items() if k != "KPY_CONFIG"}
    subprocess.run(
        [KPY, "up", "--ha", "--runtime", "simulated", "--dir", str(tmp_path), "--port", str(port)],
        check=True,
        timeout=240,
        env=env,
        cwd=ROOT,
    )
    try:
        yield tmp_path, port
    finally:
        subprocess.run([KPY, "down", "--dir", str(tmp_path)], check=False, timeout=120, env=env)
        state = ClusterState.load(tmp_path)
        assert state is None or not any(running(m) for m in state.members)


def member(directory: Path, name: str) -> Member:
    state = ClusterState.load(directory)
    assert state is not None, "the cluster's record is gone"
    return next(m for m in state.members if m.name == name)


async def wait_restarted(directory: Path, name: str, old_pid: int, seed: int) -> None:
    """The supervisor starts a killed member again (a new pid, running)."""
    with anyio.move_on_after(90):
        while True:
            m = member(directory, name)
            if m.pid != old_pid and running(m):
                return
            await anyio.sleep(0.3)
    pytest.fail(f"seed {seed}: {name} (pid {old_pid}) was not restarted within 90 s")


async def wait_lost(directory: Path, name: str, pid: int, seed: int) -> None:
    """The supervisor leaves a killed agent down: its node is lost."""
    with anyio.move_on_after(30):
        while True:
            m = member(directory, name)
            if m.held == "lost" and m.pid == pid and not running(m):
                return
            await anyio.sleep(0.3)
    pytest.fail(f"seed {seed}: {name} (pid {pid}) was not left down (lost) within 30 s")


def start_node(directory: Path, node: str) -> subprocess.CompletedProcess[str]:
    """`kpy start-node`, as an operator runs it."""
    argv = [sys.executable, "-m", "kpy.cluster.main", "start-node", node, "--dir", str(directory)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=150, check=False)


async def leader(client: Client, lease: str) -> str:
    got = await client.get(Lease, lease, namespace="kube-system")
    return got.spec.holder_identity


def deployment(i: int) -> Deployment:
    labels = {"app": f"fault-{i}"}
    return codec.from_dict(
        Deployment,
        {
            "metadata": {"name": f"fault-{i}", "namespace": NAMESPACE},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "kpy.local/busybox"}]},
                },
            },
        },
    )


def config_map(i: int) -> ConfigMap:
    meta: dict[str, Any] = {
        "namespace": NAMESPACE,
        "labels": {"fault-test": "1"},
        "annotations": {"seq": str(i)},
    }
    if i % 2:
        meta["generateName"] = "gen-"
    else:
        meta["name"] = f"cm-{i}"
    return codec.from_dict(ConfigMap, {"metadata": meta, "data": {"i": str(i)}})


class Outcomes:
    """What each create call reported: done (with the stored uid) or failed."""

    def __init__(self) -> None:
        self.done: dict[int, str] = {}
        self.failed: dict[int, str] = {}


async def write(client: Client, outcomes: Outcomes) -> None:
    for i in range(CREATES):
        try:
            created = await client.create(config_map(i))
        except StatusError as e:
            outcomes.failed[i] = f"{type(e).__name__}: {e}"
        else:
            outcomes.done[i] = created.metadata.uid


async def inject(directory: Path, client: Client, rng: random.Random, seed: int) -> list[str]:
    """Kills one process at a time at random moments, each named by role so
    the leaders are hit where they lead; waits for the supervisor to bring
    it back (or, an agent, to leave it down) before the next; then starts
    the killed agent's node again. Returns what was killed, in order."""
    victims = [
        f"etcd-{rng.randint(1, 3)}",
        f"kpy-apiserver-{rng.randint(1, 2)}",
        "leader:kpy-controller-manager",
        "leader:kpy-scheduler",
        f"kpy-agent-kpy-node-{rng.randint(1, 3)}",
    ]
    rng.shuffle(victims)
    killed = []
    for victim in victims:
        await anyio.sleep(rng.uniform(0.2, 1.5))
        name = victim
        if victim.startswith("leader:"):
            name = await leader(client, victim.removeprefix("leader:"))
        m = member(directory, name)
        assert running(m), f"seed {seed}: {name} is not running before it is killed"
        os.kill(m.pid, signal.SIGKILL)
        killed.append(name)
        if name.startswith("kpy-agent-"):
            await wait_lost(directory, name, m.pid, seed)
        else:
            await wait_restarted(directory, name, m.pid, seed)
    for name in killed:
        if name.startswith("kpy-agent-"):
            node = name.removeprefix("kpy-agent-")
            started = await anyio.to_thread.run_sync(start_node, directory, node)
            assert started.returncode == 0, f"seed {seed}: {started.stdout}{started.stderr}"
    return killed


class Follower:
    """A watch's events, kept in order; `caught_up(rv)` waits until one at
    or past `rv` has arrived."""

    def __init__(self) -> None:
        self.events: list[WatchEvent[ConfigMap]] = []
        self._target = 0
        self._reached = anyio.Event()

    async def run(self, client: Client, since: str) -> None:
        async with client.watch(
            ConfigMap,
            namespace=NAMESPACE,
            resource_version=since,
            label_selector="fault-test=1",
            bookmarks=False,
        ) as stream:
            async for event in stream:
                self.events.append(event)
                if self._target and int(event.resource_version) >= self._target:
                    self._reached.set()

    async def caught_up(self, rv: int) -> None:
        self._target = rv
        if self.events and int(self.events[-1].resource_version) >= rv:
            return
        with anyio.move_on_after(60):
            await self._reached.wait()


async def settle(client: Client, seed: int) -> None:
    """Every Deployment scaled to 3 after the faults reaches 3 ready pods."""
    for i in range(DEPLOYMENTS):
        await client.patch(
            Deployment, f"fault-{i}", {"spec": {"replicas": 3}}, namespace=NAMESPACE,
            patch_type="merge",
        )  # fmt: skip
    with anyio.move_on_after(180):
        while True:
            deps = (await client.list(Deployment, namespace=NAMESPACE)).items
            pods = (await client.list(Pod, namespace=NAMESPACE)).items
            live = [p for p in pods if not p.metadata.HasField("deletion_timestamp")]
            if all(d.status.ready_replicas == 3 for d in deps) and len(live) == 3 * DEPLOYMENTS:
                return
            await anyio.sleep(1)
    summary = {d.metadata.name: d.status.ready_replicas for d in deps}
    pytest.fail(
        f"seed {seed}: Deployments not back at 3 ready replicas: {summary}, {len(live)} pods"
    )


async def test_invariants_hold_through_random_faults(cluster: tuple[Path, int]) -> None:
    directory, port = cluster
    seed = int(os.environ.get("KPY_FAULT_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    outcomes = Outcomes()
    follower = Follower()
    servers = f"127.0.0.1:{port},127.0.0.1:{port + 1}"
    # The cluster's admin config (its CA and certificate) for both API servers.
    async with Client(client_config(directory, servers), retry_timeout=60.0) as client:
        await client.create(codec.from_dict(Namespace, {"metadata": {"name": NAMESPACE}}))
        for i in range(DEPLOYMENTS):
            await client.create(deployment(i))
        since = (await client.list(ConfigMap, namespace=NAMESPACE)).resource_version
        async with anyio.create_task_group() as tg:
            tg.start_soon(follower.run, client, since)
            async with anyio.create_task_group() as work:
                work.start_soon(write, client, outcomes)
                work.start_soon(inject, directory, client, rng, seed)
            await settle(client, seed)
            stored = (
                await client.list(ConfigMap, namespace=NAMESPACE, label_selector="fault-test=1")
            ).items
            final_rv = max(int(c.metadata.resource_version) for c in stored)
            await follower.caught_up(final_rv)
            tg.cancel_scope.cancel()

    context = f"seed {seed}"
    by_seq: dict[int, list[ConfigMap]] = {}
    for cm in stored:
        by_seq.setdefault(int(cm.metadata.annotations["seq"]), []).append(cm)
    duplicated = {
        seq: [c.metadata.name for c in cms] for seq, cms in by_seq.items() if len(cms) > 1
    }
    assert not duplicated, f"{context}: creates stored twice: {duplicated}"
    lost = [
        i
        for i, uid in outcomes.done.items()
        if [c.metadata.uid for c in by_seq.get(i, [])] != [uid]
    ]
    assert not lost, f"{context}: reported done but not stored as returned: {lost}"
    phantom = [i for i in outcomes.failed if i in by_seq]
    assert not phantom, (
        f"{context}: reported failed but stored: { {i: outcomes.failed[i] for i in phantom} }"
    )
    assert len(outcomes.done) + len(outcomes.failed) == CREATES
    assert len(stored) == len(outcomes.done), context

    seen: set[tuple[str, str, str]] = set()
    replay: dict[str, str] = {}
    last = 0
    for event in follower.events:
        key = (event.type, event.object.metadata.name, event.resource_version)
        assert key not in seen, f"{context}: event delivered twice: {key}"
        seen.add(key)
        rv = int(event.resource_version)
        assert rv > last, f"{context}: version went back: {key}"
        last = max(last, rv)
        if event.type in ("ADDED", "MODIFIED"):
            replay[event.object.metadata.name] = event.object.metadata.resource_version
        elif event.type == "DELETED":
            replay.pop(event.object.metadata.name, None)
    final = {c.metadata.name: c.metadata.resource_version for c in stored}
    assert replay == final, f"{context}: the watch's replay differs from the final list"
    print(json.dumps({"seed": seed, "done": len(outcomes.done), "failed": len(outcomes.failed)}))

"""A node lost and found again, on a three-node local cluster started by
`kpy up` (supervised, simulated runtime, a shortened
--node-monitor-grace-period passed with --controller-manager-arg).

One agent is killed by its pid (SIGKILL; the supervisor leaves a node's
agent killed from outside down, as systemd's Restart=on-failure leaves a
kubelet): its Node goes Unknown within the grace period, gets the
unreachable NoSchedule and NoExecute taints, its pods are marked
Ready=False, and the Deployment's pod there (tolerating unreachable for
5 s, as the test's template says) is evicted and replaced on the other
nodes. The node is then started again (`kpy start-node`): its Node is
Ready again, the taints go, the pod evicted meanwhile is cleaned up (from
the API and from the node's runtime records), the pod that tolerates the
outage is Ready again, and the node takes pods again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import codec
from kpy.api.apps.v1 import Deployment
from kpy.api.core.v1 import Node, Pod
from kpy.client import Client
from kpy.cluster import local
from kpy.cluster.local import ClusterState, running
from tests.e2e._ports import cluster_port

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

pytestmark = [pytest.mark.timeout(420), pytest.mark.cluster]

GRACE = 12.0  # --node-monitor-grace-period; agents renew their Lease every 2 s
UNREACHABLE = "node.kubernetes.io/unreachable"
LABELS = {"app": "survivor"}


CONTROLLER_MANAGER_ARGS = (
    "--node-monitor-grace-period",
    f"{GRACE:g}s",
    "--node-monitor-period",
    "1s",
)
AGENT_ARGS = ("--heartbeat", "2")


def kpy_up(directory: Path, port: int) -> list[str]:
    """The `kpy up` command line of the test's cluster."""
    return [
        sys.executable,
        "-m",
        "kpy.cluster.main",
        "up",
        "--dir",
        str(directory),
        "--nodes",
        "3",
        "--runtime",
        "simulated",
        "--port",
        str(port),
        *(f"--controller-manager-arg={a}" for a in CONTROLLER_MANAGER_ARGS),
        *(f"--agent-arg={a}" for a in AGENT_ARGS),
    ]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterState]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPY_")}
    argv = kpy_up(tmp_path, cluster_port())
    try:
        started = subprocess.run(argv, capture_output=True, text=True, timeout=240, env=env)
        assert started.returncode == 0, started.stdout + started.stderr
        state = ClusterState.load(tmp_path)
        assert state is not None
        yield state
    finally:
        local.down(tmp_path, progress=lambda _: None)
        after = ClusterState.load(tmp_path)
        left = [] if after is None else [*after.members, *filter(None, [after.supervisor])]
        assert not any(running(m) for m in left), [m.name for m in left if running(m)]


def deployment() -> Deployment:
    return codec.from_dict(
        Deployment,
        {
            "metadata": {"name": "survivor", "namespace": "default"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {
                        "containers": [{"name": "c", "image": "kpy.local/busybox"}],
                        "tolerations": [
                            {
                                "key": UNREACHABLE,
                                "operator": "Exists",
                                "effect": "NoExecute",
                                "tolerationSeconds": 5,
                            }
                        ],
                    },
                },
            },
        },
    )


async def eventually(check: Callable[[], Awaitable[Any]], what: str, within: float) -> Any:
    """The first truthy result of `check`, polled; fails naming `what`."""
    last: Any = None
    with anyio.move_on_after(within):
        while True:
            last = await check()
            if last:
                return last
            await anyio.sleep(0.5)
    pytest.fail(f"{what}: not within {within:.0f} s (last: {last!r})")


async def pods(client: Client) -> list[Pod]:
    return list((await client.list(Pod, namespace="default", label_selector="app=survivor")).items)


def pinned_pod(name: str, node: str, *, tolerate: int | None = None) -> Pod:
    """A pod for `node` only; `tolerate`: seconds it stays on the node once
    the node is unreachable."""
    spec: dict[str, Any] = {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "containers": [{"name": "c", "image": "kpy.local/busybox"}],
    }
    if tolerate is not None:
        spec["tolerations"] = [
            {
                "key": UNREACHABLE,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": tolerate,
            }
        ]
    return codec.from_dict(Pod, {"metadata": {"name": name, "namespace": "default"}, "spec": spec})


def pod_ready(pod: Pod) -> str:
    return next((c.status for c in pod.status.conditions if c.type == "Ready"), "")


def ready_status(node: Node) -> str:
    return next((c.status for c in node.status.conditions if c.type == "Ready"), "")


def taints(node: Node) -> set[str]:
    return {f"{t.key}:{t.effect}" for t in node.spec.taints}


def start_node(directory: str, node: str) -> subprocess.CompletedProcess[str]:
    """`kpy start-node`, as an operator runs it."""
    argv = [sys.executable, "-m", "kpy.cluster.main", "start-node", node, "--dir", directory]
    return subprocess.run(argv, capture_output=True, text=True, timeout=150, check=False)


def runtime_records(directory: str, node: str) -> str:
    """The simulated runtime's state file of `node` (its sandboxes, by pod)."""
    return (Path(directory) / "nodes" / node / "runtime" / "simulated.json").read_text()


async def test_a_lost_node_s_pods_move_and_it_takes_pods_again(cluster: ClusterState) -> None:
    admin = local.client_config(Path(cluster.directory), cluster.api)  # `kpy up` is secure
    async with Client(admin, retry_timeout=60.0) as client:
        await client.create(deployment())

        async def three_running() -> list[Pod]:
            got = [p for p in await pods(client) if p.status.phase == "Running"]
            return got if len(got) == 3 else []

        running_pods = await eventually(three_running, "3 pods Running", 120)
        victim = running_pods[0].spec.node_name
        lost = {p.metadata.uid for p in running_pods if p.spec.node_name == victim}
        pid = cluster.member(f"kpy-agent-{victim}").pid
        # A pod that outlives the outage on the victim: it tolerates
        # unreachable for an hour.
        await client.create(pinned_pod("steadfast", victim, tolerate=3600))

        async def steadfast(status: str) -> Pod | None:
            got = await client.get(Pod, "steadfast", namespace="default")
            ok = got.status.phase == "Running" and pod_ready(got) == status
            return got if ok else None

        before = await eventually(
            lambda: steadfast("True"), f"pod steadfast Running and Ready on {victim}", 60
        )

        assert all(uid in runtime_records(cluster.directory, victim) for uid in lost)

        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()

        async def unknown() -> bool:
            return ready_status(await client.get(Node, victim)) == "Unknown"

        await eventually(unknown, f"node {victim} Ready=Unknown", GRACE + 60)
        # within the grace period (plus a heartbeat, a monitor period and slack)
        assert time.monotonic() - killed_at < GRACE + 30
        # the supervisor left it down: the node is lost
        agent = ClusterState.load(Path(cluster.directory)).member(f"kpy-agent-{victim}")  # type: ignore[union-attr]
        assert (agent.held, agent.pid, running(agent)) == ("lost", pid, False), agent

        async def tainted() -> set[str]:
            return taints(await client.get(Node, victim))

        want = {f"{UNREACHABLE}:NoExecute", f"{UNREACHABLE}:NoSchedule"}
        await eventually(
            lambda: _superset(tainted(), want), f"node {victim} has the unreachable taints", 30
        )

        async def replaced() -> list[Pod]:
            live = [
                p
                for p in await pods(client)
                if not p.metadata.HasField("deletion_timestamp") and p.status.phase == "Running"
            ]
            elsewhere = [p for p in live if p.spec.node_name != victim]
            return elsewhere if len(elsewhere) == 3 else []

        await eventually(replaced, "3 pods Running on the other nodes", 120)
        # the node controller's MarkPodsNotReady (Services drop the pod)
        await eventually(lambda: steadfast("False"), "pod steadfast Ready=False", 30)
        evicted = [p for p in await pods(client) if p.metadata.uid in lost]
        # still there, Terminating: only the node's agent may confirm they stopped
        assert evicted, f"the pods of {victim} went before their agent confirmed"
        for p in evicted:
            reasons = [c.reason for c in p.status.conditions if c.type == "DisruptionTarget"]
            assert reasons == ["DeletionByTaintManager"], f"{p.metadata.name}: {reasons}"

        started = await anyio.to_thread.run_sync(start_node, cluster.directory, victim)
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"node {victim} Ready" in started.stdout, started.stdout

        async def back() -> bool:
            node = await client.get(Node, victim)
            return ready_status(node) == "True" and not any(
                t.startswith(UNREACHABLE) for t in taints(node)
            )

        await eventually(back, f"node {victim} Ready with no unreachable taint", 90)

        async def cleaned_up() -> bool:
            return not any(p.metadata.uid in lost for p in await pods(client))

        await eventually(cleaned_up, f"the pods evicted from {victim} gone", 90)

        # and their containers, from the node: the agent confirms a pod
        # stopped (the final delete) before it removes its sandbox records,
        # as the kubelet's status manager does before its garbage collector
        async def records_gone() -> bool:
            records = runtime_records(cluster.directory, victim)
            return not any(uid in records for uid in lost)

        await eventually(records_gone, f"{victim}'s records of the evicted pods removed", 30)
        # its agent, which owns its status, puts Ready back
        after = await eventually(lambda: steadfast("True"), "pod steadfast Ready again", 30)
        assert after.metadata.uid == before.metadata.uid
        assert after.status.container_statuses[0].restart_count == 0, after.status

        await client.create(pinned_pod("pinned", victim))

        async def pinned_running() -> bool:
            got = await client.get(Pod, "pinned", namespace="default")
            return got.spec.node_name == victim and got.status.phase == "Running"

        await eventually(pinned_running, f"a new pod Running on {victim}", 90)


async def _superset(got: Awaitable[set[str]], want: set[str]) -> bool:
    return want <= await got

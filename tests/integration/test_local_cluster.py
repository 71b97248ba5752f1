"""`kpy up / status / down` as a user runs them: a whole cluster of
processes in a directory of the test's own, on a port of its own."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kpy.client.config import load_config
from kpy.cluster.local import ClusterState, Member, running
from tests.e2e._ports import cluster_port

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.cluster

KPY = str(Path(sys.executable).parent / "kpy")
KPYCTL = str(Path(sys.executable).parent / "kpyctl")


def kpy(*words: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KPY, *words], capture_output=True, text=True, timeout=180, check=False, env=env
    )


def test_up_status_down(tmp_path: Path) -> None:
    port = str(cluster_port())
    started = kpy("up", "--dir", str(tmp_path), "--nodes", "2", "--port", port)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "nodes kpy-node-1, kpy-node-2 Ready" in started.stdout
        assert "kpy-ingress serves http on 127.0.0.1:" in started.stdout
        assert "kpy-dns answers for cluster.local at " in started.stdout
        state = ClusterState.load(tmp_path)
        assert state is not None
        names = [m.name for m in state.members]
        assert names == [
            "etcd",
            "kpy-apiserver",
            "kpy-controller-manager",
            "kpy-scheduler",
            "kpy-ingress",
            "kpy-dns",
            "kpy-agent-kpy-node-1",
            "kpy-proxy-kpy-node-1",
            "kpy-agent-kpy-node-2",
            "kpy-proxy-kpy-node-2",
        ]
        assert all(running(m) for m in state.members)
        config = load_config(tmp_path / "config")
        assert config.servers == (f"127.0.0.1:{port}",)
        assert config.tls is not None, "the CA"
        assert config.tls.cert_pem, "the admin's certificate"

        status = kpy("status", "--dir", str(tmp_path))
        assert status.returncode == 0, status.stderr
        assert "kpy-node-2           Ready" in status.stdout
        assert "proxy kpy-node-2: " in status.stdout, "the proxy mode of each node"
        assert f"service cluster IP range: {state.service_range}" in status.stdout

        again = kpy("up", "--dir", str(tmp_path), "--port", port)
        assert again.returncode == 1
        assert "already running" in again.stderr
        assert "kpy down" in again.stderr
    finally:
        stopped = kpy("down", "--dir", str(tmp_path))
    assert stopped.returncode == 0, stopped.stderr
    assert "10 process(es) stopped" in stopped.stdout
    assert not any(running(m) for m in state.members)
    assert kpy("status", "--dir", str(tmp_path)).returncode == 1


BACKEND = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend}
spec:
  replicas: 2
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: app, image: kpy.local/busybox:latest, command: [sleep, "3600"]}
"""
PENDING = """
apiVersion: v1
kind: Pod
metadata: {name: nowhere}
spec:
  nodeSelector: {no-such-label: "true"}
  containers:
  - {name: app, image: kpy.local/busybox:latest, command: [sleep, "3600"]}
"""
STATIC = """
apiVersion: v1
kind: Pod
metadata: {name: static-web}
spec:
  containers:
  - {name: app, image: kpy.local/busybox:latest, command: [sleep, "3600"]}
"""


def wait_for(check: Callable[[], object], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout:.0f} s")
        time.sleep(0.25)


def member(directory: Path, name: str) -> Member:
    state = ClusterState.load(directory)
    assert state is not None, f"no cluster.json in {directory}"
    return state.member(name)


def restarted(directory: Path, name: str, times: int) -> bool:
    m = member(directory, name)
    return m.restarts >= times and running(m)


def pod_phases(env: dict[str, str], selector: str, *, name: str = "") -> list[str]:
    """The phases of the pods `kpyctl get` lists (none if it fails)."""
    which = [name] if name else ["-l", selector]
    done = subprocess.run(
        [KPYCTL, "get", "pods", *which, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        return []
    found = json.loads(done.stdout)
    pods = found.get("items", [found])
    return [pod.get("status", {}).get("phase", "") for pod in pods]


@pytest.mark.timeout(420)
def test_a_supervised_cluster_restarts_what_exits(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    # Left from an earlier cluster, long gone: must not reach the components.
    stale = {**os.environ, "KPY_CONFIG": str(tmp_path / "gone" / "config")}
    started = kpy(
        "up", "--dir", str(directory), "--port", str(cluster_port()), "--runtime", "process",
        "--pod-manifest-path", str(tmp_path / "manifests"), env=stale,
    )  # fmt: skip
    state = ClusterState.load(directory)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert state is not None
        assert state.supervisor is not None
        assert running(state.supervisor)
        assert len(state.uid) == 16, "the cluster's uid"
        assert load_config(directory / "config").cluster_uid == state.uid
        agent = state.member("kpy-agent-kpy-node-1").argv
        assert agent[agent.index("--cluster-uid") + 1] == state.uid
        user = {**os.environ, "KPY_CONFIG": str(directory / "config")}

        # The controllers and the scheduler die: they come back.
        for name in ("kpy-scheduler", "kpy-controller-manager"):
            os.kill(member(directory, name).pid, signal.SIGKILL)
        for name in ("kpy-scheduler", "kpy-controller-manager"):
            wait_for(functools.partial(restarted, directory, name, 1), f"{name} restarted", 30)
        assert member(directory, "kpy-scheduler").last_exit == -signal.SIGKILL

        # etcd stops answering for 10 s (the controllers and the scheduler
        # give up on the API server meanwhile), then dies: all come back.
        etcd = member(directory, "etcd")
        os.kill(etcd.pid, signal.SIGSTOP)
        time.sleep(10)
        os.kill(etcd.pid, signal.SIGKILL)
        wait_for(lambda: restarted(directory, "etcd", 1), "etcd restarted", 30)
        wait_for(
            lambda: all(running(m) for m in ClusterState.load(directory).members),  # type: ignore[union-attr]
            "every member running again",
            90,
        )

        applied = subprocess.run(
            [KPYCTL, "apply", "-f", "-"], input=BACKEND, env=user,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        wait_for(
            lambda: pod_phases(user, "app=backend") == ["Running", "Running"],
            "a new Deployment's two pods Running",
            120,
        )

        status = kpy("status", "--dir", str(directory), env=stale)
        assert status.returncode == 0, status.stdout + status.stderr
        lines = {line.split()[0]: line for line in status.stdout.splitlines() if line}
        assert lines["kpy-supervisor"].split()[2] == "running"
        scheduler = lines["kpy-scheduler"].split()
        assert scheduler[1] == str(member(directory, "kpy-scheduler").pid)
        assert scheduler[2] == "running"
        assert int(scheduler[3]) >= 1, status.stdout
        assert "killed by SIGKILL" in lines["etcd"], status.stdout

        # The scheduler's Explain service is where kpyctl looks for it.
        subprocess.run(
            [KPYCTL, "apply", "-f", "-"], input=PENDING, env=user, timeout=60, check=True,
            capture_output=True, text=True,
        )  # fmt: skip
        described = subprocess.run(
            [KPYCTL, "describe", "pod", "nowhere"], env=user,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert described.returncode == 0, described.stderr
        assert "could not ask the scheduler" not in described.stdout, described.stdout
        assert "kpy-node-1  no" in described.stdout, described.stdout

        # Static pods: agent kpy-node-1 runs the manifests of DIR/kpy-node-1.
        (tmp_path / "manifests" / "kpy-node-1" / "web.yaml").write_text(STATIC)
        wait_for(
            lambda: pod_phases(user, "", name="static-web-kpy-node-1") == ["Running"],
            "the static pod's mirror pod Running",
            60,
        )

        # The agent killed from outside stays down (Restart=on-failure): the
        # node is lost until `kpy start-node`, which brings it back.
        agent_name = "kpy-agent-kpy-node-1"
        killed = member(directory, agent_name)
        os.kill(killed.pid, signal.SIGKILL)
        wait_for(lambda: member(directory, agent_name).held == "lost", "the agent lost", 30)
        time.sleep(3)  # past the 1 s back-off: it was not restarted
        assert not running(member(directory, agent_name))
        status = kpy("status", "--dir", str(directory), env=stale)
        assert "kpy-node-1: agent stopped (killed by SIGKILL) at 20" in status.stdout, status.stdout
        assert "the node is lost until `kpy start-node kpy-node-1`" in status.stdout
        rows = {line.split()[0]: line.split() for line in status.stdout.splitlines() if line}
        assert rows[agent_name][2] == "lost", status.stdout
        again = kpy("start-node", "kpy-node-1", "--dir", str(directory), env=stale)
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"{agent_name} started (pid" in again.stdout, again.stdout
        assert again.stdout.rstrip().endswith("node kpy-node-1 Ready"), again.stdout
        back = member(directory, agent_name)
        assert running(back), "running again"
        assert (back.held, back.restarts) == ("", killed.restarts + 1)

        # `kpy stop-node`: its agent and proxy stop, and stay down.
        node = ("kpy-agent-kpy-node-1", "kpy-proxy-kpy-node-1")
        halted = kpy("stop-node", "kpy-node-1", "--dir", str(directory), env=stale)
        assert halted.returncode == 0, halted.stdout + halted.stderr
        time.sleep(3)  # past the back-off
        assert [member(directory, n).held for n in node] == ["stopped", "stopped"]
        assert not any(running(member(directory, n)) for n in node)
        status = kpy("status", "--dir", str(directory), env=stale)
        assert "kpy-node-1: agent stopped by `kpy stop-node` at " in status.stdout, status.stdout
    finally:
        last = ClusterState.load(directory)
        stopped = kpy("down", "--dir", str(directory), env=stale)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopping kpy-supervisor" in stopped.stdout.splitlines()[0], "stopped first"
    assert last is not None
    assert last.supervisor is not None
    assert not running(last.supervisor)
    assert not any(running(m) for m in last.members)

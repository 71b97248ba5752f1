"""The multi-process deployment of deploy/ on one machine (`make ha-up`):
three etcd members, two API servers, two controller managers, two
schedulers, three agents. The demo workload survives losing an etcd member,
an API server and the leading controller manager, and the cluster keeps
working: a scale-up is carried out by the new leader.

The cluster is driven through kpyctl and make only; the test kills
processes by the pids `kpy up` recorded, as an operator's `kill` would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kpy.cluster.local import ClusterState, running
from tests.e2e._ports import two_free_ports

ROOT = Path(__file__).resolve().parents[2]
KPYCTL = str(Path(sys.executable).parent / "kpyctl")

pytestmark = [pytest.mark.timeout(400), pytest.mark.cluster]


def make(target: str, directory: Path, port: int) -> None:
    subprocess.run(
        ["make", "-s", target, f"HA_DIR={directory}", f"HA_PORT={port}"],
        cwd=ROOT,
        check=True,
        timeout=240,
    )


def kpyctl(directory: Path, *words: str, timeout: float = 120) -> str:
    env = {**os.environ, "KPY_CONFIG": str(directory / "config")}
    done = subprocess.run(
        [KPYCTL, *words], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"kpyctl {' '.join(words)}: {done.stdout}{done.stderr}"
    return done.stdout


def pods(directory: Path) -> dict[str, Any]:
    items = json.loads(kpyctl(directory, "get", "pods", "-l", "app=hello", "-o", "json"))["items"]
    return {p["metadata"]["uid"]: p for p in items}


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def kill(state: ClusterState, name: str) -> None:
    member = next(m for m in state.members if m.name == name)
    assert running(member), f"{name} is not running"
    os.kill(member.pid, signal.SIGKILL)


def test_workload_survives_losing_etcd_apiserver_and_leader(tmp_path: Path) -> None:
    port = two_free_ports()
    make("ha-up", tmp_path, port)
    state = ClusterState.load(tmp_path)
    assert state is not None
    try:
        assert kpyctl(tmp_path, "get", "nodes").count(" Ready") == 3
        kpyctl(tmp_path, "apply", "-f", str(ROOT / "examples" / "demo.yaml"))
        kpyctl(tmp_path, "rollout", "status", "deployment/hello", "--timeout", "120")
        before = pods(tmp_path)
        assert len(before) == 2
        assert all(ready(p) for p in before.values())

        lease = kpyctl(tmp_path, "get", "lease", "kpy-controller-manager", "-n", "kube-system",
                       "-o", "json")  # fmt: skip
        leader = json.loads(lease)["spec"]["holderIdentity"]
        assert leader.startswith("kpy-controller-manager-")
        for name in ("etcd-2", "kpy-apiserver-1", leader):
            kill(state, name)

        # The workload is untouched: the same pods, still running and Ready.
        time.sleep(3)
        after = pods(tmp_path)
        assert set(after) == set(before)
        for uid, pod in after.items():
            assert ready(pod), pod["status"]
            restarts = [s["restartCount"] for s in pod["status"]["containerStatuses"]]
            assert restarts == [
                s["restartCount"] for s in before[uid]["status"]["containerStatuses"]
            ]

        # And the cluster still works: the surviving controller manager
        # takes the Lease over and scales the Deployment up.
        kpyctl(tmp_path, "scale", "deployment/hello", "--replicas=3")
        kpyctl(tmp_path, "rollout", "status", "deployment/hello", "--timeout", "120")
        grown = pods(tmp_path)
        assert len(grown) == 3
        assert set(before) <= set(grown)
        assert all(ready(p) for p in grown.values())
    finally:
        make("ha-down", tmp_path, port)
    assert not any(running(m) for m in state.members)

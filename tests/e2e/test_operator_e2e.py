"""The example WebApp operator end to end: a `kpy up` cluster (simulated
runtime), its CRD applied with kpyctl, and `kpy-operator
examples.webapp.operator:app` run as processes, as a user runs them.

- A WebApp becomes Ready with its Deployment and Service; a WebApp that
  breaks the CRD's CEL rule is refused; deleting the WebApp runs its
  finalizer, which removes what it owns.
- Two operator replicas elect a leader through their Lease; killing the
  leader (SIGKILL, no release) hands over to the other once the Lease
  expires, and a WebApp created meanwhile still ends with exactly one
  Deployment and one Service.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e._ports import cluster_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CRD = str(ROOT / "examples" / "webapp" / "crd.yaml")

pytestmark = [pytest.mark.timeout(300), pytest.mark.cluster]

#: short Lease timings so that a killed leader's Lease expires in 4 s
ELECTION = (
    "--leader-elect-lease-duration=4",
    "--leader-elect-renew-deadline=3",
    "--leader-elect-retry-period=0.5",
)


class Cluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = {
            **os.environ,
            "KPY_CONFIG": str(directory / "config"),
            "PYTHONPATH": str(ROOT),
        }

    def run(self, *words: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "kpyctl"), *words],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )

    def ok(self, *words: str, stdin: str = "") -> str:
        done = self.run(*words, stdin=stdin)
        assert done.returncode == 0, f"kpyctl {' '.join(words)}: {done.stdout}{done.stderr}"
        return done.stdout

    def get(self, *words: str) -> Any:
        done = self.run("get", *words, "-o", "json")
        return json.loads(done.stdout) if done.returncode == 0 else None

    def operator(self, ns: str, identity: str, log: Path) -> subprocess.Popen[bytes]:
        """`kpy-operator` (by module, so it runs without a reinstall)."""
        args = [
            sys.executable,
            "-m",
            "kpy.operator.main",
            "examples.webapp.operator:app",
            "--namespace",
            ns,
            "--leader-elect-resource-namespace",
            ns,
            "--identity",
            identity,
            "--metrics-bind-address",
            "127.0.0.1:0",
            *ELECTION,
        ]
        with log.open("wb") as out:
            return subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=out, stderr=out)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.kill(process.pid, sig)
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("operator-cluster")
    port = cluster_port()
    env = {k: v for k, v in os.environ.items() if k != "KPY_CONFIG"}
    up = [str(BIN / "kpy"), "up", "--dir", str(directory), "--port", str(port)]
    up += ["--runtime", "simulated"]
    started = subprocess.run(up, capture_output=True, text=True, timeout=180, check=False, env=env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        c = Cluster(directory)
        c.ok("apply", "-f", CRD)
        until(lambda: c.run("get", "webapps", "-A").returncode == 0, "webapps served", 30)
        yield c
    finally:
        subprocess.run(
            [str(BIN / "kpy"), "down", "--dir", str(directory)], timeout=120, check=True, env=env
        )


def until(check: Callable[[], Any], what: str, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {seconds:.0f} s")
        time.sleep(0.3)


def namespace(cluster: Cluster) -> str:
    name = f"op-{uuid.uuid4().hex[:6]}"
    cluster.ok("create", "namespace", name)
    return name


def webapp(name: str, ns: str, replicas: int = 2) -> str:
    return (
        "apiVersion: apps.example.com/v1\nkind: WebApp\n"
        f"metadata:\n  name: {name}\n  namespace: {ns}\n"
        f"spec:\n  image: nginx:1.27\n  replicas: {replicas}\n"
    )


def ready(cluster: Cluster, name: str, ns: str) -> bool:
    obj = cluster.get("webapp", name, "-n", ns)
    conditions = (obj or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_a_webapp_becomes_ready_and_its_finalizer_cleans_up(
    cluster: Cluster, tmp_path: Path
) -> None:
    ns = namespace(cluster)
    operator = cluster.operator(ns, "only", tmp_path / "operator.log")
    try:
        cluster.ok("apply", "-f", "-", stdin=webapp("shop", ns))
        until(lambda: ready(cluster, "shop", ns), "WebApp shop Ready", 90)
        assert cluster.get("deployment", "shop", "-n", ns)["spec"]["replicas"] == 2
        assert cluster.get("service", "shop", "-n", ns) is not None
        table = cluster.ok("get", "webapps", "-n", ns)
        assert table.split("\n")[0].split() == ["NAME", "READY", "REPLICAS", "AGE"], table
        refused = cluster.run("apply", "-f", "-", stdin=webapp("big", ns, replicas=11))
        assert refused.returncode != 0
        assert "a WebApp runs at most 10 replicas" in refused.stderr
        cluster.ok("delete", "webapp", "shop", "-n", ns)
        until(lambda: cluster.get("webapp", "shop", "-n", ns) is None, "WebApp gone", 60)
        assert cluster.get("deployment", "shop", "-n", ns) is None
        assert cluster.get("service", "shop", "-n", ns) is None
    finally:
        stop(operator)
    log = (tmp_path / "operator.log").read_text()
    assert "webapp-operator leading as only" in log, log


def test_killing_the_leader_hands_over_without_a_duplicate(
    cluster: Cluster, tmp_path: Path
) -> None:
    ns = namespace(cluster)
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}
    operators = {name: cluster.operator(ns, name, log) for name, log in logs.items()}
    try:

        def leader() -> str:
            lease = cluster.get("lease", "webapp-operator", "-n", ns)
            return str((lease or {}).get("spec", {}).get("holderIdentity", ""))

        first = until(leader, "a leader", 60)
        cluster.ok("apply", "-f", "-", stdin=webapp("one", ns))
        until(lambda: ready(cluster, "one", ns), "WebApp one Ready", 90)
        stop(operators[first], signal.SIGKILL)  # no release: the Lease must expire
        cluster.ok("apply", "-f", "-", stdin=webapp("two", ns))
        second = until(lambda: leader() not in ("", first) and leader(), "a new leader", 60)
        until(lambda: ready(cluster, "two", ns), "WebApp two Ready", 90)
        assert second != first
        for kind in ("deployments", "services"):
            names = sorted(i["metadata"]["name"] for i in cluster.get(kind, "-n", ns)["items"])
            assert names == ["one", "two"], f"{kind}: {names}"
    finally:
        for process in operators.values():
            stop(process)

"""A real local cluster (`kpy up`: etcd, API server, controller manager,
scheduler, two agents with the process runtime) driven only through
kpyctl, as a user would: the demo, a rolling update and its undo, scaling,
logs and exec, each cascade mode of delete, a pending pod's reasons, and
bad manifests refused."""

from __future__ import annotations

import json
import os
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
DEMO = str(ROOT / "examples" / "demo.yaml")

pytestmark = [pytest.mark.timeout(300), pytest.mark.cluster]


class Cluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def run(self, *words: str, ns: str = "", stdin: str = "") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KPY_CONFIG": str(self.directory / "config")}
        flags = ["-n", ns] if ns else []
        cut = words.index("--") if "--" in words else len(words)  # exec's command comes last
        args = [str(BIN / "kpyctl"), *words[:cut], *flags, *words[cut:]]
        return subprocess.run(
            args, input=stdin, capture_output=True, text=True, env=env, timeout=150, check=False
        )

    def ok(self, *words: str, ns: str = "", stdin: str = "") -> str:
        done = self.run(*words, ns=ns, stdin=stdin)
        assert done.returncode == 0, f"kpyctl {' '.join(words)}: {done.stdout}{done.stderr}"
        return done.stdout

    def json(self, *words: str, ns: str) -> Any:
        return json.loads(self.ok("get", *words, "-o", "json", ns=ns))

    def namespace(self) -> str:
        name = f"e2e-{uuid.uuid4().hex[:6]}"
        self.ok(
            "create",
            "-f",
            "-",
            stdin=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n",
        )
        return name


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("cluster")
    port = cluster_port()
    up = [str(BIN / "kpy"), "up", "--dir", str(directory), "--nodes", "2", "--port", str(port)]
    started = subprocess.run(up, capture_output=True, text=True, timeout=180, check=False)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield Cluster(directory)
    finally:
        subprocess.run([str(BIN / "kpy"), "down", "--dir", str(directory)], timeout=120, check=True)


def until(check: Callable[[], Any], what: str, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {seconds:.0f} s")
        time.sleep(0.3)


def hello_pods(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.json("pods", "-l", "app=hello", ns=ns)["items"]
    return [p for p in items if "deletionTimestamp" not in p["metadata"]]


def test_demo_rolls_scales_and_undoes(cluster: Cluster) -> None:
    ns = cluster.namespace()
    assert "deployment.apps/hello created" in cluster.ok("apply", "-f", DEMO, ns=ns)
    cluster.ok("rollout", "status", "deployment/hello", "--timeout", "120", ns=ns)
    pods = hello_pods(cluster, ns)
    assert len(pods) == 2
    assert {p["spec"]["nodeName"] for p in pods} <= {"kpy-node-1", "kpy-node-2"}

    name = pods[0]["metadata"]["name"]
    page = cluster.ok("exec", name, "--", "cat", "/tmp/www/index.html", ns=ns)
    assert page == f"hello from {name}\n"
    failed = cluster.run("exec", name, "--", "sh", "-c", "exit 3", ns=ns)
    assert failed.returncode == 3
    assert "command terminated with exit code 3" in failed.stderr
    pod_ip = pods[0]["status"]["podIP"]
    assert cluster.ok("logs", name, ns=ns).startswith(f"serving {name} on {pod_ip}:8080\n")

    cluster.ok("scale", "deployment/hello", "--replicas=3", ns=ns)
    cluster.ok("rollout", "status", "deployment/hello", "--timeout", "120", ns=ns)
    assert len(hello_pods(cluster, ns)) == 3

    cluster.ok("set", "image", "deployment/hello", "web=kpy.local/busybox:2", ns=ns)
    cluster.ok("rollout", "status", "deployment/hello", "--timeout", "120", ns=ns)
    images = {p["spec"]["containers"][0]["image"] for p in hello_pods(cluster, ns)}
    assert images == {"kpy.local/busybox:2"}
    history = cluster.ok("rollout", "history", "deployment/hello", ns=ns)
    revisions = [line.split()[0] for line in history.splitlines() if line[:1].isdigit()]
    assert revisions == ["1", "2"], history

    cluster.ok("rollout", "undo", "deployment/hello", ns=ns)
    cluster.ok("rollout", "status", "deployment/hello", "--timeout", "120", ns=ns)
    deployment = cluster.json("deployment", "hello", ns=ns)
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "kpy.local/busybox:latest"
    until(lambda: len(hello_pods(cluster, ns)) == 3, "3 pods after the undo")


@pytest.mark.parametrize("cascade", ["background", "foreground", "orphan"])
def test_delete_cascades(cluster: Cluster, cascade: str) -> None:
    ns = cluster.namespace()
    cluster.ok("apply", "-f", DEMO, ns=ns)
    cluster.ok("rollout", "status", "deployment/hello", "--timeout", "120", ns=ns)
    before = {p["metadata"]["uid"] for p in hello_pods(cluster, ns)}
    cluster.ok("delete", "deployment", "hello", f"--cascade={cascade}", ns=ns)

    def deployment_gone() -> bool:
        return cluster.run("get", "deployment", "hello", ns=ns).returncode == 1

    until(deployment_gone, "the Deployment gone")
    if cascade == "orphan":
        replicasets = cluster.json("replicasets", ns=ns)["items"]
        assert len(replicasets) == 1
        assert not replicasets[0]["metadata"].get("ownerReferences")
        assert {p["metadata"]["uid"] for p in hello_pods(cluster, ns)} == before
    else:
        until(lambda: not hello_pods(cluster, ns), "every pod gone")
        assert not cluster.json("replicasets", ns=ns)["items"]


def test_pending_pod_is_explained(cluster: Cluster) -> None:
    ns = cluster.namespace()
    manifest = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nowhere\nspec:\n"
        "  nodeSelector: {disk: ssd}\n"
        "  containers:\n  - {name: c, image: kpy.local/busybox:latest, command: [sleep, '60']}\n"
    )
    cluster.ok("apply", "-f", "-", ns=ns, stdin=manifest)

    def explained() -> str:
        text = cluster.ok("describe", "pod", "nowhere", ns=ns)
        return text if "FailedScheduling" in text else ""

    text = until(explained, "a FailedScheduling event")
    assert "0/2 nodes are available" in text
    assert "didn't match Pod's node affinity/selector" in text


def test_bad_manifests_are_refused(cluster: Cluster) -> None:
    ns = cluster.namespace()
    manifest = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bad\nspec:\n"
        "  replicas: two\n  selector: {matchLabels: {app: bad}}\n"
        "  template:\n    metadata: {labels: {app: bad}}\n"
        "    spec:\n      containers: [{name: c, image: x, colour: red}]\n"
    )
    done = cluster.run("apply", "-f", "-", ns=ns, stdin=manifest)
    assert done.returncode != 0
    assert "spec.replicas" in done.stderr
    assert "colour" in done.stderr
    assert cluster.run("get", "deployment", "bad", ns=ns).returncode == 1

"""A pod calls the API as its ServiceAccount, as in Kubernetes: on a real
`kpy up --runtime process` cluster (secure by default), a pod whose
ServiceAccount is bound to a Role allowing `list pods` runs a Python
one-liner with the SDK. `Client()` finds the API by itself (the in-cluster
config: KUBERNETES_SERVICE_HOST/PORT of the `kubernetes` Service, and the
token, ca.crt and namespace of its kube-api-access volume), reaches the API
server's token port through kpy-proxy, lists the pods of its namespace and
prints the count; a `get secrets` from the same pod is Forbidden. Its logs
show both."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.timeout(420), pytest.mark.cluster]

# What the pod runs: the SDK with no config at all. HOME points nowhere so
# that no ~/.kpy/config on this machine gets in the way, as in a container.
SCRIPT = """
import asyncio, os
from kpy.api import errors
from kpy.api.core.v1 import Pod, Secret
from kpy.client import Client

async def main():
    print("api", os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
    async with Client(retry_timeout=60.0) as client:
        pods = await client.list(Pod, namespace=client.namespace)  # None: every namespace
        print("pods in", client.namespace, len(pods.items), flush=True)
        try:
            await client.get(Secret, "anything")
            print("secrets: allowed")
        except errors.Forbidden as e:
            print("secrets: Forbidden:", e)

asyncio.run(main())
"""


def manifests(ns: str) -> str:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "counter", "namespace": ns},
        "spec": {
            "serviceAccountName": "lister",
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "sdk",
                    "image": "python",
                    "command": [sys.executable, "-c", SCRIPT],
                    "env": [{"name": "HOME", "value": "/nonexistent"}],
                }
            ],
        },
    }
    return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: lister, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-lister, namespace: {ns}}}
rules: [{{apiGroups: [""], resources: [pods], verbs: [list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: lister-lists-pods, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-lister}}
subjects: [{{kind: ServiceAccount, name: lister, namespace: {ns}}}]
---
{json.dumps(pod)}
"""


def run(command: str, *words: str, config: Path | None = None, stdin: str = "") -> str:
    env = {k: v for k, v in os.environ.items() if k != "KPY_CONFIG"}
    if config is not None:
        env["KPY_CONFIG"] = str(config)
    done = subprocess.run(
        [str(BIN / command), *words],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"{command} {' '.join(words)}: {done.stdout}{done.stderr}"
    return done.stdout


def _port() -> int:
    """A free port in 28000-28999 for the cluster's API server."""
    for _ in range(200):
        port = random.randrange(28000, 29000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port in 28000-28999")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("podapi")
    try:
        run("kpy", "up", "--dir", str(directory), "--port", str(_port()), "--runtime", "process")
        yield directory / "config"
    finally:
        run("kpy", "down", "--dir", str(directory))


def until(check: Callable[[], str], what: str, seconds: float = 120.0) -> str:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {seconds:.0f} s")
        time.sleep(0.5)


def test_pod_lists_pods_as_its_service_account(cluster: Path) -> None:
    got = run("kpyctl", "get", "services", "-n", "default", "-o", "json", config=cluster)
    found = [s for s in json.loads(got)["items"] if s["metadata"]["name"] == "kubernetes"]
    assert found, "no Service default/kubernetes: does `kpy up` give kpy-apiserver --token-port?"
    service = found[0]
    ip = service["spec"]["clusterIP"]
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("https", 443)]

    ns = f"podapi-{uuid.uuid4().hex[:6]}"
    run("kpyctl", "apply", "-f", "-", config=cluster, stdin=manifests(ns))

    def finished() -> str:
        got = run("kpyctl", "get", "pod", "counter", "-n", ns, "-o", "json", config=cluster)
        pod = json.loads(got)
        phase = str(pod.get("status", {}).get("phase", ""))
        return phase if phase in ("Succeeded", "Failed") else ""

    phase = until(finished, "pod counter finished")
    logs = run("kpyctl", "logs", "counter", "-n", ns, config=cluster)
    assert phase == "Succeeded", logs
    lines = logs.splitlines()
    assert f"api {ip} 443" in lines, logs
    assert f"pods in {ns} 1" in lines, logs  # itself
    forbidden = [line for line in lines if line.startswith("secrets:")]
    assert forbidden == [
        'secrets: Forbidden: secrets "anything" is forbidden: User '
        f'"system:serviceaccount:{ns}:lister" cannot get resource "secrets" in API group "" '
        f'in the namespace "{ns}"'
    ], logs

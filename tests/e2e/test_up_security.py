"""Issue 23's checks on `kpy up`, as a user makes them: a cluster started
with no security flag (simulated runtime, two nodes) refuses a client
without a certificate; a user bound only to `view` in one namespace lists pods there,
reads no Secret and nothing of another namespace, and `kpyctl auth can-i`
says so; the components, each with its own identity, run the cluster
(a Deployment's pods run); `kpy status` lists the certificates' lifetimes;
and `kpy up --insecure` is still the plaintext cluster, labelled so."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from kpy import pki
from kpy.client.config import load_config
from kpy.rpc.agent.v1 import agent_pb2_grpc
from kpy.rpc.apiserver.v1 import apiserver_pb2
from tests.e2e._ports import cluster_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.timeout(300), pytest.mark.cluster]

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: dev}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
"""


def run(
    command: str, *words: str, config: Path | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`kpy` or `kpyctl` with `config` as KPY_CONFIG (none: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "KPY_CONFIG"}
    if config is not None:
        env["KPY_CONFIG"] = str(config)
    return subprocess.run(
        [str(BIN / command), *words],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=150,
        check=False,
    )


def up(directory: Path, *flags: str) -> Iterator[Path]:
    """A `kpy up --runtime simulated` cluster in `directory`; yields its
    admin config, and takes it down."""
    port = str(cluster_port(1))
    started = run("kpy", "up", "--dir", str(directory), "--port", port, "--runtime", "simulated",
                  *flags)  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield directory / "config"
    finally:
        stopped = run("kpy", "down", "--dir", str(directory))
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from up(tmp_path_factory.mktemp("secure"), "--nodes", "2")


def until(check: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {seconds:.0f} s")
        time.sleep(0.3)


def user_config(admin: Path, user: str, directory: Path, ca_dir: Path | None = None) -> Path:
    """A kpy config for `user`, its certificate signed by the CA in `ca_dir`
    (default: the cluster's, as an admin with the CA's key would issue it)."""
    ca_dir = ca_dir or admin.parent / "pki"
    ca = pki.load(ca_dir / "ca.crt", ca_dir / "ca.key")
    pki.write(pki.issue_client(ca, user), directory / f"{user}.crt", directory / f"{user}.key")
    path = directory / f"{user}.config"
    path.write_text(
        f"servers: [{load_config(admin).servers[0]}]\ntimeout: 10\n"
        f"certificate-authority: {admin.parent / 'pki' / 'ca.crt'}\n"
        f"client-certificate: {user}.crt\nclient-key: {user}.key\n"
    )
    return path


def test_the_admin_config_runs_the_cluster(cluster: Path) -> None:
    """kpyctl works with `<dir>/config` and no other step; every component
    (own certificate, Node,RBAC) does its part: pods run."""
    whoami = run("kpyctl", "auth", "whoami", config=cluster)
    assert "kubernetes-admin" in whoami.stdout, whoami.stdout + whoami.stderr
    assert run("kpyctl", "create", "namespace", "dev", config=cluster).returncode == 0
    applied = run("kpyctl", "apply", "-f", "-", config=cluster, stdin=DEPLOYMENT)
    assert applied.returncode == 0, applied.stderr

    def running() -> bool:
        pods = run("kpyctl", "get", "pods", "-n", "dev", config=cluster).stdout
        return pods.count("Running") == 2

    until(running, "2 running pods of Deployment web")
    logs = cluster.parent / "logs"
    for log in sorted(logs.glob("*.log")):
        text = log.read_text()
        assert "forbidden" not in text.lower(), f"{log.name}: a component was refused"


def test_a_client_without_a_certificate_gets_nothing(cluster: Path, tmp_path: Path) -> None:
    ca = cluster.parent / "pki" / "ca.crt"
    servers = f"servers: [{load_config(cluster).servers[0]}]\ntimeout: 3\n"
    cases = [
        ("plaintext", servers),
        ("TLS, no certificate", f"{servers}certificate-authority: {ca}\n"),
    ]
    for name, text in cases:
        config = tmp_path / f"{name.replace(' ', '-')}.config"
        config.write_text(text)
        refused = run("kpyctl", "get", "namespaces", config=config)
        assert refused.returncode != 0, name
        assert "kube-system" not in refused.stdout, f"{name}: data was returned"
        assert "certificate" in refused.stderr or "TLS" in refused.stderr, refused.stderr

    other_ca = tmp_path / "other"
    pki.write(pki.new_ca("another-cluster"), other_ca / "ca.crt", other_ca / "ca.key")
    stranger = user_config(cluster, "mallory", tmp_path, ca_dir=other_ca)
    refused = run("kpyctl", "get", "namespaces", config=stranger)
    assert refused.returncode != 0, "a certificate of another CA"
    assert "kube-system" not in refused.stdout


def test_a_viewer_of_one_namespace(cluster: Path, tmp_path: Path) -> None:
    for ns in ("team-a", "team-b"):
        assert run("kpyctl", "create", "namespace", ns, config=cluster).returncode == 0
        made = run("kpyctl", "create", "secret", "generic", "s", "--from-literal=k=v", "-n", ns,
                   config=cluster)  # fmt: skip
        assert made.returncode == 0, made.stderr
    bound = run("kpyctl", "create", "rolebinding", "jane-view", "--clusterrole=view",
                "--user=jane", "-n", "team-a", config=cluster)  # fmt: skip
    assert bound.returncode == 0, bound.stderr
    jane = user_config(cluster, "jane", tmp_path)

    listed = run("kpyctl", "get", "pods", "-n", "team-a", config=jane)
    assert listed.returncode == 0, listed.stderr
    cases = [
        ("a Secret in her namespace", ["get", "secret", "s", "-n", "team-a"]),
        ("pods of another namespace", ["get", "pods", "-n", "team-b"]),
        ("a write in her namespace", ["delete", "secret", "s", "-n", "team-a"]),
        ("nodes", ["get", "nodes"]),
    ]
    for name, words in cases:
        refused = run("kpyctl", *words, config=jane)
        assert refused.returncode != 0, name
        assert "forbidden" in refused.stderr.lower(), f"{name}: {refused.stderr}"
        assert 'User "jane"' in refused.stderr, f"{name}: {refused.stderr}"

    can = [
        ("list pods -n team-a", "yes"),
        ("get secrets -n team-a", "no"),
        ("list pods -n team-b", "no"),
    ]
    for question, answer in can:
        asked = run("kpyctl", "auth", "can-i", *question.split(), config=jane)
        assert asked.stdout.strip() == answer, f"can-i {question}: {asked.stdout}{asked.stderr}"
        assert asked.returncode == (0 if answer == "yes" else 1), question


def test_status_lists_certificate_lifetimes(cluster: Path) -> None:
    status = run("kpy", "status", "--dir", str(cluster.parent))
    assert status.returncode == 0, status.stdout + status.stderr
    rows = {line.split()[0]: line for line in status.stdout.splitlines() if line.strip()}
    assert "CERTIFICATE" in rows, status.stdout
    for path, subject in [
        ("pki/ca.crt", "CN=kpy-ca"),
        ("pki/admin.crt", "CN=kubernetes-admin,O=system:masters"),
        ("pki/apiserver.crt", "CN=kpy-apiserver"),
        ("pki/nodes/kpy-node-1.crt", "CN=system:node:kpy-node-1,O=system:nodes"),
    ]:
        assert path in rows, f"{path} missing from:\n{status.stdout}"
        assert rows[path].endswith(subject), rows[path]
    days_left = int(rows["pki/admin.crt"].split()[3])
    assert 360 <= days_left <= 365, rows["pki/admin.crt"]
    assert "WARNING" not in status.stdout


def test_insecure_is_plaintext_and_says_so(tmp_path: Path) -> None:
    for config in up(tmp_path / "insecure", "--insecure"):
        nodes = run("kpyctl", "get", "nodes", config=config)
        assert "kpy-node-1" in nodes.stdout, nodes.stdout + nodes.stderr
        assert "certificate-authority" not in config.read_text()
        assert not (tmp_path / "insecure" / "pki").exists()
        status = run("kpy", "status", "--dir", str(tmp_path / "insecure"))
        assert "INSECURE: " in status.stdout, status.stdout
        assert "can read every Secret" in status.stdout


SECRET_ON_NODE_2 = """
apiVersion: v1
kind: Secret
metadata: {name: two-only, namespace: default}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Pod
metadata: {name: on-two, namespace: default}
spec:
  nodeName: kpy-node-2
  containers: [{name: c, image: busybox, envFrom: [{secretRef: {name: two-only}}]}]
"""


def test_a_node_reads_and_writes_only_its_own(cluster: Path) -> None:
    """The node authorizer on a real cluster: each agent calls the API as
    system:node:<name> (its own kubeconfig), and node 1 may neither read
    the Secret of a pod bound to node 2 nor write that pod's status."""
    applied = run("kpyctl", "apply", "-f", "-", config=cluster, stdin=SECRET_ON_NODE_2)
    assert applied.returncode == 0, applied.stderr
    node = {n: cluster.parent / "kubeconfigs" / f"kpy-node-{n}.config" for n in (1, 2)}

    def node_2_reads_it() -> bool:  # once the pod is in the API server's node graph
        return run("kpyctl", "get", "secret", "two-only", config=node[2]).returncode == 0

    until(node_2_reads_it, "node 2 reading the Secret its pod uses")
    status = '{"status": {"message": "node 1 was here"}}'
    cases = [
        ("the Secret of a pod on node 2", ["get", "secret", "two-only"]),
        ("the status of a pod on node 2",
         ["patch", "pod", "on-two", "--subresource=status", "--type=merge", "-p", status]),
        ("node 2's Node", ["label", "node", "kpy-node-2", "owned=by-node-1"]),
    ]  # fmt: skip
    for name, words in cases:
        refused = run("kpyctl", *words, config=node[1])
        assert refused.returncode != 0, name
        assert "forbidden" in refused.stderr.lower(), f"{name}: {refused.stderr}"
        assert 'User "system:node:kpy-node-1"' in refused.stderr, f"{name}: {refused.stderr}"
    assert "node 1 was here" not in run("kpyctl", "get", "pod", "on-two", "-o", "yaml",
                                         config=cluster).stdout  # fmt: skip


def test_an_agent_answers_only_the_api_server(cluster: Path) -> None:
    """Straight to an agent's port: no certificate fails the handshake, a
    node's own certificate is refused; the API server's kubelet client
    certificate is what `kpyctl top` goes through."""
    # Port, capitalised: the JSON name Kubernetes gives the field.
    port = "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}"
    got = run("kpyctl", "get", "node", "kpy-node-1", "-o", port, config=cluster)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip().isdigit(), got.stdout
    target = f"127.0.0.1:{got.stdout.strip()}"
    pki_dir = cluster.parent / "pki"
    ca = (pki_dir / "ca.crt").read_bytes()
    node_cert = (pki_dir / "nodes" / "kpy-node-1.crt").read_bytes()
    node_key = (pki_dir / "nodes" / "kpy-node-1.key").read_bytes()
    callers = [
        ("no certificate", grpc.ssl_channel_credentials(ca), grpc.StatusCode.UNAVAILABLE),
        ("a node's certificate", grpc.ssl_channel_credentials(ca, node_key, node_cert),
         grpc.StatusCode.PERMISSION_DENIED),
    ]  # fmt: skip
    for name, credentials, code in callers:
        with grpc.secure_channel(target, credentials) as channel:
            stub = agent_pb2_grpc.AgentStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.Stats(apiserver_pb2.StatsRequest(node="kpy-node-1"), timeout=10)
            assert refused.value.code() is code, f"{name}: {refused.value}"
    top = run("kpyctl", "top", "node", config=cluster)
    assert top.returncode == 0, top.stdout + top.stderr
    assert "kpy-node-1" in top.stdout, top.stdout

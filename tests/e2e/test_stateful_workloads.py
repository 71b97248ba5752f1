"""Issue 18's checks as a user makes them: a three-node `kpy up` cluster
(process runtime, supervised) driven through kpyctl alone.

- The seed's `statefulset-web-with-service.yaml` asks for the StorageClass
  `my-storage-class`: without it, claim `www-web-0` stays Pending with an
  event naming the missing class. With the class made for the local-path
  provisioner (WaitForFirstConsumer), the same set with a command the
  process runtime can run (the seed's nginx image has no command, and the
  process runtime has no images) brings up web-0, web-1, web-2 in order,
  each on a Bound claim `www-web-N`. A file written into web-1's volume
  survives web-1's deletion (it comes back on its claim) and a scale to 0
  and back.
- A rolling update of a 3-replica StatefulSet with `partition: 1` updates
  web-2 and web-1 only; `kpyctl rollout undo` brings them back.
- The seed's `daemonset-fluentd.yaml` (with a command, likewise) runs one
  pod on each node, the node tainted `node-role.kubernetes.io/master:
  NoSchedule` (which it tolerates) included; a fourth node, added later
  with `kpy add-node`, gets one too (and its agent is the cluster's:
  killed, it is left down by the supervisor like any node's, started again
  by `kpy start-node`, stopped by `kpy down`).

One cluster for the module; every process the module starts is stopped by
its pid (the cluster's through `kpy down`, whose recorded pids are checked
gone afterwards).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kpy.cluster import local
from kpy.cluster.local import ClusterState, running
from tests.e2e._ports import cluster_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SEEDS = ROOT / "tests" / "data" / "seed-manifests"
LOOP = "        command: [sh, -c, 'while true; do sleep 1; done']\n"
MOUNT = "/usr/share/nginx/html"  # the seed's mountPath of claim `www`

pytestmark = [pytest.mark.timeout(300), pytest.mark.cluster]


def with_command(seed: str, image: str) -> str:
    """The seed manifest with a command the process runtime can run put
    after the container's `image` line."""
    text = (SEEDS / seed).read_text()
    line = f"        image: {image}\n"
    assert line in text, f"{seed} no longer has {line!r}"
    return text.replace(line, line + LOOP)


class Cluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KPY_")},
            "KPY_CONFIG": str(directory / "config"),
        }

    def run(self, *words: str, ns: str = "", stdin: str = "") -> subprocess.CompletedProcess[str]:
        flags = ["-n", ns] if ns else []
        cut = words.index("--") if "--" in words else len(words)  # exec's command comes last
        args = [str(BIN / "kpyctl"), *words[:cut], *flags, *words[cut:]]
        return subprocess.run(
            args, input=stdin, capture_output=True, text=True, env=self.env, timeout=120
        )

    def ok(self, *words: str, ns: str = "", stdin: str = "") -> str:
        done = self.run(*words, ns=ns, stdin=stdin)
        assert done.returncode == 0, f"kpyctl {' '.join(words)}: {done.stdout}{done.stderr}"
        return done.stdout

    def json(self, *words: str, ns: str = "") -> Any:
        return json.loads(self.ok("get", *words, "-o", "json", ns=ns))

    def pods(self, ns: str, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.json("pods", "-l", selector, ns=ns)["items"]
        return [p for p in items if "deletionTimestamp" not in p["metadata"]]

    def names(self, ns: str, selector: str) -> list[str]:
        """Every pod's name, those terminating included."""
        return self.ok("get", "pods", "-l", selector, "-o", "name", ns=ns).split()

    def namespace(self, name: str) -> str:
        self.ok("create", "namespace", name)
        return name


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("cluster")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPY_")}
    up = [
        *(str(BIN / "kpy"), "up", "--dir", str(directory), "--nodes", "3"),
        *("--runtime", "process", "--port", str(cluster_port())),
    ]
    try:
        started = subprocess.run(up, capture_output=True, text=True, timeout=180, env=env)
        assert started.returncode == 0, started.stdout + started.stderr
        yield Cluster(directory)
    finally:
        local.down(directory, progress=lambda _: None)
        after = ClusterState.load(directory)
        left = [] if after is None else [*after.members, *filter(None, [after.supervisor])]
        assert not any(running(m) for m in left), [m.name for m in left if running(m)]


def until(check: Callable[[], Any], what: str, seconds: float = 60.0) -> Any:
    """The first truthy result of `check`, polled; fails naming `what`."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {seconds:.0f} s (last: {last!r})")


def ready_at(pod: dict[str, Any]) -> str:
    """When the pod last became Ready (RFC 3339, UTC); '' if it is not."""
    for c in pod.get("status", {}).get("conditions", []):
        if c["type"] == "Ready" and c["status"] == "True":
            return str(c["lastTransitionTime"])
    return ""


def test_statefulset_waits_for_its_class_then_keeps_its_data(cluster: Cluster) -> None:
    ns = cluster.namespace("sts-data")
    seed = str(SEEDS / "statefulset-web-with-service.yaml")
    cluster.ok("apply", "-f", seed, ns=ns)

    def missing_class() -> str:
        text = cluster.ok("describe", "pvc", "www-web-0", ns=ns)
        return text if "ProvisioningFailed" in text else ""

    text = until(missing_class, "a ProvisioningFailed event on www-web-0")
    assert 'storageclass.storage.k8s.io "my-storage-class" not found' in text
    assert cluster.json("pvc", "www-web-0", ns=ns)["status"]["phase"] == "Pending"
    assert [p["metadata"]["name"] for p in cluster.pods(ns, "app=nginx")] == ["web-0"]

    # The same set with a command the process runtime can run, on the class.
    cluster.ok("delete", "statefulset", "web", ns=ns)
    cluster.ok(
        "apply",
        "-f",
        "-",
        stdin="apiVersion: storage.k8s.io/v1\nkind: StorageClass\n"
        "metadata: {name: my-storage-class}\n"
        "provisioner: kpy.io/local-path\nvolumeBindingMode: WaitForFirstConsumer\n",
    )
    local_set = with_command("statefulset-web-with-service.yaml", "k8s.gcr.io/nginx-slim:0.8")
    cluster.ok("apply", "-f", "-", ns=ns, stdin=local_set)
    cluster.ok("rollout", "status", "statefulset/web", "--timeout", "120", ns=ns)

    pods = sorted(cluster.pods(ns, "app=nginx"), key=lambda p: str(p["metadata"]["name"]))
    assert [p["metadata"]["name"] for p in pods] == ["web-0", "web-1", "web-2"]
    for before, after in itertools.pairwise(pods):
        # OrderedReady: web-N is made only once web-(N-1) is Ready.
        assert after["metadata"]["creationTimestamp"] >= ready_at(before), (before, after)
    for n, pod in enumerate(pods):
        # (ServiceAccount admission adds the kube-api-access projected volume too)
        volumes = pod["spec"]["volumes"]
        claims = [
            v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v
        ]
        assert claims == [f"www-web-{n}"]
        assert cluster.json("pvc", f"www-web-{n}", ns=ns)["status"]["phase"] == "Bound"

    cluster.ok("exec", "web-1", "--", "sh", "-c", f"echo hi > {MOUNT}/f", ns=ns)
    first = pods[1]["metadata"]["uid"]
    cluster.ok("delete", "pod", "web-1", ns=ns)

    def back() -> bool:
        again = [p for p in cluster.pods(ns, "app=nginx") if p["metadata"]["name"] == "web-1"]
        return bool(again) and again[0]["metadata"]["uid"] != first and bool(ready_at(again[0]))

    until(back, "web-1 back and Ready")
    assert cluster.ok("exec", "web-1", "--", "cat", f"{MOUNT}/f", ns=ns) == "hi\n"

    cluster.ok("scale", "statefulset/web", "--replicas=0", ns=ns)
    until(lambda: not cluster.names(ns, "app=nginx"), "every pod gone at 0 replicas")
    assert len(cluster.json("pvc", ns=ns)["items"]) == 3  # claims outlive their pods
    cluster.ok("scale", "statefulset/web", "--replicas=3", ns=ns)
    cluster.ok("rollout", "status", "statefulset/web", "--timeout", "120", ns=ns)
    assert cluster.ok("exec", "web-1", "--", "cat", f"{MOUNT}/f", ns=ns) == "hi\n"


PARTITIONED = """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: part}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 1}}
  template:
    metadata: {labels: {app: part}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: c
        image: kpy.local/busybox:1
        command: [sh, -c, 'while true; do sleep 1; done']
"""


def test_partitioned_rolling_update_and_undo(cluster: Cluster) -> None:
    ns = cluster.namespace("sts-partition")
    cluster.ok("apply", "-f", "-", ns=ns, stdin=PARTITIONED)
    cluster.ok("rollout", "status", "statefulset/web", "--timeout", "120", ns=ns)

    def images() -> dict[str, str]:
        return {
            p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
            for p in cluster.pods(ns, "app=part")
            if ready_at(p)
        }

    cluster.ok("set", "image", "statefulset/web", "c=kpy.local/busybox:2", ns=ns)
    updated = {"web-0": "kpy.local/busybox:1", "web-1": "kpy.local/busybox:2"}
    updated["web-2"] = "kpy.local/busybox:2"
    until(lambda: images() == updated, "web-2 and web-1 updated, web-0 not")
    status = cluster.json("statefulset", "web", ns=ns)["status"]
    assert status["currentRevision"] != status["updateRevision"]

    cluster.ok("rollout", "undo", "statefulset/web", ns=ns)
    until(
        lambda: set(images().values()) == {"kpy.local/busybox:1"} and len(images()) == 3,
        "every pod back on kpy.local/busybox:1",
    )
    history = cluster.ok("rollout", "history", "statefulset/web", ns=ns)
    assert [line.split()[0] for line in history.splitlines() if line[:1].isdigit()] == ["2", "3"]


def test_daemonset_on_every_node_and_a_later_one(cluster: Cluster) -> None:
    taint = "node-role.kubernetes.io/master=:NoSchedule"
    cluster.ok("taint", "nodes", "kpy-node-3", taint)
    daemons = with_command("daemonset-fluentd.yaml", "quay.io/fluentd_elasticsearch/fluentd:v2.5.2")
    cluster.ok("apply", "-f", "-", stdin=daemons)

    def nodes_with_pods(count: int) -> list[str]:
        pods = cluster.pods("kube-system", "name=fluentd-elasticsearch")
        nodes = sorted(p["spec"].get("nodeName", "") for p in pods if ready_at(p))
        return nodes if len(nodes) == count else []

    nodes = until(lambda: nodes_with_pods(3), "a Ready daemon pod on each of 3 nodes")
    assert nodes == ["kpy-node-1", "kpy-node-2", "kpy-node-3"]

    def kpy(*words: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "kpy"), *words, "--dir", str(cluster.directory)],
            capture_output=True,
            text=True,
            timeout=150,
            env={k: v for k, v in os.environ.items() if not k.startswith("KPY_")},
        )

    added = kpy("add-node")
    assert added.returncode == 0, added.stdout + added.stderr
    assert "node kpy-node-4 Ready" in added.stdout
    nodes = until(lambda: nodes_with_pods(4), "a Ready daemon pod on the fourth node")
    assert nodes == ["kpy-node-1", "kpy-node-2", "kpy-node-3", "kpy-node-4"]

    # The added agent is the cluster's like the others: recorded (so `kpy
    # down` stops it, checked by the fixture), and killed from outside it
    # stays down, the node lost, until `kpy start-node`.
    state = ClusterState.load(cluster.directory)
    assert state is not None
    assert "kpy-node-4" in state.nodes
    agent = state.member("kpy-agent-kpy-node-4")
    os.kill(agent.pid, signal.SIGKILL)

    def lost() -> bool:
        now = ClusterState.load(cluster.directory)
        assert now is not None
        return now.member("kpy-agent-kpy-node-4").held == "lost"

    until(lost, "kpy-agent-kpy-node-4 lost", seconds=30)
    time.sleep(2)  # past the supervisor's back-off: not restarted
    status = kpy("status")
    assert "kpy-node-4: agent stopped (killed by SIGKILL) at " in status.stdout, status.stdout
    started = kpy("start-node", "kpy-node-4")
    assert started.returncode == 0, started.stdout + started.stderr
    now = ClusterState.load(cluster.directory)
    assert now is not None
    again = now.member("kpy-agent-kpy-node-4")
    assert (again.held, again.restarts, running(again)) == ("", 1, True), again

    cluster.ok("delete", "daemonset", "fluentd-elasticsearch", ns="kube-system")
    cluster.ok("taint", "nodes", "kpy-node-3", "node-role.kubernetes.io/master:NoSchedule-")

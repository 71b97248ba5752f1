"""`kpyctl get` and `kpyctl describe` against the session's API server, run
as the user runs them: a kpyctl subprocess, asserting its stdout, stderr
and exit code. Independent invocations run concurrently to keep this
module fast. Each test works in its own namespace; the one test that
needs a Node and a scheduler starts `kpy-scheduler` with a scheduler name
of its own, and stops it (by pid) and deletes the Node when it ends."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import codec, errors
from kpy.api.apps.v1 import Deployment
from kpy.api.core.v1 import Endpoints, Event, Node, Pod, Secret, Service
from kpy.scheduler.process import SchedulerProcess

if TYPE_CHECKING:
    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client

pytestmark = pytest.mark.etcd

KPYCTL = [sys.executable, "-c", "import sys; from kpy.cli.main import main; sys.exit(main())"]


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    out: str
    err: str


async def kpyctl(apiserver: APIServerProcess, *args: str) -> Result:
    done = await anyio.run_process([*KPYCTL, *args, "--server", apiserver.address], check=False)
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


async def kpyctl_all(apiserver: APIServerProcess, *commands: list[str]) -> list[Result]:
    """Runs the commands concurrently; results in the order given."""
    results: list[Result | None] = [None] * len(commands)

    async def one(i: int, command: list[str]) -> None:
        results[i] = await kpyctl(apiserver, *command)

    async with anyio.create_task_group() as tg:
        for i, command in enumerate(commands):
            tg.start_soon(one, i, command)
    return [r for r in results if r is not None]


def words(text: str) -> list[str]:
    """Each line with its runs of spaces made one (alignment aside)."""
    return [" ".join(line.split()) for line in text.splitlines()]


def pod(name: str, *, labels: dict[str, str] | None = None, **spec: Any) -> Pod:
    container = {"name": "c", "image": "busybox"}
    return codec.from_dict(
        Pod,
        {
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [container], **spec},
        },
    )


async def test_get_pods_in_every_output(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    await client.create(pod("alpha", labels={"app": "web"}))
    await client.create(pod("beta"))
    (
        table,
        names,
        as_yaml,
        one_json,
        selected,
        everywhere,
        empty,
        unknown,
        missing,
    ) = await kpyctl_all(
        apiserver,
        ["get", "pods", "-n", ns],
        ["get", "po", "-n", ns, "-o", "name"],
        ["get", "pods", "-n", ns, "-o", "yaml"],
        ["get", "pod/beta", "-n", ns, "-o", "json"],
        ["get", "pods", "-n", ns, "-l", "app=web", "-o", "wide"],
        ["get", "pods", "-A"],
        ["get", "deployments.apps", "-n", ns],
        ["get", "xyz"],
        ["get", "pods", "nope", "alpha", "-n", ns, "-o", "name"],
    )
    assert (table.code, table.err) == (0, "")
    lines = table.out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[0].startswith("NAME    READY   STATUS    RESTARTS   AGE")
    assert [line.split()[:4] for line in lines[1:]] == [
        ["alpha", "0/1", "Pending", "0"],
        ["beta", "0/1", "Pending", "0"],
    ]

    assert (names.code, names.out) == (0, "pod/alpha\npod/beta\n")

    assert as_yaml.code == 0
    decoded = codec.load_manifest(as_yaml.out)
    assert [type(o) for o in decoded] == [Pod, Pod]
    assert [o.metadata.name for o in decoded] == ["alpha", "beta"]  # type: ignore[attr-defined]
    assert decoded[0].spec.containers[0].image == "busybox"  # type: ignore[attr-defined]

    assert one_json.code == 0
    [beta] = codec.load_manifest(one_json.out)
    assert isinstance(beta, Pod)
    assert (beta.metadata.name, beta.metadata.namespace) == ("beta", ns)

    assert selected.code == 0
    assert selected.out.splitlines()[0].split()[5:7] == ["IP", "NODE"]
    assert [line.split()[0] for line in selected.out.splitlines()[1:]] == ["alpha"]

    assert everywhere.code == 0
    assert everywhere.out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    mine = [line.split()[:2] for line in everywhere.out.splitlines() if line.startswith(ns)]
    assert mine == [[ns, "alpha"], [ns, "beta"]]

    assert (empty.code, empty.out, empty.err) == (0, "", f"No resources found in {ns} namespace.\n")
    assert (unknown.code, unknown.out) == (1, "")
    assert unknown.err == 'error: the server doesn\'t have a resource type "xyz"\n'
    assert (missing.code, missing.out) == (1, "pod/alpha\n")
    assert missing.err == 'Error from server (NotFound): pods "nope" not found\n'


async def test_get_deployments_columns(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]},
    }
    deployment = codec.from_dict(
        Deployment,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template,
            },
        },
    )
    await client.create(deployment)
    [result] = await kpyctl_all(apiserver, ["get", "deploy", "-n", api_namespace, "-o", "wide"])
    assert (result.code, result.err) == (0, "")
    header, row = result.out.splitlines()
    assert header.split() == [
        *("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"),
        *("CONTAINERS", "IMAGES", "SELECTOR"),
    ]
    cells = row.split()
    assert cells[:4] == ["web", "0/3", "0", "0"]
    assert cells[5:] == ["nginx", "nginx:1.25", "app=web"]


async def test_get_watch_prints_each_change(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    await client.create(pod("first"))
    command = [*KPYCTL, "get", "pods", "-w", "-n", api_namespace, "--server", apiserver.address]
    seen = ""
    async with await anyio.open_process(command) as process:
        assert process.stdout is not None
        try:
            with anyio.fail_after(10):
                async for chunk in process.stdout:
                    seen += chunk.decode()
                    if "first" in seen and "second" not in seen:
                        with contextlib.suppress(errors.AlreadyExists):
                            await client.create(pod("second"))
                    if "second" in seen and seen.endswith("\n"):
                        break
        finally:
            process.terminate()  # by its pid
            await process.wait()
    lines = seen.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[0] for line in lines[1:]] == ["first", "second"]
    assert lines[2].index("0/1") == lines[1].index("0/1")  # laid out under the table


async def test_describe_pod_with_its_events(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    tolerations = [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    created = await client.create(pod("web-0", labels={"app": "web"}, tolerations=tolerations))
    event = codec.from_dict(
        Event,
        {
            "metadata": {"name": "web-0.1", "namespace": api_namespace},
            "involvedObject": {"kind": "Pod", "name": "web-0", "uid": created.metadata.uid},
            "type": "Warning",
            "reason": "FailedScheduling",
            "message": "0/0 nodes are available",
            "source": {"component": "default-scheduler"},
            "count": 3,
            "firstTimestamp": "2020-01-01T00:00:00Z",
            "lastTimestamp": "2020-01-01T00:00:00Z",
        },
    )
    await client.create(event)
    other = codec.from_dict(
        Event,
        {
            "metadata": {"name": "web-0.2", "namespace": api_namespace},
            "involvedObject": {"kind": "Pod", "name": "web-0", "uid": "another-uid"},
            "reason": "NotMine",
        },
    )
    await client.create(other)
    described, missing = await kpyctl_all(
        apiserver,
        ["describe", "pods", "web-0", "-n", api_namespace, "--scheduler", "127.0.0.1:1"],
        ["describe", "pod", "nope", "-n", api_namespace],
    )
    assert (described.code, described.err) == (0, "")
    text = described.out
    assert text.startswith(
        f"Name:             web-0\nNamespace:        {api_namespace}\nPriority:         0\n"
        "Service Account:  default\nNode:             <none>\n"
    ), text
    lines = words(text)
    for expected in (
        "Labels: app=web",
        "Node: <none>",
        "Status: Pending",
        "Image: busybox",
        "Tolerations: gpu:NoSchedule op=Exists",
        "Type Reason Age From Message",
    ):
        assert expected in lines, (expected, text)
    [event_line] = [line for line in lines if "FailedScheduling" in line]
    assert event_line.startswith("Warning FailedScheduling ")
    assert "(x3 over " in event_line
    assert event_line.endswith(" default-scheduler 0/0 nodes are available")
    assert "NotMine" not in text
    assert "Scheduler:  could not ask the scheduler at 127.0.0.1:1 (UNAVAILABLE" in text

    assert (missing.code, missing.out) == (1, "")
    assert missing.err == 'Error from server (NotFound): pods "nope" not found\n'


async def test_describe_pending_pod_shows_the_schedulers_reasons(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    sched = f"s-{api_namespace}"
    node_name = f"{api_namespace[:40]}-tiny"
    node = codec.from_dict(Node, {"metadata": {"name": node_name}})
    created = await client.create(node)
    created.status.CopyFrom(
        codec.from_dict(
            Node,
            {
                "status": {
                    "allocatable": {"cpu": "100m", "memory": "1Gi", "pods": "110"},
                    "capacity": {"cpu": "100m", "memory": "1Gi", "pods": "110"},
                    "conditions": [{"type": "Ready", "status": "True"}],
                }
            },
        ).status
    )
    await client.update_status(created)
    scheduler = SchedulerProcess(
        apiserver.address,
        extra_args=(f"--scheduler-name={sched}", "--no-leader-elect"),
    )
    try:
        await anyio.to_thread.run_sync(scheduler.start)
        pid = scheduler.pid
        greedy = pod("greedy", schedulerName=sched)
        greedy.spec.containers[0].resources.requests["cpu"].string = "1000"
        await client.create(greedy)
        command = ["describe", "pod", "greedy", "-n", api_namespace]
        command += ["--scheduler", scheduler.explain_address]
        with anyio.fail_after(10):
            while True:
                [result] = await kpyctl_all(apiserver, command)
                if node_name in result.out:
                    break
                await anyio.sleep(0.2)  # the scheduler's cache has not seen the pod yet
        node_text = await kpyctl_all(apiserver, ["describe", "node", node_name])
    finally:
        await anyio.to_thread.run_sync(scheduler.stop)  # SIGTERM to its pid
        scheduler.log_path.unlink(missing_ok=True)
        with contextlib.suppress(errors.NotFound):
            await client.delete(Node, node_name)
    assert not await anyio.Path(f"/proc/{pid}").exists()
    assert result.code == 0
    assert f"Scheduler ({scheduler.explain_address}):\n" in result.out
    [line] = [line for line in result.out.splitlines() if node_name in line]
    assert line.split()[1:] == ["no", "NodeResourcesFit:", "Insufficient", "cpu"]
    lines = words(result.out)
    assert any(line.startswith("Message: 0/") and "Insufficient cpu" in line for line in lines)
    assert "cpu: 1k" in lines or "cpu: 1000" in lines  # under Requests

    [described_node] = node_text
    assert described_node.code == 0
    node_lines = words(described_node.out)
    for expected in (
        f"Name: {node_name}",
        "Taints: <none>",
        "Unschedulable: false",
        "Allocatable:",
        "cpu: 100m",
        "Non-terminated Pods: (0 in total)",
        "Ready True",
    ):
        assert expected in node_lines, (expected, described_node.out)


async def test_get_several_types_templates_and_columns(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    await client.create(pod("beta", labels={"app": "db", "order": "2"}))
    await client.create(pod("alpha", labels={"app": "web", "tier": "fe", "order": "10"}))
    service = codec.from_dict(
        Service,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]},
        },
    )
    await client.create(service)
    each = '{range .items[*]}{.metadata.name}{"\\t"}{.metadata.labels.app}{"\\n"}{end}'
    (
        two_types,
        everything,
        names,
        one_name,
        ranged,
        filtered,
        columns,
        labels,
        label_columns,
        sorted_rows,
        by_creation,
        kinds,
        no_headers,
        two_types_no_headers,
        bad_output,
    ) = await kpyctl_all(
        apiserver,
        ["get", "pods,svc", "-n", ns],
        ["get", "all", "-n", ns],
        ["get", "pods", "-n", ns, "-o", "jsonpath={.items[*].metadata.name}"],
        ["get", "pod", "alpha", "-n", ns, "-o=jsonpath={.metadata.name} {.kind}"],
        ["get", "pods", "-n", ns, "-o", f"jsonpath={each}"],
        [
            "get",
            "pods",
            "-n",
            ns,
            "-o",
            'jsonpath={.items[?(@.metadata.labels.app=="db")].metadata.name}',
        ],
        [
            "get",
            "pods",
            "-n",
            ns,
            "-o",
            "custom-columns=NAME:.metadata.name,APP:.metadata.labels.app,NODE:.spec.nodeName",
        ],
        ["get", "pods", "-n", ns, "--show-labels"],
        ["get", "pods", "-n", ns, "-L", "app,tier"],
        ["get", "pods", "-n", ns, "--sort-by=.metadata.labels.order", "-o", "name"],
        ["get", "pods", "-n", ns, "--sort-by=.metadata.creationTimestamp"],
        ["get", "pod/alpha", "svc/web", "-n", ns, "-o", "name"],
        ["get", "pods", "-n", ns, "--no-headers"],
        ["get", "pods,svc", "-n", ns, "--no-headers"],
        ["get", "pods", "-n", ns, "-o", "xml"],
    )
    assert (two_types.code, two_types.err) == (0, "")
    pods_table, services_table = two_types.out.split("\n\n")
    assert words(pods_table)[0] == "NAME READY STATUS RESTARTS AGE"
    assert [line.split()[0] for line in pods_table.splitlines()[1:]] == ["pod/alpha", "pod/beta"]
    assert words(services_table)[0] == "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE"
    assert services_table.splitlines()[1].split()[0] == "service/web"
    assert "80/TCP" in services_table

    assert (everything.code, everything.err) == (0, "")
    assert [t.splitlines()[1].split()[0] for t in everything.out.split("\n\n")] == [
        "pod/alpha",
        "service/web",
    ]

    assert (names.code, names.out) == (0, "alpha beta")
    assert (one_name.code, one_name.out) == (0, "alpha Pod")
    assert ranged.out == "alpha\tweb\nbeta\tdb\n"
    assert filtered.out == "beta"

    assert columns.code == 0
    assert words(columns.out) == ["NAME APP NODE", "alpha web <none>", "beta db <none>"]

    assert words(labels.out)[0] == "NAME READY STATUS RESTARTS AGE LABELS"
    assert labels.out.splitlines()[1].split()[-1] == "app=web,order=10,tier=fe"

    assert words(label_columns.out)[0] == "NAME READY STATUS RESTARTS AGE APP TIER"
    assert label_columns.out.splitlines()[1].split()[-2:] == ["web", "fe"]
    assert label_columns.out.splitlines()[2].split()[-1] == "db"  # beta has no tier

    assert sorted_rows.out == "pod/beta\npod/alpha\n"  # 2 before 10
    assert by_creation.code == 0
    assert sorted(line.split()[0] for line in by_creation.out.splitlines()[1:]) == ["alpha", "beta"]
    assert (kinds.code, kinds.out) == (0, "pod/alpha\nservice/web\n")
    assert [line.split()[0] for line in no_headers.out.splitlines()] == ["alpha", "beta"]
    assert [line.split()[0] for line in two_types_no_headers.out.splitlines()] == [
        "pod/alpha",
        "pod/beta",
        "service/web",
    ]
    assert bad_output.code == 1
    assert bad_output.err.startswith(
        'error: unable to match a printer suitable for the output format "xml"'
    )


async def test_api_resources_lists_every_served_kind(apiserver: APIServerProcess) -> None:
    listed, cluster_scoped = await kpyctl_all(
        apiserver, ["api-resources"], ["api-resources", "--namespaced=false", "-o", "name"]
    )
    assert listed.code == 0
    lines = words(listed.out)
    assert lines[0] == "NAME SHORTNAMES APIVERSION NAMESPACED KIND"
    for expected in (
        "pods po v1 true Pod",
        "deployments deploy apps/v1 true Deployment",
        "jobs batch/v1 true Job",
        "leases coordination.k8s.io/v1 true Lease",
        "horizontalpodautoscalers hpa autoscaling/v2 true HorizontalPodAutoscaler",
    ):
        assert expected in lines, (expected, listed.out)
    assert "nodes" in cluster_scoped.out.split()
    assert "pods" not in cluster_scoped.out.split()


async def test_describe_pod_containers_as_kubectl(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    container = {
        "name": "app",
        "image": "busybox",
        "command": ["sh", "-c", "sleep 1000"],
        "env": [
            {"name": "PLAIN", "value": "x"},
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
            {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True}],
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
        "livenessProbe": {"exec": {"command": ["true"]}},
    }
    created = await client.create(
        codec.from_dict(
            Pod,
            {
                "metadata": {"name": "full"},
                "spec": {
                    "nodeName": "somewhere",
                    "containers": [container],
                    "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
                },
            },
        )
    )
    created.status.CopyFrom(
        codec.from_dict(
            Pod,
            {
                "status": {
                    "phase": "Running",
                    "containerStatuses": [
                        {
                            "name": "app",
                            "image": "busybox",
                            "imageID": "sha256:feed",
                            "containerID": "process://42",
                            "restartCount": 2,
                            "state": {
                                "waiting": {
                                    "reason": "CrashLoopBackOff",
                                    "message": "back-off 20s restarting failed container",
                                }
                            },
                            "lastState": {
                                "terminated": {
                                    "exitCode": 1,
                                    "reason": "Error",
                                    "startedAt": "2024-01-01T00:00:00Z",
                                    "finishedAt": "2024-01-01T00:00:01Z",
                                }
                            },
                        }
                    ],
                }
            },
        ).status
    )
    await client.update_status(created)
    [described] = await kpyctl_all(apiserver, ["describe", "pod", "full", "-n", api_namespace])
    assert (described.code, described.err) == (0, ""), described.err
    lines = words(described.out)
    for expected in (
        "Container ID: process://42",
        "Image: busybox",
        "Image ID: sha256:feed",
        "Command:",
        "sleep 1000",
        "State: Waiting",
        "Reason: CrashLoopBackOff",
        "Message: back-off 20s restarting failed container",
        "Last State: Terminated",
        "Exit Code: 1",
        "Ready: False",
        "Restart Count: 2",
        "cpu: 500m",
        "memory: 64Mi",
        "PLAIN: x",
        "FROM_CM: <set to the key 'k' of config map 'cfg'> Optional: false",
        "ME: full (v1:metadata.name)",
        "/etc/cfg from cfg (ro)",
        "Type: ConfigMap (a volume populated by a ConfigMap)",
        "QoS Class: Guaranteed",  # requests default to the limits
    ):
        assert expected in lines, (expected, described.out)
    assert any(line.startswith("Liveness: exec [true] delay=0s") for line in lines), described.out
    assert not any(line.startswith("Scheduler") for line in lines)  # it has a node


async def test_describe_deployment_shows_its_pod_template(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]},
    }
    await client.create(
        codec.from_dict(
            Deployment,
            {
                "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template},
            },
        )
    )
    [described] = await kpyctl_all(apiserver, ["describe", "deploy", "web", "-n", api_namespace])
    assert described.code == 0, described.err
    assert "Pod Template:\n  Labels:  app=web\n  Containers:\n   nginx:\n" in described.out, (
        described.out
    )
    lines = words(described.out)
    assert "Image: nginx:1.25" in lines
    assert "Volumes: <none>" in lines


async def test_describe_service_and_secret(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    await client.create(
        codec.from_dict(
            Service,
            {
                "metadata": {"name": "web"},
                "spec": {
                    "selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                },
            },
        )
    )
    await client.create(
        codec.from_dict(
            Endpoints,
            {
                "metadata": {"name": "web"},
                "subsets": [
                    {"addresses": [{"ip": "127.1.0.9"}], "ports": [{"name": "http", "port": 8080}]}
                ],
            },
        )
    )
    await client.create(
        codec.from_dict(Secret, {"metadata": {"name": "s"}, "stringData": {"password": "secret"}})
    )
    service, secret = await kpyctl_all(
        apiserver,
        ["describe", "svc", "web", "-n", api_namespace],
        ["describe", "secret", "s", "-n", api_namespace],
    )
    assert service.code == 0, service.err
    lines = words(service.out)
    for expected in (
        "Selector: app=web",
        "Port: http 80/TCP",
        "TargetPort: 8080/TCP",
        "Endpoints: 127.1.0.9:8080",
        "Events: <none>",
    ):
        assert expected in lines, (expected, service.out)
    assert secret.code == 0, secret.err
    assert "password: 6 bytes" in words(secret.out)
    assert "secret\n" not in secret.out
    assert "Events" not in secret.out

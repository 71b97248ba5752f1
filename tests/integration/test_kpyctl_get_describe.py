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
from kpy.api.core.v1 import Event, Node, Pod
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
    assert text.startswith(f"Name:               web-0\nNamespace:          {api_namespace}\n")
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

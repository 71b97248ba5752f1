"""kpyctl's printers: ages, pod STATUS, the columns per kind and the
tabwriter layout, against kubectl's own output for the same objects."""

from __future__ import annotations

from typing import Any

import pytest

from kpy.api.apps.v1 import Deployment, ReplicaSet
from kpy.api.codec import from_dict
from kpy.api.core.v1 import ConfigMap, Event, Namespace, Node, Pod, Service, Toleration
from kpy.cli import _printers
from kpy.cli.describe import format_explain, toleration
from kpy.rpc.scheduler import v1 as rpc

NOW = 1_700_000_000.0


def ts(seconds_ago: float) -> str:
    from google.protobuf.timestamp_pb2 import Timestamp

    t = Timestamp()
    t.FromNanoseconds(int((NOW - seconds_ago) * 1e9))
    return t.ToJsonString()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (9 * 60 + 59, "9m59s"),
        (10 * 60 + 30, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 20 * 60, "3h20m"),
        (8 * 3600 + 20 * 60, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (4 * 86400 + 5 * 3600, "4d5h"),
        (30 * 86400, "30d"),
        (3 * 365 * 86400, "3y"),
        (3 * 365 * 86400 + 10 * 86400, "3y10d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert _printers.human_duration(seconds) == text


def test_age_of_unset_timestamp_is_unknown() -> None:
    assert _printers.age(Pod().metadata.creation_timestamp, NOW) == "<unknown>"


def _pod(status: dict[str, Any], *, deleting: bool = False, **spec: Any) -> Pod:
    meta: dict[str, Any] = {"name": "web-0", "namespace": "default", "creationTimestamp": ts(300)}
    if deleting:
        meta["deletionTimestamp"] = ts(1)
    containers = [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}]
    return from_dict(
        Pod, {"metadata": meta, "spec": {"containers": containers, **spec}, "status": status}
    )


RUNNING = {"running": {"startedAt": ts(200)}}
WAITING_CREATE = {"waiting": {"reason": "ContainerCreating"}}
CRASH = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}
DONE = {"terminated": {"exitCode": 0, "reason": "Completed"}}


def _cs(name: str, state: dict[str, Any], *, ready: bool = False, restarts: int = 0) -> Any:
    return {"name": name, "state": state, "ready": ready, "restartCount": restarts}


POD_CASES = [
    ("pending, no statuses", {"phase": "Pending"}, {}, False, ("Pending", 0, 0)),
    (
        "creating",
        {"phase": "Pending", "containerStatuses": [_cs("a", WAITING_CREATE), _cs("b", RUNNING)]},
        {},
        False,
        ("ContainerCreating", 0, 0),
    ),
    (
        "running, both ready",
        {
            "phase": "Running",
            "containerStatuses": [
                _cs("a", RUNNING, ready=True),
                _cs("b", RUNNING, ready=True, restarts=2),
            ],
        },
        {},
        False,
        ("Running", 2, 2),
    ),
    (
        "crash loop wins over running",
        {
            "phase": "Running",
            "containerStatuses": [
                _cs("a", CRASH, restarts=4),
                _cs("b", RUNNING, ready=True),
            ],
        },
        {},
        False,
        ("CrashLoopBackOff", 1, 4),
    ),
    (
        "completed",
        {"phase": "Succeeded", "containerStatuses": [_cs("a", DONE), _cs("b", DONE)]},
        {},
        False,
        ("Completed", 0, 0),
    ),
    (
        "exit code without reason",
        {"phase": "Failed", "containerStatuses": [_cs("a", {"terminated": {"exitCode": 3}})]},
        {},
        False,
        ("ExitCode:3", 0, 0),
    ),
    (
        "init container running",
        {
            "phase": "Pending",
            "initContainerStatuses": [_cs("init", RUNNING)],
            "containerStatuses": [_cs("a", {"waiting": {"reason": "PodInitializing"}})],
        },
        {"initContainers": [{"name": "init", "image": "busybox"}]},
        False,
        ("Init:0/1", 0, 0),
    ),
    (
        "init container crashing",
        {"phase": "Pending", "initContainerStatuses": [_cs("init", CRASH, restarts=3)]},
        {"initContainers": [{"name": "init", "image": "busybox"}]},
        False,
        ("Init:CrashLoopBackOff", 0, 3),
    ),
    (
        "terminating",
        {"phase": "Running", "containerStatuses": [_cs("a", RUNNING, ready=True)]},
        {},
        True,
        ("Terminating", 1, 0),
    ),
    ("evicted reason", {"phase": "Failed", "reason": "Evicted"}, {}, False, ("Evicted", 0, 0)),
]


@pytest.mark.parametrize(
    ("status", "spec", "deleting", "want"),
    [c[1:] for c in POD_CASES],
    ids=[c[0] for c in POD_CASES],
)
def test_pod_status(
    status: dict[str, Any], spec: dict[str, Any], deleting: bool, want: tuple[str, int, int]
) -> None:
    got = _printers.pod_status(_pod(status, deleting=deleting, **spec))
    assert got[:3] == want


def test_pod_row_with_wide_columns_and_last_restart() -> None:
    pod = _pod(
        {
            "phase": "Running",
            "podIP": "10.1.0.5",
            "containerStatuses": [
                _cs("a", RUNNING, ready=True),
                {
                    **_cs("b", RUNNING, ready=True, restarts=1),
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": ts(90)}},
                },
            ],
        },
        nodeName="node-1",
    )
    rows = _printers.table("Pod", [pod], NOW, wide=True)
    wide = ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    assert rows == [
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", *wide],
        ["web-0", "2/2", "Running", "1 (90s ago)", "5m", "10.1.0.5", "node-1", "<none>", "<none>"],
    ]
    assert _printers.table("Pod", [pod], NOW)[1] == ["web-0", "2/2", "Running", "1 (90s ago)", "5m"]


def _meta(name: str = "web", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "creationTimestamp": ts(5 * 3600), **extra}


TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]},
}

ROW_CASES: list[tuple[str, Any, list[str], list[str]]] = [
    (
        "deployment",
        from_dict(
            Deployment,
            {
                "metadata": _meta(),
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": TEMPLATE,
                },
                "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
            },
        ),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ["web", "2/3", "3", "2", "5h"],
    ),
    (
        "replicaset",
        from_dict(
            ReplicaSet,
            {
                "metadata": _meta("web-5d9c"),
                "spec": {"replicas": 3, "template": TEMPLATE},
                "status": {"replicas": 3, "readyReplicas": 1},
            },
        ),
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ["web-5d9c", "3", "3", "1", "5h"],
    ),
    (
        "node ready, cordoned, with a role",
        from_dict(
            Node,
            {
                "metadata": {
                    "name": "n1",
                    "creationTimestamp": ts(4 * 86400),
                    "labels": {"node-role.kubernetes.io/control-plane": ""},
                },
                "spec": {"unschedulable": True},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "nodeInfo": {"kubeletVersion": "v1.31.0"},
                },
            },
        ),
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        ["n1", "Ready,SchedulingDisabled", "control-plane", "4d", "v1.31.0"],
    ),
    (
        "node not ready",
        from_dict(
            Node,
            {
                "metadata": {"name": "n2", "creationTimestamp": ts(30)},
                "status": {"conditions": [{"type": "Ready", "status": "False"}]},
            },
        ),
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        ["n2", "NotReady", "<none>", "30s", ""],
    ),
    (
        "service",
        from_dict(
            Service,
            {
                "metadata": _meta(),
                "spec": {
                    "type": "NodePort",
                    "clusterIP": "10.96.0.10",
                    "ports": [
                        {"port": 80, "nodePort": 30080, "protocol": "TCP"},
                        {"port": 53, "protocol": "UDP"},
                    ],
                },
            },
        ),
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        ["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "5h"],
    ),
    (
        "load balancer without ingress",
        from_dict(Service, {"metadata": _meta(), "spec": {"type": "LoadBalancer"}}),
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        ["web", "LoadBalancer", "<none>", "<pending>", "<none>", "5h"],
    ),
    (
        "namespace",
        from_dict(
            Namespace,
            {"metadata": {"name": "prod", "creationTimestamp": ts(65)}, "status": {"phase": ""}},
        ),
        ["NAME", "STATUS", "AGE"],
        ["prod", "Active", "65s"],
    ),
    (
        "event",
        from_dict(
            Event,
            {
                "metadata": _meta("web-0.17a"),
                "involvedObject": {"kind": "Pod", "name": "web-0"},
                "type": "Warning",
                "reason": "FailedScheduling",
                "message": "0/1 nodes are available",
                "lastTimestamp": ts(42),
            },
        ),
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        ["42s", "Warning", "FailedScheduling", "pod/web-0", "0/1 nodes are available"],
    ),
    (
        "generic",
        from_dict(ConfigMap, {"metadata": _meta("x")}),
        ["NAME", "AGE"],
        ["x", "5h"],
    ),
]


@pytest.mark.parametrize(
    ("obj", "header", "row"), [c[1:] for c in ROW_CASES], ids=[c[0] for c in ROW_CASES]
)
def test_columns_per_kind(obj: Any, header: list[str], row: list[str]) -> None:
    assert _printers.table(type(obj).DESCRIPTOR.name, [obj], NOW) == [header, row]


def test_namespace_column_comes_first() -> None:
    pod = _pod({"phase": "Pending"})
    rows = _printers.table("Pod", [pod], NOW, namespace_column=True)
    assert rows[0][:2] == ["NAMESPACE", "NAME"]
    assert rows[1][:2] == ["default", "web-0"]


def test_tabulate_aligns_like_kubectl() -> None:
    rows = [
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ["web-0", "1/1", "Running", "0", "5m"],
        ["a-much-longer-name", "0/1", "Pending", "0", "2s"],
    ]
    assert _printers.tabulate(rows) == (
        "NAME                 READY   STATUS    RESTARTS   AGE\n"
        "web-0                1/1     Running   0          5m\n"
        "a-much-longer-name   0/1     Pending   0          2s\n"
    )
    widths = _printers.table_widths(rows)
    assert _printers.pad_row(["x", "0/1", "Pending", "0", "1s"], widths) == (
        "x                    0/1     Pending   0          1s\n"
    )


def test_tabulate_aligns_each_block_on_its_own() -> None:
    rows = [["Name:", "web-0"], ["Namespace:", "default"], ["Containers:"], ["  a:", "b"]]
    assert _printers.tabulate(rows, padding=2, min_width=0) == (
        "Name:       web-0\nNamespace:  default\nContainers:\n  a:  b\n"
    )


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ({"operator": "Exists"}, "op=Exists"),
        ({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}, "gpu:NoSchedule op=Exists"),
        ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}, "k=v:NoSchedule"),
        (
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            "node.kubernetes.io/not-ready:NoExecute op=Exists for 300s",
        ),
    ],
)
def test_toleration_line(spec: dict[str, Any], text: str) -> None:
    assert toleration(from_dict(Toleration, spec)) == text


def test_explain_lists_each_node_with_its_reasons() -> None:
    answer = rpc.ExplainResponse(
        message="0/2 nodes are available: 1 Insufficient cpu.",
        nodes=[
            rpc.NodeResult(node="big", feasible=True, score=87),
            rpc.NodeResult(node="tiny", plugin="NodeResourcesFit", reasons=["Insufficient cpu"]),
        ],
    )
    assert format_explain(answer, "127.0.0.1:1") == (
        "Scheduler (127.0.0.1:1):\n"
        "  Message:  0/2 nodes are available: 1 Insufficient cpu.\n"
        "  Node      Fits  Reasons\n"
        "  ----      ----  -------\n"
        "  big       yes   score 87\n"
        "  tiny      no    NodeResourcesFit: Insufficient cpu\n"
    )

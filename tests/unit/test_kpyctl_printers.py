"""kpyctl's printers: ages, pod STATUS, the columns per kind and the
tabwriter layout, against kubectl's own output for the same objects."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api.apps.v1 import ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet
from kpy.api.autoscaling.v2 import HorizontalPodAutoscaler
from kpy.api.batch.v1 import CronJob, Job
from kpy.api.codec import from_dict
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import (
    ConfigMap,
    ContainerStatus,
    Endpoints,
    Event,
    Namespace,
    Node,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
    ReplicationController,
    Secret,
    Service,
    Toleration,
)
from kpy.api.policy.v1 import PodDisruptionBudget
from kpy.api.scheme import scheme
from kpy.api.storage.v1 import StorageClass
from kpy.api.unstructured import is_custom
from kpy.cli import _columns, _describe_pod, _printers, api_resources, describe, get
from kpy.cli import _jsonpath as jsonpath
from kpy.cli._manifests import UsageError
from kpy.cli.describe import format_explain, toleration
from kpy.rpc.scheduler import v1 as rpc

if TYPE_CHECKING:
    from collections.abc import Iterator

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


TEMPLATE: dict[str, Any] = {
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
        "configmap counts data and binaryData",
        from_dict(
            ConfigMap, {"metadata": _meta("x"), "data": {"a": "1"}, "binaryData": {"b": "AA=="}}
        ),
        ["NAME", "DATA", "AGE"],
        ["x", "2", "5h"],
    ),
    (
        "secret",
        from_dict(
            Secret,
            {"metadata": _meta("tls"), "type": "kubernetes.io/tls", "data": {"a": "AA=="}},
        ),
        ["NAME", "TYPE", "DATA", "AGE"],
        ["tls", "kubernetes.io/tls", "1", "5h"],
    ),
    (
        "secret without a type is Opaque",
        from_dict(Secret, {"metadata": _meta("s")}),
        ["NAME", "TYPE", "DATA", "AGE"],
        ["s", "Opaque", "0", "5h"],
    ),
    (
        "replication controller",
        from_dict(
            ReplicationController,
            {
                "metadata": _meta("rc"),
                "spec": {"replicas": 2, "selector": {"app": "web"}, "template": TEMPLATE},
                "status": {"replicas": 2, "readyReplicas": 1},
            },
        ),
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ["rc", "2", "2", "1", "5h"],
    ),
    (
        "statefulset",
        from_dict(
            StatefulSet,
            {
                "metadata": _meta("db"),
                "spec": {"replicas": 3, "template": TEMPLATE},
                "status": {"readyReplicas": 2},
            },
        ),
        ["NAME", "READY", "AGE"],
        ["db", "2/3", "5h"],
    ),
    (
        "daemonset",
        from_dict(
            DaemonSet,
            {
                "metadata": _meta("agent"),
                "spec": {
                    "template": {
                        **TEMPLATE,
                        "spec": {**TEMPLATE["spec"], "nodeSelector": {"disk": "ssd"}},
                    }
                },
                "status": {
                    "desiredNumberScheduled": 3,
                    "currentNumberScheduled": 3,
                    "numberReady": 2,
                    "updatedNumberScheduled": 3,
                    "numberAvailable": 2,
                },
            },
        ),
        ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
        ["agent", "3", "3", "2", "3", "2", "disk=ssd", "5h"],
    ),
    (
        "job complete",
        from_dict(
            Job,
            {
                "metadata": _meta("pi"),
                "spec": {"completions": 1, "template": TEMPLATE},
                "status": {
                    "succeeded": 1,
                    "startTime": ts(600),
                    "completionTime": ts(590),
                    "conditions": [{"type": "Complete", "status": "True"}],
                },
            },
        ),
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        ["pi", "Complete", "1/1", "10s", "5h"],
    ),
    (
        "job running, a work queue",
        from_dict(
            Job,
            {
                "metadata": _meta("q"),
                "spec": {"parallelism": 3, "template": TEMPLATE},
                "status": {"startTime": ts(65)},
            },
        ),
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        ["q", "Running", "0/1 of 3", "65s", "5h"],
    ),
    (
        "cronjob",
        from_dict(
            CronJob,
            {
                "metadata": _meta("backup"),
                "spec": {
                    "schedule": "*/5 * * * *",
                    "suspend": False,
                    "jobTemplate": {"spec": {"template": TEMPLATE}},
                },
                "status": {"lastScheduleTime": ts(120), "active": [{"name": "backup-1"}]},
            },
        ),
        ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
        ["backup", "*/5 * * * *", "<none>", "False", "1", "2m", "5h"],
    ),
    (
        "endpoints, more than three",
        from_dict(
            Endpoints,
            {
                "metadata": _meta(),
                "subsets": [
                    {
                        "addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 4)],
                        "ports": [{"port": 80}, {"port": 443}],
                    }
                ],
            },
        ),
        ["NAME", "ENDPOINTS", "AGE"],
        ["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 3 more...", "5h"],
    ),
    (
        "endpoints, none",
        from_dict(Endpoints, {"metadata": _meta()}),
        ["NAME", "ENDPOINTS", "AGE"],
        ["web", "<none>", "5h"],
    ),
    (
        "persistent volume",
        from_dict(
            PersistentVolume,
            {
                "metadata": {"name": "pv1", "creationTimestamp": ts(60)},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "claimRef": {"namespace": "default", "name": "data"},
                    "storageClassName": "local",
                },
                "status": {"phase": "Bound"},
            },
        ),
        [
            *("NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM"),
            *("STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"),
        ],
        ["pv1", "1Gi", "RWO,ROX", "Retain", "Bound", "default/data", "local", "<unset>", "", "60s"],
    ),
    (
        "persistent volume claim, bound",
        from_dict(
            PersistentVolumeClaim,
            {
                "metadata": _meta("data"),
                "spec": {"volumeName": "pv1", "storageClassName": "local"},
                "status": {
                    "phase": "Bound",
                    "accessModes": ["ReadWriteOnce"],
                    "capacity": {"storage": "1Gi"},
                },
            },
        ),
        [
            *("NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS"),
            *("VOLUMEATTRIBUTESCLASS", "AGE"),
        ],
        ["data", "Bound", "pv1", "1Gi", "RWO", "local", "<unset>", "5h"],
    ),
    (
        "storage class, the default",
        from_dict(
            StorageClass,
            {
                "metadata": {
                    "name": "local",
                    "creationTimestamp": ts(60),
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "kpy.io/local",
                "volumeBindingMode": "WaitForFirstConsumer",
            },
        ),
        [
            *("NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE"),
            *("ALLOWVOLUMEEXPANSION", "AGE"),
        ],
        ["local (default)", "kpy.io/local", "Delete", "WaitForFirstConsumer", "false", "60s"],
    ),
    (
        "lease",
        from_dict(Lease, {"metadata": _meta("n1"), "spec": {"holderIdentity": "n1"}}),
        ["NAME", "HOLDER", "AGE"],
        ["n1", "n1", "5h"],
    ),
    (
        "hpa measured",
        from_dict(
            HorizontalPodAutoscaler,
            {
                "metadata": _meta(),
                "spec": {
                    "scaleTargetRef": {"kind": "Deployment", "name": "web"},
                    "minReplicas": 1,
                    "maxReplicas": 5,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": 80},
                            },
                        }
                    ],
                },
                "status": {
                    "currentReplicas": 2,
                    "currentMetrics": [
                        {
                            "type": "Resource",
                            "resource": {"name": "cpu", "current": {"averageUtilization": 40}},
                        }
                    ],
                },
            },
        ),
        ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"],
        ["web", "Deployment/web", "cpu: 40%/80%", "1", "5", "2", "5h"],
    ),
    (
        "hpa not yet measured",
        from_dict(
            HorizontalPodAutoscaler,
            {
                "metadata": _meta(),
                "spec": {
                    "scaleTargetRef": {"kind": "Deployment", "name": "web"},
                    "maxReplicas": 5,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "memory",
                                "target": {"type": "AverageValue", "averageValue": "100Mi"},
                            },
                        }
                    ],
                },
            },
        ),
        ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"],
        ["web", "Deployment/web", "memory: <unknown>/100Mi", "<unset>", "5", "0", "5h"],
    ),
    (
        "controller revision",
        from_dict(
            ControllerRevision,
            {
                "metadata": _meta(
                    "agent-7f9",
                    ownerReferences=[
                        {
                            "apiVersion": "apps/v1",
                            "kind": "DaemonSet",
                            "name": "agent",
                            "uid": "u",
                            "controller": True,
                        }
                    ],
                ),
                "revision": 2,
            },
        ),
        ["NAME", "CONTROLLER", "REVISION", "AGE"],
        ["agent-7f9", "daemonset.apps/agent", "2", "5h"],
    ),
    (
        "pdb minAvailable",
        from_dict(
            PodDisruptionBudget,
            {"metadata": _meta(), "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}},
        ),
        ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"],
        ["web", "2", "N/A", "1", "5h"],
    ),
    (
        "pdb maxUnavailable percent",
        from_dict(PodDisruptionBudget, {"metadata": _meta(), "spec": {"maxUnavailable": "25%"}}),
        ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"],
        ["web", "N/A", "25%", "0", "5h"],
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


def test_event_wide_columns_interleave_as_kubectl() -> None:
    event = from_dict(
        Event,
        {
            "metadata": _meta("web-0.17a"),
            "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{c}"},
            "type": "Normal",
            "reason": "Pulled",
            "message": "pulled ",
            "source": {"component": "kubelet", "host": "n1"},
            "count": 3,
            "firstTimestamp": ts(300),
            "lastTimestamp": ts(42),
        },
    )
    assert _printers.table("Event", [event], NOW, wide=True) == [
        [
            *("LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE"),
            *("FIRST SEEN", "COUNT", "NAME"),
        ],
        [
            *("42s", "Normal", "Pulled", "pod/web-0", "spec.containers{c}", "kubelet, n1"),
            *("pulled", "5m", "3", "web-0.17a"),
        ],
    ]


def test_a_kind_without_columns_gets_name_and_age() -> None:
    obj = from_dict(ConfigMap, {"metadata": _meta("x")})
    assert _printers.table("SomethingNew", [obj], NOW) == [["NAME", "AGE"], ["x", "5h"]]


def test_every_served_kind_has_its_own_columns() -> None:
    # custom kinds other tests registered take their columns from their CRDs
    generic = [
        i.kind
        for i in scheme.all()
        if _printers.printer_for(i.kind).headers == ("NAME", "AGE") and not is_custom(i.message)
    ]
    assert generic == []


@pytest.mark.parametrize(
    ("keys", "headers"),
    [
        (["app"], ["APP"]),
        (["app.kubernetes.io/name", "tier"], ["NAME", "TIER"]),
    ],
)
def test_label_column_headers(keys: list[str], headers: list[str]) -> None:
    assert _columns.label_headers(keys) == headers


def test_format_labels_sorted_or_none() -> None:
    assert _columns.format_labels({"tier": "db", "app": "web"}) == "app=web,tier=db"
    assert _columns.format_labels({}) == "<none>"


POD_DATA: dict[str, Any] = {
    "metadata": {"name": "web-0", "labels": {"app": "web"}},
    "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}]},
    "status": {"podIP": "10.0.0.1"},
}

CUSTOM_COLUMN_CASES: list[tuple[str, str, list[str], list[str]]] = [
    (
        "name and ip",
        "NAME:.metadata.name,IP:.status.podIP",
        ["NAME", "IP"],
        ["web-0", "10.0.0.1"],
    ),
    ("braces", "N:{.metadata.name}", ["N"], ["web-0"]),
    ("without the dot", "N:metadata.name", ["N"], ["web-0"]),
    ("several values", "IMAGES:.spec.containers[*].image", ["IMAGES"], ["nginx,redis"]),
    ("missing", "NODE:.spec.nodeName", ["NODE"], ["<none>"]),
    ("a map in Go's form", "LABELS:.metadata.labels", ["LABELS"], ["map[app:web]"]),
]


@pytest.mark.parametrize(
    ("spec", "headers", "cells"),
    [c[1:] for c in CUSTOM_COLUMN_CASES],
    ids=[c[0] for c in CUSTOM_COLUMN_CASES],
)
def test_custom_columns(spec: str, headers: list[str], cells: list[str]) -> None:
    columns = _columns.parse_custom_columns(spec)
    assert [c.header for c in columns] == headers
    assert [_columns.custom_column_cell(c, POD_DATA) for c in columns] == cells


def test_custom_columns_file_and_bad_specs() -> None:
    columns = _columns.parse_custom_columns_file("NAME   IP\n.metadata.name   .status.podIP\n")
    assert [_columns.custom_column_cell(c, POD_DATA) for c in columns] == ["web-0", "10.0.0.1"]
    with pytest.raises(ValueError, match="expected <header>:<json-path-expr>"):
        _columns.parse_custom_columns("NAME")


SORT_CASES: list[tuple[str, str, list[Any], list[Any]]] = [
    ("natural order of names", ".name", ["web-10", "web-2", "web-1"], ["web-1", "web-2", "web-10"]),
    ("numbers", "{.n}", [3, 10, 1], [1, 3, 10]),
    (
        "timestamps",
        ".t",
        ["2024-01-02T00:00:00Z", "2023-12-31T00:00:00Z"],
        ["2023-12-31T00:00:00Z", "2024-01-02T00:00:00Z"],
    ),
    ("missing first", ".n", [2, None, 1], [None, 1, 2]),
]


@pytest.mark.parametrize(
    ("path", "values", "want"), [c[1:] for c in SORT_CASES], ids=[c[0] for c in SORT_CASES]
)
def test_sort_by(path: str, values: list[Any], want: list[Any]) -> None:
    key = path.strip("{.}")
    items = [{key: v} if v is not None else {} for v in values]
    template = jsonpath.parse(jsonpath.relaxed(path))
    got = _columns.sort_by(items, template, lambda item: item)
    assert [item.get(key) for item in got] == want


def test_sort_by_a_field_nobody_has() -> None:
    with pytest.raises(ValueError, match="couldn't find any field with path"):
        _columns.sort_by([{}], jsonpath.parse("{.x}"), lambda item: item)


def test_api_resources_rows_from_the_scheme() -> None:
    rows = api_resources.resource_rows(api_resources.select(scheme.all()))
    assert rows[0] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert by_name["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert by_name["nodes"][3] == "false"
    assert len(rows) - 1 == len(scheme.all())
    groups = [row[2].rpartition("/")[0] for row in rows[1:]]
    assert groups == sorted(groups)  # the core group first, then by group
    cluster = api_resources.select(scheme.all(), namespaced="false")
    assert {i.plural for i in cluster} >= {"nodes", "namespaces", "persistentvolumes"}
    assert not any(i.namespaced for i in cluster)
    apps = api_resources.select(scheme.all(), api_group="apps", sort_by="kind")
    assert [i.kind for i in apps] == sorted(i.kind for i in apps)
    wide = api_resources.resource_rows(apps, wide=True, headers=False)
    assert {row[0]: row[-1] for row in wide}["deployments"] == "all"
    assert {row[0]: row[-1] for row in wide}["controllerrevisions"] == ""
    assert api_resources.select(scheme.all(), verbs=["list", "watch"]) != []
    assert api_resources.select(scheme.all(), verbs=["proxy"]) == []


REQUEST_CASES: list[tuple[str, str, list[str], list[tuple[str, list[str]]], bool]] = [
    ("one type", "pods", [], [("Pod", [])], False),
    ("one type, names", "po", ["a", "b"], [("Pod", ["a", "b"])], False),
    ("several types", "deploy,po", [], [("Deployment", []), ("Pod", [])], True),
    ("type/name", "pod/a", [], [("Pod", ["a"])], False),
    (
        "type/name of two types",
        "pod/a",
        ["svc/b", "po/c"],
        [("Pod", ["a", "c"]), ("Service", ["b"])],
        True,
    ),
    (
        "all",
        "all",
        [],
        [
            (k, [])
            for k in (
                "Pod",
                "ReplicationController",
                "Service",
                "DaemonSet",
                "Deployment",
                "ReplicaSet",
                "StatefulSet",
                "HorizontalPodAutoscaler",
                "CronJob",
                "Job",
            )
        ],
        True,
    ),
]


@pytest.mark.parametrize(
    ("spec", "names", "want", "multiple"),
    [c[1:] for c in REQUEST_CASES],
    ids=[c[0] for c in REQUEST_CASES],
)
def test_what_get_asks_for(
    spec: str, names: list[str], want: list[tuple[str, list[str]]], multiple: bool
) -> None:
    requests, several = get.requests_of(spec, names)
    assert [(r.info.kind, r.names) for r in requests] == want
    assert several == multiple


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("xml", 'unable to match a printer suitable for the output format "xml"'),
        ("jsonpath", "template format specified but no template given"),
        ("jsonpath={.a", "unclosed action"),
        ("custom-columns=NAME", "expected <header>:<json-path-expr>"),
        ("jsonpath-file=/nonexistent/t", "error reading jsonpath-file"),
    ],
)
def test_bad_output_formats(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        get.parse_output(value)


def test_output_formats() -> None:
    assert get.parse_output("").format == ""
    assert get.parse_output("wide").format == "wide"
    template = get.parse_output("jsonpath={.metadata.name}").template
    assert template is not None
    assert template.execute({"metadata": {"name": "x"}}) == "x"
    assert get.parse_output("jsonpath", "{.a}").format == "jsonpath"
    assert [c.header for c in get.parse_output("custom-columns=A:.a,B:.b").columns] == ["A", "B"]


DESCRIBED_POD: dict[str, Any] = {
    "metadata": {
        "name": "web-0",
        "namespace": "default",
        "labels": {"app": "web", "tier": "fe"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-5d",
                "uid": "u",
                "controller": True,
            }
        ],
    },
    "spec": {
        "nodeName": "n1",
        "serviceAccountName": "default",
        "priority": 0,
        "containers": [
            {
                "name": "app",
                "image": "nginx:1.25",
                "command": ["sh", "-c"],
                "args": ["echo hi\nsleep 1"],
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {
                    "limits": {"cpu": "500m", "memory": "128Mi"},
                    "requests": {"cpu": "250m"},
                },
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                    "timeoutSeconds": 1,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
                "readinessProbe": {
                    "exec": {"command": ["cat", "/tmp/ready"]},
                    "initialDelaySeconds": 5,
                    "timeoutSeconds": 1,
                    "periodSeconds": 5,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
                "startupProbe": {
                    "tcpSocket": {"port": "http"},
                    "timeoutSeconds": 1,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 30,
                },
                "env": [
                    {"name": "PLAIN", "value": "x"},
                    {
                        "name": "FROM_CM",
                        "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}},
                    },
                    {
                        "name": "FROM_SECRET",
                        "valueFrom": {
                            "secretKeyRef": {"name": "s", "key": "password", "optional": True}
                        },
                    },
                    {
                        "name": "MY_NAME",
                        "valueFrom": {
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
                        },
                    },
                    {
                        "name": "CPU_LIMIT",
                        "valueFrom": {
                            "resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}
                        },
                    },
                    {
                        "name": "MEM_REQUEST",
                        "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}},
                    },
                ],
                "envFrom": [
                    {"configMapRef": {"name": "cfg"}},
                    {"prefix": "S_", "secretRef": {"name": "s"}},
                ],
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
                ],
            }
        ],
        "volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "sec", "secret": {"secretName": "s"}},
            {
                "name": "info",
                "downwardAPI": {
                    "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
                },
            },
            {
                "name": "token",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt"}},
                        {"downwardAPI": {}},
                    ]
                },
            },
        ],
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
        ],
    },
    "status": {
        "phase": "Running",
        "hostIP": "10.0.0.1",
        "podIP": "127.1.0.5",
        "podIPs": [{"ip": "127.1.0.5"}],
        "startTime": "2024-01-01T00:00:00Z",
        "qosClass": "Burstable",
        "conditions": [
            {"type": "Initialized", "status": "True"},
            {"type": "Ready", "status": "True"},
        ],
        "containerStatuses": [
            {
                "name": "app",
                "ready": True,
                "restartCount": 1,
                "image": "nginx:1.25",
                "imageID": "docker://sha256:abc",
                "containerID": "docker://123",
                "state": {"running": {"startedAt": "2024-01-01T00:01:00Z"}},
                "lastState": {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "OOMKilled",
                        "message": "out of memory",
                        "startedAt": "2024-01-01T00:00:10Z",
                        "finishedAt": "2024-01-01T00:00:50Z",
                    }
                },
            }
        ],
    },
}

DESCRIBED_POD_TEXT = """\
Name:             web-0
Namespace:        default
Priority:         0
Service Account:  default
Node:             n1/10.0.0.1
Start Time:       Mon, 01 Jan 2024 00:00:00 +0000
Labels:           app=web
                  tier=fe
Annotations:      <none>
Status:           Running
IP:               127.1.0.5
IPs:
  IP:           127.1.0.5
Controlled By:  ReplicaSet/web-5d
Containers:
  app:
    Container ID:  docker://123
    Image:         nginx:1.25
    Image ID:      docker://sha256:abc
    Port:          80/TCP
    Host Port:     0/TCP
    Command:
      sh
      -c
    Args:
      echo hi
      sleep 1
    State:          Running
      Started:      Mon, 01 Jan 2024 00:01:00 +0000
    Last State:     Terminated
      Reason:       OOMKilled
      Message:      out of memory
      Exit Code:    137
      Started:      Mon, 01 Jan 2024 00:00:10 +0000
      Finished:     Mon, 01 Jan 2024 00:00:50 +0000
    Ready:          True
    Restart Count:  1
    Limits:
      cpu:     500m
      memory:  128Mi
    Requests:
      cpu:      250m
    Liveness:   http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3
    Readiness:  exec [cat /tmp/ready] delay=5s timeout=1s period=5s #success=1 #failure=3
    Startup:    tcp-socket :http delay=0s timeout=1s period=10s #success=1 #failure=30
    Environment Variables from:
      cfg  ConfigMap                Optional: false
      s    Secret with prefix 'S_'  Optional: false
    Environment:
      PLAIN:        x
      FROM_CM:      <set to the key 'k' of config map 'cfg'>   Optional: false
      FROM_SECRET:  <set to the key 'password' in secret 's'>  Optional: true
      MY_NAME:      web-0 (v1:metadata.name)
      CPU_LIMIT:    500 (limits.cpu)
      MEM_REQUEST:  0 (requests.memory)
    Mounts:
      /data from data (rw)
      /etc/cfg from cfg (ro)
Conditions:
  Type          Status
  Initialized   True |
  Ready         True |
Volumes:
  data:
    Type:       EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:     |
    SizeLimit:  <unset>
  cfg:
    Type:      ConfigMap (a volume populated by a ConfigMap)
    Name:      cfg
    Optional:  false
  host:
    Type:          HostPath (bare host directory volume)
    Path:          /var/log
    HostPathType:  Directory
  claim:
    Type:       PersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)
    ClaimName:  data
    ReadOnly:   false
  sec:
    Type:        Secret (a volume populated by a Secret)
    SecretName:  s
    Optional:    false
  info:
    Type:  DownwardAPI (a volume populated by information about the pod)
    Items:
      metadata.labels -> labels
  token:
    Type:                    Projected (a volume that contains injected data from multiple sources)
    TokenExpirationSeconds:  3607
    ConfigMapName:           kube-root-ca.crt
    ConfigMapOptional:       <nil>
    DownwardAPI:             true
QoS Class:                   Burstable
Node-Selectors:              <none>
Tolerations:                 node.kubernetes.io/not-ready:NoExecute op=Exists
""".replace("|\n", "\n")  # `|` marks where kubectl's lines end in spaces


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC for the test (describe prints local times)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("utc")
def test_describe_pod_as_kubectl() -> None:
    rows = _describe_pod.pod_rows(from_dict(Pod, DESCRIBED_POD), NOW)
    assert _printers.tabulate(rows, padding=2, min_width=0) == DESCRIBED_POD_TEXT


STATE_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "waiting with a message",
        {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting"}},
        ["State: Waiting", "Reason: CrashLoopBackOff", "Message: back-off 10s restarting"],
    ),
    ("waiting without a reason", {}, ["State: Waiting"]),
    (
        "terminated by a signal",
        {
            "terminated": {
                "exitCode": 143,
                "signal": 15,
                "reason": "Error",
                "startedAt": "2024-01-01T00:00:00Z",
                "finishedAt": "2024-01-01T00:00:05Z",
            }
        },
        [
            "State: Terminated",
            "Reason: Error",
            "Exit Code: 143",
            "Signal: 15",
            "Started: Mon, 01 Jan 2024 00:00:00 +0000",
            "Finished: Mon, 01 Jan 2024 00:00:05 +0000",
        ],
    ),
]


@pytest.mark.usefixtures("utc")
@pytest.mark.parametrize(
    ("state", "lines"), [c[1:] for c in STATE_CASES], ids=[c[0] for c in STATE_CASES]
)
def test_container_state_lines(state: dict[str, Any], lines: list[str]) -> None:
    status = from_dict(ContainerStatus, {"name": "a", "state": state})
    rows = _describe_pod.state_rows("State:", status.state, 2)
    assert [" ".join(" ".join(r).split()) for r in rows] == lines


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ({}, "BestEffort"),
        ({"requests": {"cpu": "1"}}, "Burstable"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}, "Burstable"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m"}}, "Guaranteed"),
    ],
)
def test_qos_class_when_the_status_has_none(resources: dict[str, Any], qos: str) -> None:
    pod = from_dict(
        Pod, {"spec": {"containers": [{"name": "a", "image": "x", "resources": resources}]}}
    )
    assert _describe_pod.qos_class(pod) == qos


def _described(rows: list[list[str]]) -> str:
    return _printers.tabulate(rows, padding=2, min_width=0)


def test_describe_service_with_its_endpoints() -> None:
    svc = from_dict(
        Service,
        {
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "web"},
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"],
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "sessionAffinity": "None",
                "externalTrafficPolicy": "Cluster",
                "ports": [
                    {
                        "name": "http",
                        "port": 80,
                        "targetPort": 8080,
                        "nodePort": 30080,
                        "protocol": "TCP",
                    },
                    {"name": "admin", "port": 9000, "targetPort": "admin", "protocol": "TCP"},
                ],
            },
        },
    )
    endpoints = from_dict(
        Endpoints,
        {
            "subsets": [
                {
                    "addresses": [{"ip": "127.1.0.1"}, {"ip": "127.1.0.2"}],
                    "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9000}],
                }
            ]
        },
    )
    assert _described(describe.service_rows(svc, endpoints)) == (
        "Name:                     web\n"
        "Namespace:                default\n"
        "Labels:                   app=web\n"
        "Annotations:              <none>\n"
        "Selector:                 app=web\n"
        "Type:                     NodePort\n"
        "IP Family Policy:         SingleStack\n"
        "IP Families:              IPv4\n"
        "IP:                       10.96.0.10\n"
        "IPs:                      10.96.0.10\n"
        "Port:                     http  80/TCP\n"
        "TargetPort:               8080/TCP\n"
        "NodePort:                 http  30080/TCP\n"
        "Endpoints:                127.1.0.1:8080,127.1.0.2:8080\n"
        "Port:                     admin  9000/TCP\n"
        "TargetPort:               admin/TCP\n"
        "Endpoints:                127.1.0.1:9000,127.1.0.2:9000\n"
        "Session Affinity:         None\n"
        "External Traffic Policy:  Cluster\n"
    )


def test_describe_config_map_and_secret() -> None:
    cm = from_dict(
        ConfigMap,
        {
            "metadata": {"name": "cfg", "namespace": "default"},
            "data": {"b": "two\nlines", "a": "1"},
            "binaryData": {"blob": "AAEC"},
        },
    )
    assert _described(describe.config_map_rows(cm)) == (
        "Name:         cfg\n"
        "Namespace:    default\n"
        "Labels:       <none>\n"
        "Annotations:  <none>\n"
        "\n"
        "Data\n====\n"
        "a:\n----\n1\n\n"
        "b:\n----\ntwo\nlines\n\n"
        "\n"
        "BinaryData\n====\n"
        "blob: 3 bytes\n"
        "\n"
    )
    secret = from_dict(
        Secret,
        {"metadata": {"name": "s", "namespace": "default"}, "data": {"password": "c2VjcmV0"}},
    )
    assert _described(describe.secret_rows(secret)) == (
        "Name:         s\n"
        "Namespace:    default\n"
        "Labels:       <none>\n"
        "Annotations:  <none>\n"
        "\n"
        "Type:  Opaque\n"
        "\n"
        "Data\n====\n"
        "password:  6 bytes\n"
    )


ANNOTATION_CASES: list[tuple[str, dict[str, str], list[list[str]]]] = [
    ("none", {}, [["Annotations:", "<none>"]]),
    (
        "the last applied configuration is left out",
        {"kubectl.kubernetes.io/last-applied-configuration": "{}", "a": "1"},
        [["Annotations:", "a: 1"]],
    ),
    (
        "sorted, one a line",
        {"b": "2", "a": "1"},
        [["Annotations:", "a: 1"], ["", "b: 2"]],
    ),
    (
        "a long value on its own line, cut",
        {"k": "x" * 200},
        [["Annotations:", "k:"], ["", "x" * 138 + "..."]],
    ),
    (
        "several lines",
        {"k": "one\ntwo\n"},
        [["Annotations:", "k:"], ["", "one"], ["", "two"]],
    ),
]


@pytest.mark.parametrize(
    ("annotations", "rows"),
    [c[1:] for c in ANNOTATION_CASES],
    ids=[c[0] for c in ANNOTATION_CASES],
)
def test_describe_annotations(annotations: dict[str, str], rows: list[list[str]]) -> None:
    assert _describe_pod.annotations_rows("Annotations:", annotations) == rows


def test_describe_namespace() -> None:
    ns = from_dict(
        Namespace,
        {"metadata": {"name": "prod", "labels": {"kubernetes.io/metadata.name": "prod"}}},
    )
    assert _described(describe.namespace_rows(ns)) == (
        "Name:         prod\n"
        "Labels:       kubernetes.io/metadata.name=prod\n"
        "Annotations:  <none>\n"
        "Status:       Active\n"
        "\n"
        "No resource quota.\n"
        "\n"
        "No LimitRange resource.\n"
    )

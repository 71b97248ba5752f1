"""Validation of core/v1 objects: each bad field is named by its path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kpy.api import codec
from kpy.api.defaults import set_defaults
from kpy.api.validation import validate, validate_update


def _pod(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
    base.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": base,
    }


def _with_container(**fields: Any) -> dict[str, Any]:
    return _pod(containers=[{"name": "c", "image": "busybox:1.36", **fields}])


def _paths(manifest: dict[str, Any]) -> list[str]:
    obj = set_defaults(codec.decode_object(manifest))
    return [e.path for e in validate(obj)]


def _messages(manifest: dict[str, Any]) -> list[str]:
    obj = set_defaults(codec.decode_object(manifest))
    return [str(e) for e in validate(obj)]


VALID = [
    ("plain pod", _pod()),
    (
        "pod with everything",
        _pod(
            containers=[
                {
                    "name": "web",
                    "image": "nginx:1.25",
                    "ports": [{"containerPort": 80, "name": "http"}],
                    "env": [
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {
                            "name": "CPU",
                            "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}},
                        },
                        {
                            "name": "KEY",
                            "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}},
                        },
                    ],
                    "envFrom": [{"secretRef": {"name": "s"}, "prefix": "S_"}],
                    "resources": {
                        "requests": {"cpu": "100m"},
                        "limits": {"cpu": "1", "memory": "1Gi"},
                    },
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                    "livenessProbe": {"exec": {"command": ["true"]}},
                    "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}},
                }
            ],
            initContainers=[{"name": "init", "image": "busybox"}],
            volumes=[
                {"name": "data", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "a", "path": "a"}]}},
            ],
            tolerations=[
                {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
                {"operator": "Exists"},
            ],
            nodeSelector={"disk": "ssd"},
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "cores", "operator": "Gt", "values": ["2"]}
                                ]
                            }
                        ]
                    }
                }
            },
        ),
    ),
    (
        "headless service",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "nginx", "namespace": "default"},
            "spec": {"clusterIP": "None", "selector": {"app": "nginx"}},
        },
    ),
    (
        "configmap",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "default"},
            "data": {"app.properties": "a=b", "KEY_1": "v"},
        },
    ),
    (
        "node with taints",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-1"},
            "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
        },
    ),
]


@pytest.mark.parametrize(("name", "manifest"), VALID, ids=[c[0] for c in VALID])
def test_valid_objects_have_no_errors(name: str, manifest: dict[str, Any]) -> None:
    assert _messages(manifest) == [], name


INVALID = [
    ("no containers", _pod(containers=[]), "spec.containers"),
    (
        "uppercase name",
        {**_pod(), "metadata": {"name": "Web_1", "namespace": "default"}},
        "metadata.name",
    ),
    ("no name", {**_pod(), "metadata": {"namespace": "default"}}, "metadata.name"),
    (
        "generateName prefix checked",
        {**_pod(), "metadata": {"generateName": "Bad_"}},
        "metadata.generateName",
    ),
    (
        "bad label key",
        {**_pod(), "metadata": {"name": "p", "labels": {"-bad": "v"}}},
        "metadata.labels",
    ),
    (
        "bad label value",
        {**_pod(), "metadata": {"name": "p", "labels": {"app": "a b"}}},
        "metadata.labels[app]",
    ),
    ("container without image", _pod(containers=[{"name": "c"}]), "spec.containers[0].image"),
    ("container name", _pod(containers=[{"name": "C_1", "image": "i"}]), "spec.containers[0].name"),
    (
        "duplicate container",
        _pod(
            containers=[{"name": "c", "image": "i"}], initContainers=[{"name": "c", "image": "i"}]
        ),
        "spec.containers[0].name",
    ),
    ("bad restart policy", _pod(restartPolicy="Sometimes"), "spec.restartPolicy"),
    (
        "bad pull policy",
        _with_container(imagePullPolicy="Maybe"),
        "spec.containers[0].imagePullPolicy",
    ),
    (
        "port out of range",
        _with_container(ports=[{"containerPort": 70000}]),
        "spec.containers[0].ports[0].containerPort",
    ),
    (
        "port missing",
        _with_container(ports=[{"name": "http"}]),
        "spec.containers[0].ports[0].containerPort",
    ),
    (
        "duplicate port name",
        _with_container(
            ports=[{"containerPort": 1, "name": "a"}, {"containerPort": 2, "name": "a"}]
        ),
        "spec.containers[0].ports[1].name",
    ),
    (
        "bad protocol",
        _with_container(ports=[{"containerPort": 1, "protocol": "HTTP"}]),
        "spec.containers[0].ports[0].protocol",
    ),
    (
        "env name",
        _with_container(env=[{"name": "1X", "value": "v"}]),
        "spec.containers[0].env[0].name",
    ),
    (
        "env value and valueFrom",
        _with_container(
            env=[
                {
                    "name": "X",
                    "value": "v",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                }
            ]
        ),
        "spec.containers[0].env[0].valueFrom",
    ),
    (
        "env unsupported fieldPath",
        _with_container(
            env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}}]
        ),
        "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
    ),
    (
        "envFrom without source",
        _with_container(envFrom=[{"prefix": "P"}]),
        "spec.containers[0].envFrom[0]",
    ),
    (
        "request over limit",
        _with_container(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
        "spec.containers[0].resources.requests",
    ),
    (
        "negative quantity",
        _with_container(resources={"requests": {"memory": "-1Gi"}}),
        "spec.containers[0].resources.requests[memory]",
    ),
    (
        "mount of unknown volume",
        _with_container(volumeMounts=[{"name": "x", "mountPath": "/x"}]),
        "spec.containers[0].volumeMounts[0].name",
    ),
    (
        "probe without handler",
        _with_container(livenessProbe={"periodSeconds": 5}),
        "spec.containers[0].livenessProbe",
    ),
    (
        "probe with two handlers",
        _with_container(readinessProbe={"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}),
        "spec.containers[0].readinessProbe",
    ),
    (
        "liveness successThreshold",
        _with_container(livenessProbe={"exec": {"command": ["true"]}, "successThreshold": 2}),
        "spec.containers[0].livenessProbe.successThreshold",
    ),
    (
        "probe port name",
        _with_container(readinessProbe={"httpGet": {"port": "not_valid"}}),
        "spec.containers[0].readinessProbe.httpGet.port",
    ),
    (
        "negative probe period",
        _with_container(readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": -1}),
        "spec.containers[0].readinessProbe.periodSeconds",
    ),
    (
        "hook without handler",
        _with_container(lifecycle={"postStart": {}}),
        "spec.containers[0].lifecycle.postStart",
    ),
    (
        "volume with two sources",
        _pod(volumes=[{"name": "v", "emptyDir": {}, "hostPath": {"path": "/tmp"}}]),
        "spec.volumes[0]",
    ),
    (
        "duplicate volume",
        _pod(volumes=[{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]),
        "spec.volumes[1].name",
    ),
    (
        "hostPath without path",
        _pod(volumes=[{"name": "v", "hostPath": {}}]),
        "spec.volumes[0].hostPath.path",
    ),
    (
        "configMap item escapes",
        _pod(
            volumes=[
                {"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "path": "../x"}]}}
            ]
        ),
        "spec.volumes[0].configMap.items[0].path",
    ),
    (
        "negative grace period",
        _pod(terminationGracePeriodSeconds=-1),
        "spec.terminationGracePeriodSeconds",
    ),
    (
        "toleration Exists with value",
        _pod(tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]),
        "spec.tolerations[0].operator",
    ),
    (
        "toleration empty key Equal",
        _pod(tolerations=[{"operator": "Equal", "value": "v"}]),
        "spec.tolerations[0].operator",
    ),
    (
        "tolerationSeconds without NoExecute",
        _pod(
            tolerations=[
                {"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}
            ]
        ),
        "spec.tolerations[0].effect",
    ),
    (
        "bad taint effect in toleration",
        _pod(tolerations=[{"key": "k", "operator": "Exists", "effect": "Never"}]),
        "spec.tolerations[0].effect",
    ),
    (
        "affinity bad operator",
        _pod(
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "k", "operator": "Like", "values": ["v"]}
                                ]
                            }
                        ]
                    }
                }
            }
        ),
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchExpressions[0].operator",
    ),
    (
        "affinity Gt needs a number",
        _pod(
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "k", "operator": "Gt", "values": ["x"]}]}
                        ]
                    }
                }
            }
        ),
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchExpressions[0].values[0]",
    ),
    (
        "affinity weight",
        _pod(
            affinity={
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 0,
                            "preference": {
                                "matchExpressions": [{"key": "k", "operator": "Exists"}]
                            },
                        }
                    ]
                }
            }
        ),
        "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
    ),
    (
        "duplicate host port",
        _pod(
            containers=[
                {"name": "a", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080}]},
                {"name": "b", "image": "i", "ports": [{"containerPort": 81, "hostPort": 8080}]},
            ]
        ),
        "spec.containers[1].ports[0].hostPort",
    ),
    (
        "service without ports",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {"selector": {"a": "b"}},
        },
        "spec.ports",
    ),
    (
        "service name must be DNS-1035",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "1svc"},
            "spec": {"ports": [{"port": 80}]},
        },
        "metadata.name",
    ),
    (
        "service unnamed ports",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80}, {"port": 81}]},
        },
        "spec.ports[0].name",
    ),
    (
        "configmap key",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a/b": "v"}},
        "data[a/b]",
    ),
    (
        "namespace name is a label",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}},
        "metadata.name",
    ),
    (
        "namespace on a cluster object",
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "namespace": "default"}},
        "metadata.namespace",
    ),
    (
        "taint without effect",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n"},
            "spec": {"taints": [{"key": "k"}]},
        },
        "spec.taints[0].effect",
    ),
    (
        "pvc without storage",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "c"},
            "spec": {"accessModes": ["ReadWriteOnce"]},
        },
        "spec.resources[storage]",
    ),
    (
        "pvc bad access mode",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "c"},
            "spec": {
                "accessModes": ["ReadWriteSometimes"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        "spec.accessModes[0]",
    ),
]


@pytest.mark.parametrize(("name", "manifest", "path"), INVALID, ids=[c[0] for c in INVALID])
def test_each_invalid_field_is_named(name: str, manifest: dict[str, Any], path: str) -> None:
    paths = _paths(manifest)
    assert path in paths, f"{name}: expected an error at {path}, got {_messages(manifest)}"


def test_messages_read_like_kubernetes() -> None:
    assert _messages(_pod(restartPolicy="Sometimes")) == [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: '
        '"Always", "OnFailure", "Never"'
    ]
    assert _messages(_pod(containers=[{"name": "c"}])) == [
        "spec.containers[0].image: Required value"
    ]


def _update_errors(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    old_obj = set_defaults(codec.decode_object(old))
    new_obj = set_defaults(codec.decode_object(new))
    return [str(e) for e in validate_update(new_obj, old_obj)]


def test_pod_image_may_change_but_not_the_command() -> None:
    old = _pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "busybox:1.37"
    assert _update_errors(old, new) == []
    new["spec"]["containers"][0]["command"] = ["sh"]
    (problem,) = _update_errors(old, new)
    assert problem.startswith("spec: Forbidden: pod updates may not change fields")


def test_pod_tolerations_may_only_be_added() -> None:
    old = _pod(tolerations=[{"key": "a", "operator": "Exists"}])
    added = _pod(
        tolerations=[{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]
    )
    removed = _pod(tolerations=[])
    assert _update_errors(old, added) == []
    assert _update_errors(old, removed) != []


def test_name_is_immutable() -> None:
    old = _pod()
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "q"
    assert "metadata.name: Invalid value: field is immutable" in _update_errors(old, new)


def test_immutable_configmap_data_cannot_change() -> None:
    old = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"a": "1"},
        "immutable": True,
    }
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    assert any(e.startswith("data: Forbidden") for e in _update_errors(old, new))


@pytest.mark.parametrize(
    ("deleting", "old_finalizers", "new_finalizers", "refused"),
    [
        (False, ["a"], ["a", "b"], False),
        (True, ["a"], ["a"], False),
        (True, ["a", "b"], ["a"], False),
        (True, ["a"], ["a", "b"], True),
        (True, [], ["b"], True),
    ],
    ids=[
        "add while alive",
        "keep while deleting",
        "remove while deleting",
        "add while deleting",
        "add to none while deleting",
    ],
)
def test_no_new_finalizers_once_deletion_started(
    deleting: bool, old_finalizers: list[str], new_finalizers: list[str], refused: bool
) -> None:
    old = _pod()
    old["metadata"]["finalizers"] = old_finalizers
    if deleting:
        old["metadata"]["deletionTimestamp"] = "2026-11-23T10:00:00Z"
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = new_finalizers
    found = [e for e in _update_errors(old, new) if e.startswith("metadata.finalizers")]
    want = [
        "metadata.finalizers: Forbidden: no new finalizers can be added "
        "if the object is being deleted"
    ]
    assert [e.split(", found")[0] for e in found] == (want if refused else [])


def _preferred(*terms: tuple[int, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"weight": w, "preference": {"matchExpressions": [e]}} for w, e in terms]


NODE_PREFERRED = "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution"
POD_PREFERRED = "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution"


def test_every_invalid_preferred_term_is_reported() -> None:
    """Kubernetes' validatePreferredSchedulingTerms reports each term's
    weight and each requirement, with paths and wording as it writes them."""
    manifest = _pod(
        affinity={
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": _preferred(
                    (5, {"key": "k", "operator": "Like", "values": ["v"]}),
                    (0, {"key": "k", "operator": "Exists"}),
                    (101, {"key": "k", "operator": "Gt", "values": ["1", "2"]}),
                    (10, {"key": "k", "operator": "In"}),
                )
            },
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 0, "podAffinityTerm": {"topologyKey": "zone"}},
                    {"weight": 1, "podAffinityTerm": {"topologyKey": ""}},
                ]
            },
        }
    )
    assert _messages(manifest) == [
        f'{NODE_PREFERRED}[0].preference.matchExpressions[0].operator: Invalid value: "Like": '
        "not a valid selector operator",
        f"{NODE_PREFERRED}[1].weight: Invalid value: 0: must be in the range 1-100",
        f"{NODE_PREFERRED}[2].weight: Invalid value: 101: must be in the range 1-100",
        f"{NODE_PREFERRED}[2].preference.matchExpressions[0].values: Required value: "
        "must be specified single value when `operator` is 'Lt' or 'Gt'",
        f"{NODE_PREFERRED}[3].preference.matchExpressions[0].values: Required value: "
        "must be specified when `operator` is 'In' or 'NotIn'",
        f"{POD_PREFERRED}[0].weight: Invalid value: 0: must be in the range 1-100",
        f"{POD_PREFERRED}[1].podAffinityTerm.topologyKey: Required value: can not be empty",
    ]

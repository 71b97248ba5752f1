"""Quantities are validated on the server: every Quantity field of every kind
must parse, resource values must be non-negative (whole numbers where
Kubernetes counts units), and a bad quantity is an Invalid naming its field
path, never an exception (which the API server would turn into a 500)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api import codec
from kpy.api._descriptors import is_map, map_value
from kpy.api.defaults import set_defaults
from kpy.api.scheme import scheme
from kpy.api.unstructured import is_custom
from kpy.api.validation import validate, validate_update

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from google.protobuf.message import Message

    from kpy.api.scheme import ResourceInfo

BAD_FORMAT = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
CONTAINER = {"name": "c", "image": "busybox:1.36"}


def pod_spec(**extra: Any) -> dict[str, Any]:
    return {"containers": [dict(CONTAINER)], **extra}


def template(**extra: Any) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "a"}}, "spec": pod_spec(**extra)}


def workload(kind: str, api_version: str = "apps/v1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "w", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": template(), **spec},
    }


MANIFESTS: dict[str, dict[str, Any]] = {
    "Pod": {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": pod_spec(
            initContainers=[{"name": "init", "image": "busybox:1.36"}],
            volumes=[
                {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
                {
                    "name": "info",
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "cpu",
                                "resourceFieldRef": {
                                    "containerName": "c",
                                    "resource": "limits.cpu",
                                    "divisor": "1m",
                                },
                            }
                        ]
                    },
                },
            ],
        ),
    },
    "Node": {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}},
    "PersistentVolume": {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pv"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"},
            "hostPath": {"path": "/tmp/pv"},
        },
    },
    "PersistentVolumeClaim": {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "c", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    },
    "Deployment": workload("Deployment"),
    "ReplicaSet": workload("ReplicaSet"),
    "DaemonSet": workload("DaemonSet"),
    "StatefulSet": workload(
        "StatefulSet",
        serviceName="s",
        volumeClaimTemplates=[
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        ],
    ),
    "Job": {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "default"},
        "spec": {"template": {"spec": pod_spec(restartPolicy="Never")}},
    },
    "CronJob": {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "cj", "namespace": "default"},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {"spec": {"template": {"spec": pod_spec(restartPolicy="Never")}}},
        },
    },
    "HorizontalPodAutoscaler": {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h", "namespace": "default"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
            "maxReplicas": 3,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "500Mi"},
                    },
                }
            ],
        },
    },
}


def decoded(kind: str) -> Any:
    return set_defaults(codec.decode_object(MANIFESTS[kind]))


def at(obj: Any, path: str) -> Any:
    """The message at a proto attribute path such as `spec.overhead[cpu]` or
    `spec.containers[0].resources`, creating map entries and list items."""
    current = obj
    for name, key in re.findall(r"([a-z_]+)(?:\[([^\]]*)\])?\.?", path):
        current = getattr(current, name)
        if key.isdigit():
            while len(current) <= int(key):
                current.add()
            current = current[int(key)]
        elif key:
            current = current[key]
    return current


def setting(path: str, text: str) -> Callable[[Any], None]:
    def mutate(obj: Any) -> None:
        at(obj, path).string = text

    return mutate


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    mutate: Callable[[Any], None]
    path: str  # the field path the error must name
    message: str  # what the error must say (its end)


def bad(name: str, kind: str, attr_path: str, field_path: str, text: str = "garbage!") -> Case:
    return Case(
        name, kind, setting(attr_path, text), field_path, f'Invalid value: "{text}": {BAD_FORMAT}'
    )


SYNTAX_CASES = [
    bad("pod overhead", "Pod", "spec.overhead[cpu]", "spec.overhead[cpu]", "1.5.5Gi"),
    bad(
        "container limit",
        "Pod",
        "spec.containers[0].resources.limits[cpu]",
        "spec.containers[0].resources.limits[cpu]",
    ),
    bad(
        "container request",
        "Pod",
        "spec.containers[0].resources.requests[memory]",
        "spec.containers[0].resources.requests[memory]",
        "1Gb",
    ),
    bad(
        "init container request",
        "Pod",
        "spec.init_containers[0].resources.requests[cpu]",
        "spec.initContainers[0].resources.requests[cpu]",
    ),
    bad(
        "ephemeral container limit",
        "Pod",
        "spec.ephemeral_containers[0].resources.limits[cpu]",
        "spec.ephemeralContainers[0].resources.limits[cpu]",
    ),
    bad(
        "pod-level resources",
        "Pod",
        "spec.resources.limits[memory]",
        "spec.resources.limits[memory]",
    ),
    bad(
        "emptyDir size limit",
        "Pod",
        "spec.volumes[0].empty_dir.size_limit",
        "spec.volumes[0].emptyDir.sizeLimit",
        "1..0",
    ),
    bad(
        "downward API volume divisor",
        "Pod",
        "spec.volumes[1].downward_api.items[0].resource_field_ref.divisor",
        "spec.volumes[1].downwardAPI.items[0].resourceFieldRef.divisor",
        "1.2.3",
    ),
    bad(
        "downward API env divisor",
        "Pod",
        "spec.containers[0].env[0].value_from.resource_field_ref.divisor",
        "spec.containers[0].env[0].valueFrom.resourceFieldRef.divisor",
        "1 m",
    ),
    bad("empty text", "Pod", "spec.overhead[memory]", "spec.overhead[memory]", ""),
    bad(
        "pod status",
        "Pod",
        "status.container_statuses[0].allocated_resources[cpu]",
        "status.containerStatuses[0].allocatedResources[cpu]",
    ),
    bad("node capacity", "Node", "status.capacity[cpu]", "status.capacity[cpu]"),
    bad("node allocatable", "Node", "status.allocatable[memory]", "status.allocatable[memory]"),
    bad("pv capacity", "PersistentVolume", "spec.capacity[storage]", "spec.capacity[storage]"),
    bad(
        "pvc request",
        "PersistentVolumeClaim",
        "spec.resources.requests[storage]",
        "spec.resources.requests[storage]",
    ),
    bad(
        "pvc status",
        "PersistentVolumeClaim",
        "status.capacity[storage]",
        "status.capacity[storage]",
    ),
    *(
        bad(
            f"{kind} template",
            kind,
            "spec.template.spec.containers[0].resources.limits[cpu]",
            "spec.template.spec.containers[0].resources.limits[cpu]",
        )
        for kind in ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job")
    ),
    bad(
        "StatefulSet claim template",
        "StatefulSet",
        "spec.volume_claim_templates[0].spec.resources.requests[storage]",
        "spec.volumeClaimTemplates[0].spec.resources.requests[storage]",
    ),
    bad(
        "CronJob job template",
        "CronJob",
        "spec.job_template.spec.template.spec.overhead[cpu]",
        "spec.jobTemplate.spec.template.spec.overhead[cpu]",
    ),
    bad(
        "HPA target",
        "HorizontalPodAutoscaler",
        "spec.metrics[0].resource.target.average_value",
        "spec.metrics[0].resource.target.averageValue",
    ),
    bad(
        "HPA tolerance",
        "HorizontalPodAutoscaler",
        "spec.behavior.scale_up.tolerance",
        "spec.behavior.scaleUp.tolerance",
    ),
]


def _errors(case: Case) -> list[str]:
    obj = decoded(case.kind)
    case.mutate(obj)
    return [str(e) for e in validate(obj)]


@pytest.mark.parametrize("case", SYNTAX_CASES, ids=lambda c: c.name)
def test_a_quantity_that_does_not_parse_is_invalid_at_its_path(case: Case) -> None:
    errs = _errors(case)  # never raises: a raise would be a 500
    want = f"{case.path}: {case.message}"
    assert want in errs, f"{case.name}: expected {want!r}, got {errs}"


def neg(name: str, kind: str, attr_path: str, path: str, text: str, message: str) -> Case:
    return Case(name, kind, setting(attr_path, text), path, message)


def _over_limit(obj: Any) -> None:
    res = obj.spec.containers[0].resources
    res.limits["cpu"].string = "500m"
    res.requests["cpu"].string = "1"


VALUE_CASES = [
    neg(
        "negative limit",
        "Pod",
        "spec.containers[0].resources.limits[memory]",
        "spec.containers[0].resources.limits[memory]",
        "-1Gi",
        'Invalid value: "-1Gi": must be greater than or equal to 0',
    ),
    neg(
        "negative init request",
        "Pod",
        "spec.init_containers[0].resources.requests[cpu]",
        "spec.initContainers[0].resources.requests[cpu]",
        "-100m",
        'Invalid value: "-100m": must be greater than or equal to 0',
    ),
    Case(
        "request above limit",
        "Pod",
        _over_limit,
        "spec.containers[0].resources.requests",
        'Invalid value: "1": must be less than or equal to cpu limit of 500m',
    ),
    neg(
        "fractional extended resource",
        "Pod",
        "spec.containers[0].resources.limits[example.com/gpu]",
        "spec.containers[0].resources.limits[example.com/gpu]",
        "500m",
        'Invalid value: "500m": must be an integer',
    ),
    neg(
        "negative overhead",
        "Pod",
        "spec.overhead[cpu]",
        "spec.overhead[cpu]",
        "-1",
        'Invalid value: "-1": must be greater than or equal to 0',
    ),
    neg(
        "negative pod-level request",
        "Pod",
        "spec.resources.requests[cpu]",
        "spec.resources.requests[cpu]",
        "-1",
        'Invalid value: "-1": must be greater than or equal to 0',
    ),
    neg(
        "negative emptyDir size",
        "Pod",
        "spec.volumes[0].empty_dir.size_limit",
        "spec.volumes[0].emptyDir.sizeLimit",
        "-1Gi",
        "Forbidden: SizeLimit field must be a valid resource quantity",
    ),
    neg(
        "cpu divisor",
        "Pod",
        "spec.volumes[1].downward_api.items[0].resource_field_ref.divisor",
        "spec.volumes[1].downwardAPI.items[0].resourceFieldRef.divisor",
        "2",
        'Invalid value: "limits.cpu": only divisor\'s values 1m and 1 are supported with '
        "the cpu resource",
    ),
    neg(
        "negative node allocatable",
        "Node",
        "status.allocatable[cpu]",
        "status.allocatable[cpu]",
        "-2",
        'Invalid value: "-2": must be greater than or equal to 0',
    ),
    neg(
        "fractional node pods",
        "Node",
        "status.capacity[pods]",
        "status.capacity[pods]",
        "1.5",
        'Invalid value: "1500m": must be an integer',
    ),
    neg(
        "empty pv",
        "PersistentVolume",
        "spec.capacity[storage]",
        "spec.capacity[storage]",
        "0",
        'Invalid value: "0": must be greater than zero',
    ),
    neg(
        "negative template limit",
        "Deployment",
        "spec.template.spec.containers[0].resources.limits[cpu]",
        "spec.template.spec.containers[0].resources.limits[cpu]",
        "-1",
        'Invalid value: "-1": must be greater than or equal to 0',
    ),
]


@pytest.mark.parametrize("case", VALUE_CASES, ids=lambda c: c.name)
def test_resource_values_follow_kubernetes_rules(case: Case) -> None:
    errs = _errors(case)
    want = f"{case.path}: {case.message}"
    assert want in errs, f"{case.name}: expected {want!r}, got {errs}"


GOOD_VALUES = [
    (
        "cpu divisor 1000m is 1",
        "spec.volumes[1].downward_api.items[0].resource_field_ref.divisor",
        "1000m",
    ),
    ("memory divisor", "spec.containers[0].env[0].value_from.resource_field_ref.divisor", "1Mi"),
    (
        "zero divisor means unset",
        "spec.volumes[1].downward_api.items[0].resource_field_ref.divisor",
        "0",
    ),
    ("whole extended resource", "spec.containers[0].resources.limits[example.com/gpu]", "2"),
    ("exponent", "spec.overhead[memory]", "1e3"),
    ("zero overhead", "spec.overhead[cpu]", "0"),
]


@pytest.mark.parametrize(
    ("name", "attr_path", "text"), GOOD_VALUES, ids=[g[0] for g in GOOD_VALUES]
)
def test_good_quantities_pass(name: str, attr_path: str, text: str) -> None:
    obj = decoded("Pod")
    if "env[0]" in attr_path:
        obj.spec.containers[0].env.add(
            name="M"
        ).value_from.resource_field_ref.resource = "limits.memory"
    setting(attr_path, text)(obj)
    assert validate(obj) == [], name


def test_every_manifest_here_is_valid() -> None:
    for kind in MANIFESTS:
        assert validate(decoded(kind)) == [], kind


# -- every Quantity field of every kind, found from the descriptors -------------------------


def quantity_paths(descriptor: Any, seen: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(attribute path, field path) of every Quantity reachable in a message
    type, one level into recursive types."""
    for field in descriptor.fields:
        child = field.message_type
        if child is None:
            continue
        if is_map(field):
            child = map_value(field).message_type
            if child is None:
                continue
            attr, json = f"{field.name}[k]", f"{field.json_name}[k]"
        elif field.is_repeated:
            attr, json = f"{field.name}[0]", f"{field.json_name}[0]"
        else:
            attr, json = field.name, field.json_name
        if child.full_name == "kpy.api.meta.v1.Quantity":
            yield attr, json
        elif child.full_name not in seen and not child.full_name.startswith("google."):
            for a, j in quantity_paths(child, (*seen, child.full_name)):
                yield f"{attr}.{a}", f"{json}.{j}"


def _built_in() -> list[ResourceInfo]:
    """The kinds kpy is built with (other tests in this process may have
    registered custom kinds, which have no message to walk)."""
    return [info for info in scheme.all() if not is_custom(info.message)]


def _all_quantity_fields() -> list[tuple[str, str, str]]:
    found = []
    for info in _built_in():
        for attr, json in quantity_paths(info.message.DESCRIPTOR):
            found.append((info.kind, attr, json))
    return found


ALL_FIELDS = _all_quantity_fields()


def test_the_kinds_have_quantity_fields_to_check() -> None:
    kinds = {kind for kind, _, _ in ALL_FIELDS}
    assert {"Pod", "Node", "Deployment", "HorizontalPodAutoscaler"} <= kinds, kinds


@pytest.mark.parametrize(
    ("kind", "attr", "json"), ALL_FIELDS, ids=[f"{k}:{j}" for k, _, j in ALL_FIELDS]
)
def test_every_quantity_field_of_every_kind_is_checked(kind: str, attr: str, json: str) -> None:
    info = next(i for i in _built_in() if i.kind == kind)
    obj: Message = info.message()
    obj.metadata.name = "x"  # type: ignore[attr-defined]
    at(obj, attr).string = "garbage!"
    paths = [e.path for e in validate(obj)]
    assert json in paths, f"{kind}: no error at {json}; got {paths}"


# -- updates ---------------------------------------------------------------------------------


def test_update_refuses_a_new_bad_quantity() -> None:
    old = decoded("Node")
    old.status.allocatable["cpu"].string = "4"
    new = decoded("Node")
    new.status.allocatable["cpu"].string = "garbage!"
    assert [e.path for e in validate_update(new, old)] == ["status.allocatable[cpu]"]


def test_update_keeps_a_bad_quantity_stored_before_the_check() -> None:
    """A stored object that predates the check can still be updated (its
    finalizers removed, its status written) while that value is unchanged."""
    limit = "spec.template.spec.containers[0].resources.limits[cpu]"
    old = decoded("Deployment")
    setting(limit, "1.5.5Gi")(old)
    new = decoded("Deployment")
    new.CopyFrom(old)
    new.metadata.finalizers.append("example.com/keep")
    new.status.replicas = 1
    assert validate_update(new, old) == []
    setting(limit, "2.5.5Gi")(new)
    assert [e.path for e in validate_update(new, old)] == [limit]

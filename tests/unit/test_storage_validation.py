"""Validation of PersistentVolume, PersistentVolumeClaim and StorageClass,
on create and on update: each case names the manifest and the errors the
API server answers with, as `path: message` (Kubernetes' words)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest

from kpy.api import codec
from kpy.api.defaults import set_defaults
from kpy.api.validation import validate, validate_update


def pv(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"],
        "hostPath": {"path": "/tmp/pv"},
    }
    base.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pv"},
        "spec": base,
    }


def pvc(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }
    base.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "default"},
        "spec": base,
    }


def sc(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "fast"},
        "provisioner": "kpy.io/local-path",
    }
    body.update(fields)
    return body


def without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    where = out
    for key in path[:-1]:
        where = where[key]
    del where[path[-1]]
    return out


HOSTNAME_AFFINITY = {
    "required": {
        "nodeSelectorTerms": [
            {
                "matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["kpy-node-1"]}
                ]
            }
        ]
    }
}


@dataclass(frozen=True)
class Case:
    name: str
    body: dict[str, Any]
    want: list[str] = field(default_factory=list)  # "path: start of message"


def shown(body: dict[str, Any]) -> list[str]:
    return sorted(str(e) for e in validate(set_defaults(codec.decode_object(body))))


CREATE = [
    Case("a hostPath PV", pv()),
    Case(
        "a local PV with node affinity",
        pv(hostPath=None, local={"path": "/mnt/disk"}, nodeAffinity=HOSTNAME_AFFINITY),
    ),
    Case(
        "a PV without capacity",
        without(pv(), "spec", "capacity"),
        ["spec.capacity[storage]: Required value"],
    ),
    Case(
        "a PV capacity other than storage",
        pv(capacity={"storage": "1Gi", "cpu": "1"}),
        ['spec.capacity: Unsupported value: "cpu": supported values: "storage"'],
    ),
    Case(
        "a PV without access modes",
        without(pv(), "spec", "accessModes"),
        ["spec.accessModes: Required value: at least 1 access mode is required"],
    ),
    Case(
        "a PV with an unknown access mode",
        pv(accessModes=["ReadWriteSometimes"]),
        ['spec.accessModes[0]: Unsupported value: "ReadWriteSometimes"'],
    ),
    Case(
        "ReadWriteOncePod with another mode",
        pv(accessModes=["ReadWriteOncePod", "ReadOnlyMany"]),
        ["spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"],
    ),
    Case(
        "a PV without a source",
        without(pv(), "spec", "hostPath"),
        ["spec: Required value: must specify a volume type"],
    ),
    Case(
        "a PV with two sources",
        pv(local={"path": "/mnt"}, nodeAffinity=HOSTNAME_AFFINITY),
        ["spec: Forbidden: may not specify more than 1 volume type"],
    ),
    Case(
        "an nfs PV is not supported by kpy",
        pv(hostPath=None, nfs={"server": "nfs", "path": "/x"}),
        ["spec.nfs: Forbidden: not supported by kpy"],
    ),
    Case(
        "a local PV without node affinity",
        pv(hostPath=None, local={"path": "/mnt"}),
        ["spec.nodeAffinity: Required value: Local volume requires node affinity"],
    ),
    Case("a hostPath without path", pv(hostPath={}), ["spec.hostPath.path: Required value"]),
    Case(
        "a bad hostPath type",
        pv(hostPath={"path": "/x", "type": "Folder"}),
        ['spec.hostPath.type: Unsupported value: "Folder"'],
    ),
    Case(
        "a bad reclaim policy",
        pv(persistentVolumeReclaimPolicy="Keep"),
        ['spec.persistentVolumeReclaimPolicy: Unsupported value: "Keep"'],
    ),
    Case(
        "Recycle is not supported by kpy",
        pv(persistentVolumeReclaimPolicy="Recycle"),
        ['spec.persistentVolumeReclaimPolicy: Forbidden: "Recycle" is not supported by kpy'],
    ),
    Case(
        "a claimRef without a name",
        pv(claimRef={"namespace": "default"}),
        ["spec.claimRef.name: Required value"],
    ),
    Case(
        "node affinity without terms",
        pv(nodeAffinity={"required": {"nodeSelectorTerms": []}}),
        [
            "spec.nodeAffinity.required.nodeSelectorTerms: Required value: "
            "must have at least one node selector term"
        ],
    ),
    Case("a claim", pvc()),
    Case("a claim of a class", pvc(storageClassName="local-path")),
    Case(
        "a claim without access modes",
        without(pvc(), "spec", "accessModes"),
        ["spec.accessModes: Required value: at least 1 access mode is required"],
    ),
    Case(
        "a claim without storage",
        pvc(resources={"requests": {}}),
        ["spec.resources[storage]: Required value"],
    ),
    Case(
        "a claim asking for nothing",
        pvc(resources={"requests": {"storage": "0"}}),
        ['spec.resources[storage]: Invalid value: "0": must be greater than zero'],
    ),
    Case(
        "a claim of a badly named class",
        pvc(storageClassName="Fast_Disks"),
        ['spec.storageClassName: Invalid value: "Fast_Disks"'],
    ),
    Case("a class", sc(reclaimPolicy="Retain", volumeBindingMode="WaitForFirstConsumer")),
    Case(
        "a class without provisioner", without(sc(), "provisioner"), ["provisioner: Required value"]
    ),
    Case(
        "a bad binding mode",
        sc(volumeBindingMode="Later"),
        ['volumeBindingMode: Unsupported value: "Later"'],
    ),
    Case(
        "a bad class reclaim policy",
        sc(reclaimPolicy="Recycle"),
        ['reclaimPolicy: Unsupported value: "Recycle"'],
    ),
]


@pytest.mark.parametrize("case", CREATE, ids=lambda c: c.name)
def test_create(case: Case) -> None:
    got = shown(case.body)
    assert len(got) == len(case.want), f"{case.name}: {got}"
    for message, want in zip(got, sorted(case.want), strict=True):
        assert message.startswith(want), f"{case.name}: {got}"


def bound(body: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    out["status"] = {"phase": "Bound"}
    return out


def with_spec(body: dict[str, Any], **spec: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    out["spec"].update(spec)
    return out


@dataclass(frozen=True)
class UpdateCase:
    name: str
    old: dict[str, Any]
    new: dict[str, Any]
    want: list[str] = field(default_factory=list)


UPDATE = [
    UpdateCase("the binder sets volumeName once", pvc(), pvc(volumeName="pv-1")),
    UpdateCase(
        "volumeName never changes once set",
        pvc(volumeName="pv-1"),
        pvc(volumeName="pv-2"),
        [
            "spec: Forbidden: spec is immutable after creation except resources.requests "
            "and volumeAttributesClassName for bound claims"
        ],
    ),
    UpdateCase("the default class given later", pvc(), pvc(storageClassName="local-path")),
    UpdateCase(
        "a class never changes once set",
        pvc(storageClassName="a"),
        pvc(storageClassName="b"),
        ["spec: Forbidden: spec is immutable after creation"],
    ),
    UpdateCase(
        "access modes are fixed",
        pvc(),
        pvc(accessModes=["ReadWriteMany"]),
        ["spec: Forbidden: spec is immutable after creation"],
    ),
    UpdateCase(
        "a bound claim may grow",
        bound(pvc(volumeName="pv-1")),
        bound(pvc(volumeName="pv-1", resources={"requests": {"storage": "2Gi"}})),
    ),
    UpdateCase(
        "an unbound claim may not grow",
        pvc(),
        pvc(resources={"requests": {"storage": "2Gi"}}),
        ["spec: Forbidden: spec is immutable after creation"],
    ),
    UpdateCase(
        "a bound claim may not shrink",
        bound(pvc(volumeName="pv-1")),
        bound(pvc(volumeName="pv-1", resources={"requests": {"storage": "512Mi"}})),
        ["spec.resources.requests.storage: Forbidden: field can not be less than previous value"],
    ),
    UpdateCase("a PV's claimRef may be set", pv(), pv(claimRef={"namespace": "d", "name": "c"})),
    UpdateCase(
        "a PV's source is fixed",
        pv(),
        pv(hostPath={"path": "/elsewhere"}),
        ["spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable"],
    ),
    UpdateCase("node affinity may be added", pv(), pv(nodeAffinity=HOSTNAME_AFFINITY)),
    UpdateCase(
        "node affinity is then fixed",
        pv(nodeAffinity=HOSTNAME_AFFINITY),
        pv(nodeAffinity={"required": {"nodeSelectorTerms": [{"matchFields": []}]}}),
        ["spec.nodeAffinity: Invalid value: field is immutable"],
    ),
    UpdateCase(
        "class parameters are fixed",
        sc(parameters={"path": "/a"}),
        sc(parameters={"path": "/b"}),
        ["parameters: Forbidden: updates to parameters are forbidden."],
    ),
    UpdateCase(
        "the provisioner is fixed",
        sc(),
        sc(provisioner="example.com/nfs"),
        ["provisioner: Forbidden: updates to provisioner are forbidden."],
    ),
    UpdateCase(
        "the binding mode is fixed",
        sc(volumeBindingMode="Immediate"),
        sc(volumeBindingMode="WaitForFirstConsumer"),
        ["volumeBindingMode: Invalid value: field is immutable"],
    ),
    UpdateCase("allowVolumeExpansion may change", sc(), sc(allowVolumeExpansion=True)),
]


def _stored(body: dict[str, Any]) -> Any:
    obj: Any = set_defaults(codec.decode_object(body))
    obj.metadata.resource_version = "7"
    obj.metadata.uid = "uid-1"
    obj.metadata.creation_timestamp.FromSeconds(1_700_000_000)
    return obj


@pytest.mark.parametrize("case", UPDATE, ids=lambda c: c.name)
def test_update(case: UpdateCase) -> None:
    got = sorted(str(e) for e in validate_update(_stored(case.new), _stored(case.old)))
    assert len(got) == len(case.want), f"{case.name}: {got}"
    for message, want in zip(got, sorted(case.want), strict=True):
        assert message.startswith(want), f"{case.name}: {got}"

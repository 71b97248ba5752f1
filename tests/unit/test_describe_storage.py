"""`kpyctl describe` of PersistentVolumes, PersistentVolumeClaims and
StorageClasses: the text kubectl prints, line for line (events aside)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from kpy.api.codec import from_dict
from kpy.api.core.v1 import PersistentVolume, PersistentVolumeClaim, Pod
from kpy.api.storage.v1 import StorageClass
from kpy.cli import _describe_storage, _printers

PV = {
    "metadata": {
        "name": "pvc-1234",
        "annotations": {"pv.kubernetes.io/provisioned-by": "kpy.io/local-path"},
        "finalizers": ["kubernetes.io/pv-protection"],
    },
    "spec": {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"],
        "hostPath": {
            "path": "/var/lib/kpy/local-path/default_data_pvc-1234",
            "type": "DirectoryOrCreate",
        },
        "storageClassName": "local-path",
        "persistentVolumeReclaimPolicy": "Delete",
        "claimRef": {"namespace": "default", "name": "data"},
        "volumeMode": "Filesystem",
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/hostname",
                                "operator": "In",
                                "values": ["kpy-node-1"],
                            }
                        ]
                    }
                ]
            }
        },
    },
    "status": {"phase": "Bound"},
}
PV_TEXT = """\
Name:            pvc-1234
Labels:          <none>
Annotations:     pv.kubernetes.io/provisioned-by: kpy.io/local-path
Finalizers:      [kubernetes.io/pv-protection]
StorageClass:    local-path
Status:          Bound
Claim:           default/data
Reclaim Policy:  Delete
Access Modes:    RWO
VolumeMode:      Filesystem
Capacity:        1Gi
Node Affinity:
  Required Terms:
    Term 0:  kubernetes.io/hostname in [kpy-node-1]
Message:     |
Source:
    Type:          HostPath (bare host directory volume)
    Path:          /var/lib/kpy/local-path/default_data_pvc-1234
    HostPathType:  DirectoryOrCreate
"""

PVC = {
    "metadata": {
        "name": "data",
        "namespace": "default",
        "finalizers": ["kubernetes.io/pvc-protection"],
        "annotations": {"pv.kubernetes.io/bind-completed": "yes"},
    },
    "spec": {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": "local-path",
        "volumeName": "pvc-1234",
        "volumeMode": "Filesystem",
    },
    "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}},
}
PVC_TEXT = """\
Name:          data
Namespace:     default
StorageClass:  local-path
Status:        Bound
Volume:        pvc-1234
Labels:        <none>
Annotations:   pv.kubernetes.io/bind-completed: yes
Finalizers:    [kubernetes.io/pvc-protection]
Capacity:      1Gi
Access Modes:  RWO
VolumeMode:    Filesystem
Used By:       web-0
"""

PENDING = {
    "metadata": {"name": "www-web-0", "namespace": "default"},
    "spec": {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": "my-storage-class",
    },
    "status": {"phase": "Pending"},
}
PENDING_TEXT = """\
Name:          www-web-0
Namespace:     default
StorageClass:  my-storage-class
Status:        Pending
Volume:        |
Labels:        <none>
Annotations:   <none>
Finalizers:    []
Capacity:      |
Access Modes:  |
VolumeMode:    Filesystem
Used By:       <none>
"""

SC = {
    "metadata": {
        "name": "local-path",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    },
    "provisioner": "kpy.io/local-path",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "WaitForFirstConsumer",
}
SC_TEXT = """\
Name:                  local-path
IsDefaultClass:        Yes
Annotations:           storageclass.kubernetes.io/is-default-class=true
Provisioner:           kpy.io/local-path
Parameters:            <none>
AllowVolumeExpansion:  <unset>
MountOptions:          <none>
ReclaimPolicy:         Delete
VolumeBindingMode:     WaitForFirstConsumer
"""


def _user(name: str, claim: str) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {"name": name},
            "spec": {
                "containers": [{"name": "c", "image": "nginx"}],
                "volumes": [{"name": "www", "persistentVolumeClaim": {"claimName": claim}}],
            },
        },
    )


@dataclass(frozen=True)
class Case:
    name: str
    rows: Any
    text: str


CASES = [
    Case(
        "a provisioned volume",
        lambda: _describe_storage.pv_rows(from_dict(PersistentVolume, PV)),
        PV_TEXT,
    ),
    Case(
        "a bound claim and its user",
        lambda: _describe_storage.pvc_rows(
            from_dict(PersistentVolumeClaim, PVC), [_user("web-0", "data"), _user("x", "other")]
        ),
        PVC_TEXT,
    ),
    Case(
        "a pending claim",
        lambda: _describe_storage.pvc_rows(from_dict(PersistentVolumeClaim, PENDING), []),
        PENDING_TEXT,
    ),
    Case(
        "the default class",
        lambda: _describe_storage.storage_class_rows(from_dict(StorageClass, SC)),
        SC_TEXT,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_describe(case: Case) -> None:
    text = _printers.tabulate(case.rows(), padding=2, min_width=0)
    assert text == case.text.replace("|\n", "\n"), f"{case.name}:\n{text}"

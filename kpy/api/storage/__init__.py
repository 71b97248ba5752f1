"""storage.k8s.io: StorageClass, and the names that persistent volumes'
parts share: the API server's admission, the PV controllers, the
scheduler's VolumeBinding plugin, the agent and kpyctl (Kubernetes'
pkg/controller/volume/persistentvolume/util and storage/v1 helpers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

#: set on a PV / PVC when the binder made the binding (not the user).
ANN_BOUND_BY_CONTROLLER: Final = "pv.kubernetes.io/bound-by-controller"
#: set on a PVC once the binder has finished binding it.
ANN_BIND_COMPLETED: Final = "pv.kubernetes.io/bind-completed"
#: set on a dynamically provisioned PV: the provisioner that made it.
ANN_PROVISIONED_BY: Final = "pv.kubernetes.io/provisioned-by"
#: set on a PVC by the binder: the provisioner it waits for.
ANN_STORAGE_PROVISIONER: Final = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER: Final = "volume.beta.kubernetes.io/storage-provisioner"
#: set on a WaitForFirstConsumer PVC by the scheduler: the node its first pod goes to.
ANN_SELECTED_NODE: Final = "volume.kubernetes.io/selected-node"
#: a StorageClass with this annotation "true" is the default class.
ANN_DEFAULT_CLASS: Final = "storageclass.kubernetes.io/is-default-class"
ANN_BETA_DEFAULT_CLASS: Final = "storageclass.beta.kubernetes.io/is-default-class"

PVC_PROTECTION_FINALIZER: Final = "kubernetes.io/pvc-protection"
PV_PROTECTION_FINALIZER: Final = "kubernetes.io/pv-protection"

#: kpy's local-path provisioner answers to both names.
LOCAL_PATH_PROVISIONER: Final = "kpy.io/local-path"
LOCAL_PATH_PROVISIONERS: Final = frozenset({LOCAL_PATH_PROVISIONER, "rancher.io/local-path"})
#: where local-path volumes go when the class names no `path` and the
#: controller manager is given no --local-path-dir.
DEFAULT_LOCAL_PATH_DIR: Final = "/var/lib/kpy/local-path"
HOSTNAME_LABEL: Final = "kubernetes.io/hostname"

__all__ = [
    "ANN_BETA_DEFAULT_CLASS",
    "ANN_BETA_STORAGE_PROVISIONER",
    "ANN_BIND_COMPLETED",
    "ANN_BOUND_BY_CONTROLLER",
    "ANN_DEFAULT_CLASS",
    "ANN_PROVISIONED_BY",
    "ANN_SELECTED_NODE",
    "ANN_STORAGE_PROVISIONER",
    "DEFAULT_LOCAL_PATH_DIR",
    "HOSTNAME_LABEL",
    "LOCAL_PATH_PROVISIONER",
    "LOCAL_PATH_PROVISIONERS",
    "PVC_PROTECTION_FINALIZER",
    "PV_PROTECTION_FINALIZER",
    "is_default_class",
]


def is_default_class(annotations: Mapping[str, str]) -> bool:
    """Whether a StorageClass's annotations make it the default class."""
    return "true" in (annotations.get(ANN_DEFAULT_CLASS), annotations.get(ANN_BETA_DEFAULT_CLASS))

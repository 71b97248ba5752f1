"""Persistent volumes in the controller manager, as Kubernetes'
pkg/controller/volume splits them:

- `binder`: the PV controller (`persistentvolume-binder`): binds claims to
  volumes, keeps both phases, reclaims a volume whose claim is gone;
- `local_path`: the `local-path` provisioner (rancher's local-path-provisioner
  for kpy): a directory volume on a node for each claim of its classes;
- `protection`: the `kubernetes.io/pvc-protection` and
  `kubernetes.io/pv-protection` finalizers' controllers.

The annotation and finalizer names they share with the API server, the
scheduler, the agent and kpyctl live in `kpy.api.storage`.
"""

from __future__ import annotations

from kpy.api.storage import (
    ANN_BETA_DEFAULT_CLASS,
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_DEFAULT_CLASS,
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    DEFAULT_LOCAL_PATH_DIR,
    HOSTNAME_LABEL,
    LOCAL_PATH_PROVISIONER,
    LOCAL_PATH_PROVISIONERS,
    PV_PROTECTION_FINALIZER,
    PVC_PROTECTION_FINALIZER,
    is_default_class,
)

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

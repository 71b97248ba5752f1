"""PersistentVolumes, PersistentVolumeClaims and StorageClasses as
`kubectl describe` shows them (kubectl's PersistentVolumeDescriber,
PersistentVolumeClaimDescriber and StorageClassDescriber), as rows for
describe's tabwriter (kpy.cli._printers.tabulate with padding 2).

Contracts:
- Pure: objects are read, never mutated; events are the caller's,
  appended after these rows.
- `pv_rows(pv)`: Name, Labels, Annotations, Finalizers, StorageClass,
  Status (Terminating while deleted), Claim, Reclaim Policy, Access Modes
  (abbreviated: RWO), VolumeMode, Capacity, Node Affinity (its required
  terms, one line each), Message, then Source with the volume's type and
  path as kubectl words them.
- `pvc_rows(pvc, pods)`: Name, Namespace, StorageClass, Status, Volume,
  Labels, Annotations, Finalizers, Capacity and Access Modes (once bound),
  VolumeMode, Used By (the pods of `pods` that mount it), Conditions.
- `storage_class_rows(sc)`: Name, IsDefaultClass, Annotations (as
  `k=v,k=v`), Provisioner, Parameters, AllowVolumeExpansion, MountOptions,
  ReclaimPolicy, VolumeBindingMode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kpy.api.storage import is_default_class
from kpy.cli import _describe_pod, _printers

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.core.v1 import Pod

__all__ = ["Rows", "pv_rows", "pvc_rows", "storage_class_rows"]

Rows = list[list[str]]
_ind = _describe_pod.indent
NONE = _printers.NONE


def _finalizers(meta: Any) -> str:
    return "[" + " ".join(meta.finalizers) + "]"


def _status(obj: Any) -> str:
    if obj.metadata.HasField("deletion_timestamp"):
        return "Terminating"
    return str(obj.status.phase)


def _storage(quantities: Any) -> str:
    return quantities["storage"].string if "storage" in quantities else ""


def _requirement(req: Any) -> str:
    """kubectl's `key in [a b]` for one node selector requirement."""
    op = req.operator.lower() if req.operator in ("In", "NotIn") else req.operator
    if req.operator in ("Exists", "DoesNotExist"):
        return f"{req.key} {op}"
    return f"{req.key} {op} [{' '.join(req.values)}]"


def _node_affinity(pv: Any) -> Rows:
    if not pv.spec.node_affinity.HasField("required"):
        return [["Node Affinity:", NONE]]
    rows: Rows = [["Node Affinity:"], [_ind(1, "Required Terms:")]]
    for i, term in enumerate(pv.spec.node_affinity.required.node_selector_terms):
        parts = [_requirement(r) for r in term.match_expressions]
        parts += [_requirement(r) for r in term.match_fields]
        rows.append([_ind(2, f"Term {i}:"), ", ".join(parts) or NONE])
    return rows


def _source(pv: Any) -> Rows:
    spec = pv.spec
    rows: Rows = [["Source:"]]
    if spec.HasField("host_path"):
        rows += [
            [_ind(2, "Type:"), "HostPath (bare host directory volume)"],
            [_ind(2, "Path:"), spec.host_path.path],
            [_ind(2, "HostPathType:"), spec.host_path.type],
        ]
    elif spec.HasField("local"):
        rows += [
            [
                _ind(2, "Type:"),
                "LocalVolume (a persistent volume backed by local storage on a node)",
            ],
            [_ind(2, "Path:"), spec.local.path],
        ]
    return rows


def pv_rows(pv: Any) -> Rows:
    """A PersistentVolume's description up to its events (see the module docstring)."""
    meta, spec = pv.metadata, pv.spec
    ref = spec.claim_ref
    return [
        ["Name:", meta.name],
        *_describe_pod.labels_rows("Labels:", dict(meta.labels), "="),
        *_describe_pod.annotations_rows("Annotations:", dict(meta.annotations)),
        ["Finalizers:", _finalizers(meta)],
        ["StorageClass:", spec.storage_class_name],
        ["Status:", _status(pv)],
        ["Claim:", f"{ref.namespace}/{ref.name}" if ref.name else ""],
        ["Reclaim Policy:", spec.persistent_volume_reclaim_policy],
        ["Access Modes:", _printers.access_modes(spec.access_modes)],
        ["VolumeMode:", spec.volume_mode or "Filesystem"],
        ["Capacity:", _storage(spec.capacity)],
        *_node_affinity(pv),
        ["Message:", pv.status.message],
        *_source(pv),
    ]


def _mounts(pod: Pod, claim: str) -> bool:
    return any(
        v.HasField("persistent_volume_claim") and v.persistent_volume_claim.claim_name == claim
        for v in pod.spec.volumes
    )


def pvc_rows(pvc: Any, pods: Sequence[Pod]) -> Rows:
    """A PersistentVolumeClaim's description up to its events; `pods` are
    the pods of its namespace (see the module docstring)."""
    meta, spec = pvc.metadata, pvc.spec
    bound = bool(spec.volume_name)
    users = sorted(p.metadata.name for p in pods if _mounts(p, meta.name))
    rows: Rows = [
        ["Name:", meta.name],
        ["Namespace:", meta.namespace],
        ["StorageClass:", spec.storage_class_name],
        ["Status:", _status(pvc)],
        ["Volume:", spec.volume_name],
        *_describe_pod.labels_rows("Labels:", dict(meta.labels), "="),
        *_describe_pod.annotations_rows("Annotations:", dict(meta.annotations)),
        ["Finalizers:", _finalizers(meta)],
        ["Capacity:", _storage(pvc.status.capacity) if bound else ""],
        ["Access Modes:", _printers.access_modes(pvc.status.access_modes) if bound else ""],
        ["VolumeMode:", spec.volume_mode or "Filesystem"],
        *_describe_pod.list_rows("Used By:", users),
    ]
    if pvc.status.conditions:
        rows += [
            ["Conditions:"],
            [_ind(1, "Type"), "Status", "LastProbeTime", "LastTransitionTime", "Reason", "Message"],
            [_ind(1, "----"), "------", "-------------", "------------------", "------", "-------"],
        ]
        for c in pvc.status.conditions:
            rows.append(
                [
                    _ind(1, c.type),
                    c.status,
                    _describe_pod.timestamp(c.last_probe_time),
                    _describe_pod.timestamp(c.last_transition_time),
                    c.reason,
                    c.message,
                ]
            )
    return rows


def storage_class_rows(sc: Any) -> Rows:
    """A StorageClass's description up to its events (see the module docstring)."""
    meta = sc.metadata
    annotations = ",".join(f"{k}={v}" for k, v in sorted(meta.annotations.items()))
    parameters = ",".join(f"{k}={v}" for k, v in sorted(sc.parameters.items()))
    expansion = "<unset>"
    if sc.HasField("allow_volume_expansion"):
        expansion = "True" if sc.allow_volume_expansion else "False"
    return [
        ["Name:", meta.name],
        ["IsDefaultClass:", "Yes" if is_default_class(meta.annotations) else "No"],
        ["Annotations:", annotations],
        ["Provisioner:", sc.provisioner],
        ["Parameters:", parameters or NONE],
        ["AllowVolumeExpansion:", expansion],
        ["MountOptions:", ", ".join(sc.mount_options) or NONE],
        ["ReclaimPolicy:", sc.reclaim_policy],
        ["VolumeBindingMode:", sc.volume_binding_mode],
    ]

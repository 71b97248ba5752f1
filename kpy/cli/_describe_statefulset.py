"""A StatefulSet as `kubectl describe` shows it (kubectl's
StatefulSetDescriber), as rows for describe's tabwriter
(kpy.cli._printers.tabulate with padding 2).

Contracts:
- Pure: the set and its pods are read, never mutated. The pod template's
  rows are passed in (describe.py's one pod-template printer, shared with
  the other workloads); events are the caller's, appended after these rows.
- `statefulset_rows(sts, pods, template)`: Name, Namespace,
  CreationTimestamp, Selector, Labels, Annotations, `Replicas:  N desired |
  N total`, Update Strategy (with its Partition and, when set,
  MaxUnavailable), `Pods Status:  N Running / N Waiting / N Succeeded / N
  Failed` over `pods` (the pods it controls), the Pod Template, then
  `Volume Claims:` with each claim template's Name, StorageClass, Labels,
  Annotations, Capacity (`<default>` without a storage request) and Access
  Modes (as Go prints a list: `[ReadWriteOnce]`), or `<none>`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kpy.api import intstr
from kpy.cli import _describe_pod, _printers

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.core.v1 import Pod

__all__ = ["Rows", "statefulset_rows"]

Rows = list[list[str]]
_ind = _describe_pod.indent


def statefulset_rows(sts: Any, pods: Sequence[Pod], template: Rows) -> Rows:
    """A StatefulSet's description up to its events (see the module docstring)."""
    meta, spec = sts.metadata, sts.spec
    selector = ",".join(f"{k}={v}" for k, v in sorted(spec.selector.match_labels.items()))
    rows: Rows = [
        ["Name:", meta.name],
        ["Namespace:", meta.namespace],
        ["CreationTimestamp:", _describe_pod.timestamp(meta.creation_timestamp)],
        ["Selector:", selector],
        *_describe_pod.labels_rows("Labels:", dict(meta.labels), "="),
        *_describe_pod.annotations_rows("Annotations:", dict(meta.annotations)),
        ["Replicas:", f"{spec.replicas} desired | {sts.status.replicas} total"],
        ["Update Strategy:", spec.update_strategy.type],
    ]
    if spec.update_strategy.HasField("rolling_update"):
        rolling = spec.update_strategy.rolling_update
        rows.append([_ind(1, "Partition:"), str(rolling.partition)])
        if rolling.HasField("max_unavailable"):
            rows.append(
                [_ind(1, "MaxUnavailable:"), str(intstr.to_python(rolling.max_unavailable))]
            )
    phases = [p.status.phase for p in pods]
    rows.append(
        [
            "Pods Status:",
            f"{phases.count('Running')} Running / {phases.count('Pending')} Waiting / "
            f"{phases.count('Succeeded')} Succeeded / {phases.count('Failed')} Failed",
        ]
    )
    return rows + template + _claim_templates(spec.volume_claim_templates)


def _claim_templates(templates: Any) -> Rows:
    if not templates:
        return [["Volume Claims:", _printers.NONE]]
    rows: Rows = [["Volume Claims:"]]
    for claim in templates:
        requests = claim.spec.resources.requests
        capacity = requests["storage"].string if "storage" in requests else "<default>"
        rows += [
            [_ind(1, "Name:"), claim.metadata.name],
            [_ind(1, "StorageClass:"), claim.spec.storage_class_name],
            *_describe_pod.labels_rows("Labels:", dict(claim.metadata.labels), "=", level=1),
            *_describe_pod.annotations_rows(
                "Annotations:", dict(claim.metadata.annotations), level=1
            ),
            [_ind(1, "Capacity:"), capacity],
            [_ind(1, "Access Modes:"), f"[{' '.join(claim.spec.access_modes)}]"],
        ]
    return rows

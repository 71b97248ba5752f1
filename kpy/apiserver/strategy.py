"""Per-kind rules of the generic registry (Kubernetes' REST strategies).

The registry does the same steps for every kind; a `Strategy` answers the
questions on which kinds differ:
- is status written only through the status subresource (`status_subresource`)?
  Then the main path keeps the stored status and the status path keeps
  everything but the status;
- what does a new object's status start as (`prepare_for_create`)?
- can the kind be scaled (`scale_path`: where its replicas and selector live)?
- how long does a delete wait (`grace_period`), and what does a delete mark
  (`mark_deleting`: a namespace turns Terminating)?
- which finalizers hold an object back (`pending_finalizers`: a namespace
  also waits for its `spec.finalizers`)?
- may it be deleted at all (`check_delete`: `default` and `kube-system` may not)?
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from kpy.api import errors

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from kpy.api.meta.v1 import DeleteOptions

PROTECTED_NAMESPACES: Final = ("default", "kube-system")
NAMESPACE_FINALIZER: Final = "kubernetes"

_NO_STATUS_SUBRESOURCE: Final = frozenset(
    {
        "ConfigMap",
        "Secret",
        "Event",
        "Endpoints",
        "Lease",
        "ControllerRevision",
        "StorageClass",
        "PriorityClass",
    }
)
_SCALABLE: Final = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"})


@dataclass(frozen=True, slots=True)
class Strategy:
    kind: str
    status_subresource: bool
    scalable: bool

    # -- create ---------------------------------------------------------------

    def prepare_for_create(self, obj: Any) -> None:
        """Resets what a client may not set on create."""
        if self.kind == "Node":
            return  # an agent registers its node with its status
        if self.status_subresource and obj.HasField("status"):
            obj.ClearField("status")
        if self.kind == "Pod":
            obj.status.phase = "Pending"
        elif self.kind == "Namespace":
            obj.status.phase = "Active"
            if NAMESPACE_FINALIZER not in obj.spec.finalizers:
                obj.spec.finalizers.append(NAMESPACE_FINALIZER)
        elif self.kind in ("PersistentVolumeClaim", "PersistentVolume"):
            obj.status.phase = "Pending"
        elif self.kind == "Secret":
            merge_string_data(obj)

    # -- update ---------------------------------------------------------------

    def prepare_for_update(self, new: Any, old: Any) -> None:
        """The main path: status and server-owned fields come from `old`."""
        if self.status_subresource:
            if old.HasField("status"):
                new.status.CopyFrom(old.status)
            else:
                new.ClearField("status")
        if self.kind == "Secret":
            merge_string_data(new)
        if self.kind == "Namespace":
            # spec.finalizers changes only through the finalize subresource.
            del new.spec.finalizers[:]
            new.spec.finalizers.extend(old.spec.finalizers)

    def spec_changed(self, new: Message, old: Message) -> bool:
        """Whether the change is one `metadata.generation` counts."""
        if "spec" in new.DESCRIPTOR.fields_by_name:
            return bool(new.spec != old.spec)  # type: ignore[attr-defined]
        for field in new.DESCRIPTOR.fields:
            if field.name in ("metadata", "status"):
                continue
            if getattr(new, field.name) != getattr(old, field.name):
                return True
        return False

    # -- delete ---------------------------------------------------------------

    def check_delete(self, obj: Any, as_node: str = "") -> None:
        """Forbidden for the protected namespaces, and for a node agent
        (`as_node`) on a pod of another node (Kubernetes' NodeRestriction).
        Anyone may delete a mirror pod, as in Kubernetes: its agent creates
        it again while the static pod runs on."""
        if self.kind == "Namespace" and obj.metadata.name in PROTECTED_NAMESPACES:
            raise errors.Forbidden(
                f'namespaces "{obj.metadata.name}" is forbidden: this namespace may not be deleted',
                kind="namespaces",
                name=obj.metadata.name,
            )
        if self.kind == "Pod" and as_node and as_node != obj.spec.node_name:
            raise errors.Forbidden(
                f'pods "{obj.metadata.name}" is forbidden: node "{as_node}" can only delete '
                f'pods bound to itself, and this one is on node "{obj.spec.node_name}"',
                kind="pods",
                name=obj.metadata.name,
            )

    def grace_period(self, obj: Any, options: DeleteOptions) -> int:
        """Seconds the object lingers with a deletionTimestamp before it goes.
        Pods wait for their node agent unless they never reached a node or
        already finished; everything else goes at once (or waits only for
        its finalizers)."""
        if self.kind != "Pod":
            return 0
        if not obj.spec.node_name or obj.status.phase in ("Succeeded", "Failed"):
            return 0
        if options.HasField("grace_period_seconds"):
            return max(0, int(options.grace_period_seconds))
        if obj.spec.HasField("termination_grace_period_seconds"):
            return max(0, int(obj.spec.termination_grace_period_seconds))
        return 30

    def mark_deleting(self, obj: Any) -> None:
        """What a pending delete shows besides deletionTimestamp."""
        if self.kind == "Namespace":
            obj.status.phase = "Terminating"

    def pending_finalizers(self, obj: Any) -> bool:
        if obj.metadata.finalizers:
            return True
        return self.kind == "Namespace" and bool(obj.spec.finalizers)


def strategy_for(kind: str) -> Strategy:
    return Strategy(
        kind=kind,
        status_subresource=kind not in _NO_STATUS_SUBRESOURCE,
        scalable=kind in _SCALABLE,
    )


def merge_string_data(secret: Any) -> None:
    """`stringData` is write-only: each value is stored UTF-8 encoded under
    `data` (winning over a `data` value of the same key, as in Kubernetes)
    and the field itself is never stored nor returned."""
    for key, value in secret.string_data.items():
        secret.data[key] = value.encode()
    secret.ClearField("string_data")

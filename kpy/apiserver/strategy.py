"""Per-kind rules of the generic registry (Kubernetes' REST strategies).

The registry does the same steps for every kind; a `Strategy` answers the
questions on which kinds differ:
- is status written only through the status subresource? (the scheme's
  `ResourceInfo.status_subresource`) Then the main path keeps the stored
  status and the status path keeps everything but the status;
- which subresources does the kind serve (`subresources`)?
- what does a new object start as (`prepare_for_create`), and what does an
  update keep of the stored one (`prepare_for_update`)?
- where do its replicas and selector live, if it scales (`ScalableStrategy`)?
- may it be deleted at all (`check_delete`), how long does a delete wait
  (`grace_period`), what does a pending delete mark (`mark_deleting`), which
  finalizers hold it back (`pending_finalizers`), and what follows a delete
  (`after_delete`)?

`Strategy` is the answer for every kind without rules of its own. A kind
with rules has its own subclass, as Kubernetes has one `strategy.go` per
kind, and `STRATEGIES` maps the kind to it: the registry never tests a
kind's name. Strategies hold no state of their own and never write storage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Final

from kpy.api import errors
from kpy.api.crd.kinds import CLEANUP_FINALIZER
from kpy.api.defaults import set_defaults
from kpy.api.labels import selector_from_label_selector, selector_from_set
from kpy.api.validation import validate, validate_update
from kpy.apiserver import service_alloc

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from kpy.api.meta.v1 import DeleteOptions
    from kpy.api.scheme import ResourceInfo

PROTECTED_NAMESPACES: Final = ("default", "kube-system")
NAMESPACE_FINALIZER: Final = "kubernetes"
DEFAULT_POD_GRACE_SECONDS: Final = 30


class NamespacesBeingDeleted:
    """The uids of namespaces whose delete this process wrote, for `ttl`
    seconds: long enough for every watch cache to have seen it.

    Namespace lookups read a watch cache, which may not show a delete that
    was just written; without this record a create arriving right after the
    delete could land in a namespace being terminated (Kubernetes'
    NamespaceLifecycle admission keeps the same record for the same reason).
    Keyed by uid, so a namespace re-created under the same name is not
    mistaken for the old one. A delete written by another API server is seen
    once this server's cache has it."""

    def __init__(self, ttl: float = 30.0) -> None:
        self._ttl = ttl
        self._until: dict[str, float] = {}

    def add(self, uid: str, now: float) -> None:
        self._until[uid] = now + self._ttl

    def seen(self, uid: str, now: float) -> bool:
        for expired in [u for u, until in self._until.items() if until <= now]:
            del self._until[expired]
        return uid in self._until


class Strategy:
    """The rules every kind follows unless its own strategy says otherwise.

    `deleting` is the server's one record of namespaces being deleted: the
    namespace strategy writes it, every registry reads it."""

    #: Subresources besides `status` (which the scheme decides), in the order
    #: discovery lists them; each is served by `kpy.apiserver.subresources`.
    extra_subresources: ClassVar[tuple[str, ...]] = ()

    def __init__(self, info: ResourceInfo, deleting: NamespacesBeingDeleted) -> None:
        self.info = info
        self.deleting = deleting

    @property
    def status_subresource(self) -> bool:
        return self.info.status_subresource

    def subresources(self) -> tuple[str, ...]:
        """Every subresource the kind serves."""
        return ("status",) * self.status_subresource + self.extra_subresources

    # -- checks ---------------------------------------------------------------

    def default(self, obj: Any) -> None:
        """Sets the defaults of every field the object leaves unset."""
        set_defaults(obj)

    def validate(self, new: Any, old: Any | None) -> list[errors.FieldError]:
        """Every problem with `new` as created (`old` None) or as replacing `old`."""
        return validate(new) if old is None else validate_update(new, old)

    def take_status(self, out: Any, new: Any) -> None:
        """The status path: `out` (a copy of the stored object) takes the
        status the request sent in `new`."""
        out.status.CopyFrom(new.status)

    # -- create ---------------------------------------------------------------

    def prepare_for_create(self, obj: Any) -> None:
        """Resets what a client may not set on create: a status written only
        through its subresource starts empty."""
        if self.status_subresource and obj.HasField("status"):
            obj.ClearField("status")

    # -- update ---------------------------------------------------------------

    def prepare_for_update(self, new: Any, old: Any) -> None:
        """The main path: a status written only through its subresource comes
        from `old`."""
        if self.status_subresource:
            if old.HasField("status"):
                new.status.CopyFrom(old.status)
            else:
                new.ClearField("status")

    def spec_changed(self, new: Message, old: Message) -> bool:
        """Whether the change is one `metadata.generation` counts: the spec,
        or for a kind without one every field but metadata and status."""
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
        """Raises Forbidden when `obj` may not be deleted (by the node agent
        `as_node`, if one asks). Anything may be, by default."""

    def grace_period(self, obj: Any, options: DeleteOptions) -> int:
        """Seconds the object lingers with a deletionTimestamp before it goes:
        none by default (it waits only for its finalizers)."""
        return 0

    def mark_deleting(self, obj: Any) -> None:
        """What a pending delete shows besides deletionTimestamp: nothing by default."""

    def pending_finalizers(self, obj: Any) -> bool:
        """Whether finalizers still hold the object back."""
        return bool(obj.metadata.finalizers)

    def after_delete(self, obj: Any, now: float) -> None:
        """Runs once a delete of `obj` (marked or removed) is written."""


class PodStrategy(Strategy):
    """Pods start Pending, are bound through `binding`, and wait for their
    node agent when deleted; a node agent deletes only its own node's pods."""

    extra_subresources = ("binding", "eviction", "log", "exec")

    def prepare_for_create(self, obj: Any) -> None:
        super().prepare_for_create(obj)
        obj.status.phase = "Pending"

    def check_delete(self, obj: Any, as_node: str = "") -> None:
        """Forbidden for a node agent (`as_node`) on a pod of another node
        (Kubernetes' NodeRestriction). Anyone may delete a mirror pod, as in
        Kubernetes: its agent creates it again while the static pod runs on."""
        if as_node and as_node != obj.spec.node_name:
            raise errors.Forbidden(
                f'pods "{obj.metadata.name}" is forbidden: node "{as_node}" can only delete '
                f'pods bound to itself, and this one is on node "{obj.spec.node_name}"',
                kind="pods",
                name=obj.metadata.name,
            )

    def grace_period(self, obj: Any, options: DeleteOptions) -> int:
        """A pod waits for its node agent unless it never reached a node or
        already finished: the request's grace period, else the pod's
        terminationGracePeriodSeconds, else 30 s."""
        if not obj.spec.node_name or obj.status.phase in ("Succeeded", "Failed"):
            return 0
        if options.HasField("grace_period_seconds"):
            return max(0, int(options.grace_period_seconds))
        if obj.spec.HasField("termination_grace_period_seconds"):
            return max(0, int(obj.spec.termination_grace_period_seconds))
        return DEFAULT_POD_GRACE_SECONDS


class NodeStrategy(Strategy):
    """An agent registers its node with its status, so create keeps it."""

    def prepare_for_create(self, obj: Any) -> None:
        pass


class NamespaceStrategy(Strategy):
    """Namespaces start Active with the `kubernetes` finalizer, turn
    Terminating when deleted, and go only once their `spec.finalizers` are
    empty too; those change only through `finalize`. `default` and
    `kube-system` may not be deleted."""

    extra_subresources = ("finalize",)

    def prepare_for_create(self, obj: Any) -> None:
        super().prepare_for_create(obj)
        obj.status.phase = "Active"
        if NAMESPACE_FINALIZER not in obj.spec.finalizers:
            obj.spec.finalizers.append(NAMESPACE_FINALIZER)

    def prepare_for_update(self, new: Any, old: Any) -> None:
        super().prepare_for_update(new, old)
        del new.spec.finalizers[:]
        new.spec.finalizers.extend(old.spec.finalizers)

    def check_delete(self, obj: Any, as_node: str = "") -> None:
        if obj.metadata.name in PROTECTED_NAMESPACES:
            raise errors.Forbidden(
                f'namespaces "{obj.metadata.name}" is forbidden: this namespace may not be deleted',
                kind="namespaces",
                name=obj.metadata.name,
            )

    def mark_deleting(self, obj: Any) -> None:
        obj.status.phase = "Terminating"

    def pending_finalizers(self, obj: Any) -> bool:
        return super().pending_finalizers(obj) or bool(obj.spec.finalizers)

    def after_delete(self, obj: Any, now: float) -> None:
        """Records the delete, so that no create lands in the namespace
        before the watch caches show it (see `NamespacesBeingDeleted`)."""
        self.deleting.add(obj.metadata.uid, now)


class SecretStrategy(Strategy):
    """`stringData` is write-only: each value is stored UTF-8 encoded under
    `data` (winning over a `data` value of the same key, as in Kubernetes)
    and the field itself is never stored nor returned."""

    def prepare_for_create(self, obj: Any) -> None:
        super().prepare_for_create(obj)
        _merge_string_data(obj)

    def prepare_for_update(self, new: Any, old: Any) -> None:
        super().prepare_for_update(new, old)
        _merge_string_data(new)


def _merge_string_data(secret: Any) -> None:
    for key, value in secret.string_data.items():
        secret.data[key] = value.encode()
    secret.ClearField("string_data")


class PersistentVolumeStrategy(Strategy):
    """A PersistentVolume starts Pending, until a binder makes it Available."""

    def prepare_for_create(self, obj: Any) -> None:
        super().prepare_for_create(obj)
        obj.status.phase = "Pending"


class PersistentVolumeClaimStrategy(Strategy):
    """A PersistentVolumeClaim starts Pending, until it is bound to a volume."""

    def prepare_for_create(self, obj: Any) -> None:
        super().prepare_for_create(obj)
        obj.status.phase = "Pending"


class ScalableStrategy(Strategy):
    """A kind with the `scale` subresource: its replicas are `spec.replicas`
    and `status.replicas`, its selector a LabelSelector in `spec.selector`."""

    extra_subresources = ("scale",)

    def replicas(self, obj: Any) -> tuple[int, int]:
        """The desired and the current replicas, as a Scale shows them."""
        return obj.spec.replicas, obj.status.replicas

    def set_replicas(self, obj: Any, replicas: int) -> None:
        """What a write of the scale subresource changes."""
        obj.spec.replicas = replicas

    def scale_selector(self, obj: Any) -> str:
        """The kind's selector as a Scale's `status.selector` shows it."""
        return str(selector_from_label_selector(obj.spec.selector))


class ReplicationControllerStrategy(ScalableStrategy):
    """A ReplicationController's selector is a plain map of labels."""

    def scale_selector(self, obj: Any) -> str:
        return str(selector_from_set(dict(obj.spec.selector)))


class CustomResourceDefinitionStrategy(Strategy):
    """A new CRD gets the finalizer that deletes its objects before it goes,
    as Kubernetes' does."""

    def prepare_for_create(self, obj: Any) -> None:
        super().prepare_for_create(obj)
        if CLEANUP_FINALIZER not in obj.metadata.finalizers:
            obj.metadata.finalizers.append(CLEANUP_FINALIZER)


class ServiceStrategy(Strategy):
    """A Service gets its IP family fields and affinity timeout set, and an
    update keeps the cluster IP and node ports it does not name
    (`kpy.apiserver.service_alloc`, which also allocates them)."""

    def prepare_for_create(self, obj: Any) -> None:
        super().prepare_for_create(obj)
        service_alloc.prepare_for_create(obj)

    def prepare_for_update(self, new: Any, old: Any) -> None:
        super().prepare_for_update(new, old)
        service_alloc.prepare_for_update(new, old)


class ServiceAccountStrategy(Strategy):
    """A ServiceAccount serves the `token` subresource (TokenRequest)."""

    extra_subresources = ("token",)


STRATEGIES: Final[dict[str, type[Strategy]]] = {
    "Pod": PodStrategy,
    "Node": NodeStrategy,
    "Namespace": NamespaceStrategy,
    "Secret": SecretStrategy,
    "ServiceAccount": ServiceAccountStrategy,
    "PersistentVolume": PersistentVolumeStrategy,
    "PersistentVolumeClaim": PersistentVolumeClaimStrategy,
    "Deployment": ScalableStrategy,
    "ReplicaSet": ScalableStrategy,
    "StatefulSet": ScalableStrategy,
    "ReplicationController": ReplicationControllerStrategy,
    "Service": ServiceStrategy,
    "CustomResourceDefinition": CustomResourceDefinitionStrategy,
}
"""The kinds with rules of their own; every other kind gets `Strategy`."""


def strategy_for(info: ResourceInfo, deleting: NamespacesBeingDeleted) -> Strategy:
    """The strategy of `info`'s kind."""
    return STRATEGIES.get(info.kind, Strategy)(info, deleting)

"""The namespace controller (Kubernetes' pkg/controller/namespace): empties
a namespace being deleted, then lets the server remove it.

- Handlers: a Namespace with a deletionTimestamp (phase Terminating) is
  enqueued by name; a namespace gone drops its per-key state.
- `sync(name)`: re-reads the namespace from the API (a stale cache must not
  finalize a namespace re-created under the same name). Unless its
  `spec.finalizers` still hold `kubernetes`, there is nothing to do. Else,
  for every namespaced kind (the built-in ones, pods first, so their
  workloads stop before their configuration goes; then the custom kinds
  discovery lists at that moment, as Kubernetes' reads discovery): list it, delete the collection
  (propagationPolicy Background) if anything is there, and list again.
  The namespace's conditions say what is left, as Kubernetes' do
  (NamespaceDeletionContentFailure, NamespaceContentRemaining,
  NamespaceFinalizersRemaining). While anything is left (pods waiting for
  their node agent, objects waiting for their finalizers) the name is
  looked at again after a back-off (0.5 s doubling to 5 s): this controller
  does not watch the content, exactly as Kubernetes' does not. When a pass
  finds nothing, `kubernetes` is removed from spec.finalizers through the
  `finalize` subresource, and the server deletes the namespace once its
  metadata.finalizers are empty too.
- A kind that fails to delete or list is reported in the
  NamespaceDeletionContentFailure condition and the sync fails, so the
  queue retries it with its back-off.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api import errors
from kpy.api.core.v1 import Namespace, NamespaceCondition, Pod
from kpy.api.scheme import scheme
from kpy.api.unstructured import is_custom
from kpy.backoff import Backoff
from kpy.cache.informer import EventHandler
from kpy.client.discovery import custom_kinds
from kpy.controllers.base import Controller, key_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.scheme import ResourceInfo
    from kpy.cache.informer import SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.namespace")

__all__ = [
    "NAMESPACE_FINALIZER",
    "ContentReport",
    "NamespaceController",
    "deletion_conditions",
    "namespaced_kinds",
    "new_namespace_controller",
]

NAMESPACE_FINALIZER: Final = "kubernetes"
CONTENT_FAILURE: Final = "NamespaceDeletionContentFailure"
CONTENT_REMAINING: Final = "NamespaceContentRemaining"
FINALIZERS_REMAINING: Final = "NamespaceFinalizersRemaining"


def namespaced_kinds() -> list[ResourceInfo]:
    """Every namespaced built-in kind, pods first (custom kinds come from
    discovery at each pass: CRDs come and go)."""
    kinds = [info for info in scheme.all() if info.namespaced and not is_custom(info.message)]
    return sorted(kinds, key=lambda info: info.message is not Pod)


def new_namespace_controller(ctx: ControllerContext) -> NamespaceController:
    return NamespaceController(
        ctx.client, ctx.cluster_informers.informer(Namespace), metrics=ctx.metrics
    )


@dataclass(slots=True)
class ContentReport:
    """What one pass over a namespace's content left behind."""

    #: group_resource -> objects left
    remaining: dict[str, int] = field(default_factory=dict)
    #: finalizer -> objects left holding it
    finalizers: Counter[str] = field(default_factory=Counter)
    #: group_resource -> the error of each kind that could not be deleted or listed
    failures: dict[str, errors.StatusError] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.remaining and not self.failures


def deletion_conditions(report: ContentReport) -> list[NamespaceCondition]:
    """Kubernetes' namespace deletion conditions for `report` (no times set)."""
    left = ", ".join(
        f"{gr} has {n} resource instances" for gr, n in sorted(report.remaining.items())
    )
    held = ", ".join(f"{f} in {n} resource instances" for f, n in sorted(report.finalizers.items()))
    failed = "; ".join(f"{gr}: {e}" for gr, e in sorted(report.failures.items()))
    # type, whether it is True, (reason, message) when True, (reason, message) when False
    table = [
        (CONTENT_FAILURE, bool(report.failures),
         ("ContentDeletionFailed",
          f"Failed to delete all resource types, {len(report.failures)} remaining: {failed}"),
         ("ContentDeleted", "All content successfully deleted, may be waiting on finalization")),
        (CONTENT_REMAINING, bool(report.remaining),
         ("SomeResourcesRemain", f"Some resources are remaining: {left}"),
         ("ContentRemoved", "All content successfully removed")),
        (FINALIZERS_REMAINING, bool(report.finalizers),
         ("SomeFinalizersRemain",
          f"Some content in the namespace has finalizers remaining: {held}"),
         ("ContentHasNoFinalizers", "All content-preserving finalizers finished")),
    ]  # fmt: skip
    out = []
    for kind, true, if_true, if_false in table:
        reason, message = if_true if true else if_false
        status = "True" if true else "False"
        out.append(NamespaceCondition(type=kind, status=status, reason=reason, message=message))
    return out


class NamespaceController(Controller):
    """See the module docstring."""

    name = "namespace"

    def __init__(
        self,
        client: ClientProtocol,
        namespaces: SharedInformer[Namespace],
        *,
        metrics: Metrics | None = None,
        kinds: Sequence[ResourceInfo] | None = None,
        min_wait: float = 0.5,
        max_wait: float = 5.0,
    ) -> None:
        super().__init__(metrics=metrics)
        self._client = client
        self._namespaces = namespaces.lister()
        #: None: the built-in kinds and whatever custom kinds are served
        self._kinds = list(kinds) if kinds is not None else None
        self._min_wait = min_wait
        self._max_wait = max_wait
        #: the back-off of each namespace whose content is still going
        self._waits: dict[str, Backoff] = {}
        namespaces.add_event_handler(
            EventHandler(
                on_add=lambda ns, _initial: self._changed(ns),
                on_update=lambda _old, new: self._changed(new),
                on_delete=self._gone,
            )
        )

    def _gone(self, obj: Any) -> None:
        self._waits.pop(key_of(obj), None)  # per-key state goes with its key

    def _changed(self, ns: Namespace) -> None:
        if ns.metadata.HasField("deletion_timestamp"):
            self.enqueue(ns)

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self._namespaces.get("", key)
        if cached is None or not cached.metadata.HasField("deletion_timestamp"):
            self._waits.pop(key, None)
            return
        try:
            ns = await self._client.get(Namespace, key)
        except errors.NotFound:
            self._waits.pop(key, None)
            return
        if not ns.metadata.HasField("deletion_timestamp"):
            return  # re-created under the same name
        if NAMESPACE_FINALIZER not in ns.spec.finalizers:
            self._waits.pop(key, None)
            return  # our part is done; other finalizers are someone else's
        report = await self._delete_content(key)
        ns = await self._set_conditions(ns, report)
        if report.failures:
            raise next(iter(report.failures.values()))  # retried with the queue's back-off
        if not report.empty:
            self._wait(key, report)
            return
        await self._finalize(ns)

    async def _delete_content(self, namespace: str) -> ContentReport:
        if not namespace:
            raise ValueError("an empty namespace would mean every namespace")
        report = ContentReport()
        kinds = self._kinds
        if kinds is None:
            try:
                custom = await custom_kinds(self._client)
            except errors.StatusError as e:
                report.failures["discovery"] = e
                custom = []
            kinds = namespaced_kinds() + [info for info in custom if info.namespaced]
        for info in kinds:
            try:
                left = await self._delete_kind(info, namespace)
            except errors.StatusError as e:
                report.failures[info.group_resource] = e
                continue
            if left:
                report.remaining[info.group_resource] = len(left)
                report.finalizers.update(f for obj in left for f in obj.metadata.finalizers)
        return report

    async def _delete_kind(self, info: ResourceInfo, namespace: str) -> list[Any]:
        """The objects of one kind still in `namespace` after deleting them all."""
        if not (await self._client.list(info.message, namespace=namespace)).items:
            return []
        await self._client.delete_collection(
            info.message, namespace=namespace, propagation_policy="Background"
        )
        left: list[Any] = (await self._client.list(info.message, namespace=namespace)).items
        return left

    def _wait(self, key: str, report: ContentReport) -> None:
        backoff = self._waits.get(key)
        if backoff is None:
            backoff = self._waits[key] = Backoff(base=self._min_wait, cap=self._max_wait)
        delay = backoff.next()
        log.log(
            logging.INFO if backoff.attempts == 1 else logging.DEBUG,  # once per namespace
            "namespace content remains",
            extra={
                "controller": self.name,
                "namespace": key,
                "remaining": report.remaining,
                "finalizers": dict(report.finalizers),
                "retry_in": delay,
            },
        )
        self.enqueue_after(key, delay)

    async def _set_conditions(self, ns: Namespace, report: ContentReport) -> Namespace:
        """`ns` with the conditions of `report` written (only if they changed);
        a failed write is logged, never in the way of the deletion."""
        current = {c.type: c for c in ns.status.conditions}
        wanted = deletion_conditions(report)
        if all(_same(current.get(c.type), c) for c in wanted):
            return ns
        updated = Namespace()
        updated.CopyFrom(ns)
        now = Timestamp()
        now.GetCurrentTime()
        for c in wanted:
            old = current.get(c.type)
            if old is not None and old.status == c.status:
                c.last_transition_time.CopyFrom(old.last_transition_time)
            else:
                c.last_transition_time.CopyFrom(now)
        others = [c for c in ns.status.conditions if c.type not in {w.type for w in wanted}]
        del updated.status.conditions[:]
        updated.status.conditions.extend([*others, *wanted])
        try:
            return await self._client.update_status(updated)
        except errors.StatusError as e:
            log.warning(
                "could not write namespace conditions",
                extra={"controller": self.name, "namespace": ns.metadata.name, "error": str(e)},
            )
            return ns

    async def _finalize(self, ns: Namespace) -> None:
        finalized = Namespace()
        finalized.CopyFrom(ns)
        del finalized.spec.finalizers[:]
        finalized.spec.finalizers.extend(f for f in ns.spec.finalizers if f != NAMESPACE_FINALIZER)
        with contextlib.suppress(errors.NotFound):  # gone already
            await self._client.update(finalized, subresource="finalize")
        self._waits.pop(ns.metadata.name, None)
        log.info(
            "namespace finalized", extra={"controller": self.name, "namespace": ns.metadata.name}
        )


def _same(old: NamespaceCondition | None, new: NamespaceCondition) -> bool:
    return (
        old is not None
        and old.status == new.status
        and old.reason == new.reason
        and old.message == new.message
    )

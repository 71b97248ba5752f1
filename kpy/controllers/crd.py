"""The CustomResourceDefinition controller: Kubernetes' naming, establishing
and finalizer controllers of apiextensions-apiserver, in one.

- Handlers: a CRD added, changed or deleted enqueues every CRD of its API
  group (one CRD's names decide whether another's are accepted); while a
  CRD is being deleted, every change to an object of its kind enqueues it.
- `sync(name)` writes the CRD's status through the status subresource,
  only when something changed (`naming_status`):
  - `acceptedNames`: the CRD's names when no older CRD of its group has
    any of them (`kpy.api.crd.names.name_conflicts`, the rule every API
    server applies to decide what it serves), else none;
  - `NamesAccepted`: True/NoConflicts, or False with the conflict
    (PluralConflict, KindConflict, ...) and the clashing names;
  - `Established`: True/InitialNamesAccepted once the names are accepted
    (the API servers serve the kind then), False/NotAccepted otherwise;
  - `storedVersions`: the storage version added; none is ever removed.
- A CRD being deleted keeps the finalizer `customresourcecleanup.
  apiextensions.k8s.io` (the API server adds it on create) until no object
  of its kind is left in any namespace: the controller deletes them per
  namespace (`delete_collection`), and an object with finalizers of its
  own holds the CRD until they are done. `Terminating` says where it
  stands (InstanceDeletionInProgress, naming the objects it waits for;
  InstanceDeletionFailed with the error). Then it removes the finalizer
  and the API server removes the CRD. A CRD whose names were never
  accepted had no objects served: its finalizer goes at once
  (NeverEstablished).

Waiting is event-driven: while a CRD is terminating, the controller runs an
informer on its kind (its own factory, stopped when the CRD goes), so the
deletion of the last object brings the CRD back to its queue. Whether
objects remain is always decided by a live list, never by the cache.

`kpy.api.crd.kinds.custom_kind_of(crd, version)` gives the class of a
CRD's kind, registered as the API servers register it.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import anyio
from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api import errors
from kpy.api.apiextensions.v1 import (
    CustomResourceDefinition,
    CustomResourceDefinitionCondition,
    CustomResourceDefinitionNames,
    CustomResourceDefinitionStatus,
)
from kpy.api.crd.kinds import CLEANUP_FINALIZER, custom_kind_of, storage_version
from kpy.api.crd.names import Conflict, name_conflicts
from kpy.cache.informer import EventHandler, SharedInformerFactory
from kpy.controllers.base import Controller, deleted_object

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kpy.api.scheme import Scheme
    from kpy.api.unstructured import CustomObject
    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.crd")

__all__ = [
    "CRDController",
    "find_condition",
    "is_established",
    "naming_status",
    "new_crd_controller",
    "set_condition",
    "waiting_message",
    "watched_version",
]

#: how many of the objects a terminating CRD waits for its condition names
_NAMED: Final = 3
#: seconds before looking again when the kind's informer has not listed yet
_UNSYNCED_RETRY: Final = 1.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


# -- the CRD's kind -----------------------------------------------------------------------


def watched_version(crd: CustomResourceDefinition) -> str | None:
    """The version to read the kind's objects in: the storage version if it
    is served, else the first served one; None when no version is served."""
    served = [v.name for v in crd.spec.versions if v.served]
    if not served:
        return None
    storage = storage_version(crd)
    return storage if storage in served else served[0]


# -- conditions ---------------------------------------------------------------------------


def find_condition(
    status: CustomResourceDefinitionStatus, type_: str
) -> CustomResourceDefinitionCondition | None:
    return next((c for c in status.conditions if c.type == type_), None)


def is_established(crd: CustomResourceDefinition) -> bool:
    found = find_condition(crd.status, "Established")
    return found is not None and found.status == "True"


def set_condition(
    status: CustomResourceDefinitionStatus,
    type_: str,
    value: str,
    reason: str,
    message: str,
    now: Timestamp,
) -> None:
    """Sets condition `type_`; its lastTransitionTime moves only when its
    status does (Kubernetes' SetCRDCondition)."""
    found = find_condition(status, type_)
    if found is None:
        found = status.conditions.add(type=type_)
    if found.status != value or not found.HasField("last_transition_time"):
        found.last_transition_time.CopyFrom(now)
    found.status, found.reason, found.message = value, reason, message


def _accepted(crd: CustomResourceDefinition) -> CustomResourceDefinitionNames:
    out = CustomResourceDefinitionNames()
    out.CopyFrom(crd.spec.names)
    if not out.singular:
        out.singular = out.kind.lower()
    if not out.list_kind:
        out.list_kind = f"{out.kind}List"
    return out


def naming_status(
    crd: CustomResourceDefinition, conflict: Conflict | None, now: Timestamp
) -> CustomResourceDefinitionStatus:
    """The status the CRD should have (Terminating aside): `conflict` is why
    its names are refused (`name_conflicts`), None when they are accepted."""
    status = CustomResourceDefinitionStatus()
    status.CopyFrom(crd.status)
    if conflict is None:
        status.accepted_names.CopyFrom(_accepted(crd))
        set_condition(status, "NamesAccepted", "True", "NoConflicts", "no conflicts found", now)
        set_condition(
            status,
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
            now,
        )
    else:
        status.ClearField("accepted_names")
        set_condition(status, "NamesAccepted", "False", conflict.reason, conflict.message, now)
        set_condition(
            status, "Established", "False", "NotAccepted", "not all names are accepted", now
        )
    storage = storage_version(crd)
    if storage and storage not in status.stored_versions:
        status.stored_versions.append(storage)
    return status


def waiting_message(plural: str, remaining: Sequence[Any]) -> str:
    """The Terminating message while `remaining` objects are still there."""
    held = [o for o in remaining if o.metadata.finalizers]
    if not held:
        return "CustomResource deletion is in progress"
    named = ", ".join(
        f"{_where(o)} ({', '.join(o.metadata.finalizers)})" for o in held[:_NAMED]
    ) + (", ..." if len(held) > _NAMED else "")
    return (
        f"CustomResource deletion is in progress: waiting for {len(held)} {plural} "
        f"with finalizers: {named}"
    )


def _where(obj: Any) -> str:
    m = obj.metadata
    return f"{m.namespace}/{m.name}" if m.namespace else m.name


# -- the controller -----------------------------------------------------------------------


class CRDController(Controller):
    """See the module docstring. Keys are CRD names."""

    name = "customresourcedefinition"

    def __init__(
        self,
        client: ClientProtocol,
        crds: SharedInformer[CustomResourceDefinition],
        *,
        metrics: Metrics | None = None,
        now: Callable[[], datetime] = _utcnow,
        using: Scheme | None = None,
    ) -> None:
        super().__init__(metrics=metrics)
        self._client = client
        self._crds: Lister[CustomResourceDefinition] = crds.lister()
        self._now = now
        self._scheme = using
        #: informers on the kinds of terminating CRDs, by CRD name
        self._instances = SharedInformerFactory(client)
        self._watching: dict[str, type[CustomObject]] = {}
        crds.add_event_handler(
            EventHandler(
                on_add=lambda crd, _initial: self._enqueue_group(crd),
                on_update=lambda old, new: self._enqueue_group(old, new),
                on_delete=self._enqueue_group,
            )
        )

    def _enqueue_group(self, *changed: Any) -> None:
        for each in changed:
            crd = deleted_object(each)
            if crd is None:
                continue
            self.enqueue_key(crd.metadata.name)
            for other in self._crds.list():
                if other.spec.group == crd.spec.group:
                    self.enqueue_key(other.metadata.name)

    async def run(self, workers: int) -> None:
        """The workers and the informers of terminating CRDs' kinds."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._instances.run)
            try:
                await super().run(workers)
            finally:
                tg.cancel_scope.cancel()

    def _timestamp(self) -> Timestamp:
        return Timestamp(seconds=int(self._now().timestamp()))

    # -- sync --------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        crd = self._crds.get("", key)
        if crd is None:
            self._stop_watching(key)
            return
        conflicts = name_conflicts(c for c in self._crds.list() if c.spec.names.plural)
        conflict = conflicts.get(key)
        status = naming_status(crd, conflict, self._timestamp())
        if crd.metadata.HasField("deletion_timestamp"):
            await self._finalize(crd, status, accepted=conflict is None)
            return
        await self._write_status(crd, status)

    async def _write_status(
        self, crd: CustomResourceDefinition, status: CustomResourceDefinitionStatus
    ) -> CustomResourceDefinition:
        if status == crd.status:
            return crd
        out = CustomResourceDefinition()
        out.CopyFrom(crd)
        out.status.CopyFrom(status)
        return await self._client.update_status(out)

    async def _finalize(
        self,
        crd: CustomResourceDefinition,
        status: CustomResourceDefinitionStatus,
        *,
        accepted: bool,
    ) -> None:
        """Deletes the objects of a terminating CRD; drops its finalizer once
        none is left."""
        name = crd.metadata.name
        if CLEANUP_FINALIZER not in crd.metadata.finalizers:
            self._stop_watching(name)
            return
        version = watched_version(crd)
        now = self._timestamp()
        if not accepted or version is None:
            # Never served under these names: no object of it can be reached.
            set_condition(
                status, "Terminating", "False", "NeverEstablished",
                "resource was never established", now,
            )  # fmt: skip
            crd = await self._write_status(crd, status)
            await self._remove_finalizer(crd)
            return
        kind = custom_kind_of(crd, version, using=self._scheme)
        plural = f"{crd.spec.names.plural}.{crd.spec.group}"
        try:
            found = (await self._client.list(kind)).items
        except errors.StatusError as e:
            await self._failed(crd, status, f"could not list instances: {e}", now)
            raise
        namespaces = sorted(
            {o.metadata.namespace for o in found if not o.metadata.HasField("deletion_timestamp")}
        )
        failed = await self._delete_collections(kind, namespaces)
        if failed:
            why = "; ".join(map(str, failed))
            await self._failed(crd, status, f"could not issue all deletes: {why}", now)
            raise failed[0]
        # what the deletes left: objects with finalizers of their own, mostly
        remaining = (await self._client.list(kind)).items if namespaces else found
        if not remaining:
            await self._remove_finalizer(crd)
            return
        message = waiting_message(plural, remaining)
        set_condition(status, "Terminating", "True", "InstanceDeletionInProgress", message, now)
        if status != crd.status:
            log.info(
                "waiting for custom objects to be deleted",
                extra={"controller": self.name, "crd": name, "remaining": len(remaining)},
            )
            await self._write_status(crd, status)
        if not self._watch(name, kind).has_synced():
            # A deletion before the informer's first list brings no event: look again.
            self.enqueue_after(name, _UNSYNCED_RETRY)

    async def _failed(
        self,
        crd: CustomResourceDefinition,
        status: CustomResourceDefinitionStatus,
        message: str,
        now: Timestamp,
    ) -> None:
        set_condition(status, "Terminating", "True", "InstanceDeletionFailed", message, now)
        await self._write_status(crd, status)

    async def _delete_collections(
        self, kind: type[CustomObject], namespaces: Sequence[str]
    ) -> list[errors.StatusError]:
        """One delete_collection per namespace ("": the cluster-scoped
        kind's one); the errors, every namespace tried."""
        failed: list[errors.StatusError] = []
        for namespace in namespaces:
            try:
                await self._client.delete_collection(kind, namespace=namespace or None)
            except errors.StatusError as e:
                failed.append(e)
        return failed

    async def _remove_finalizer(self, crd: CustomResourceDefinition) -> None:
        m = crd.metadata
        patch = {
            "metadata": {
                "finalizers": [f for f in m.finalizers if f != CLEANUP_FINALIZER],
                "resourceVersion": m.resource_version,
            }
        }
        with contextlib.suppress(errors.NotFound):  # gone already: nothing holds it
            await self._client.patch(CustomResourceDefinition, m.name, patch, patch_type="merge")
        self._stop_watching(m.name)
        log.info(
            "removed the cleanup finalizer",
            extra={"controller": self.name, "crd": m.name},
        )

    # -- the kinds of terminating CRDs -------------------------------------------------

    def _watch(self, crd_name: str, kind: type[CustomObject]) -> SharedInformer[Any]:
        if self._watching.get(crd_name) is not kind:
            self._stop_watching(crd_name)

            def enqueue(*_: Any) -> None:
                self.enqueue_key(crd_name)

            informer = self._instances.informer(kind)
            informer.add_event_handler(
                EventHandler(on_add=enqueue, on_update=enqueue, on_delete=enqueue)
            )
            self._watching[crd_name] = kind
        return self._instances.informer(kind)

    def _stop_watching(self, crd_name: str) -> None:
        kind = self._watching.pop(crd_name, None)
        if kind is not None and kind not in self._watching.values():
            self._instances.forget(kind)


def new_crd_controller(ctx: ControllerContext) -> CRDController:
    return CRDController(
        ctx.client,
        ctx.cluster_informers.informer(CustomResourceDefinition),
        metrics=ctx.metrics,
    )

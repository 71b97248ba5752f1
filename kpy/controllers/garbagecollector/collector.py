"""The garbage collector (Kubernetes' pkg/controller/garbagecollector).

Deletes the objects whose owners are gone, and carries out the
propagationPolicy an owner was deleted with:

- Handlers: one informer per kind that can own or be owned (every kind of
  the scheme but Event: events are never owners, and watching every event
  would cost more than the rare event with an owner is worth). Each change
  updates the `Graph` at once and enqueues the uids it says to look at.
- Attempt-to-delete (`sync(uid)`, this controller's queue): reads the
  object live from the API (never trusting the cache for a delete). If it
  is gone, the graph is told (`confirm_absent`) and its dependents get
  their turn. An owner deleting its dependents (`foregroundDeletion`)
  deletes them and, once none with blockOwnerDeletion is left, drops that
  finalizer so the server removes it. Any other object being deleted is
  left alone. Otherwise each owner is looked up live (an owner the cache
  does not know may just not have arrived yet; a different uid under its
  name means it is gone) and `decide` says what to do: keep the object,
  patch away the references to absent owners, or delete it (Background,
  or Foreground when a waiting owner's wait must cover its dependents too).
- Attempt-to-orphan (`Orphaner`, its own queue): an owner deleted with
  Orphan loses its references from every dependent, then its `orphan`
  finalizer.

Every write is guarded: deletes carry a uid precondition, reference patches
carry the object's uid, finalizer removals carry the resourceVersion read
(retried on Conflict). The collector reacts to watch events only; failures
are retried with the queue's per-key back-off.

Limits, as in Kubernetes or narrower: a dependent the informers have not
delivered yet is not waited for by a foreground deletion that starts at that
moment; kinds outside the client's scheme (custom resources) are neither
watched nor resolved, so a reference to one is never judged dangling.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import anyio

from kpy.api import errors
from kpy.api.meta.v1 import Preconditions
from kpy.api.scheme import ResourceInfo, scheme
from kpy.cache.informer import EventHandler
from kpy.controllers.base import Controller, deleted_object
from kpy.controllers.garbagecollector.graph import (
    FOREGROUND_FINALIZER,
    ORPHAN_FINALIZER,
    Action,
    Decision,
    Graph,
    Node,
    ObjectRef,
    ObjectState,
    OwnerRef,
    Verdict,
    Work,
    decide,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from kpy.api.scheme import Scheme
    from kpy.cache.informer import SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.gc")

__all__ = [
    "IGNORED_KINDS",
    "GarbageCollector",
    "Orphaner",
    "identity_of",
    "new_garbage_collector",
    "state_of",
    "watched_kinds",
]

IGNORED_KINDS: Final = frozenset({"Event"})
_FINALIZER_RETRIES: Final = 5


def watched_kinds(using: Scheme = scheme) -> list[ResourceInfo]:
    return [info for info in using.all() if info.kind not in IGNORED_KINDS]


def identity_of(info: ResourceInfo, obj: Any) -> ObjectRef:
    m = obj.metadata
    return ObjectRef(info.api_version, info.kind, m.namespace, m.name, m.uid)


def state_of(info: ResourceInfo, obj: Any) -> ObjectState:
    m = obj.metadata
    return ObjectState(
        identity=identity_of(info, obj),
        owners=tuple(
            OwnerRef(r.api_version, r.kind, r.name, r.uid, r.controller, r.block_owner_deletion)
            for r in m.owner_references
        ),
        being_deleted=m.HasField("deletion_timestamp"),
        finalizers=frozenset(m.finalizers),
    )


def new_garbage_collector(ctx: ControllerContext) -> GarbageCollector:
    informers = [
        (info, (ctx.informers if info.namespaced else ctx.cluster_informers).informer(info.message))
        for info in watched_kinds()
    ]
    return GarbageCollector(ctx.client, informers, metrics=ctx.metrics)


class GarbageCollector(Controller):
    """See the module docstring. Its queue is attempt-to-delete, keyed by uid."""

    name = "garbagecollector"

    def __init__(
        self,
        client: ClientProtocol,
        informers: Iterable[tuple[ResourceInfo, SharedInformer[Any]]],
        *,
        metrics: Metrics | None = None,
        using: Scheme = scheme,
    ) -> None:
        super().__init__(metrics=metrics)
        self._client = client
        self._scheme = using
        self.graph = Graph()
        self.orphaner = Orphaner(self, metrics=metrics)
        for info, informer in informers:
            informer.add_event_handler(self._handler(info))

    # -- handlers -------------------------------------------------------------------------

    def _handler(self, info: ResourceInfo) -> EventHandler[Any]:
        def changed(obj: Any) -> None:
            self.schedule(self.graph.observe(state_of(info, obj)))

        def deleted(obj: Any) -> None:
            last = deleted_object(obj)
            if last is not None:  # None: never stored, so never in the graph either
                self.schedule(self.graph.observe_deleted(identity_of(info, last)))

        return EventHandler(
            on_add=lambda obj, _initial: changed(obj),
            on_update=lambda _old, new: changed(new),
            on_delete=deleted,
        )

    def schedule(self, work: Work) -> None:
        for uid in work.attempt_to_delete:
            self.enqueue_key(uid)
        for uid in work.attempt_to_orphan:
            self.orphaner.enqueue_key(uid)

    # -- running ----------------------------------------------------------------------------

    async def run(self, workers: int) -> None:
        """Both queues, `workers` workers each, until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.orphaner.run, workers)
            await super().run(workers)

    # -- attempt to delete ------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        node = self.graph.get(key)
        if node is None or (node.being_deleted and not node.deleting_dependents):
            return  # gone, or going: its delete event brings its dependents here
        info = self.resolve(node.identity.api_version, node.identity.kind)
        if info is None:
            return  # a kind this collector cannot read: it never guesses
        latest = await self.get_live(info, node.identity)
        if latest is None:
            self.schedule(self.graph.confirm_absent(node.identity))
            return
        if node.deleting_dependents:
            await self._delete_dependents(node, info)
            return
        if latest.metadata.HasField("deletion_timestamp"):
            return  # the cache lags; the update will come
        owners = state_of(info, latest).owners
        if not owners:
            return
        verdicts = {r.uid: await self._classify(node.identity, r) for r in owners}
        dependents = self.graph.dependents(key)
        decision = decide(
            owners,
            verdicts,
            set(latest.metadata.finalizers),
            has_dependents=bool(dependents),
            dependent_deleting_dependents=any(d.deleting_dependents for d in dependents),
        )
        await self._carry_out(decision, info, node.identity, owners)

    async def _delete_dependents(self, node: Node, info: ResourceInfo) -> None:
        """An owner deleting in the foreground: done once nothing blocks it."""
        blocking = self.graph.blocking_dependents(node.identity.uid)
        if not blocking:
            await self.remove_finalizer(info, node.identity, FOREGROUND_FINALIZER)
            return
        for dep in blocking:
            if not dep.deleting_dependents:
                self.enqueue_key(dep.identity.uid)

    async def _classify(self, dependent: ObjectRef, ref: OwnerRef) -> Verdict:
        info = self.resolve(ref.api_version, ref.kind)
        if info is None:
            log.warning(
                "owner of an unknown kind; keeping the reference",
                extra={"controller": self.name, "object": str(dependent), "owner": ref.uid},
            )
            return Verdict.SOLID
        namespace = dependent.namespace if info.namespaced else ""
        owner = ObjectRef(ref.api_version, ref.kind, namespace, ref.name, ref.uid)
        if self.graph.is_absent(owner):
            return Verdict.DANGLING
        found = await self.get_live(info, owner)
        if found is None:
            self.graph.mark_absent(owner)
            return Verdict.DANGLING
        m = found.metadata
        if m.HasField("deletion_timestamp") and FOREGROUND_FINALIZER in m.finalizers:
            return Verdict.WAITING
        return Verdict.SOLID

    async def _carry_out(
        self, decision: Decision, info: ResourceInfo, item: ObjectRef, owners: Sequence[OwnerRef]
    ) -> None:
        if decision.action is Action.KEEP:
            return
        if decision.action is Action.REMOVE_REFERENCES:
            await self.remove_owner_references(info, item, decision.owner_uids)
            return
        if decision.unblock_first:
            await self._unblock(info, item, owners)
        log.info(
            "deleting garbage",
            extra={"controller": self.name, "object": str(item), "policy": decision.propagation},
        )
        try:
            await self._client.delete(
                info.message,
                item.name,
                namespace=item.namespace or None,
                propagation_policy=decision.propagation,
                preconditions=Preconditions(uid=item.uid),
            )
        except errors.NotFound:
            return  # gone meanwhile: its delete event does the rest

    # -- API helpers (shared with the Orphaner) ---------------------------------------------

    def resolve(self, api_version: str, kind: str) -> ResourceInfo | None:
        """The kind an ownerReference names; another version of the same
        group and kind will do."""
        found = self._scheme.lookup(api_version, kind)
        if found is not None:
            return found
        group = api_version.rpartition("/")[0]
        for info in self._scheme.all():
            if info.kind == kind and info.group == group:
                return info
        return None

    async def get_live(self, info: ResourceInfo, ref: ObjectRef) -> Any | None:
        """The object from the API; None if absent or if another uid holds the name."""
        if info.namespaced and not ref.namespace:
            return None  # a cluster-scoped dependent names it: no such owner can exist
        namespace = ref.namespace if info.namespaced else None
        try:
            obj: Any = await self._client.get(info.message, ref.name, namespace=namespace)
        except errors.NotFound:
            return None
        return obj if obj.metadata.uid == ref.uid else None

    async def remove_owner_references(
        self, info: ResourceInfo, item: ObjectRef, owner_uids: Sequence[str]
    ) -> None:
        patch = {
            "metadata": {
                "ownerReferences": [{"$patch": "delete", "uid": u} for u in owner_uids],
                "uid": item.uid,  # never touch a successor under the same name
            }
        }
        if await self._patch(info, item, patch):
            log.info(
                "removed owner references",
                extra={"controller": self.name, "object": str(item), "owners": list(owner_uids)},
            )

    async def _unblock(
        self, info: ResourceInfo, item: ObjectRef, owners: Sequence[OwnerRef]
    ) -> None:
        uids = [r.uid for r in owners if r.block_owner_deletion]
        refs = [{"uid": u, "blockOwnerDeletion": False} for u in uids]
        if await self._patch(info, item, {"metadata": {"ownerReferences": refs, "uid": item.uid}}):
            log.info(
                "unblocked owners",
                extra={"controller": self.name, "object": str(item), "owners": uids},
            )

    async def _patch(self, info: ResourceInfo, item: ObjectRef, patch: dict[str, Any]) -> bool:
        """A strategic merge patch of `item` carrying its uid; False if the
        object is gone or a successor holds its name (which refuses the
        patch as Invalid and is left alone)."""
        try:
            await self._client.patch(
                info.message, item.name, patch, namespace=item.namespace or None
            )
        except errors.NotFound:
            return False
        except errors.Invalid:
            if await self.get_live(info, item) is not None:
                raise  # refused for another reason than a successor: retry, loudly
            return False
        return True

    async def remove_finalizer(self, info: ResourceInfo, item: ObjectRef, finalizer: str) -> None:
        """Drops `finalizer` from the live object, conditional on the version
        read; a Conflict re-reads and tries again."""
        for _ in range(_FINALIZER_RETRIES):
            obj = await self.get_live(info, item)
            if obj is None or finalizer not in obj.metadata.finalizers:
                return
            m = obj.metadata
            patch = {
                "metadata": {
                    "finalizers": [f for f in m.finalizers if f != finalizer],
                    "resourceVersion": m.resource_version,
                }
            }
            try:
                await self._client.patch(
                    info.message,
                    item.name,
                    patch,
                    namespace=item.namespace or None,
                    patch_type="merge",
                )
            except errors.Conflict:
                continue
            except errors.NotFound:
                return
            log.info(
                "removed finalizer",
                extra={"controller": self.name, "object": str(item), "finalizer": finalizer},
            )
            return
        raise errors.conflict(info.group_resource, item.name, f"removing finalizer {finalizer}")


class Orphaner(Controller):
    """The attempt-to-orphan queue, keyed by the uid of an owner deleted with
    propagationPolicy Orphan."""

    name = "garbagecollector-orphan"

    def __init__(self, collector: GarbageCollector, *, metrics: Metrics | None = None) -> None:
        super().__init__(metrics=metrics)
        self._gc = collector

    async def sync(self, key: str) -> None:
        graph = self._gc.graph
        owner = graph.get(key)
        if owner is None or not owner.orphaning:
            return
        info = self._gc.resolve(owner.identity.api_version, owner.identity.kind)
        if info is None:
            return
        for dep in graph.dependents(key):
            dep_info = self._gc.resolve(dep.identity.api_version, dep.identity.kind)
            if dep_info is not None:
                await self._gc.remove_owner_references(dep_info, dep.identity, [key])
        await self._gc.remove_finalizer(info, owner.identity, ORPHAN_FINALIZER)

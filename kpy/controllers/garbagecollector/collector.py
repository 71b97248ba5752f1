"""The garbage collector (Kubernetes' pkg/controller/garbagecollector).

Deletes the objects whose owners are gone, and carries out the
propagationPolicy an owner was deleted with:

- Handlers: one informer per kind that can own or be owned (every built-in
  kind of the scheme but Event: events are never owners, and watching every
  event would cost more than the rare event with an owner is worth), and
  one per custom kind while its CRD is Established (see "Custom kinds"
  below). Each change updates the `Graph` at once and enqueues the uids it
  says to look at.
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

- Custom kinds (`CRDFollower`, its own queue keyed by CRD name; Kubernetes'
  dynamic resource monitors, driven by the CRD informer instead of a
  discovery poll): a CRD that is Established, with accepted names, gets an
  informer on its kind (in the storage version, or the first served one)
  whose objects join the graph like any other; virtual nodes of that kind
  already in the graph are looked at again. When the CRD is deleted, that
  informer stops and the kind's objects count as gone (a CRD goes only
  after its objects: their dependents are collected even if the CRD's
  delete event came before theirs). When it is only read in another
  version (or its names stop being accepted), its objects leave the graph
  unjudged (`Graph.unobserve`). Any other custom kind the collector does
  not follow is never resolved: a reference to it is kept, never judged
  dangling.

Every write is guarded: deletes carry a uid precondition, reference patches
carry the object's uid (custom kinds, which take no strategic merge patch:
a merge patch of the whole list, conditional on the resourceVersion read),
finalizer removals carry the resourceVersion read (retried on Conflict). A
"resource not found" answer (a kind the server does not serve, or not yet)
is an error to retry, never a sign that the object is gone. The collector
reacts to watch events only; failures are retried with the queue's per-key
back-off.

Limits, as in Kubernetes or narrower: a dependent the informers have not
delivered yet is not waited for by a foreground deletion that starts at that
moment; kinds the collector does not watch are not resolved, so a reference
to one is never judged dangling.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio

from kpy.api import codec, errors
from kpy.api.apiextensions.v1 import CustomResourceDefinition
from kpy.api.crd.kinds import custom_kind_of
from kpy.api.crd.names import name_conflicts
from kpy.api.meta.v1 import Preconditions
from kpy.api.scheme import ResourceInfo, scheme
from kpy.api.unstructured import is_custom
from kpy.cache.informer import EventHandler
from kpy.controllers.base import Controller, deleted_object
from kpy.controllers.crd import is_established, watched_version
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
    from collections.abc import Callable, Iterable, Sequence

    from google.protobuf.message import Message

    from kpy.api.scheme import Scheme
    from kpy.cache.informer import Lister, SharedInformer, SharedInformerFactory
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.gc")

__all__ = [
    "IGNORED_KINDS",
    "CRDFollower",
    "GarbageCollector",
    "Orphaner",
    "identity_of",
    "new_garbage_collector",
    "state_of",
    "watched_kinds",
]

IGNORED_KINDS: Final = frozenset({"Event"})
_FINALIZER_RETRIES: Final = 5
#: how long the workers wait for a newly followed kind's informer to list
#: (Kubernetes waits one resync period) before acting without it
_FOLLOW_SYNC_TIMEOUT: Final = 10.0


def watched_kinds(using: Scheme = scheme) -> list[ResourceInfo]:
    """The built-in kinds watched from the start (custom kinds come and go
    with their CRDs: `CRDFollower`)."""
    return [
        info
        for info in using.all()
        if info.kind not in IGNORED_KINDS and not is_custom(info.message)
    ]


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
    return GarbageCollector(
        ctx.client,
        informers,
        metrics=ctx.metrics,
        crds=ctx.cluster_informers.informer(CustomResourceDefinition),
        factories=(ctx.informers, ctx.cluster_informers),
    )


@dataclass(slots=True)
class _Followed:
    """A custom kind the collector watches, for one CRD."""

    info: ResourceInfo
    factory: SharedInformerFactory
    informer: SharedInformer[Any]
    #: monotonic time it was followed
    since: float
    #: False once unfollowed: a late event of its stopped informer is ignored
    active: bool = True


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
        crds: SharedInformer[CustomResourceDefinition] | None = None,
        factories: tuple[SharedInformerFactory, SharedInformerFactory] | None = None,
    ) -> None:
        """`crds` and `factories` (namespaced kinds', cluster-scoped kinds')
        turn on following custom kinds; without them only `informers` are
        watched."""
        super().__init__(metrics=metrics)
        self._client = client
        self._scheme = using
        self.graph = Graph()
        self.orphaner = Orphaner(self, metrics=metrics)
        self.follower: CRDFollower | None = None
        if crds is not None and factories is not None:
            self.follower = CRDFollower(self, crds, factories, metrics=metrics)
        for info, informer in informers:
            self.watch(info, informer)

    @property
    def scheme(self) -> Scheme:
        return self._scheme

    # -- handlers -------------------------------------------------------------------------

    def watch(
        self,
        info: ResourceInfo,
        informer: SharedInformer[Any],
        *,
        live: Callable[[], bool] = lambda: True,
    ) -> None:
        """Feeds the graph from `informer`'s objects of kind `info`, for as
        long as `live()` says."""
        informer.add_event_handler(self._handler(info, live))

    def _handler(self, info: ResourceInfo, live: Callable[[], bool]) -> EventHandler[Any]:
        def changed(obj: Any) -> None:
            if live():
                self.schedule(self.graph.observe(state_of(info, obj)))

        def deleted(obj: Any) -> None:
            last = deleted_object(obj)
            if last is not None and live():  # None: never stored, so never in the graph
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
        """Both queues, `workers` workers each, and the CRD follower (one
        worker), until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.orphaner.run, workers)
            if self.follower is not None:
                tg.start_soon(self.follower.run, 1)
            await super().run(workers)

    async def process(self, key: str) -> None:
        """Waits for the informers of newly followed kinds first (see
        `CRDFollower.wait_for_sync`)."""
        if self.follower is not None:
            await self.follower.wait_for_sync()
        await super().process(key)

    # -- attempt to delete ------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        node = self.graph.get(key)
        if node is None or (node.being_deleted and not node.deleting_dependents):
            return  # gone, or going: its delete event brings its dependents here
        info = self.resolve(node.identity.api_version, node.identity.kind)
        if info is None:
            if self._kind_gone(node.identity.api_version, node.identity.kind):
                self.schedule(self.graph.confirm_absent(node.identity))
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
            if self._kind_gone(ref.api_version, ref.kind):
                return Verdict.DANGLING  # its CRD went, and its objects first
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
        group and kind will do. A custom kind resolves only while it is
        followed, to the version it is watched in."""
        group = api_version.rpartition("/")[0]
        if self.follower is not None:
            followed = self.follower.followed(group, kind)
            if followed is not None:
                return followed
        found = self._scheme.lookup(api_version, kind)
        if found is None:
            found = next(
                (i for i in self._scheme.all() if i.kind == kind and i.group == group), None
            )
        if found is not None and is_custom(found.message):
            return None  # known to this process, but not (or no longer) followed
        return found

    def _kind_gone(self, api_version: str, kind: str) -> bool:
        """Whether `kind` is a custom kind whose CRD this collector saw go."""
        group = api_version.rpartition("/")[0]
        return self.follower is not None and self.follower.gone(group, kind)

    async def get_live(self, info: ResourceInfo, ref: ObjectRef) -> Any | None:
        """The object from the API; None if absent or if another uid holds the
        name. A resource the server does not serve raises NotFound: that
        says nothing of the object."""
        if info.namespaced and not ref.namespace:
            return None  # a cluster-scoped dependent names it: no such owner can exist
        namespace = ref.namespace if info.namespaced else None
        try:
            obj: Any = await self._client.get(info.message, ref.name, namespace=namespace)
        except errors.NotFound as e:
            if not e.name:
                raise  # the resource, not the object, was not found
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

        def without(refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [r for r in refs if r.get("uid") not in owner_uids]

        if await self._patch(info, item, patch, without):
            log.info(
                "removed owner references",
                extra={"controller": self.name, "object": str(item), "owners": list(owner_uids)},
            )

    async def _unblock(
        self, info: ResourceInfo, item: ObjectRef, owners: Sequence[OwnerRef]
    ) -> None:
        uids = [r.uid for r in owners if r.block_owner_deletion]
        refs = [{"uid": u, "blockOwnerDeletion": False} for u in uids]

        def unblocked(refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{**r, "blockOwnerDeletion": False} if r.get("uid") in uids else r for r in refs]

        patch = {"metadata": {"ownerReferences": refs, "uid": item.uid}}
        if await self._patch(info, item, patch, unblocked):
            log.info(
                "unblocked owners",
                extra={"controller": self.name, "object": str(item), "owners": uids},
            )

    async def _patch(
        self,
        info: ResourceInfo,
        item: ObjectRef,
        patch: dict[str, Any],
        change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    ) -> bool:
        """A strategic merge patch of `item` carrying its uid (for a custom
        kind: `change` applied to its references, see `_merge_references`);
        False if the object is gone or a successor holds its name (which
        refuses the patch as Invalid and is left alone)."""
        if is_custom(info.message):
            return await self._merge_references(info, item, change)
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

    async def _merge_references(
        self,
        info: ResourceInfo,
        item: ObjectRef,
        change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    ) -> bool:
        """Custom kinds take no strategic merge patch (as in Kubernetes): the
        live object's ownerReferences, changed, in a merge patch conditional
        on the resourceVersion read (a Conflict is retried by the queue)."""
        obj = await self.get_live(info, item)
        if obj is None:
            return False
        refs = [codec.to_dict(r) for r in obj.metadata.owner_references]
        changed = change(refs)
        if changed == refs:
            return True
        patch = {
            "metadata": {
                "ownerReferences": changed,
                "uid": item.uid,
                "resourceVersion": obj.metadata.resource_version,
            }
        }
        try:
            await self._client.patch(
                info.message, item.name, patch, namespace=item.namespace or None, patch_type="merge"
            )
        except errors.NotFound:
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

    async def process(self, key: str) -> None:
        if self._gc.follower is not None:
            await self._gc.follower.wait_for_sync()
        await super().process(key)

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


class CRDFollower(Controller):
    """Which custom kinds the collector watches, keyed by CRD name (see the
    module docstring)."""

    name = "garbagecollector-crds"

    def __init__(
        self,
        collector: GarbageCollector,
        crds: SharedInformer[CustomResourceDefinition],
        factories: tuple[SharedInformerFactory, SharedInformerFactory],
        *,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(metrics=metrics)
        self._gc = collector
        self._crds: Lister[CustomResourceDefinition] = crds.lister()
        self._namespaced, self._cluster = factories
        self._by_crd: dict[str, _Followed] = {}
        self._by_kind: dict[tuple[str, str], _Followed] = {}
        #: (group, kind) of the followed kinds whose CRD was deleted since
        self._gone: set[tuple[str, str]] = set()
        crds.add_event_handler(self.enqueue_handler())

    def followed(self, group: str, kind: str) -> ResourceInfo | None:
        """The version a followed custom kind is watched in; None if not followed."""
        found = self._by_kind.get((group, kind))
        return None if found is None else found.info

    def followed_kinds(self) -> list[ResourceInfo]:
        return [f.info for f in self._by_crd.values()]

    def gone(self, group: str, kind: str) -> bool:
        """Whether the CRD of a kind followed before was deleted: a CRD goes
        only after its objects (its cleanup finalizer), so every object of
        that kind is gone too."""
        return (group, kind) in self._gone

    async def wait_for_sync(self) -> None:
        """Returns once the informer of every followed kind has listed (or
        has had `_FOLLOW_SYNC_TIMEOUT` seconds to), as Kubernetes' collector
        holds its workers while new monitors sync: an owner deleted just
        after its dependents' kind is followed finds them in the graph."""
        while True:
            now = time.monotonic()
            pending = [
                f
                for f in self._by_crd.values()
                if not f.informer.has_synced() and now - f.since < _FOLLOW_SYNC_TIMEOUT
            ]
            if not pending:
                return
            # bounded: the kind may be unfollowed (and its informer stopped) meanwhile
            with anyio.move_on_after(0.5):
                await pending[0].informer.wait_for_sync()

    async def sync(self, key: str) -> None:
        crd = self._crds.get("", key)
        want = self._wanted(key, crd)
        current = self._by_crd.get(key)
        if current is not None and want is not None and current.info.message is want:
            return
        if current is not None:
            self._unfollow(key, current, deleted=crd is None)
        if want is not None:
            self._follow(key, want)

    def _wanted(self, name: str, crd: CustomResourceDefinition | None) -> type[Message] | None:
        """The class of the kind to watch for CRD `name`; None: watch nothing."""
        if crd is None or not is_established(crd):
            return None
        version = watched_version(crd)
        if version is None:
            return None
        # Established says its names were accepted; a later change of names
        # may clash: never take (and register) another CRD's names.
        if name in name_conflicts(c for c in self._crds.list() if c.spec.names.plural):
            return None
        kind: type[Message] = custom_kind_of(crd, version, using=self._gc.scheme)
        return kind

    def _follow(self, crd_name: str, kind: type[Message]) -> None:
        info = self._gc.scheme.for_message(kind)
        factory = self._namespaced if info.namespaced else self._cluster
        followed = _Followed(info, factory, factory.informer(kind), time.monotonic())
        self._by_crd[crd_name] = followed
        self._by_kind[(info.group, info.kind)] = followed
        self._gone.discard((info.group, info.kind))
        self._gc.watch(info, followed.informer, live=lambda: followed.active)
        log.info(
            "following a custom kind",
            extra={"controller": self.name, "crd": crd_name, "kind": info.kind},
        )
        # Dependents named owners of this kind before it was followed; those
        # owners were never looked up: look now.
        for node in self._gc.graph.nodes_of(info.group, info.kind):
            if not node.observed:
                self._gc.enqueue_key(node.identity.uid)

    def _unfollow(self, crd_name: str, followed: _Followed, *, deleted: bool) -> None:
        """Stops watching a kind. Its CRD `deleted`: its objects are gone
        (whether or not their delete events arrived before the CRD's), so
        their dependents are collected; otherwise (another version, names
        no longer accepted) they leave the graph unjudged."""
        info = followed.info
        followed.active = False
        followed.factory.forget(info.message)
        del self._by_crd[crd_name]
        if self._by_kind.get((info.group, info.kind)) is followed:
            del self._by_kind[(info.group, info.kind)]
        if deleted:
            self._gone.add((info.group, info.kind))
        graph = self._gc.graph
        for node in graph.nodes_of(info.group, info.kind):
            if not deleted:
                graph.unobserve(node.identity.uid)
            elif node.observed:
                self._gc.schedule(graph.observe_deleted(node.identity))
            else:
                self._gc.enqueue_key(node.identity.uid)  # confirmed absent there
        log.info(
            "stopped following a custom kind",
            extra={"controller": self.name, "crd": crd_name, "kind": info.kind, "gone": deleted},
        )

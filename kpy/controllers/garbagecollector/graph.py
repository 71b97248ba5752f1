"""The garbage collector's ownership graph and its decisions, as pure data
(Kubernetes' garbagecollector graph.go, graph_builder.go and the decision
half of garbagecollector.go).

Nodes are keyed by uid. A node is *observed* (an informer delivered its
object) or *virtual* (only a dependent's ownerReference names it, so the
collector must ask the API whether it exists). A node keeps its owners (the
object's ownerReferences), its dependents (uids of the nodes whose
ownerReferences name it) and where its deletion stands: being deleted,
deleting its dependents first (`foregroundDeletion`), orphaning them
(`orphan`).

The graph never talks to the API. Each change (`observe`,
`observe_deleted`, `confirm_absent`) returns `Work`: the uids the collector
must look at again, on its attempt-to-delete queue (is this object garbage
now? has this owner's foreground deletion finished?) or on its
attempt-to-orphan queue (this owner asked to orphan its dependents).

`decide` is the verdict on one object once the collector has classified
each of its owners against the API: keep it, remove dangling references,
or delete it (and with which propagationPolicy).

Memory: a node goes with its object (an observed node on its delete event
or when the API says it is absent, a virtual node also when its last
dependent lets go of it). `is_absent` remembers at most
`absent_cache_size` owners known to be gone, so the dependents of one
deleted owner cost one API lookup, not one each.

Contract: one caller at a time (nothing here awaits). The `Node`s that
`get` and `dependents` return belong to the graph: read, never change them.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

__all__ = [
    "FOREGROUND_FINALIZER",
    "ORPHAN_FINALIZER",
    "Action",
    "Decision",
    "Graph",
    "Node",
    "ObjectRef",
    "ObjectState",
    "OwnerRef",
    "Verdict",
    "Work",
    "decide",
]

ORPHAN_FINALIZER: Final = "orphan"
FOREGROUND_FINALIZER: Final = "foregroundDeletion"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Where an object is: its coordinates and uid. `namespace` is "" for a
    cluster-scoped object; for a virtual node it is the namespace of the
    dependent that named it (the collector drops it for cluster-scoped kinds)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where} ({self.uid})"


@dataclass(frozen=True, slots=True)
class OwnerRef:
    """One ownerReference, as a value."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool = False
    block_owner_deletion: bool = False


@dataclass(frozen=True, slots=True)
class ObjectState:
    """What the graph needs of an object an informer delivered."""

    identity: ObjectRef
    owners: tuple[OwnerRef, ...] = ()
    being_deleted: bool = False
    finalizers: frozenset[str] = frozenset()

    @property
    def deleting_dependents(self) -> bool:
        return self.being_deleted and FOREGROUND_FINALIZER in self.finalizers

    @property
    def orphaning(self) -> bool:
        return self.being_deleted and ORPHAN_FINALIZER in self.finalizers


@dataclass(slots=True)
class Node:
    identity: ObjectRef
    owners: tuple[OwnerRef, ...] = ()
    dependents: set[str] = field(default_factory=set)
    observed: bool = False
    being_deleted: bool = False
    deleting_dependents: bool = False
    orphaning: bool = False


@dataclass(frozen=True, slots=True)
class Work:
    """uids to (re)consider, per queue."""

    attempt_to_delete: frozenset[str] = frozenset()
    attempt_to_orphan: frozenset[str] = frozenset()


@dataclass(slots=True)
class _WorkBuilder:
    delete: set[str] = field(default_factory=set)
    orphan: set[str] = field(default_factory=set)

    def build(self) -> Work:
        return Work(frozenset(self.delete), frozenset(self.orphan))


class Graph:
    """See the module docstring."""

    def __init__(self, *, absent_cache_size: int = 500) -> None:
        self._nodes: dict[str, Node] = {}
        self._absent: OrderedDict[ObjectRef, None] = OrderedDict()
        self._absent_size = absent_cache_size

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, uid: str) -> Node | None:
        return self._nodes.get(uid)

    def dependents(self, uid: str) -> list[Node]:
        node = self._nodes.get(uid)
        if node is None:
            return []
        return [self._nodes[d] for d in sorted(node.dependents) if d in self._nodes]

    def blocking_dependents(self, uid: str) -> list[Node]:
        """Dependents whose reference to `uid` has blockOwnerDeletion: the
        ones a foreground deletion of `uid` waits for."""
        return [
            dep
            for dep in self.dependents(uid)
            if any(r.uid == uid and r.block_owner_deletion for r in dep.owners)
        ]

    def nodes_of(self, group: str, kind: str) -> list[Node]:
        """Every node (observed or virtual) of `kind` in API group `group`."""
        return [
            n
            for n in self._nodes.values()
            if n.identity.kind == kind and _group(n.identity.api_version) == group
        ]

    # -- owners known to be gone -------------------------------------------------------

    def is_absent(self, ref: ObjectRef) -> bool:
        if ref not in self._absent:
            return False
        self._absent.move_to_end(ref)
        return True

    def mark_absent(self, ref: ObjectRef) -> None:
        self._absent[ref] = None
        self._absent.move_to_end(ref)
        while len(self._absent) > self._absent_size:
            self._absent.popitem(last=False)

    # -- changes -----------------------------------------------------------------------

    def observe(self, state: ObjectState) -> Work:
        """An informer added or updated the object."""
        work = _WorkBuilder()
        uid = state.identity.uid
        node = self._nodes.get(uid)
        if node is None:
            node = self._nodes[uid] = Node(identity=state.identity, observed=True)
        elif not node.observed:
            # A virtual node comes true. Dependents that named it by other
            # coordinates may hold a wrong reference: let the collector check.
            if node.identity != state.identity:
                work.delete |= node.dependents
            node.identity = state.identity
            node.observed = True
        self._update_owners(node, state.owners, work)
        if state.orphaning and not node.orphaning:
            work.orphan.add(uid)
        if state.deleting_dependents and not node.deleting_dependents:
            work.delete |= node.dependents
            work.delete.add(uid)
        node.being_deleted = state.being_deleted
        node.deleting_dependents = state.deleting_dependents
        node.orphaning = state.orphaning
        return work.build()

    def observe_deleted(self, identity: ObjectRef) -> Work:
        """An informer saw the object go."""
        node = self._nodes.get(identity.uid)
        if node is None:
            return Work()
        return self._remove(node)

    def confirm_absent(self, identity: ObjectRef) -> Work:
        """The API says no object with these coordinates and uid exists
        (Kubernetes' virtual delete event)."""
        self.mark_absent(identity)
        node = self._nodes.get(identity.uid)
        if node is None:
            return Work()
        if node.observed and node.identity != identity:
            # The object exists under the coordinates an informer saw: only
            # the dependents naming it by the absent ones are wrong.
            wrong = {
                dep.identity.uid
                for dep in self.dependents(identity.uid)
                if any(_names(r, dep.identity.namespace, identity) for r in dep.owners)
            }
            return Work(attempt_to_delete=frozenset(wrong))
        return self._remove(node)

    def unobserve(self, uid: str) -> None:
        """Forgets what an informer said of an object, without judging it:
        its kind is no longer watched (a CRD went, or is read in another
        version now). It lets go of its owners; with dependents it stays as
        a virtual node (the collector asks the API about it when needed),
        else it goes. No work: nothing is known to be gone."""
        node = self._nodes.get(uid)
        if node is None or not node.observed:
            return
        self._unlink(uid, node.owners)
        node.owners = ()
        node.observed = node.being_deleted = node.deleting_dependents = node.orphaning = False
        if not node.dependents:
            del self._nodes[uid]

    # -- internals ---------------------------------------------------------------------

    def _remove(self, node: Node) -> Work:
        work = _WorkBuilder()
        uid = node.identity.uid
        del self._nodes[uid]
        self._unlink(uid, node.owners)
        if node.dependents:
            self.mark_absent(node.identity)
            work.delete |= node.dependents
        for ref in node.owners:
            owner = self._nodes.get(ref.uid)
            if owner is not None and owner.deleting_dependents:
                # It may have been waiting for this one.
                work.delete.add(ref.uid)
        return work.build()

    def _update_owners(self, node: Node, owners: tuple[OwnerRef, ...], work: _WorkBuilder) -> None:
        uid = node.identity.uid
        old = {r.uid: r for r in node.owners if r.uid != uid}
        new = {r.uid: r for r in owners if r.uid != uid}
        node.owners = owners
        if old == new:
            return
        removed = [r for u, r in old.items() if u not in new]
        for u, r in old.items():
            unblocked = u not in new or (r.block_owner_deletion and not new[u].block_owner_deletion)
            owner = self._nodes.get(u)
            if r.block_owner_deletion and unblocked and owner and owner.deleting_dependents:
                work.delete.add(u)
        self._unlink(uid, removed)
        self._link(node, [r for u, r in new.items() if u not in old], work)

    def _link(self, node: Node, added: Iterable[OwnerRef], work: _WorkBuilder) -> None:
        namespace = node.identity.namespace
        for ref in added:
            owner = self._nodes.get(ref.uid)
            if owner is None:
                identity = ObjectRef(ref.api_version, ref.kind, namespace, ref.name, ref.uid)
                owner = self._nodes[ref.uid] = Node(identity=identity)
                work.delete.add(ref.uid)  # does it exist? the collector asks the API
            elif owner.observed and not _names(ref, namespace, owner.identity):
                work.delete.add(node.identity.uid)  # a reference to the wrong place
            elif owner.deleting_dependents:
                # The owner started waiting before this dependent reached the
                # graph (an informer queues an object's add and update
                # together; kinds have no order among them), so its start
                # missed this one: attempt it now, as that start would have.
                work.delete.add(node.identity.uid)
            owner.dependents.add(node.identity.uid)

    def _unlink(self, uid: str, owners: Iterable[OwnerRef]) -> None:
        for ref in owners:
            owner = self._nodes.get(ref.uid)
            if owner is None:
                continue
            owner.dependents.discard(uid)
            if not owner.observed and not owner.dependents:
                del self._nodes[ref.uid]  # a virtual node lives only for its dependents


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _names(ref: OwnerRef, namespace: str, owner: ObjectRef) -> bool:
    """Whether `ref`, on an object in `namespace`, names `owner`. Versions
    may differ; a namespaced owner must share the dependent's namespace."""
    return (
        ref.uid == owner.uid
        and ref.kind == owner.kind
        and ref.name == owner.name
        and _group(ref.api_version) == _group(owner.api_version)
        and owner.namespace in ("", namespace)
    )


# -- decisions -----------------------------------------------------------------------------


class Verdict(enum.Enum):
    """What the API says about one owner of an object."""

    SOLID = "solid"  # exists and is not deleting its dependents
    DANGLING = "dangling"  # absent, or another object holds that name now
    WAITING = "waiting"  # being deleted in the foreground: waits for its dependents


class Action(enum.Enum):
    KEEP = "keep"
    REMOVE_REFERENCES = "remove-references"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    #: for REMOVE_REFERENCES: the uids of the owners to forget.
    owner_uids: tuple[str, ...] = ()
    #: for DELETE: the propagationPolicy.
    propagation: str = ""
    #: for DELETE: first set blockOwnerDeletion false on the object's own
    #: references, so a cycle of foreground deletions cannot deadlock.
    unblock_first: bool = False


def decide(
    owners: Sequence[OwnerRef],
    verdicts: Mapping[str, Verdict],
    finalizers: Collection[str],
    *,
    has_dependents: bool,
    dependent_deleting_dependents: bool = False,
) -> Decision:
    """Kubernetes' attemptToDeleteItem, once every owner is classified
    (`verdicts` by owner uid; an owner without a verdict counts as solid).

    - No owners, or all solid: keep.
    - Some solid: keep, but forget the dangling owners and those waiting
      for their dependents (this object no longer holds them up).
    - Some owner waits for its dependents and this object has dependents of
      its own: delete in the foreground, so the wait covers the whole tree.
    - Otherwise every owner is gone or going: delete, honouring a policy the
      object already asked for through its finalizers, else Background.
    """
    if not owners:
        return Decision(Action.KEEP)
    solid = [r for r in owners if verdicts.get(r.uid, Verdict.SOLID) is Verdict.SOLID]
    gone = [r.uid for r in owners if verdicts.get(r.uid) is Verdict.DANGLING]
    waiting = [r.uid for r in owners if verdicts.get(r.uid) is Verdict.WAITING]
    if solid:
        if not gone and not waiting:
            return Decision(Action.KEEP)
        return Decision(Action.REMOVE_REFERENCES, owner_uids=tuple(gone + waiting))
    if waiting and has_dependents:
        return Decision(
            Action.DELETE, propagation="Foreground", unblock_first=dependent_deleting_dependents
        )
    if ORPHAN_FINALIZER in finalizers:
        policy = "Orphan"
    elif FOREGROUND_FINALIZER in finalizers:
        policy = "Foreground"
    else:
        policy = "Background"
    return Decision(Action.DELETE, propagation=policy)

"""The garbage collector's ownership graph and decisions, without an API:
sequences of informer events in, the work they cause and the graph they
leave out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from kpy.controllers.garbagecollector.graph import (
    FOREGROUND_FINALIZER,
    ORPHAN_FINALIZER,
    Action,
    Decision,
    Graph,
    ObjectRef,
    ObjectState,
    OwnerRef,
    Verdict,
    Work,
    decide,
)

# -- building blocks (uid == name, to keep the tables readable) ------------------------------


def ident(name: str, *, kind: str = "ConfigMap", ns: str = "ns", api: str = "v1") -> ObjectRef:
    return ObjectRef(api, kind, ns, name, name)


def owner(
    uid: str, *, block: bool = False, kind: str = "ConfigMap", name: str = "", api: str = "v1"
) -> OwnerRef:
    return OwnerRef(api, kind, name or uid, uid, block_owner_deletion=block)


def state(
    name: str,
    *owners: OwnerRef,
    ns: str = "ns",
    kind: str = "ConfigMap",
    api: str = "v1",
    deleting: str | None = None,
) -> ObjectState:
    """`deleting`: None, "" (background) or the finalizer it was deleted with."""
    return ObjectState(
        identity=ident(name, kind=kind, ns=ns, api=api),
        owners=owners,
        being_deleted=deleting is not None,
        finalizers=frozenset({deleting} if deleting else ()),
    )


Step = Callable[[Graph], Work]


def seen(st: ObjectState) -> Step:
    return lambda g: g.observe(st)


def gone(name: str, **kw: str) -> Step:
    return lambda g: g.observe_deleted(ident(name, **kw))


def absent(ref: ObjectRef) -> Step:
    return lambda g: g.confirm_absent(ref)


@dataclass(frozen=True)
class Case:
    name: str
    steps: list[Step]
    #: the work of the last step
    delete: set[str] = field(default_factory=set)
    orphan: set[str] = field(default_factory=set)
    #: every node left: uid -> (observed, dependents)
    nodes: dict[str, tuple[bool, set[str]]] = field(default_factory=dict)


CASES = [
    Case("object without owners", [seen(state("a"))], nodes={"a": (True, set())}),
    Case(
        "owner not in the graph becomes a virtual node the collector checks",
        [seen(state("b", owner("a")))],
        delete={"a"},
        nodes={"a": (False, {"b"}), "b": (True, set())},
    ),
    Case(
        "owner already observed: nothing to check",
        [seen(state("a")), seen(state("b", owner("a")))],
        nodes={"a": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "virtual owner comes true",
        [seen(state("b", owner("a"))), seen(state("a"))],
        nodes={"a": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "virtual owner comes true under other coordinates: dependents re-checked",
        [seen(state("b", owner("a", kind="Secret"))), seen(state("a"))],
        delete={"b"},
        nodes={"a": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "owner deleted: its dependents are attempted",
        [
            seen(state("a")),
            seen(state("b", owner("a"))),
            seen(state("c", owner("a"))),
            gone("a"),
        ],
        delete={"b", "c"},
        nodes={"b": (True, set()), "c": (True, set())},
    ),
    Case(
        "owner without dependents deleted: nothing",
        [seen(state("a")), gone("a")],
    ),
    Case(
        "last dependent deleted: the virtual owner goes with it",
        [seen(state("b", owner("a"))), gone("b")],
    ),
    Case(
        "dependent deleted: an observed owner stays",
        [seen(state("a")), seen(state("b", owner("a"))), gone("b")],
        nodes={"a": (True, set())},
    ),
    Case(
        "unknown uid deleted: nothing",
        [seen(state("a")), gone("zz")],
        nodes={"a": (True, set())},
    ),
    Case(
        "foreground deletion starts: the owner and its dependents are attempted",
        [
            seen(state("a")),
            seen(state("b", owner("a", block=True))),
            seen(state("a", deleting=FOREGROUND_FINALIZER)),
        ],
        delete={"a", "b"},
        nodes={"a": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "foreground deletion seen again: no new work",
        [
            seen(state("a")),
            seen(state("a", deleting=FOREGROUND_FINALIZER)),
            seen(state("a", deleting=FOREGROUND_FINALIZER)),
        ],
        nodes={"a": (True, set())},
    ),
    Case(
        "object first seen already deleting its dependents",
        [seen(state("a", deleting=FOREGROUND_FINALIZER))],
        delete={"a"},
        nodes={"a": (True, set())},
    ),
    Case(
        # An informer delivers an object's add and update together, before
        # the objects created in between; kinds have no order among them.
        "dependent first seen after its owner started waiting: it is attempted",
        [
            seen(state("a")),
            seen(state("a", deleting=FOREGROUND_FINALIZER)),
            seen(state("b", owner("a"))),
        ],
        delete={"b"},
        nodes={"a": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "blocking dependent first seen after its owner started waiting: it is attempted",
        [
            seen(state("a", deleting=FOREGROUND_FINALIZER)),
            seen(state("b", owner("a", block=True))),
        ],
        delete={"b"},
        nodes={"a": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "reference to a waiting owner added to a known object: it is attempted",
        [
            seen(state("a", deleting=FOREGROUND_FINALIZER)),
            seen(state("b")),
            seen(state("b", owner("a"))),
        ],
        delete={"b"},
        nodes={"a": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "dependent first seen after its owner's orphan deletion started: no delete work",
        [
            seen(state("a", deleting=ORPHAN_FINALIZER)),
            seen(state("b", owner("a"))),
        ],
        nodes={"a": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "blocking dependent deleted: the waiting owner is attempted",
        [
            seen(state("a")),
            seen(state("b", owner("a", block=True))),
            seen(state("a", deleting=FOREGROUND_FINALIZER)),
            gone("b"),
        ],
        delete={"a"},
        nodes={"a": (True, set())},
    ),
    Case(
        "blocking reference removed: the waiting owner is attempted",
        [
            seen(state("a")),
            seen(state("b", owner("a", block=True))),
            seen(state("a", deleting=FOREGROUND_FINALIZER)),
            seen(state("b")),
        ],
        delete={"a"},
        nodes={"a": (True, set()), "b": (True, set())},
    ),
    Case(
        "blockOwnerDeletion turned off: the waiting owner is attempted",
        [
            seen(state("a")),
            seen(state("b", owner("a", block=True))),
            seen(state("a", deleting=FOREGROUND_FINALIZER)),
            seen(state("b", owner("a"))),
        ],
        delete={"a"},
        nodes={"a": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "non-blocking reference removed: the waiting owner does not care",
        [
            seen(state("a")),
            seen(state("b", owner("a"))),
            seen(state("a", deleting=FOREGROUND_FINALIZER)),
            seen(state("b")),
        ],
        nodes={"a": (True, set()), "b": (True, set())},
    ),
    Case(
        "background deletion pending (a finalizer): no work until it goes",
        [seen(state("a")), seen(state("b", owner("a"))), seen(state("a", deleting=""))],
        nodes={"a": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "orphan deletion starts: the owner goes on the orphan queue",
        [
            seen(state("a")),
            seen(state("b", owner("a"))),
            seen(state("a", deleting=ORPHAN_FINALIZER)),
        ],
        orphan={"a"},
        nodes={"a": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "owner changed: the dependent moves",
        [
            seen(state("a")),
            seen(state("c")),
            seen(state("b", owner("a"))),
            seen(state("b", owner("c"))),
        ],
        nodes={"a": (True, set()), "c": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "namespaced owner observed in another namespace: the dependent is checked",
        [seen(state("a", ns="one")), seen(state("b", owner("a"), ns="two"))],
        delete={"b"},
        nodes={"a": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "cluster-scoped owner: any namespace may name it",
        [seen(state("n", kind="Node", ns="")), seen(state("b", owner("n", kind="Node")))],
        nodes={"n": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "reference with another name than the observed owner: the dependent is checked",
        [seen(state("a")), seen(state("b", owner("a", name="other")))],
        delete={"b"},
        nodes={"a": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "another version of the owner's group: fine",
        [
            seen(state("a", kind="Deployment", api="apps/v1")),
            seen(state("b", owner("a", kind="Deployment", api="apps/v1beta1"))),
        ],
        nodes={"a": (True, {"b"}), "b": (True, set())},
    ),
    Case(
        "a reference to itself is no edge",
        [seen(state("a", owner("a")))],
        nodes={"a": (True, set())},
    ),
    Case(
        "virtual owner confirmed absent: removed, its dependents attempted",
        [seen(state("b", owner("a"))), seen(state("c", owner("a"))), absent(ident("a"))],
        delete={"b", "c"},
        nodes={"b": (True, set()), "c": (True, set())},
    ),
    Case(
        "observed node confirmed absent (the cache lags): removed like a delete",
        [seen(state("a")), seen(state("b", owner("a"))), absent(ident("a"))],
        delete={"b"},
        nodes={"b": (True, set())},
    ),
    Case(
        "absent under other coordinates than observed: only the dependents naming those",
        [
            seen(state("a")),
            seen(state("b", owner("a"))),
            seen(state("c", owner("a", name="x"))),
            absent(ObjectRef("v1", "ConfigMap", "ns", "x", "a")),
        ],
        delete={"c"},
        nodes={"a": (True, {"b", "c"}), "b": (True, set()), "c": (True, set())},
    ),
    Case(
        "unknown uid confirmed absent: nothing",
        [seen(state("a")), absent(ident("zz"))],
        nodes={"a": (True, set())},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_graph(case: Case) -> None:
    graph = Graph()
    work = Work()
    for step in case.steps:
        work = step(graph)
    assert set(work.attempt_to_delete) == case.delete, case.name
    assert set(work.attempt_to_orphan) == case.orphan, case.name
    nodes = {}
    for uid in [*case.nodes, "a", "b", "c", "n", "x", "zz"]:
        node = graph.get(uid)
        if node is not None:
            nodes[uid] = (node.observed, node.dependents)
    assert nodes == case.nodes, case.name
    assert len(graph) == len(case.nodes), case.name


def test_deleted_owner_with_dependents_is_remembered_absent() -> None:
    graph = Graph()
    graph.observe(state("a"))
    graph.observe(state("b", owner("a")))
    graph.observe_deleted(ident("a"))
    assert graph.is_absent(ident("a"))
    assert not graph.is_absent(ident("a", ns="elsewhere"))


def test_absent_cache_is_bounded_least_recently_used_first() -> None:
    graph = Graph(absent_cache_size=2)
    graph.mark_absent(ident("a"))
    graph.mark_absent(ident("b"))
    assert graph.is_absent(ident("a"))  # now more recent than b
    graph.mark_absent(ident("c"))
    assert [graph.is_absent(ident(n)) for n in "abc"] == [True, False, True]


def test_blocking_dependents() -> None:
    graph = Graph()
    graph.observe(state("a"))
    graph.observe(state("b", owner("a", block=True)))
    graph.observe(state("c", owner("a")))
    assert [d.identity.uid for d in graph.dependents("a")] == ["b", "c"]
    assert [d.identity.uid for d in graph.blocking_dependents("a")] == ["b"]
    assert graph.blocking_dependents("zz") == []


# -- decide ------------------------------------------------------------------------------------

S, D, W = Verdict.SOLID, Verdict.DANGLING, Verdict.WAITING


@dataclass(frozen=True)
class DecideCase:
    name: str
    verdicts: dict[str, Verdict]
    want: Decision
    finalizers: frozenset[str] = frozenset()
    has_dependents: bool = False
    dependent_deleting_dependents: bool = False
    #: owner uids, when not just those with a verdict
    owners: tuple[str, ...] = ()


KEEP = Decision(Action.KEEP)
DECIDE_CASES = [
    DecideCase("no owners", {}, KEEP),
    DecideCase("all owners solid", {"a": S, "b": S}, KEEP),
    DecideCase(
        "one owner gone, one solid: forget the gone one",
        {"a": D, "b": S},
        Decision(Action.REMOVE_REFERENCES, owner_uids=("a",)),
    ),
    DecideCase(
        "one owner waiting, one solid: stop holding the waiting one up",
        {"a": S, "b": W},
        Decision(Action.REMOVE_REFERENCES, owner_uids=("b",)),
    ),
    DecideCase(
        "gone and waiting owners beside a solid one",
        {"a": W, "b": D, "c": S},
        Decision(Action.REMOVE_REFERENCES, owner_uids=("b", "a")),
    ),
    DecideCase(
        "every owner gone: background delete",
        {"a": D, "b": D},
        Decision(Action.DELETE, propagation="Background"),
    ),
    DecideCase(
        "every owner gone, the object asked to orphan: honour it",
        {"a": D},
        Decision(Action.DELETE, propagation="Orphan"),
        finalizers=frozenset({ORPHAN_FINALIZER}),
    ),
    DecideCase(
        "every owner gone, the object asked for foreground: honour it",
        {"a": D},
        Decision(Action.DELETE, propagation="Foreground"),
        finalizers=frozenset({FOREGROUND_FINALIZER}),
    ),
    DecideCase(
        "owner waiting, no dependents of its own: background delete",
        {"a": W},
        Decision(Action.DELETE, propagation="Background"),
    ),
    DecideCase(
        "owner waiting, dependents of its own: foreground, so the wait covers them",
        {"a": W, "b": D},
        Decision(Action.DELETE, propagation="Foreground"),
        has_dependents=True,
    ),
    DecideCase(
        "owner waiting and a dependent waiting too: unblock first (cycles)",
        {"a": W},
        Decision(Action.DELETE, propagation="Foreground", unblock_first=True),
        has_dependents=True,
        dependent_deleting_dependents=True,
    ),
    DecideCase(
        "an owner without a verdict counts as solid",
        {"a": D},
        Decision(Action.REMOVE_REFERENCES, owner_uids=("a",)),
        owners=("a", "b"),
    ),
]


@pytest.mark.parametrize("case", DECIDE_CASES, ids=[c.name for c in DECIDE_CASES])
def test_decide(case: DecideCase) -> None:
    owners = [owner(uid) for uid in case.owners or case.verdicts]
    got = decide(
        owners,
        case.verdicts,
        case.finalizers,
        has_dependents=case.has_dependents,
        dependent_deleting_dependents=case.dependent_deleting_dependents,
    )
    assert got == case.want, case.name

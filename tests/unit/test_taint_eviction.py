"""The taint eviction controller's `sync`, table by table, on the fake
client with a stepped clock (Kubernetes' pkg/controller/tainteviction
taint_eviction_test.go: its cases, kpy's code).

Each case puts a pod on a node with some taints, syncs the pod at the
listed times and says whether the pod is still there (not deleted) after
each; a case may take the node's taints off at some time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import pytest

from kpy.api.core.v1 import Node, Pod, Taint, Toleration
from kpy.api.defaults import set_defaults
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.controllers.taint_eviction import (
    FOREVER,
    TaintEvictionController,
    matching_tolerations,
    min_toleration_seconds,
)

if TYPE_CHECKING:
    from kpy.cache.events import EventRecorder

T0 = 1_700_000_000.0
UNREACHABLE = "node.kubernetes.io/unreachable"


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


class Recorder:
    """Collects events as `reason: message`."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def event(self, obj: Any, eventtype: str, reason: str, message: str) -> None:
        self.events.append(f"{reason}: {message}")


def taint(key: str, effect: str = "NoExecute", value: str = "") -> Taint:
    return Taint(key=key, value=value, effect=effect)


def toleration(key: str, seconds: int | None = None, *, effect: str = "NoExecute") -> Toleration:
    t = Toleration(key=key, operator="Exists", effect=effect)
    if seconds is not None:
        t.toleration_seconds = seconds
    return t


def node(taints: list[Taint]) -> Node:
    n = Node()
    n.metadata.name = "node-1"
    n.spec.taints.extend(taints)
    return set_defaults(n)


def pod(tolerations: list[Toleration]) -> Pod:
    p = Pod()
    p.metadata.name = "p"
    p.metadata.namespace = "default"
    p.metadata.uid = "uid-p"
    p.spec.node_name = "node-1"
    p.spec.containers.add(name="app", image="busybox")
    p.spec.tolerations.extend(tolerations)
    p.status.phase = "Running"
    return set_defaults(p)


@dataclass
class Fixture:
    client: FakeClient
    nodes: SharedInformer[Node]
    pods: SharedInformer[Pod]
    controller: TaintEvictionController
    clock: Clock
    recorder: Recorder

    @classmethod
    def new(cls) -> Fixture:
        clock = Clock()
        client = FakeClient(now=clock)
        nodes = SharedInformer(client, Node)
        pods = SharedInformer(client, Pod)
        recorder = Recorder()
        controller = TaintEvictionController(
            client, nodes, pods, now=clock, recorder=cast("EventRecorder", recorder)
        )
        return cls(client, nodes, pods, controller, clock, recorder)

    def seed(self, *objects: Any) -> None:
        for obj in objects:
            stored = self.client.stored(type(obj), obj.metadata.name, obj.metadata.namespace)
            if stored is not None:
                obj.metadata.resource_version = stored.metadata.resource_version
            self.client.add(obj)
        self.refresh()

    def refresh(self) -> None:
        self.nodes.indexer.replace(self.client.stored_list(Node), "0")
        self.pods.indexer.replace(self.client.stored_list(Pod), "0")

    def present(self) -> bool:
        """Whether the pod is still there and not being deleted."""
        p = self.client.stored(Pod, "p")
        return p is not None and not p.metadata.HasField("deletion_timestamp")

    async def sync_at(self, t: float) -> None:
        self.clock.t = T0 + t
        await self.controller.sync("default/p")
        self.refresh()


@dataclass(frozen=True)
class Case:
    name: str
    taints: list[Taint]
    tolerations: list[Toleration]
    #: (seconds after the first sync, whether the pod is still there after a sync then)
    want: list[tuple[float, bool]]
    untaint_at: float | None = None
    events: list[str] = field(default_factory=list)


MARKED = "TaintManagerEviction: Marking for deletion Pod default/p"
CANCELLED = "TaintManagerEviction: Cancelling deletion of Pod default/p"

CASES = [
    Case("no taints: stays", [], [], [(0, True), (1000, True)]),
    Case("a NoSchedule taint only: stays", [taint("k", "NoSchedule")], [], [(0, True)]),
    Case(
        "an untolerated NoExecute taint: deleted at once",
        [taint(UNREACHABLE)],
        [],
        [(0, False)],
        events=[MARKED],
    ),
    Case(
        "tolerated for 30 s: deleted at 30 s and not before",
        [taint(UNREACHABLE)],
        [toleration(UNREACHABLE, 30)],
        [(0, True), (29.9, True), (30, False)],
        events=[MARKED],
    ),
    Case(
        "tolerated forever: stays",
        [taint(UNREACHABLE)],
        [toleration(UNREACHABLE)],
        [(0, True), (100_000, True)],
    ),
    Case(
        "the shortest of the matching tolerations counts",
        [taint(UNREACHABLE), taint("other")],
        [toleration(UNREACHABLE), toleration("other", 300), toleration("other", 60)],
        [(0, True), (59, True), (60, False)],
        events=[MARKED],
    ),
    Case(
        "one taint tolerated, another not: deleted at once",
        [taint(UNREACHABLE), taint("other")],
        [toleration(UNREACHABLE, 300)],
        [(0, False)],
        events=[MARKED],
    ),
    Case(
        "an empty key with Exists tolerates every taint forever",
        [taint(UNREACHABLE), taint("other")],
        [Toleration(operator="Exists")],
        [(0, True), (100_000, True)],
    ),
    Case(
        "tolerationSeconds 0: deleted at once",
        [taint(UNREACHABLE)],
        [toleration(UNREACHABLE, 0)],
        [(0, False)],
        events=[MARKED],
    ),
    Case(
        "the taint goes before the time: kept, deletion cancelled",
        [taint(UNREACHABLE)],
        [toleration(UNREACHABLE, 30)],
        [(0, True), (10, True), (30, True), (1000, True)],
        untaint_at=10,
        events=[CANCELLED],
    ),
    Case(
        "a NoSchedule toleration does not tolerate NoExecute",
        [taint(UNREACHABLE)],
        [toleration(UNREACHABLE, effect="NoSchedule")],
        [(0, False)],
        events=[MARKED],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_sync(case: Case) -> None:
    fx = Fixture.new()
    fx.seed(node(case.taints), pod(case.tolerations))
    got = []
    for t, _ in case.want:
        if case.untaint_at is not None and t >= case.untaint_at:
            fx.seed(node([]))
        await fx.sync_at(t)
        got.append((t, fx.present()))
    fx.controller.queue.shut_down()
    assert got == case.want, f"{case.name}: (time, present) {got}"
    assert fx.recorder.events == case.events, f"{case.name}: events {fx.recorder.events}"


async def test_the_pod_gets_disruption_target_before_the_delete() -> None:
    fx = Fixture.new()
    fx.seed(node([taint(UNREACHABLE)]), pod([]))
    await fx.sync_at(0)
    fx.controller.queue.shut_down()
    writes = [str(a) for a in fx.client.writes()]
    assert writes == ["update Pod default/p (status)", "delete Pod default/p"]
    status_update = fx.client.writes()[0].object
    [target] = [c for c in status_update.status.conditions if c.type == "DisruptionTarget"]
    assert (target.status, target.reason) == ("True", "DeletionByTaintManager")
    assert target.message == "Taint manager: deleting due to NoExecute taint"


async def test_the_disruption_target_time_is_in_whole_seconds() -> None:
    """As Kubernetes' metav1.Time, so that YAML shows 2026-12-07T17:28:20Z."""
    fx = Fixture.new()
    fx.seed(node([taint(UNREACHABLE)]), pod([]))
    await fx.sync_at(0.75)
    fx.controller.queue.shut_down()
    status_update = fx.client.writes()[0].object
    [target] = [c for c in status_update.status.conditions if c.type == "DisruptionTarget"]
    when = target.last_transition_time
    assert (when.seconds, when.nanos) == (int(T0 + 0.75), 0)


async def test_a_pod_not_yet_due_is_requeued_for_its_time() -> None:
    fx = Fixture.new()
    fx.seed(node([taint(UNREACHABLE)]), pod([toleration(UNREACHABLE, 30)]))
    await fx.sync_at(0)
    assert fx.controller.marked["default/p"].since == T0
    await fx.sync_at(20)
    assert fx.controller.marked["default/p"].since == T0, "the count starts at the first sync"
    fx.controller.queue.shut_down()


async def test_the_mark_goes_with_the_pod() -> None:
    fx = Fixture.new()
    fx.seed(node([taint(UNREACHABLE)]), pod([toleration(UNREACHABLE, 30)]))
    await fx.sync_at(0)
    await fx.client.delete(Pod, "p", namespace="default", grace_period_seconds=0)
    fx.refresh()
    await fx.sync_at(1)
    fx.controller.queue.shut_down()
    assert fx.controller.marked == {}


@pytest.mark.parametrize(
    ("name", "seconds", "want"),
    [
        ("none set: forever", [None, None], FOREVER),
        ("the shortest", [300, 30, None], 30),
        ("a negative one counts as 0", [-5, 30], 0),
        ("no tolerations: 0 is never asked for, forever", [], FOREVER),
    ],
)
def test_min_toleration_seconds(name: str, seconds: list[int | None], want: int) -> None:
    tolerations = [toleration("k", s) for s in seconds]
    assert min_toleration_seconds(tolerations) == want, name


def test_matching_tolerations_names_only_those_used() -> None:
    used_a, used_b = toleration("a", 10), toleration("b", 20)
    ok, used = matching_tolerations(
        [taint("a")], [used_a, used_b, toleration("a", effect="NoSchedule")]
    )
    assert ok
    assert used == [used_a]

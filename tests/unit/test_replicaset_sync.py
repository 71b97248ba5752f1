"""The ReplicaSet controller's `sync`, table by table, on the fake client
(Kubernetes' pkg/controller/replicaset/replica_set_test.go: the cases are
ported, the code is kpy's).

Every case names what the listers hold (a ReplicaSet and its pods) and the
actions the sync takes, as `verb Kind namespace/name (subresource)`; `*`
stands for a name the store generates. Reads (get, list) are left out. The
status a sync writes describes the pods it found before acting, so a case
whose status is already that (`with_status`) writes none. This is the shape
for every controller's sync test: copy it.
"""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from kpy.api import errors
from kpy.api.apps.v1 import ReplicaSet
from kpy.api.core.v1 import Pod, PodCondition
from kpy.api.defaults import set_defaults
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.controllers.ownership import new_controller_ref
from kpy.controllers.replicaset import POD_OWNER_INDEX, ReplicaSetController, pod_owner_index

NOW = 1_700_000_000.0
LABELS = {"app": "web"}
_uids = itertools.count(1)


# -- builders (Kubernetes' newReplicaSet, newPod) ---------------------------------------------


def replica_set(replicas: int, *, deleting: bool = False, generation: int = 1) -> ReplicaSet:
    rs = ReplicaSet()
    rs.metadata.name = "rs"
    rs.metadata.namespace = "default"
    rs.metadata.uid = "rs-uid"
    rs.metadata.generation = generation
    rs.spec.replicas = replicas
    rs.spec.selector.match_labels.update(LABELS)
    rs.spec.template.metadata.labels.update(LABELS)
    rs.spec.template.spec.containers.add(name="app", image="busybox")
    if deleting:
        rs.metadata.deletion_timestamp.FromSeconds(int(NOW))
        rs.metadata.finalizers.append("foregroundDeletion")
    return set_defaults(rs)


OWNER = replica_set(0)


def pod(
    name: str,
    *,
    owner: ReplicaSet | None = OWNER,
    labels: dict[str, str] | None = None,
    phase: str = "Running",
    ready: bool = True,
    node: str = "node-1",
    age: int = 100,
    deleting: bool = False,
) -> Pod:
    """A pod created `age` seconds before NOW, ready since then if `ready`."""
    p = Pod()
    p.metadata.name = name
    p.metadata.namespace = "default"
    p.metadata.uid = f"pod-uid-{next(_uids)}"
    p.metadata.labels.update(LABELS if labels is None else labels)
    p.metadata.creation_timestamp.FromSeconds(int(NOW) - age)
    if owner is not None:
        p.metadata.owner_references.append(new_controller_ref(owner, "apps/v1", "ReplicaSet"))
    if deleting:
        p.metadata.deletion_timestamp.FromSeconds(int(NOW))
        p.metadata.finalizers.append("example.com/hold")
    p.spec.containers.add(name="app", image="busybox")
    p.spec.node_name = node
    p.status.phase = phase
    if ready:
        condition = PodCondition(type="Ready", status="True")
        condition.last_transition_time.FromSeconds(int(NOW) - age)
        p.status.conditions.append(condition)
    return set_defaults(p)


def other_owner() -> ReplicaSet:
    other = replica_set(1)
    other.metadata.name, other.metadata.uid = "other", "other-uid"
    return other


def with_status(rs: ReplicaSet, replicas: int, ready: int | None = None) -> ReplicaSet:
    """`rs` with the status its sync would write for `replicas` ready pods."""
    ready = replicas if ready is None else ready
    rs.status.replicas = replicas
    rs.status.fully_labeled_replicas = replicas
    rs.status.ready_replicas = ready
    rs.status.available_replicas = ready
    rs.status.observed_generation = rs.metadata.generation
    return rs


# -- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    rs: ReplicaSet | None
    pods: list[Pod] = field(default_factory=list)
    want: list[str] = field(default_factory=list)
    #: pod creations the controller still waits to see (its expectations).
    pending_creations: int = 0
    #: verb that fails with Forbidden, and the error the sync then raises.
    failing: str = ""
    burst: int = 500


STATUS = "update ReplicaSet default/rs (status)"
CREATE = "create Pod default/rs-*"

CASES = [
    Case(
        "no pods: creates them all",
        replica_set(2),
        want=[CREATE, CREATE, STATUS],
    ),
    Case(
        "as many pods as replicas and an up-to-date status: does nothing",
        with_status(replica_set(2), 2),
        pods=[pod("a"), pod("b")],
        want=[],
    ),
    Case(
        "too many pods: deletes the surplus",
        with_status(replica_set(1), 2),
        pods=[pod("a", age=200), pod("b")],
        want=["delete Pod default/b"],
    ),
    Case(
        "the not-ready pod goes first",
        with_status(replica_set(2), 3, ready=2),
        pods=[pod("ready-old", age=300), pod("not-ready", ready=False, age=400), pod("ready")],
        want=["delete Pod default/not-ready"],
    ),
    Case(
        "the unscheduled pod goes before the pending, the pending before the running",
        with_status(replica_set(1), 3, ready=1),
        pods=[
            pod("running"),
            pod("pending", phase="Pending", ready=False),
            pod("unscheduled", phase="Pending", ready=False, node=""),
        ],
        want=["delete Pod default/unscheduled", "delete Pod default/pending"],
    ),
    Case(
        "among ready pods, the one ready most recently goes first",
        with_status(replica_set(1), 2),
        pods=[pod("ready-long", age=500), pod("ready-lately", age=50)],
        want=["delete Pod default/ready-lately"],
    ),
    Case(
        "among equals, the newest goes first",
        with_status(replica_set(1), 2, ready=0),
        pods=[pod("old", ready=False, age=500), pod("new", ready=False, age=50)],
        want=["delete Pod default/new"],
    ),
    Case(
        "adopts a matching orphan instead of creating",
        with_status(replica_set(1), 0),
        pods=[pod("orphan", owner=None)],
        want=["patch Pod default/orphan", STATUS],
    ),
    Case(
        "releases a pod that stopped matching, and replaces it",
        with_status(replica_set(1), 1),
        pods=[pod("relabelled", labels={"app": "other"})],
        want=["patch Pod default/relabelled", CREATE, STATUS],
    ),
    Case(
        "never touches a pod another controller owns",
        with_status(replica_set(1), 0),
        pods=[pod("theirs", owner=other_owner())],
        want=[CREATE],
    ),
    Case(
        "finished and deleting pods do not count",
        with_status(replica_set(2), 0),
        pods=[pod("done", phase="Succeeded", ready=False), pod("going", deleting=True)],
        want=[CREATE, CREATE],
    ),
    Case(
        "creations not yet seen: waits, only the status is written",
        replica_set(2),
        pending_creations=2,
        want=[STATUS],
    ),
    Case(
        "a ReplicaSet being deleted creates nothing and adopts nothing",
        replica_set(2, deleting=True),
        pods=[pod("orphan", owner=None)],
        want=[STATUS],
    ),
    Case(
        "a failing create stops the slow-start batches and sets ReplicaFailure",
        replica_set(3),
        failing="create",
        want=[CREATE, STATUS],
    ),
    Case(
        "a failing delete is reported in ReplicaFailure",
        with_status(replica_set(0), 1),
        pods=[pod("a")],
        failing="delete",
        want=["delete Pod default/a", STATUS],
    ),
    Case(
        "at most burst_replicas pods per sync, in slow-start batches of 1 and 2",
        replica_set(10),
        burst=3,
        want=[CREATE, CREATE, CREATE, STATUS],
    ),
    Case("a ReplicaSet gone from the lister: nothing to do", None, want=[]),
]


@dataclass
class Fixture:
    """A ReplicaSetController over a FakeClient; its informers never run:
    `seed` puts objects both in the client and in the listers."""

    client: FakeClient
    rs_informer: SharedInformer[ReplicaSet]
    pod_informer: SharedInformer[Pod]
    controller: ReplicaSetController

    @classmethod
    def new(cls, *, burst: int = 500) -> Fixture:
        client = FakeClient(now=lambda: NOW)
        replica_sets = SharedInformer(client, ReplicaSet)
        pods = SharedInformer(client, Pod)
        pods.add_indexers({POD_OWNER_INDEX: pod_owner_index})
        controller = ReplicaSetController(
            client, replica_sets, pods, burst_replicas=burst, now=lambda: NOW
        )
        return cls(client, replica_sets, pods, controller)

    def seed(self, *objects: ReplicaSet | Pod) -> None:
        for stored in self.client.add(*objects):
            informer: SharedInformer[Any] = (
                self.rs_informer if isinstance(stored, ReplicaSet) else self.pod_informer
            )
            informer.indexer.add(stored)

    def close(self) -> None:
        self.controller.queue.shut_down()


def written(client: FakeClient) -> list[str]:
    return [str(a) for a in client.writes()]


def matches(got: list[str], want: list[str]) -> bool:
    return len(got) == len(want) and all(
        fnmatch.fnmatchcase(g, w) for g, w in zip(got, want, strict=True)
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_sync(case: Case) -> None:
    fx = Fixture.new(burst=case.burst)
    if case.rs is not None:
        fx.seed(case.rs)
    fx.seed(*case.pods)
    if case.pending_creations:
        fx.controller.expectations.expect_creations("default/rs", case.pending_creations)
    if case.failing:
        fx.client.fail(case.failing, "Pod", errors.Forbidden("exceeded quota"))
    try:
        if case.failing:
            with pytest.raises(errors.Forbidden):
                await fx.controller.sync("default/rs")
        else:
            await fx.controller.sync("default/rs")
    finally:
        fx.close()
    got = written(fx.client)
    assert matches(got, case.want), f"{case.name}: got {got}, want {case.want}"


# -- what the writes carry ----------------------------------------------------------------------


async def test_created_pods_come_from_the_template_and_are_owned() -> None:
    fx = Fixture.new()
    fx.seed(replica_set(1))
    await fx.controller.sync("default/rs")
    fx.close()
    [created] = fx.client.stored_list(Pod)
    assert created.metadata.name.startswith("rs-")
    assert dict(created.metadata.labels) == LABELS
    [ref] = created.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("ReplicaSet", "rs", "rs-uid", True)


async def test_the_status_counts_ready_and_available_pods() -> None:
    fx = Fixture.new()
    rs = replica_set(3, generation=4)
    rs.spec.min_ready_seconds = 60
    fx.seed(rs, pod("long-ready", age=600), pod("just-ready", age=10), pod("c", ready=False))
    await fx.controller.sync("default/rs")
    fx.close()
    stored = fx.client.stored(ReplicaSet, "rs")
    assert stored is not None
    s = stored.status
    assert (s.replicas, s.ready_replicas, s.available_replicas) == (3, 2, 1)
    assert s.observed_generation == 4


async def test_a_failed_create_is_in_the_replica_failure_condition() -> None:
    fx = Fixture.new()
    fx.seed(replica_set(1))
    fx.client.fail("create", "Pod", errors.Forbidden("exceeded quota"))
    with pytest.raises(errors.Forbidden):
        await fx.controller.sync("default/rs")
    fx.close()
    stored = fx.client.stored(ReplicaSet, "rs")
    assert stored is not None
    [condition] = stored.status.conditions
    assert (condition.type, condition.status, condition.reason) == (
        "ReplicaFailure",
        "True",
        "FailedCreate",
    )
    assert "exceeded quota" in condition.message


async def test_an_adopted_orphan_gets_the_controller_reference() -> None:
    fx = Fixture.new()
    fx.seed(replica_set(1), pod("orphan", owner=None))
    await fx.controller.sync("default/rs")
    fx.close()
    adopted = fx.client.stored(Pod, "orphan")
    assert adopted is not None
    assert [r.uid for r in adopted.metadata.owner_references] == ["rs-uid"]
    # Adoption re-read the owner from the API (not the cache) first.
    assert "get ReplicaSet default/rs" in [str(a) for a in fx.client.actions]

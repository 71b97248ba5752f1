"""The DaemonSet controller's `sync`, table by table, on the fake client
(Kubernetes' pkg/controller/daemon/daemon_controller_test.go and
update_test.go: the cases are ported, the code is kpy's).

Every case names what the listers hold (a DaemonSet, nodes and pods) and the
pod writes the sync makes, as `verb Pod namespace/name`; `*` stands for a
name the store generates. The DaemonSet's current ControllerRevision is in
the listers already, so revision writes show only where a case is about
them; status writes are checked by their own table below.
"""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from kpy.api import errors
from kpy.api.apps.v1 import ControllerRevision, DaemonSet
from kpy.api.codec import to_dict
from kpy.api.core.v1 import Node, Pod, PodCondition, Taint, Toleration
from kpy.api.defaults import set_defaults
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.controllers.daemonset import DaemonSetController
from kpy.controllers.daemonset.history import revision_patch
from kpy.controllers.daemonset.util import REVISION_HASH_LABEL, Placement, template_hash
from kpy.controllers.ownership import new_controller_ref
from kpy.controllers.replicaset import POD_OWNER_INDEX, pod_owner_index

NOW = 1_700_000_000.0
LABELS = {"name": "fluentd"}
_uids = itertools.count(1)


# -- builders (Kubernetes' newDaemonSet, newNode, newPod) -------------------------------------


def daemon_set(
    *,
    node_selector: dict[str, str] | None = None,
    tolerations: list[Toleration] | None = None,
    max_unavailable: int | None = None,
    max_surge: int | None = None,
    on_delete: bool = False,
    deleting: bool = False,
    affinity_zone: str = "",
    image: str = "fluentd:1",
) -> DaemonSet:
    ds = DaemonSet()
    ds.metadata.name = "ds"
    ds.metadata.namespace = "default"
    ds.metadata.uid = "ds-uid"
    ds.metadata.generation = 1
    ds.spec.selector.match_labels.update(LABELS)
    ds.spec.template.metadata.labels.update(LABELS)
    ds.spec.template.spec.containers.add(name="fluentd", image=image)
    ds.spec.template.spec.node_selector.update(node_selector or {})
    ds.spec.template.spec.tolerations.extend(tolerations or [])
    if affinity_zone:
        required = ds.spec.template.spec.affinity.node_affinity
        term = required.required_during_scheduling_ignored_during_execution.node_selector_terms
        term.add().match_expressions.add(key="zone", operator="In", values=[affinity_zone])
    if on_delete:
        ds.spec.update_strategy.type = "OnDelete"
    else:
        ds.spec.update_strategy.type = "RollingUpdate"
        rolling = ds.spec.update_strategy.rolling_update
        if max_unavailable is not None:
            rolling.max_unavailable.int_val = max_unavailable
        if max_surge is not None:
            rolling.max_surge.int_val = max_surge
    if deleting:
        ds.metadata.deletion_timestamp.FromSeconds(int(NOW))
        ds.metadata.finalizers.append("foregroundDeletion")
    return set_defaults(ds)


DS = daemon_set()
HASH = template_hash(DS)


def node(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    taints: list[tuple[str, str]] | None = None,
    unschedulable: bool = False,
) -> Node:
    """`taints`: (key, effect) pairs."""
    n = Node()
    n.metadata.name = name
    n.metadata.uid = f"node-uid-{name}"
    n.metadata.labels.update(labels or {})
    n.spec.taints.extend(Taint(key=k, effect=e) for k, e in (taints or []))
    n.spec.unschedulable = unschedulable
    return n


def pod(
    name: str,
    node_name: str,
    *,
    revision: str = HASH,
    phase: str = "Running",
    ready: bool = True,
    age: int = 100,
    owner: DaemonSet | None = DS,
) -> Pod:
    """A daemon pod on `node_name`, created `age` seconds before NOW."""
    p = Pod()
    p.metadata.name = name
    p.metadata.namespace = "default"
    p.metadata.uid = f"pod-uid-{next(_uids)}"
    p.metadata.labels.update(LABELS)
    p.metadata.labels[REVISION_HASH_LABEL] = revision
    p.metadata.creation_timestamp.FromSeconds(int(NOW) - age)
    if owner is not None:
        p.metadata.owner_references.append(new_controller_ref(owner, "apps/v1", "DaemonSet"))
    p.spec.containers.add(name="fluentd", image="fluentd:1")
    p.spec.node_name = node_name
    p.status.phase = phase
    if ready:
        condition = PodCondition(type="Ready", status="True")
        condition.last_transition_time.FromSeconds(int(NOW) - age)
        p.status.conditions.append(condition)
    return set_defaults(p)


def revision_of(ds: DaemonSet, number: int = 1) -> ControllerRevision:
    """The ControllerRevision the controller would make for `ds`'s template."""
    revision = ControllerRevision(data=revision_patch(ds), revision=number)
    revision.metadata.name = f"ds-{template_hash(ds)}"
    revision.metadata.namespace = "default"
    revision.metadata.labels.update(LABELS)
    revision.metadata.labels[REVISION_HASH_LABEL] = template_hash(ds)
    revision.metadata.owner_references.append(new_controller_ref(ds, "apps/v1", "DaemonSet"))
    return revision


def toleration(key: str, effect: str = "NoSchedule") -> Toleration:
    return Toleration(key=key, operator="Exists", effect=effect)


# -- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    ds: DaemonSet
    nodes: list[Node] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    want: list[str] = field(default_factory=list)
    #: pod creations the controller still waits to see (its expectations).
    pending_creations: int = 0


CREATE = "create Pod default/ds-*"


def delete(name: str) -> str:
    return f"delete Pod default/{name}"


NEW = daemon_set(image="fluentd:2")
NEW_HASH = template_hash(NEW)

CASES = [
    Case(
        "no pods on three nodes: one created on each (SimpleDaemonSetLaunchesPods)",
        DS,
        nodes=[node("a"), node("b"), node("c")],
        want=[CREATE, CREATE, CREATE],
    ),
    Case(
        "every node has its pod: nothing to do",
        DS,
        nodes=[node("a"), node("b")],
        pods=[pod("pa", "a"), pod("pb", "b")],
    ),
    Case(
        "a node that joined gets its pod",
        DS,
        nodes=[node("a"), node("new")],
        pods=[pod("pa", "a")],
        want=[CREATE],
    ),
    Case(
        "an untolerated NoSchedule taint: no pod (TaintedNodeDaemonDoesNotLaunchIntolerantPod)",
        DS,
        nodes=[node("tainted", taints=[("dedicated", "NoSchedule")])],
    ),
    Case(
        "a tolerated taint: a pod (TaintedNodeDaemonLaunchesToleratePod)",
        daemon_set(tolerations=[toleration("dedicated")]),
        nodes=[node("tainted", taints=[("dedicated", "NoSchedule")])],
        want=[CREATE],
    ),
    Case(
        "a not-ready node: a pod, by the default toleration (NotReadyNodeDaemonLaunchesPod)",
        DS,
        nodes=[node("not-ready", taints=[("node.kubernetes.io/not-ready", "NoExecute")])],
        want=[CREATE],
    ),
    Case(
        "pressure and cordoned nodes: pods, by the default tolerations",
        DS,
        nodes=[
            node("disk", taints=[("node.kubernetes.io/disk-pressure", "NoSchedule")]),
            node("memory", taints=[("node.kubernetes.io/memory-pressure", "NoSchedule")]),
            node("pid", taints=[("node.kubernetes.io/pid-pressure", "NoSchedule")]),
            node(
                "cordoned",
                taints=[("node.kubernetes.io/unschedulable", "NoSchedule")],
                unschedulable=True,
            ),
        ],
        want=[CREATE, CREATE, CREATE, CREATE],
    ),
    Case(
        "nodeSelector: only the matching node (NodeSelectorDaemonLaunchesPods)",
        daemon_set(node_selector={"disk": "ssd"}),
        nodes=[node("ssd", labels={"disk": "ssd"}), node("hdd", labels={"disk": "hdd"})],
        want=[CREATE],
    ),
    Case(
        "required node affinity: only the matching node (NodeAffinityDaemonLaunchesPods)",
        daemon_set(affinity_zone="east"),
        nodes=[node("east", labels={"zone": "east"}), node("west", labels={"zone": "west"})],
        want=[CREATE],
    ),
    Case(
        "a pod on a node that no longer matches: deleted (NodeSelectorDaemonDeletesUnselectedPods)",
        daemon_set(node_selector={"disk": "ssd"}),
        nodes=[node("hdd", labels={"disk": "hdd"})],
        pods=[pod("stray", "hdd")],
        want=[delete("stray")],
    ),
    Case(
        "an untolerated NoSchedule taint keeps a running pod (shouldContinueRunning)",
        DS,
        nodes=[node("tainted", taints=[("dedicated", "NoSchedule")])],
        pods=[pod("keep", "tainted")],
    ),
    Case(
        "an untolerated NoExecute taint evicts the pod",
        DS,
        nodes=[node("tainted", taints=[("dedicated", "NoExecute")])],
        pods=[pod("evicted", "tainted")],
        want=[delete("evicted")],
    ),
    Case(
        "a pod on a node that is gone: deleted (DeleteUnscheduledPodForNotExistingNode)",
        DS,
        nodes=[node("a")],
        pods=[pod("pa", "a"), pod("orphaned", "gone")],
        want=[delete("orphaned")],
    ),
    Case(
        "two pods on one node: the newer deleted (DealsWithExistingPods)",
        DS,
        nodes=[node("a")],
        pods=[pod("old", "a", age=200), pod("new", "a", age=10)],
        want=[delete("new")],
    ),
    Case(
        "a failed daemon pod: deleted, to be replaced (DaemonKillFailedPods)",
        DS,
        nodes=[node("a")],
        pods=[pod("failed", "a", phase="Failed", ready=False)],
        want=[delete("failed")],
    ),
    Case(
        "a succeeded daemon pod: deleted, to be replaced",
        DS,
        nodes=[node("a")],
        pods=[pod("done", "a", phase="Succeeded", ready=False)],
        want=[delete("done")],
    ),
    Case(
        "creations still expected: nothing until they are seen",
        DS,
        nodes=[node("a"), node("b")],
        pending_creations=1,
    ),
    Case(
        "being deleted: nothing (the garbage collector's)",
        daemon_set(deleting=True),
        nodes=[node("a")],
    ),
    Case(
        "rolling update, maxUnavailable 1: one old pod deleted (DaemonSetUpdatesPods)",
        daemon_set(image="fluentd:2", max_unavailable=1),
        nodes=[node("a"), node("b"), node("c")],
        pods=[pod("pa", "a"), pod("pb", "b"), pod("pc", "c")],
        want=[delete("pa")],
    ),
    Case(
        "rolling update, maxUnavailable 2: two old pods deleted",
        daemon_set(image="fluentd:2", max_unavailable=2),
        nodes=[node("a"), node("b"), node("c")],
        pods=[pod("pa", "a"), pod("pb", "b"), pod("pc", "c")],
        want=[delete("pa"), delete("pb")],
    ),
    Case(
        "rolling update: an unavailable new pod uses up maxUnavailable",
        daemon_set(image="fluentd:2", max_unavailable=1),
        nodes=[node("a"), node("b")],
        pods=[pod("pa", "a", revision=NEW_HASH, ready=False), pod("pb", "b")],
    ),
    Case(
        "rolling update: an old pod that is not available goes at once",
        daemon_set(image="fluentd:2", max_unavailable=1),
        nodes=[node("a"), node("b")],
        pods=[pod("pa", "a", revision=NEW_HASH, ready=False), pod("pb", "b", ready=False)],
        want=[delete("pb")],
    ),
    Case(
        "rolling update, maxSurge 1: a new pod beside an old one first (UpdatesPodsWithMaxSurge)",
        daemon_set(image="fluentd:2", max_unavailable=0, max_surge=1),
        nodes=[node("a"), node("b")],
        pods=[pod("pa", "a"), pod("pb", "b")],
        want=[CREATE],
    ),
    Case(
        "rolling update, maxSurge 1: the old pod goes once the new is available; the next surges",
        daemon_set(image="fluentd:2", max_unavailable=0, max_surge=1),
        nodes=[node("a"), node("b")],
        pods=[pod("old-a", "a", age=300), pod("new-a", "a", revision=NEW_HASH), pod("pb", "b")],
        want=[CREATE, delete("old-a")],
    ),
    Case(
        "rolling update, maxSurge 1: no second surge while the new pod is not available",
        daemon_set(image="fluentd:2", max_unavailable=0, max_surge=1),
        nodes=[node("a"), node("b")],
        pods=[
            pod("old-a", "a", age=300),
            pod("new-a", "a", revision=NEW_HASH, ready=False),
            pod("pb", "b"),
        ],
    ),
    Case(
        "OnDelete: old pods stay (DaemonSetOnDeleteDoesNotUpdate)",
        daemon_set(image="fluentd:2", on_delete=True),
        nodes=[node("a"), node("b")],
        pods=[pod("pa", "a"), pod("pb", "b")],
    ),
    Case(
        "OnDelete: a node whose old pod was deleted gets a new one",
        daemon_set(image="fluentd:2", on_delete=True),
        nodes=[node("a"), node("b")],
        pods=[pod("pb", "b")],
        want=[CREATE],
    ),
]


@dataclass
class Fixture:
    """A DaemonSetController over a FakeClient; its informers never run:
    `seed` puts objects both in the client and in the listers."""

    client: FakeClient
    informers: dict[type[Any], SharedInformer[Any]]
    controller: DaemonSetController

    @classmethod
    def new(cls) -> Fixture:
        client = FakeClient(now=lambda: NOW)
        informers: dict[type[Any], SharedInformer[Any]] = {
            kind: SharedInformer(client, kind)
            for kind in (DaemonSet, Pod, Node, ControllerRevision)
        }
        informers[Pod].add_indexers({POD_OWNER_INDEX: pod_owner_index})
        controller = DaemonSetController(
            client,
            informers[DaemonSet],
            informers[Pod],
            informers[Node],
            informers[ControllerRevision],
            now=lambda: NOW,
        )
        return cls(client, informers, controller)

    def seed(self, *objects: Any) -> None:
        for stored in self.client.add(*objects):
            self.informers[type(stored)].indexer.add(stored)

    def close(self) -> None:
        self.controller.queue.shut_down()


def pod_writes(client: FakeClient) -> list[str]:
    return [str(a) for a in client.writes() if a.kind == "Pod"]


def matches(got: list[str], want: list[str]) -> bool:
    return len(got) == len(want) and all(
        fnmatch.fnmatchcase(g, w) for g, w in zip(got, want, strict=True)
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_sync(case: Case) -> None:
    fx = Fixture.new()
    fx.seed(case.ds, revision_of(case.ds), *case.nodes, *case.pods)
    if case.pending_creations:
        fx.controller.expectations.expect_creations("default/ds", case.pending_creations)
    try:
        await fx.controller.sync("default/ds")
    finally:
        fx.close()
    got = pod_writes(fx.client)
    assert matches(got, case.want), f"{case.name}: got {got}, want {case.want}"


# -- what the writes carry ----------------------------------------------------------------------


async def test_a_created_pod_is_pinned_to_its_node_through_the_scheduler() -> None:
    fx = Fixture.new()
    fx.seed(DS, revision_of(DS), node("a"))
    await fx.controller.sync("default/ds")
    fx.close()
    [created] = fx.client.stored_list(Pod)
    assert created.spec.node_name == "", "the scheduler binds it, not the controller"
    required = created.spec.affinity.node_affinity
    [term] = required.required_during_scheduling_ignored_during_execution.node_selector_terms
    [field_] = term.match_fields
    assert (field_.key, field_.operator, list(field_.values)) == ("metadata.name", "In", ["a"])
    assert created.metadata.labels[REVISION_HASH_LABEL] == HASH
    assert {(t.key, t.effect) for t in created.spec.tolerations} >= {
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    }
    [ref] = created.metadata.owner_references
    assert (ref.kind, ref.name, ref.controller) == ("DaemonSet", "ds", True)


async def test_a_failed_pod_on_the_same_node_again_waits_for_its_back_off() -> None:
    now = [NOW]
    fx = Fixture.new()
    fx.controller._now = lambda: now[0]
    fx.seed(DS, revision_of(DS), node("a"), pod("first", "a", phase="Failed", ready=False))
    await fx.controller.sync("default/ds")
    assert pod_writes(fx.client) == [delete("first")]
    # The replacement failed too, at once: within the back-off it is left alone.
    fx.client.clear_actions()
    fx.informers[Pod].indexer.delete(fx.informers[Pod].indexer.list()[0])  # the watch saw it go
    fx.controller.expectations.delete("default/ds")
    fx.seed(pod("second", "a", phase="Failed", ready=False))
    await fx.controller.sync("default/ds")
    assert pod_writes(fx.client) == []
    now[0] += 2  # past the 1s back-off
    await fx.controller.sync("default/ds")
    fx.close()
    assert delete("second") in pod_writes(fx.client)


# -- ControllerRevisions -----------------------------------------------------------------------


async def test_the_first_sync_records_revision_one() -> None:
    fx = Fixture.new()
    fx.seed(DS)
    await fx.controller.sync("default/ds")
    fx.close()
    [revision] = fx.client.stored_list(ControllerRevision)
    assert revision.metadata.name == f"ds-{HASH}"
    assert revision.revision == 1
    assert revision.metadata.labels[REVISION_HASH_LABEL] == HASH
    data = to_dict(revision.data)
    assert data["spec"]["template"]["$patch"] == "replace"
    assert data["spec"]["template"]["spec"]["containers"][0]["image"] == "fluentd:1"


async def test_a_new_template_is_revision_two_and_an_undo_renumbers_the_old_one() -> None:
    fx = Fixture.new()
    fx.seed(NEW, revision_of(DS, 1))
    await fx.controller.sync("default/ds")
    revisions = {r.metadata.name: r.revision for r in fx.client.stored_list(ControllerRevision)}
    assert revisions == {f"ds-{HASH}": 1, f"ds-{NEW_HASH}": 2}
    # Rolled back to the first template: its revision becomes the newest.
    fx2 = Fixture.new()
    fx2.seed(DS, revision_of(DS, 1), revision_of(NEW, 2))
    await fx2.controller.sync("default/ds")
    fx.close()
    fx2.close()
    revisions = {r.metadata.name: r.revision for r in fx2.client.stored_list(ControllerRevision)}
    assert revisions == {f"ds-{HASH}": 3, f"ds-{NEW_HASH}": 2}


async def test_old_revisions_beyond_the_history_limit_go_oldest_first() -> None:
    ds = daemon_set(image="fluentd:9")
    ds.spec.revision_history_limit = 1
    old = [revision_of(daemon_set(image=f"fluentd:{i}"), i) for i in (1, 2, 3)]
    fx = Fixture.new()
    # Three old revisions, a limit of one: two go. A live pod still runs revision
    # 1, so that one stays and revisions 2 and 3 go.
    first_hash = template_hash(daemon_set(image="fluentd:1"))
    fx.seed(ds, revision_of(ds, 4), *old, node("a"), pod("pa", "a", revision=first_hash))
    fx.controller.expectations.expect_creations("default/ds", 0)
    await fx.controller.sync("default/ds")
    fx.close()
    left = sorted(r.revision for r in fx.client.stored_list(ControllerRevision))
    assert left == [1, 4]


# -- status ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCase:
    name: str
    ds: DaemonSet
    nodes: list[Node]
    pods: list[Pod]
    #: desired, current, ready, updated, available, unavailable, misscheduled
    want: tuple[int, int, int, int, int, int, int]


STATUS_CASES = [
    StatusCase(
        "all scheduled, ready and updated",
        DS,
        [node("a"), node("b")],
        [pod("pa", "a"), pod("pb", "b")],
        (2, 2, 2, 2, 2, 0, 0),
    ),
    StatusCase(
        "one not ready, one missing",
        DS,
        [node("a"), node("b"), node("c")],
        [pod("pa", "a"), pod("pb", "b", ready=False)],
        (3, 2, 1, 2, 1, 2, 0),
    ),
    StatusCase(
        "an old pod is not updated",
        NEW,
        [node("a"), node("b")],
        [pod("pa", "a"), pod("pb", "b", revision=NEW_HASH)],
        (2, 2, 2, 1, 2, 0, 0),
    ),
    StatusCase(
        "a pod on a tainted node it may stay on is misscheduled",
        DS,
        [node("a"), node("tainted", taints=[("dedicated", "NoSchedule")])],
        [pod("pa", "a"), pod("pt", "tainted")],
        (1, 1, 1, 1, 1, 0, 1),
    ),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: c.name)
async def test_status(case: StatusCase) -> None:
    fx = Fixture.new()
    ds = DaemonSet()
    ds.CopyFrom(case.ds)
    ds.metadata.generation = 3
    fx.seed(ds, revision_of(ds), *case.nodes, *case.pods)
    # Act on nothing: the status describes what is there.
    fx.controller.expectations.expect_creations("default/ds", 1)
    await fx.controller.sync("default/ds")
    fx.close()
    stored = fx.client.stored(DaemonSet, "ds")
    assert stored is not None
    s = stored.status
    got = (
        s.desired_number_scheduled,
        s.current_number_scheduled,
        s.number_ready,
        s.updated_number_scheduled,
        s.number_available,
        s.number_unavailable,
        s.number_misscheduled,
    )
    assert got == case.want, f"{case.name}: got {got}, want {case.want}"
    assert s.observed_generation == 0, f"{case.name}: a sync that did not act observed nothing"


async def test_a_sync_that_acts_observes_the_generation() -> None:
    fx = Fixture.new()
    ds = DaemonSet()
    ds.CopyFrom(DS)
    ds.metadata.generation = 5
    fx.seed(ds, revision_of(ds), node("a"), pod("pa", "a"))
    await fx.controller.sync("default/ds")
    fx.close()
    stored = fx.client.stored(DaemonSet, "ds")
    assert stored is not None
    assert stored.status.observed_generation == 5


async def test_a_failed_create_is_an_event_and_an_error() -> None:
    fx = Fixture.new()
    fx.seed(DS, revision_of(DS), node("a"))
    fx.client.fail("create", "Pod", errors.Forbidden("exceeded quota"))
    with pytest.raises(errors.Forbidden):
        await fx.controller.sync("default/ds")
    fx.close()
    assert fx.controller.expectations.satisfied("default/ds")


# -- which nodes should run a daemon pod ------------------------------------------------------


def pinned(node_name: str) -> DaemonSet:
    ds = daemon_set()
    ds.spec.template.spec.node_name = node_name
    return ds


SHOULD_RUN_CASES = [
    # (name, DaemonSet, node, (should run, should continue running))
    ("a plain node", DS, node("a"), (True, True)),
    ("template nodeName names another node", pinned("b"), node("a"), (False, False)),
    ("template nodeName names this node", pinned("a"), node("a"), (True, True)),
    (
        "nodeSelector does not match",
        daemon_set(node_selector={"disk": "ssd"}),
        node("a", labels={"disk": "hdd"}),
        (False, False),
    ),
    (
        "untolerated NoSchedule: no new pod, an old one stays",
        DS,
        node("a", taints=[("dedicated", "NoSchedule")]),
        (False, True),
    ),
    (
        "untolerated NoExecute: neither",
        DS,
        node("a", taints=[("dedicated", "NoExecute")]),
        (False, False),
    ),
    (
        "PreferNoSchedule does not matter",
        DS,
        node("a", taints=[("dedicated", "PreferNoSchedule")]),
        (True, True),
    ),
    (
        "unreachable NoExecute is tolerated by every daemon pod",
        DS,
        node("a", taints=[("node.kubernetes.io/unreachable", "NoExecute")]),
        (True, True),
    ),
    (
        "network-unavailable is tolerated only with hostNetwork",
        DS,
        node("a", taints=[("node.kubernetes.io/network-unavailable", "NoSchedule")]),
        (False, True),
    ),
]


@pytest.mark.parametrize("case", SHOULD_RUN_CASES, ids=lambda c: c[0])
def test_node_should_run(case: tuple[str, DaemonSet, Node, tuple[bool, bool]]) -> None:
    name, ds, n, want = case
    got = Placement.of(ds).should_run(n)
    assert got == want, f"{name}: got {got}, want {want}"

"""The disruption controller's `sync`, table by table, on the fake client
(the shape of test_endpoints_sync.py; the cases follow Kubernetes'
disruption_test.go).

Each case names the budget, the pods and their controllers in the listers,
and the status the sync then stores, as one short line:
`healthy/desired/expected allowed=N Condition/Reason disrupted=[...]`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api import codec
from kpy.api.apps.v1 import Deployment, ReplicaSet, StatefulSet
from kpy.api.core.v1 import Pod, PodCondition, ReplicationController
from kpy.api.defaults import set_defaults
from kpy.api.meta.v1 import OwnerReference
from kpy.api.policy.v1 import PodDisruptionBudget
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.controllers.disruption import DisruptionController

NOW = 1_700_000_000.0
KINDS = (PodDisruptionBudget, Pod, ReplicaSet, Deployment, StatefulSet, ReplicationController)


def budget(spec: dict[str, Any], *, disrupted: dict[str, float] | None = None) -> Any:
    spec = {"selector": {"matchLabels": {"app": "web"}}, **spec}
    pdb: Any = codec.from_dict(
        PodDisruptionBudget,
        {"metadata": {"name": "web", "namespace": "default"}, "spec": spec},
    )
    for name, at in (disrupted or {}).items():
        pdb.status.disrupted_pods[name].CopyFrom(Timestamp(seconds=int(at)))
    return pdb


def owner(kind: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": name,
        "uid": f"{name}-uid",
        "controller": True,
    }


def pod(
    name: str,
    *,
    ready: bool = True,
    deleting: bool = False,
    by: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    namespace: str = "default",
) -> Pod:
    p = Pod()
    p.metadata.name = name
    p.metadata.namespace = namespace
    p.metadata.uid = f"{name}-uid"
    p.metadata.labels.update({"app": "web"} if labels is None else labels)
    if by is not None:
        p.metadata.owner_references.append(codec.from_dict(OwnerReference, by))
    if deleting:
        p.metadata.deletion_timestamp.FromSeconds(int(NOW))
    p.spec.containers.add(name="app", image="busybox")
    p.spec.node_name = "node-1"
    p.status.phase = "Running"
    p.status.conditions.append(PodCondition(type="Ready", status="True" if ready else "False"))
    return set_defaults(p)


def workload(kind: type[Any], name: str, replicas: int, *, by: dict[str, Any] | None = None) -> Any:
    doc: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "default", "uid": f"{name}-uid"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            },
        },
    }
    if by is not None:
        doc["metadata"]["ownerReferences"] = [by]
    if kind is ReplicationController:
        doc["spec"]["selector"] = {"app": "web"}
    return set_defaults(codec.from_dict(kind, doc))


def deployment_pods(n: int, **kw: Any) -> list[Pod]:
    return [pod(f"web-{i}", by=owner("ReplicaSet", "web-rs"), **kw) for i in range(n)]


# A Deployment of 3 and its ReplicaSet, as the percentages resolve against.
DEPLOY3 = [
    workload(Deployment, "web", 3),
    workload(ReplicaSet, "web-rs", 3, by=owner("Deployment", "web")),
]


@dataclass(frozen=True)
class Case:
    name: str
    pdb: Any
    objects: list[Any] = field(default_factory=list)
    want: str = ""
    recheck: float | None = None  # seconds until the budget is synced again for an eviction


CASES = [
    Case(
        "minAvailable 2 of 3 ready: one disruption allowed",
        budget({"minAvailable": 2}),
        [*DEPLOY3, *deployment_pods(3)],
        "3/2/3 allowed=1 True/SufficientPods disrupted=[]",
    ),
    Case(
        "minAvailable 2 of 2 ready: none allowed",
        budget({"minAvailable": 2}),
        [*DEPLOY3, *deployment_pods(2)],
        "2/2/2 allowed=0 False/InsufficientPods disrupted=[]",
    ),
    Case(
        "an unready pod is not healthy",
        budget({"minAvailable": 2}),
        [*DEPLOY3, *deployment_pods(2), pod("sick", ready=False, by=owner("ReplicaSet", "web-rs"))],
        "2/2/3 allowed=0 False/InsufficientPods disrupted=[]",
    ),
    Case(
        "a terminating pod is not healthy",
        budget({"minAvailable": 1}),
        [*DEPLOY3, pod("a", deleting=True), pod("b")],
        "1/1/2 allowed=0 False/InsufficientPods disrupted=[]",
    ),
    Case(
        "maxUnavailable resolves against the Deployment's replicas, not the pods found",
        budget({"maxUnavailable": 1}),
        [*DEPLOY3, *deployment_pods(2)],
        "2/2/3 allowed=0 False/InsufficientPods disrupted=[]",
    ),
    Case(
        "maxUnavailable 50% of 4 rounds up to 2",
        budget({"maxUnavailable": "50%"}),
        [workload(ReplicaSet, "web-rs", 4), *deployment_pods(4)],
        "4/2/4 allowed=2 True/SufficientPods disrupted=[]",
    ),
    Case(
        "minAvailable 50% of 3 rounds up to 2",
        budget({"minAvailable": "50%"}),
        [*DEPLOY3, *deployment_pods(3)],
        "3/2/3 allowed=1 True/SufficientPods disrupted=[]",
    ),
    Case(
        "a StatefulSet's replicas",
        budget({"maxUnavailable": "34%"}),
        [
            workload(StatefulSet, "db", 3),
            *[pod(f"db-{i}", by=owner("StatefulSet", "db")) for i in range(3)],
        ],
        "3/1/3 allowed=2 True/SufficientPods disrupted=[]",
    ),
    Case(
        "a ReplicationController's replicas",
        budget({"maxUnavailable": 1}),
        [
            workload(ReplicationController, "rc", 2),
            *[
                pod(f"rc-{i}", by={**owner("ReplicationController", "rc"), "apiVersion": "v1"})
                for i in range(2)
            ],
        ],
        "2/1/2 allowed=1 True/SufficientPods disrupted=[]",
    ),
    Case(
        "a missing controller fails safe",
        budget({"maxUnavailable": 1}),
        deployment_pods(3),
        "0/0/0 allowed=0 False/SyncFailed disrupted=[]",
    ),
    Case(
        "unmanaged pods count for no scale",
        budget({"maxUnavailable": "50%"}),
        [pod("a"), pod("b")],
        "2/0/0 allowed=0 False/InsufficientPods disrupted=[]",
    ),
    Case(
        "a pod evicted 30 s ago is not healthy and stays recorded",
        budget({"minAvailable": 2}, disrupted={"web-0": NOW - 30}),
        [*DEPLOY3, *deployment_pods(3)],
        "2/2/3 allowed=0 False/InsufficientPods disrupted=['web-0']",
        recheck=90.0,
    ),
    Case(
        "an eviction older than 2 minutes expires",
        budget({"minAvailable": 2}, disrupted={"web-0": NOW - 121}),
        [*DEPLOY3, *deployment_pods(3)],
        "3/2/3 allowed=1 True/SufficientPods disrupted=[]",
    ),
    Case(
        "an evicted pod that terminates leaves the record",
        budget({"minAvailable": 1}, disrupted={"a": NOW - 5}),
        [pod("a", deleting=True), pod("b")],
        "1/1/2 allowed=0 False/InsufficientPods disrupted=[]",
    ),
    Case(
        "an evicted pod that is gone leaves the record",
        budget({"minAvailable": 1}, disrupted={"gone": NOW - 5}),
        [pod("b"), pod("c")],
        "2/1/2 allowed=1 True/SufficientPods disrupted=[]",
    ),
    Case(
        "no selector selects nothing",
        codec.from_dict(
            PodDisruptionBudget,
            {"metadata": {"name": "web", "namespace": "default"}, "spec": {"minAvailable": 1}},
        ),
        [pod("a")],
        "0/1/0 allowed=0 False/InsufficientPods disrupted=[]",
    ),
    Case(
        "an empty selector selects the namespace, not others",
        budget({"minAvailable": 1, "selector": {}}),
        [pod("a", labels={"x": "y"}), pod("b"), pod("c", namespace="other")],
        "2/1/2 allowed=1 True/SufficientPods disrupted=[]",
    ),
    Case(
        "neither field: no pod expected, so no disruption allowed",
        budget({}),
        [pod("a"), pod("b")],
        "2/0/0 allowed=0 False/InsufficientPods disrupted=[]",
    ),
]


def shown(pdb: Any) -> str:
    s = pdb.status
    cond = next(
        (f"{c.status}/{c.reason}" for c in s.conditions if c.type == "DisruptionAllowed"), "-"
    )
    return (
        f"{s.current_healthy}/{s.desired_healthy}/{s.expected_pods} "
        f"allowed={s.disruptions_allowed} {cond} disrupted={sorted(s.disrupted_pods)}"
    )


class Recording(DisruptionController):
    """Records the delayed syncs it asks for instead of timing them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rechecks: list[tuple[Any, float]] = []

    def enqueue_after(self, obj_or_key: Any, delay: float) -> None:
        self.rechecks.append((obj_or_key, delay))


@dataclass
class Fixture:
    client: FakeClient
    informers: dict[type[Any], SharedInformer[Any]]
    controller: Recording

    @classmethod
    def new(cls) -> Fixture:
        client = FakeClient(now=lambda: NOW)
        informers: dict[type[Any], SharedInformer[Any]] = {
            k: SharedInformer(client, k) for k in KINDS
        }
        controller = Recording(
            client,
            informers[PodDisruptionBudget],
            informers[Pod],
            replica_sets=informers[ReplicaSet],
            deployments=informers[Deployment],
            stateful_sets=informers[StatefulSet],
            replication_controllers=informers[ReplicationController],
            now=lambda: NOW,
        )
        return cls(client, informers, controller)

    def seed(self, *objects: Any) -> list[Any]:
        stored = self.client.add(*objects)
        for obj in stored:
            self.informers[type(obj)].indexer.add(obj)
        return stored


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_disruption_sync(case: Case) -> None:
    fx = Fixture.new()
    fx.seed(case.pdb, *case.objects)
    try:
        await fx.controller.sync("default/web")
        stored = fx.client.stored(PodDisruptionBudget, "web")
        assert stored is not None
        assert shown(stored) == case.want, f"{case.name}: {shown(stored)}"
        assert stored.status.observed_generation == stored.metadata.generation, case.name
        want_rechecks = [] if case.recheck is None else [("default/web", case.recheck)]
        assert fx.controller.rechecks == want_rechecks, case.name
    finally:
        fx.controller.queue.shut_down()


async def test_an_unchanged_status_is_not_written_again() -> None:
    fx = Fixture.new()
    fx.seed(budget({"minAvailable": 1}), pod("a"), pod("b"))
    await fx.controller.sync("default/web")
    fx.informers[PodDisruptionBudget].indexer.update(fx.client.stored(PodDisruptionBudget, "web"))
    fx.client.clear_actions()
    await fx.controller.sync("default/web")
    assert fx.client.writes() == []
    fx.controller.queue.shut_down()


async def test_pod_changes_enqueue_the_budgets_that_select_them() -> None:
    fx = Fixture.new()
    fx.seed(budget({"minAvailable": 1}))
    other = budget({"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}})
    other.metadata.name = "db"
    fx.seed(other)
    assert [b.metadata.name for b in fx.controller.budgets_of(pod("a"))] == ["web"]
    assert [b.metadata.name for b in fx.controller.budgets_of(pod("b", labels={"app": "db"}))] == [
        "db"
    ]
    assert fx.controller.budgets_of(pod("c", namespace="other")) == []
    fx.controller.queue.shut_down()

"""The Deployment controller's arithmetic, ported from Kubernetes'
deployment_util_test.go, sync_test.go, rolling_test.go and progress_test.go
(the cases and their expectations; the code is kpy's). Controller steps run
against a fake client that records every write."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api import errors
from kpy.api.apps.v1 import Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet
from kpy.api.core.v1 import Pod, PodTemplateSpec
from kpy.api.intstr import from_value
from kpy.cache.informer import SharedInformer
from kpy.controllers.deployment import DeploymentController, util
from kpy.controllers.deployment.recreate import old_pods_running
from kpy.controllers.deployment.sync import calculate_status
from kpy.controllers.ownership import new_controller_ref

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

MAX_INT32 = 2**31 - 1
_uids = itertools.count(1)


# -- builders (Kubernetes' newDeployment, rs, newRSWithStatus) -----------------------------


def stamp(*args: int) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime(*args, tzinfo=UTC))
    return ts


NEW = stamp(2016, 5, 20, 2, 0, 0)
OLD = stamp(2016, 5, 20, 1, 0, 0)
OLDER = stamp(2016, 5, 20, 0, 0, 0)


def deployment(
    replicas: int,
    *,
    name: str = "foo",
    surge: int | str | None = 0,
    unavailable: int | str | None = 0,
    selector: dict[str, str] | None = None,
    history: int | None = None,
    strategy: str = "RollingUpdate",
    deadline: int | None = None,
) -> Deployment:
    """Kubernetes' newDeployment: both fenceposts 0 unless given."""
    d = Deployment()
    d.metadata.name = name
    d.metadata.namespace = "default"
    d.metadata.uid = f"uid-{next(_uids)}"
    d.spec.replicas = replicas
    d.spec.strategy.type = strategy
    if strategy == "RollingUpdate":
        if surge is not None:
            d.spec.strategy.rolling_update.max_surge.CopyFrom(from_value(surge))
        if unavailable is not None:
            d.spec.strategy.rolling_update.max_unavailable.CopyFrom(from_value(unavailable))
    d.spec.selector.match_labels.update(selector or {})
    d.spec.template.metadata.labels.update(selector or {})
    d.spec.template.spec.containers.add(image="foo/bar")
    if history is not None:
        d.spec.revision_history_limit = history
    if deadline is not None:
        d.spec.progress_deadline_seconds = deadline
    return d


def rs(
    name: str,
    replicas: int,
    *,
    created: Timestamp | None = None,
    available: int = 0,
    status_replicas: int = 0,
    selector: dict[str, str] | None = None,
) -> ReplicaSet:
    out = ReplicaSet()
    out.metadata.name = name
    out.metadata.namespace = "default"
    out.metadata.uid = f"uid-{next(_uids)}"
    if created is not None:
        out.metadata.creation_timestamp.CopyFrom(created)
    out.spec.replicas = replicas
    out.spec.selector.match_labels.update(selector or {})
    out.status.available_replicas = available
    out.status.replicas = status_replicas
    return out


def owned_rs(d: Deployment, name: str, replicas: int, *, revision: int | None = None) -> ReplicaSet:
    out = rs(name, replicas, selector=dict(d.spec.selector.match_labels))
    out.metadata.owner_references.append(new_controller_ref(d, "apps/v1", "Deployment"))
    out.spec.template.CopyFrom(d.spec.template)
    if revision is not None:
        out.metadata.annotations[util.REVISION_ANNOTATION] = str(revision)
    return out


def status(
    replicas: int = 0, updated: int = 0, ready: int = 0, available: int = 0
) -> DeploymentStatus:
    return DeploymentStatus(
        replicas=replicas,
        updated_replicas=updated,
        ready_replicas=ready,
        available_replicas=available,
    )


# -- a fake client and a controller around it ----------------------------------------------


@dataclass
class FakeClient:
    """Records writes as (verb, object or name); `create_error` fails creates."""

    actions: list[tuple[str, Any]] = field(default_factory=list)
    create_error: Exception | None = None

    def updates(self) -> list[ReplicaSet]:
        return [obj for verb, obj in self.actions if verb == "update"]

    async def update(self, obj: Any, *, subresource: str = "") -> Any:
        return self._record("update", obj)

    async def update_status(self, obj: Any) -> Any:
        return self._record("update_status", obj)

    async def create(self, obj: Any) -> Any:
        if self.create_error is not None:
            raise self.create_error
        return self._record("create", obj)

    async def delete(self, kind: Any, name: str, *, namespace: str | None = None) -> None:
        self.actions.append(("delete", name))

    def _record(self, verb: str, obj: Any) -> Any:
        out = type(obj)()
        out.CopyFrom(obj)
        out.metadata.resource_version = str(len(self.actions) + 1)
        self.actions.append((verb, out))
        return out


NOW = datetime(2017, 2, 15, 18, 49, 0, tzinfo=UTC).timestamp()


class Harness(NamedTuple):
    client: FakeClient
    controller: DeploymentController
    replica_sets: SharedInformer[ReplicaSet]


@pytest.fixture
async def fake() -> AsyncIterator[Harness]:
    """A controller over a fake client; its informers never run, tests fill
    the ReplicaSet store directly."""
    client = FakeClient()
    replica_sets = SharedInformer(client, ReplicaSet)  # type: ignore[arg-type]
    controller = DeploymentController(
        client,  # type: ignore[arg-type]
        SharedInformer(client, Deployment),  # type: ignore[arg-type]
        replica_sets,
        SharedInformer(client, Pod),  # type: ignore[arg-type]
        now=lambda: NOW,
    )
    yield Harness(client, controller, replica_sets)
    controller.queue.shut_down()


# -- fenceposts, surge and unavailability --------------------------------------------------


@dataclass(frozen=True)
class FencepostCase:
    name: str
    surge: int | str
    unavailable: int | str
    desired: int
    want: tuple[int, int] | None  # None: a ValueError


FENCEPOST_CASES = [
    FencepostCase("0% and 0% of 0: unavailable becomes 1", "0%", "0%", 0, (0, 1)),
    FencepostCase("39% of 10: surge up, unavailable down", "39%", "39%", 10, (4, 3)),
    FencepostCase("bad surge", "oops", "39%", 10, None),
    FencepostCase("bad unavailable", "55%", "urg", 10, None),
    FencepostCase("defaults on 4 replicas", "25%", "25%", 4, (1, 1)),
    FencepostCase("defaults on 1 replica", "25%", "25%", 1, (1, 0)),
    FencepostCase("defaults on 10 replicas", "25%", "25%", 10, (3, 2)),
    FencepostCase("ints are taken as is", 3, 2, 10, (3, 2)),
    FencepostCase("ints 0 and 0: unavailable becomes 1", 0, 0, 10, (0, 1)),
    FencepostCase("1% of 2 with no surge", "0%", "1%", 2, (0, 1)),
    FencepostCase("a number without % is not a percentage", "25", "25%", 4, None),
]


@pytest.mark.parametrize("case", FENCEPOST_CASES, ids=lambda c: c.name)
def test_resolve_fenceposts(case: FencepostCase) -> None:
    if case.want is None:
        with pytest.raises(ValueError):
            util.resolve_fenceposts(case.surge, case.unavailable, case.desired)
        return
    got = util.resolve_fenceposts(
        from_value(case.surge), from_value(case.unavailable), case.desired
    )
    assert got == case.want, case.name


def test_resolve_fenceposts_takes_none_as_zero() -> None:
    assert util.resolve_fenceposts(None, None, 5) == (0, 1)


@dataclass(frozen=True)
class MaxUnavailableCase:
    name: str
    d: Deployment
    want: int


MAX_UNAVAILABLE_CASES = [
    MaxUnavailableCase("less than replicas", deployment(10, surge=1, unavailable=5), 5),
    MaxUnavailableCase("equal to replicas", deployment(10, surge=1, unavailable=10), 10),
    MaxUnavailableCase("more than replicas", deployment(5, surge=1, unavailable=10), 5),
    MaxUnavailableCase("replicas is 0", deployment(0, surge=1, unavailable=10), 0),
    MaxUnavailableCase("Recreate", deployment(10, strategy="Recreate"), 0),
    MaxUnavailableCase("percent less", deployment(10, surge=1, unavailable="50%"), 5),
    MaxUnavailableCase("percent equal", deployment(10, surge=1, unavailable="100%"), 10),
    MaxUnavailableCase("percent more", deployment(5, surge=1, unavailable="100%"), 5),
    MaxUnavailableCase("both 0 resolve to 1", deployment(10), 1),
]


@pytest.mark.parametrize("case", MAX_UNAVAILABLE_CASES, ids=lambda c: c.name)
def test_max_unavailable(case: MaxUnavailableCase) -> None:
    assert util.max_unavailable(case.d) == case.want, case.name


@pytest.mark.parametrize(
    ("d", "want"),
    [
        (deployment(10, surge="25%", unavailable="25%"), 3),
        (deployment(10, surge=4), 4),
        (deployment(10, strategy="Recreate"), 0),
    ],
    ids=["percent rounds up", "int", "Recreate has none"],
)
def test_max_surge(d: Deployment, want: int) -> None:
    assert util.max_surge(d) == want


@dataclass(frozen=True)
class NewReplicasCase:
    name: str
    strategy: str
    replicas: int
    new_replicas: int
    surge: int | str
    want: int


NEW_REPLICAS_CASES = [
    NewReplicasCase("cannot scale up: stays at its size", "RollingUpdate", 1, 5, 1, 5),
    NewReplicasCase("scale up: to the deployment's replicas", "RollingUpdate", 6, 2, 10, 6),
    NewReplicasCase("Recreate: the deployment's replicas", "Recreate", 3, 1, 1, 3),
    NewReplicasCase("surge percent rounds up", "RollingUpdate", 10, 0, "21%", 8),
    NewReplicasCase("limited by the room the surge leaves", "RollingUpdate", 10, 0, 2, 7),
]


@pytest.mark.parametrize("case", NEW_REPLICAS_CASES, ids=lambda c: c.name)
def test_new_rs_new_replicas(case: NewReplicasCase) -> None:
    d = deployment(case.replicas, surge=case.surge, unavailable=1, strategy=case.strategy)
    if case.strategy == "Recreate":
        d.spec.strategy.rolling_update.max_surge.CopyFrom(from_value(case.surge))
    new_rs = rs("new", case.new_replicas)
    existing = rs("old", 5)
    assert util.new_rs_new_replicas(d, [existing], new_rs) == case.want, case.name


def test_new_rs_new_replicas_refuses_an_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="isn't supported"):
        util.new_rs_new_replicas(deployment(1, strategy="BlueGreen"), [], rs("new", 0))


# -- proportions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProportionCase:
    name: str
    rs_replicas: int
    annotated_max: int | None
    d: Deployment
    to_add: int
    added: int
    want: int


PROPORTION_CASES = [
    ProportionCase("nothing to add", 3, 5, deployment(10), 0, 0, 0),
    ProportionCase("all added already", 3, 5, deployment(10), 5, 5, 0),
    ProportionCase("empty replica set gets nothing", 0, 5, deployment(10), 5, 0, 0),
    ProportionCase("doubles with the deployment", 3, 5, deployment(10), 5, 0, 3),
    ProportionCase("capped by what is left", 3, 5, deployment(10), 5, 4, 1),
    ProportionCase("halves with the deployment", 4, 10, deployment(5), -5, 0, -2),
    ProportionCase("capped by what is left to remove", 4, 10, deployment(5), -5, -4, -1),
    ProportionCase("to zero removes it all", 4, 10, deployment(0), -10, 0, -4),
    ProportionCase("halves round away from zero", 2, 4, deployment(5), 1, 0, 1),
    ProportionCase("surge counts in the size", 6, 12, deployment(20, surge=2), 10, 0, 5),
]


@pytest.mark.parametrize("case", PROPORTION_CASES, ids=lambda c: c.name)
def test_get_proportion(case: ProportionCase) -> None:
    target = rs("rs", case.rs_replicas)
    if case.annotated_max is not None:
        util.set_replicas_annotations(target, case.annotated_max, case.annotated_max)
    got = util.get_proportion(target, case.d, case.to_add, case.added)
    assert got == case.want, case.name


def test_replica_set_fraction_falls_back_to_the_status_size() -> None:
    d = deployment(10)
    d.status.replicas = 5
    assert util.get_replica_set_fraction(rs("rs", 5), d) == 5


@dataclass(frozen=True)
class FractionCase:
    """Kubernetes' TestGetReplicaSetFraction."""

    name: str
    replicas: int
    rs_replicas: int
    want: int
    status_replicas: int = 0
    surge: int = 0
    annotations: dict[str, str] = field(default_factory=dict)


def _max(value: str) -> dict[str, str]:
    return {util.MAX_REPLICAS_ANNOTATION: value}


FRACTION_CASES = [
    FractionCase("empty deployment always scales to 0", 0, 10, -10),
    FractionCase("no annotation and no status size: no scaling", 10, 5, 0),
    FractionCase("max-replicas 0 and no status size: no scaling", 10, 5, 0, annotations=_max("0")),
    FractionCase("no annotation: scales from the status size", 120, 50, 10, status_replicas=100),
    FractionCase(
        "max-replicas 0 counts as missing", 120, 50, 10, status_replicas=100, annotations=_max("0")
    ),
    FractionCase(
        "unreadable max-replicas counts as missing",
        120,
        50,
        10,
        status_replicas=100,
        annotations=_max("-100"),
    ),
    FractionCase("scale up by 1/5", 120, 50, 10, annotations=_max("100")),
    FractionCase("scale up with surge", 120, 50, 9, surge=10, annotations=_max("110")),
    FractionCase("scale down by 1/6", 10, 6, -1, annotations=_max("12")),
    FractionCase("scale down with surge", 100, 50, -8, surge=10, annotations=_max("130")),
]


@pytest.mark.parametrize("case", FRACTION_CASES, ids=lambda c: c.name)
def test_get_replica_set_fraction(case: FractionCase) -> None:
    d = deployment(case.replicas, surge=case.surge, unavailable=1)
    d.status.replicas = case.status_replicas
    target = rs("rs", case.rs_replicas)
    target.metadata.annotations.update(case.annotations)
    assert util.get_replica_set_fraction(target, d) == case.want, case.name


# Kubernetes' getNonNegativeInt32FromAnnotation: strconv.ParseUint(s, 10, 32),
# then at most MaxInt32; anything else is "not found".
INT32_ANNOTATION_CASES = [
    ("missing", None, (0, False)),
    ("empty", "", (0, False)),
    ("zero", "0", (0, True)),
    ("plain", "13", (13, True)),
    ("leading zeros", "007", (7, True)),
    ("max int32", str(MAX_INT32), (MAX_INT32, True)),
    ("max int32 + 1", str(MAX_INT32 + 1), (0, False)),
    ("beyond uint32", str(2**32), (0, False)),
    ("negative", "-1", (0, False)),
    ("minus zero", "-0", (0, False)),
    ("plus sign", "+5", (0, False)),
    ("spaces", " 5", (0, False)),
    ("exponent", "1e3", (0, False)),
    ("hex", "0x10", (0, False)),
    ("underscores", "1_000", (0, False)),
    ("non-ASCII digits", "\u0663", (0, False)),
    ("word", "invalid", (0, False)),
]


@pytest.mark.parametrize(
    ("name", "value", "want"), INT32_ANNOTATION_CASES, ids=[c[0] for c in INT32_ANNOTATION_CASES]
)
def test_replicas_annotations_are_non_negative_int32(
    name: str, value: str | None, want: tuple[int, bool]
) -> None:
    for key, read in (
        (util.DESIRED_REPLICAS_ANNOTATION, util.get_desired_replicas_annotation),
        (util.MAX_REPLICAS_ANNOTATION, util.get_max_replicas_annotation),
    ):
        target = rs("r", 1)
        if value is not None:
            target.metadata.annotations[key] = value
        assert read(target) == want, f"{name}: {key}={value!r}"


# IsSaturated reads desired-replicas with strconv.ParseInt(s, 10, 32).
SATURATED_CASES = [
    ("equal", "3", 3, True),
    ("plus sign", "+3", 3, True),
    ("leading zeros", "03", 3, True),
    ("different", "4", 3, False),
    ("decimal", "3.0", 3, False),
    ("beyond int32", str(2**32 + 3), 3, False),
    ("missing", None, 3, False),
    ("minus zero for zero replicas", "-0", 0, True),
]


@pytest.mark.parametrize(
    ("name", "desired", "replicas", "want"), SATURATED_CASES, ids=[c[0] for c in SATURATED_CASES]
)
def test_is_saturated_reads_desired_replicas_as_int32(
    name: str, desired: str | None, replicas: int, want: bool
) -> None:
    target = rs("r", replicas, available=replicas)
    if desired is not None:
        target.metadata.annotations[util.DESIRED_REPLICAS_ANNOTATION] = desired
    assert util.is_saturated(deployment(replicas), target) is want, name


@dataclass(frozen=True)
class ScaleCase:
    """Kubernetes' TestScale: the replica sets were annotated for `old`."""

    name: str
    d: Deployment
    old: Deployment
    new_rs: ReplicaSet | None
    old_rss: list[ReplicaSet]
    want_new: int | None
    want_old: list[int]
    desired_annotations: dict[str, int] = field(default_factory=dict)


SCALE_CASES = [
    ScaleCase("normal scaling event: 10 -> 12", deployment(12), deployment(10),
              rs("foo-v1", 10, created=NEW), [], 12, []),
    ScaleCase("normal scaling event: 10 -> 5", deployment(5), deployment(10),
              rs("foo-v1", 10, created=NEW), [], 5, []),
    ScaleCase("proportional scaling: 5 -> 10", deployment(10), deployment(5),
              rs("foo-v2", 2, created=NEW), [rs("foo-v1", 3, created=OLD)], 4, [6]),
    ScaleCase("proportional scaling: 5 -> 3", deployment(3), deployment(5),
              rs("foo-v2", 2, created=NEW), [rs("foo-v1", 3, created=OLD)], 1, [2]),
    ScaleCase("proportional scaling: 9 -> 4", deployment(4), deployment(9),
              rs("foo-v2", 8, created=NEW), [rs("foo-v1", 1, created=OLD)], 4, [0]),
    ScaleCase("proportional scaling: 7 -> 10", deployment(10), deployment(7),
              rs("foo-v3", 2, created=NEW),
              [rs("foo-v2", 3, created=OLD), rs("foo-v1", 2, created=OLDER)], 3, [4, 3]),
    ScaleCase("proportional scaling: 13 -> 8", deployment(8), deployment(13),
              rs("foo-v3", 2, created=NEW),
              [rs("foo-v2", 8, created=OLD), rs("foo-v1", 3, created=OLDER)], 1, [5, 2]),
    ScaleCase("leftover distribution: 3 -> 4 goes to the newest", deployment(4), deployment(3),
              rs("foo-v3", 1, created=NEW),
              [rs("foo-v2", 1, created=OLD), rs("foo-v1", 1, created=OLDER)], 2, [1, 1]),
    ScaleCase("leftover distribution: 3 -> 2 comes from the oldest", deployment(2),
              deployment(3), rs("foo-v3", 1, created=NEW),
              [rs("foo-v2", 1, created=OLD), rs("foo-v1", 1, created=OLDER)], 1, [1, 0]),
    ScaleCase("no new replica set: 4 -> 5 scales the latest first", deployment(5),
              deployment(4), None,
              [rs("foo-v2", 2, created=OLD), rs("foo-v1", 2, created=OLDER)], None, [3, 2]),
    ScaleCase("scales down to zero: 6 -> 0", deployment(0), deployment(6),
              rs("foo-v3", 3, created=NEW),
              [rs("foo-v2", 2, created=OLD), rs("foo-v1", 1, created=OLDER)], 0, [0, 0]),
    ScaleCase("scales up from zero: the new replica set takes all", deployment(6),
              deployment(6), rs("foo-v3", 0, created=NEW),
              [rs("foo-v2", 0, created=OLD), rs("foo-v1", 0, created=OLDER)], 6, [0, 0]),
    ScaleCase("one replica set sized for another count", deployment(5), deployment(5),
              rs("foo-v3", 2, created=NEW),
              [rs("foo-v2", 1, created=OLD), rs("foo-v1", 1, created=OLDER)], 2, [2, 1],
              desired_annotations={"foo-v2": 3}),
    ScaleCase("deployment with surge pods", deployment(20, surge=2), deployment(10, surge=2),
              rs("foo-v2", 6, created=NEW), [rs("foo-v1", 6, created=OLD)], 11, [11]),
    ScaleCase("change both surge and size", deployment(50, surge=6), deployment(10, surge=3),
              rs("foo-v2", 5, created=NEW), [rs("foo-v1", 8, created=OLD)], 22, [34]),
    ScaleCase("change both size and template", deployment(14, selector={"another": "label"}),
              deployment(10), None,
              [rs("foo-v2", 7, created=NEW), rs("foo-v1", 3, created=OLD)], None, [10, 4]),
]  # fmt: skip


@pytest.mark.parametrize("case", SCALE_CASES, ids=lambda c: c.name)
async def test_scale(case: ScaleCase, fake: Harness) -> None:
    client, controller, _ = fake
    for target in [case.new_rs, *case.old_rss]:
        if target is None:
            continue
        desired = case.desired_annotations.get(target.metadata.name, case.old.spec.replicas)
        util.set_replicas_annotations(target, desired, desired + util.max_surge(case.old))
    await controller.syncer.scale(case.d, case.new_rs, case.old_rss)
    sizes = {r.metadata.name: r.spec.replicas for r in [case.new_rs, *case.old_rss] if r}
    sizes.update({u.metadata.name: u.spec.replicas for u in client.updates()})
    if case.new_rs is not None:
        assert sizes[case.new_rs.metadata.name] == case.want_new, case.name
    got_old = [sizes[r.metadata.name] for r in case.old_rss]
    assert got_old == case.want_old, case.name


async def test_scale_leaves_a_saturated_but_broken_new_replica_set_alone(fake: Harness) -> None:
    client, controller, _ = fake
    d = deployment(2, surge=1, unavailable=1)
    new_rs = rs("foo-v2", 2, created=NEW, available=0)
    old_rs = rs("foo-v1", 1, created=OLD)
    for target in (new_rs, old_rs):
        util.set_replicas_annotations(target, 2, 3)
    await controller.syncer.scale(d, new_rs, [old_rs])
    assert client.updates() == []


async def test_scale_takes_old_replica_sets_down_once_the_new_one_is_saturated(
    fake: Harness,
) -> None:
    client, controller, _ = fake
    d = deployment(3, surge=1, unavailable=1)
    new_rs = rs("foo-v2", 3, created=NEW, available=3)
    util.set_replicas_annotations(new_rs, 3, 4)
    old_rs = rs("foo-v1", 1, created=OLD)
    await controller.syncer.scale(d, new_rs, [old_rs])
    assert [(u.metadata.name, u.spec.replicas) for u in client.updates()] == [("foo-v1", 0)]


# -- rolling steps (rolling_test.go) -------------------------------------------------------


@dataclass(frozen=True)
class ReconcileNewCase:
    name: str
    replicas: int
    surge: int
    old: int
    new: int
    want: int | None  # None: no scaling


RECONCILE_NEW_CASES = [
    ReconcileNewCase("no surge: cannot scale up", 10, 0, 10, 0, None),
    ReconcileNewCase("surge 2: up by 2", 10, 2, 10, 0, 2),
    ReconcileNewCase("old scaled down: up to the room left", 10, 2, 5, 0, 7),
    ReconcileNewCase("surge used up", 10, 2, 10, 2, None),
    ReconcileNewCase("larger than the deployment: down", 10, 2, 2, 11, 10),
]


@pytest.mark.parametrize("case", RECONCILE_NEW_CASES, ids=lambda c: c.name)
async def test_reconcile_new_replica_set(case: ReconcileNewCase, fake: Harness) -> None:
    client, controller, _ = fake
    new_rs, old_rs = rs("foo-v2", case.new), rs("foo-v1", case.old)
    d = deployment(case.replicas, surge=case.surge, unavailable=0, selector={"foo": "bar"})
    scaled = await controller.rolling.reconcile_new_replica_set([new_rs, old_rs], new_rs, d)
    if case.want is None:
        assert not scaled, case.name
        assert client.actions == [], case.name
        return
    assert scaled, case.name
    assert [u.spec.replicas for u in client.updates()] == [case.want], case.name


@dataclass(frozen=True)
class ReconcileOldCase:
    name: str
    replicas: int
    unavailable: int
    old: int
    new: int
    old_available: int
    new_available: int
    want_old: int | None  # None: no scaling


RECONCILE_OLD_CASES = [
    ReconcileOldCase("no unavailability: one at a time", 10, 0, 10, 0, 10, 0, 9),
    ReconcileOldCase("unavailability 2: down by 2", 10, 2, 10, 0, 10, 0, 8),
    ReconcileOldCase("unhealthy old replicas cleaned up", 10, 2, 10, 0, 8, 0, 8),
    ReconcileOldCase("one unhealthy and one available", 10, 2, 10, 0, 9, 0, 8),
    ReconcileOldCase("unavailable new pods block scaling down", 10, 2, 8, 2, 8, 0, None),
]


@pytest.mark.parametrize("case", RECONCILE_OLD_CASES, ids=lambda c: c.name)
async def test_reconcile_old_replica_sets(case: ReconcileOldCase, fake: Harness) -> None:
    client, controller, _ = fake
    new_rs = rs("foo-new", case.new, available=case.new_available, selector={"foo": "new"})
    old_rs = rs("foo-old", case.old, available=case.old_available, selector={"foo": "old"})
    d = deployment(case.replicas, surge=0, unavailable=case.unavailable, selector={"foo": "new"})
    scaled = await controller.rolling.reconcile_old_replica_sets(
        [old_rs, new_rs], [old_rs], new_rs, d
    )
    if case.want_old is None:
        assert not scaled, case.name
        assert client.actions == [], case.name
        return
    assert scaled, case.name
    assert client.updates()[-1].spec.replicas == case.want_old, case.name


@dataclass(frozen=True)
class CleanupUnhealthyCase:
    name: str
    old: int
    available: int
    max_cleanup: int
    want: int


CLEANUP_UNHEALTHY_CASES = [
    CleanupUnhealthyCase("limited by the budget", 10, 8, 1, 1),
    CleanupUnhealthyCase("limited by the unhealthy", 10, 8, 3, 2),
    CleanupUnhealthyCase("no budget", 10, 8, 0, 0),
    CleanupUnhealthyCase("nothing unhealthy", 10, 10, 3, 0),
]


@pytest.mark.parametrize("case", CLEANUP_UNHEALTHY_CASES, ids=lambda c: c.name)
async def test_cleanup_unhealthy_replicas(case: CleanupUnhealthyCase, fake: Harness) -> None:
    client, controller, _ = fake
    old_rs = rs("foo-v2", case.old, available=case.available)
    d = deployment(10, surge=2, unavailable=2)
    after, cleaned = await controller.rolling.cleanup_unhealthy_replicas(
        [old_rs], d, case.max_cleanup
    )
    assert cleaned == case.want, case.name
    assert after[0].spec.replicas == case.old - case.want, case.name
    assert len(client.updates()) == (1 if case.want else 0), case.name


@dataclass(frozen=True)
class ScaleDownOldCase:
    name: str
    replicas: int
    unavailable: int
    available: int
    old: int
    want_old: int | None  # None: no scaling


SCALE_DOWN_OLD_CASES = [
    ScaleDownOldCase("no unavailability: one", 10, 0, 10, 10, 9),
    ScaleDownOldCase("unavailability 2: two", 10, 2, 10, 10, 8),
    ScaleDownOldCase("already at the minimum", 10, 2, 8, 10, None),
    ScaleDownOldCase("nothing left to scale", 10, 2, 10, 0, None),
    ScaleDownOldCase("below the minimum", 10, 2, 1, 10, None),
]


@pytest.mark.parametrize("case", SCALE_DOWN_OLD_CASES, ids=lambda c: c.name)
async def test_scale_down_old_replica_sets_for_rolling_update(
    case: ScaleDownOldCase, fake: Harness
) -> None:
    client, controller, _ = fake
    old_rs = rs("foo-v2", case.old, available=case.available)
    d = deployment(case.replicas, surge=0, unavailable=case.unavailable, selector={"foo": "bar"})
    scaled = await controller.rolling.scale_down_old_replica_sets_for_rolling_update(
        [old_rs], [old_rs], d
    )
    if case.want_old is None:
        assert scaled == 0, case.name
        assert client.actions == [], case.name
        return
    assert scaled == case.old - case.want_old, case.name
    assert [u.spec.replicas for u in client.updates()] == [case.want_old], case.name


def test_scale_down_takes_the_oldest_replica_sets_first() -> None:
    assert [
        r.metadata.name
        for r in util.replica_sets_by_creation_timestamp(
            [rs("b", 1, created=NEW), None, rs("a", 1, created=OLDER), rs("c", 1, created=NEW)]
        )
    ] == ["a", "b", "c"]


# -- history (sync_test.go's TestDeploymentController_cleanupDeployment) ------------------


def with_status(name: str, spec: int, status_replicas: int, revision: int) -> ReplicaSet:
    out = rs(name, spec, status_replicas=status_replicas)
    out.metadata.annotations[util.REVISION_ANNOTATION] = str(revision)
    return out


def being_deleted(target: ReplicaSet) -> ReplicaSet:
    target.metadata.deletion_timestamp.GetCurrentTime()
    return target


@dataclass(frozen=True)
class CleanupCase:
    name: str
    old_rss: list[ReplicaSet]
    limit: int
    want_deleted: list[str]


CLEANUP_CASES = [
    CleanupCase("keeps the newest one",
                [with_status("foo-1", 0, 0, 1), with_status("foo-2", 0, 0, 2),
                 with_status("foo-3", 0, 0, 3)], 1, ["foo-1", "foo-2"]),
    CleanupCase("only fully scaled-down ones go",
                [with_status("foo-1", 0, 0, 1), with_status("foo-2", 0, 1, 2),
                 with_status("foo-3", 1, 0, 3), with_status("foo-4", 1, 1, 4)], 0, ["foo-1"]),
    CleanupCase("limit 0 deletes all", [with_status("foo-1", 0, 0, 1),
                with_status("foo-2", 0, 0, 2)], 0, ["foo-1", "foo-2"]),
    CleanupCase("replica sets with pods stay", [with_status("foo-1", 1, 1, 1),
                with_status("foo-2", 1, 1, 2)], 0, []),
    CleanupCase("one being deleted is left alone",
                [being_deleted(with_status("foo-1", 0, 0, 1))], 0, []),
    CleanupCase("unlimited history", [with_status("foo-1", 0, 0, 1),
                with_status("foo-2", 0, 0, 2), with_status("foo-3", 0, 0, 3)], MAX_INT32, []),
    CleanupCase("the lowest revisions go, whatever the order",
                [with_status("foo-3", 0, 0, 3), with_status("foo-1", 0, 0, 1),
                 with_status("foo-2", 0, 0, 2)], 2, ["foo-1"]),
]  # fmt: skip


@pytest.mark.parametrize("case", CLEANUP_CASES, ids=lambda c: c.name)
async def test_cleanup_deployment(case: CleanupCase, fake: Harness) -> None:
    client, controller, _ = fake
    d = deployment(1, history=case.limit, selector={"foo": "bar"})
    await controller.syncer.cleanup_deployment(case.old_rss, d)
    assert [name for verb, name in client.actions if verb == "delete"] == case.want_deleted


async def test_cleanup_waits_for_the_replica_set_controller_to_catch_up(fake: Harness) -> None:
    client, controller, _ = fake
    lagging = with_status("foo-1", 0, 0, 1)
    lagging.metadata.generation = 3
    lagging.status.observed_generation = 2
    await controller.syncer.cleanup_deployment([lagging], deployment(1, history=0))
    assert client.actions == []


# -- completion, progress and deadlines ----------------------------------------------------


@dataclass(frozen=True)
class CompleteCase:
    name: str
    desired: int
    current: int
    updated: int
    available: int
    want: bool


COMPLETE_CASES = [
    CompleteCase("min but not all pods available", 5, 5, 5, 4, False),
    CompleteCase("min availability not honoured", 5, 5, 5, 3, False),
    CompleteCase("complete", 5, 5, 5, 5, True),
    CompleteCase("all available but not updated", 5, 5, 4, 5, False),
    CompleteCase("still running old pods", 1, 2, 1, 1, False),
    CompleteCase("one replica never comes up", 1, 1, 1, 0, False),
]


@pytest.mark.parametrize("case", COMPLETE_CASES, ids=lambda c: c.name)
def test_deployment_complete(case: CompleteCase) -> None:
    d = deployment(case.desired, surge=1, unavailable=1)
    d.status.CopyFrom(status(case.current, case.updated, 0, case.available))
    assert util.deployment_complete(d, d.status) is case.want, case.name


def test_deployment_not_complete_until_its_generation_is_observed() -> None:
    d = deployment(1)
    d.metadata.generation = 2
    d.status.CopyFrom(status(1, 1, 1, 1))
    d.status.observed_generation = 1
    assert not util.deployment_complete(d, d.status)


@dataclass(frozen=True)
class ProgressingCase:
    name: str
    old: DeploymentStatus
    new: DeploymentStatus
    want: bool


PROGRESSING_CASES = [
    ProgressingCase("updated pods", status(10, 4, 4, 4), status(10, 6, 4, 4), True),
    ProgressingCase("not progressing", status(10, 4, 4, 4), status(10, 4, 4, 4), False),
    ProgressingCase("old pods removed", status(10, 4, 6, 6), status(8, 4, 6, 6), True),
    ProgressingCase("fewer new pods", status(10, 7, 3, 3), status(10, 6, 3, 3), False),
    ProgressingCase("fewer overall, more new", status(10, 4, 7, 7), status(8, 8, 5, 5), True),
    ProgressingCase("more ready pods", status(10, 10, 9, 8), status(10, 10, 10, 8), True),
    ProgressingCase("more available pods", status(10, 10, 10, 9), status(10, 10, 10, 10), True),
]


@pytest.mark.parametrize("case", PROGRESSING_CASES, ids=lambda c: c.name)
def test_deployment_progressing(case: ProgressingCase) -> None:
    d = Deployment(status=case.old)
    assert util.deployment_progressing(d, case.new) is case.want, case.name


def progressing_deployment(deadline: int | None, reason: str, since: datetime) -> Deployment:
    d = Deployment()
    if deadline is not None:
        d.spec.progress_deadline_seconds = deadline
    condition = DeploymentCondition(type="Progressing", status="True", reason=reason)
    condition.last_update_time.FromDatetime(since)
    d.status.conditions.append(condition)
    return d


def at(minute: int, second: int) -> datetime:
    return datetime(2016, 1, 1, 0, minute, second, tzinfo=UTC)


@dataclass(frozen=True)
class TimedOutCase:
    name: str
    d: Deployment
    now: datetime
    want: bool


TIMED_OUT_CASES = [
    TimedOutCase("no deadline", progressing_deployment(None, "", at(1, 9)), at(1, 20), False),
    TimedOutCase("infinite deadline", progressing_deployment(MAX_INT32, "", at(1, 9)),
                 at(1, 20), False),
    TimedOutCase("10s deadline, 11s since progress", progressing_deployment(10, "", at(1, 9)),
                 at(1, 20), True),
    TimedOutCase("10s deadline, 9s since progress", progressing_deployment(10, "", at(1, 11)),
                 at(1, 20), False),
    TimedOutCase("a complete rollout never times out",
                 progressing_deployment(10, util.NEW_RS_AVAILABLE_REASON, at(0, 0)),
                 at(1, 20), False),
    TimedOutCase("timed out stays timed out",
                 progressing_deployment(10, util.TIMED_OUT_REASON, at(1, 19)), at(1, 20), True),
]  # fmt: skip


@pytest.mark.parametrize("case", TIMED_OUT_CASES, ids=lambda c: c.name)
def test_deployment_timed_out(case: TimedOutCase) -> None:
    assert util.deployment_timed_out(case.d, case.d.status, case.now) is case.want, case.name


def test_timed_out_needs_a_progressing_condition() -> None:
    d = deployment(1, deadline=10)
    assert not util.deployment_timed_out(d, d.status, at(1, 20))


def stuck(deadline: int | None, replicas: int, current: DeploymentStatus, cond: str) -> Deployment:
    """progress_test.go's currentDeployment: Recreate, with a condition."""
    d = deployment(replicas, strategy="Recreate", deadline=deadline)
    d.status.CopyFrom(current)
    if cond == "failed":
        d.status.conditions.add(type="Progressing", status="False", reason=util.TIMED_OUT_REASON)
    elif cond == "stuck":
        c = d.status.conditions.add(type="Progressing", status="True")
        c.last_update_time.FromDatetime(datetime(2017, 2, 15, 18, 49, 0, tzinfo=UTC))
    return d


def clock(minute: int, second: int, nanos: int = 0) -> float:
    """Epoch seconds; a float cannot hold nanoseconds, so tests use milliseconds."""
    base = datetime(2017, 2, 15, 18, minute, second, tzinfo=UTC).timestamp()
    return base + nanos / 1e9


@dataclass(frozen=True)
class RequeueCase:
    name: str
    d: Deployment
    new: DeploymentStatus
    now: float
    want: float


REQUEUE_CASES = [
    RequeueCase("no deadline", stuck(None, 4, status(3, 3, 0, 2), ""), status(3, 3, 0, 2),
                NOW, -1),
    RequeueCase("no progressing condition", stuck(60, 4, status(3, 3, 0, 2), ""),
                status(3, 3, 0, 2), NOW, -1),
    RequeueCase("complete", stuck(60, 3, status(3, 3, 0, 3), "stuck"), status(3, 3, 0, 3),
                NOW, -1),
    RequeueCase("already failed", stuck(60, 3, status(3, 3, 0, 0), "failed"),
                status(3, 3, 0, 0), NOW, -1),
    RequeueCase("stuck - 30s", stuck(60, 3, status(3, 3, 0, 1), "stuck"), status(3, 3, 0, 1),
                clock(49, 30), 30),
    RequeueCase("stuck - 1s", stuck(60, 3, status(3, 3, 0, 1), "stuck"), status(3, 3, 0, 1),
                clock(49, 59), 1),
    RequeueCase("less than a second: now", stuck(60, 3, status(3, 3, 0, 1), "stuck"),
                status(3, 3, 0, 1), clock(49, 59, 1_000_000), 0),
    RequeueCase("at the deadline: now", stuck(60, 3, status(3, 3, 0, 1), "stuck"),
                status(3, 3, 0, 1), clock(50, 0), 0),
    RequeueCase("past the deadline: now", stuck(60, 3, status(3, 3, 0, 1), "stuck"),
                status(3, 3, 0, 1), clock(51, 0), 0),
]  # fmt: skip


@pytest.mark.parametrize("case", REQUEUE_CASES, ids=lambda c: c.name)
async def test_requeue_stuck_deployment(case: RequeueCase, fake: Harness) -> None:
    _, controller, _ = fake
    got = controller.progress.requeue_stuck_deployment(case.d, case.new, now=case.now)
    assert got == pytest.approx(case.want, abs=1e-6), case.name


@dataclass(frozen=True)
class RolloutStatusCase:
    name: str
    deadline: int | None
    before: str  # reason of the Progressing condition before
    age: float  # seconds since that condition was last updated
    new_available: int
    want_reason: str | None  # None: no Progressing condition


ROLLOUT_STATUS_CASES = [
    RolloutStatusCase("progress recorded", 600, util.NEW_REPLICA_SET_REASON, 3600, 1,
                      util.REPLICA_SET_UPDATED_REASON),
    RolloutStatusCase("complete", 600, util.REPLICA_SET_UPDATED_REASON, 5, 2,
                      util.NEW_RS_AVAILABLE_REASON),
    RolloutStatusCase("no progress past the deadline", 10, util.REPLICA_SET_UPDATED_REASON,
                      11, 0, util.TIMED_OUT_REASON),
    RolloutStatusCase("no progress within the deadline", 10, util.REPLICA_SET_UPDATED_REASON,
                      9, 0, util.REPLICA_SET_UPDATED_REASON),
    RolloutStatusCase("no deadline: no condition", None, util.REPLICA_SET_UPDATED_REASON, 5, 1,
                      None),
]  # fmt: skip


@pytest.mark.parametrize("case", ROLLOUT_STATUS_CASES, ids=lambda c: c.name)
async def test_sync_rollout_status(case: RolloutStatusCase, fake: Harness) -> None:
    client, controller, _ = fake
    d = deployment(2, surge=1, unavailable=0, deadline=case.deadline)
    d.status.CopyFrom(status(2, 2, 0, 0))  # what the last sync saw: nothing available
    new_rs = owned_rs(d, "foo-new", 2)
    new_rs.status.replicas = 2
    new_rs.status.available_replicas = case.new_available
    before = util.new_deployment_condition(
        "Progressing", "True", case.before, "", now=NOW - case.age
    )
    d.status.conditions.append(before)
    await controller.progress.sync_rollout_status([new_rs], new_rs, d)
    written = [obj for verb, obj in client.actions if verb == "update_status"]
    assert len(written) == 1, case.name
    cond = util.get_deployment_condition(written[0].status, "Progressing")
    if case.want_reason is None:
        assert cond is None, case.name
        return
    assert cond is not None, case.name
    assert cond.reason == case.want_reason, case.name
    if case.want_reason == util.REPLICA_SET_UPDATED_REASON and case.new_available:
        # Progress moves lastUpdateTime but not lastTransitionTime.
        assert cond.last_transition_time == before.last_transition_time
        assert cond.last_update_time.seconds == int(NOW)


# -- status ----------------------------------------------------------------------------------


def test_calculate_status_counts_and_availability() -> None:
    d = deployment(4, surge=1, unavailable=1)
    d.metadata.generation = 7
    d.status.collision_count = 2
    old = rs("old", 2, status_replicas=2, available=2)
    old.status.ready_replicas = 2
    new = rs("new", 3, status_replicas=3, available=1)
    new.status.ready_replicas = 2
    got = calculate_status([old, new, None], new, d, now=NOW)
    assert (got.observed_generation, got.replicas, got.updated_replicas) == (7, 5, 3)
    assert (got.ready_replicas, got.available_replicas, got.unavailable_replicas) == (4, 3, 2)
    assert got.collision_count == 2
    available = util.get_deployment_condition(got, "Available")
    assert available is not None
    assert (available.status, available.reason) == ("True", util.MINIMUM_REPLICAS_AVAILABLE)
    d.spec.replicas = 6
    got = calculate_status([old, new], new, d, now=NOW)
    available = util.get_deployment_condition(got, "Available")
    assert available is not None
    assert (available.status, available.reason) == ("False", util.MINIMUM_REPLICAS_UNAVAILABLE)


@dataclass(frozen=True)
class ConditionCase:
    name: str
    before: list[tuple[str, str, str]]
    condition: tuple[str, str, str]
    want: list[tuple[str, str, str]]


CONDITION_CASES = [
    ConditionCase("set for the first time", [], ("Available", "True", "A"),
                  [("Available", "True", "A")]),
    ConditionCase("simple set", [("Progressing", "False", "P")], ("Available", "True", "A"),
                  [("Progressing", "False", "P"), ("Available", "True", "A")]),
    ConditionCase("overwrite", [("Progressing", "False", "P")], ("Progressing", "True", "Q"),
                  [("Progressing", "True", "Q")]),
]  # fmt: skip


@pytest.mark.parametrize("case", CONDITION_CASES, ids=lambda c: c.name)
def test_set_deployment_condition(case: ConditionCase) -> None:
    st = DeploymentStatus()
    for t, s, r in case.before:
        st.conditions.add(type=t, status=s, reason=r)
    t, s, r = case.condition
    util.set_deployment_condition(st, util.new_deployment_condition(t, s, r, "", now=NOW))
    assert [(c.type, c.status, c.reason) for c in st.conditions] == case.want, case.name


def test_set_condition_keeps_transition_time_when_status_stays() -> None:
    st = DeploymentStatus()
    util.set_deployment_condition(st, util.new_deployment_condition("P", "True", "A", "", now=1))
    util.set_deployment_condition(st, util.new_deployment_condition("P", "True", "B", "", now=9))
    cond = util.get_deployment_condition(st, "P")
    assert cond is not None
    assert (cond.reason, cond.last_transition_time.seconds, cond.last_update_time.seconds) == (
        "B",
        1,
        9,
    )


def test_get_and_remove_condition() -> None:
    st = DeploymentStatus()
    st.conditions.add(type="Progressing", status="False")
    st.conditions.add(type="Available", status="True")
    assert util.get_deployment_condition(st, "ReplicaFailure") is None
    util.remove_deployment_condition(st, "ReplicaFailure")
    assert len(st.conditions) == 2
    util.remove_deployment_condition(st, "Progressing")
    assert [c.type for c in st.conditions] == ["Available"]


# -- templates, hashes and revisions ---------------------------------------------------------

HASH = util.DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY


def template(
    name: str, node: str, annotations: dict[str, str], labels: dict[str, str]
) -> PodTemplateSpec:
    t = PodTemplateSpec()
    t.metadata.name = name
    t.metadata.annotations.update(annotations)
    t.metadata.labels.update(labels)
    t.spec.node_name = node
    return t


@dataclass(frozen=True)
class EqualCase:
    name: str
    former: PodTemplateSpec
    latter: PodTemplateSpec
    want: bool


EQUAL_CASES = [
    EqualCase("same spec, same labels",
              template("foo", "n", {}, {HASH: "v1", "something": "else"}),
              template("foo", "n", {}, {HASH: "v1", "something": "else"}), True),
    EqualCase("only the hash differs",
              template("foo", "n", {}, {HASH: "v1", "something": "else"}),
              template("foo", "n", {}, {HASH: "v2", "something": "else"}), True),
    EqualCase("one without a hash",
              template("foo", "n", {}, {"something": "else"}),
              template("foo", "n", {}, {HASH: "v2", "something": "else"}), True),
    EqualCase("labels differ, one without a hash, as many labels",
              template("foo", "n", {}, {"something": "else"}),
              template("foo", "n", {}, {HASH: "v2"}), False),
    EqualCase("labels differ, same hash",
              template("foo", "n", {}, {HASH: "v1"}),
              template("foo", "n", {}, {HASH: "v1", "something": "else"}), False),
    EqualCase("annotations differ",
              template("foo", "n", {"former": "value"}, {HASH: "v1"}),
              template("foo", "n", {"latter": "value"}, {HASH: "v1"}), False),
    EqualCase("names differ", template("foo-1", "n", {}, {HASH: "v1"}),
              template("foo-2", "n", {}, {HASH: "v2"}), False),
    EqualCase("spec differs", template("foo", "n-1", {}, {"something": "else"}),
              template("foo", "n-2", {}, {"nothing": "else"}), False),
]  # fmt: skip


@pytest.mark.parametrize("case", EQUAL_CASES, ids=lambda c: c.name)
def test_equal_ignore_hash(case: EqualCase) -> None:
    former_labels = dict(case.former.metadata.labels)
    assert util.equal_ignore_hash(case.former, case.latter) is case.want, case.name
    assert util.equal_ignore_hash(case.latter, case.former) is case.want, f"{case.name} reversed"
    assert dict(case.former.metadata.labels) == former_labels, "the input was changed"


def test_find_new_and_old_replica_sets() -> None:
    d = deployment(1, selector={"name": "nginx"})
    new_rs = owned_rs(d, "new", 1)
    new_rs.metadata.labels[HASH] = "hash"
    new_rs.spec.template.metadata.labels[HASH] = "hash"
    new_rs.metadata.creation_timestamp.CopyFrom(NEW)
    duplicate = owned_rs(d, "dup", 0)
    duplicate.spec.template.metadata.labels[HASH] = "other"
    duplicate.metadata.creation_timestamp.CopyFrom(OLD)
    old_rs = owned_rs(d, "old", 0)
    old_rs.spec.template.spec.containers[0].name = "nginx-old-1"
    old_rs.metadata.creation_timestamp.CopyFrom(OLDER)

    assert util.find_new_replica_set(d, [new_rs, old_rs]) is new_rs
    assert util.find_new_replica_set(d, [new_rs, old_rs, duplicate]) is duplicate  # the oldest
    assert util.find_new_replica_set(d, [old_rs]) is None
    required, every = util.find_old_replica_sets(d, [old_rs, new_rs, duplicate])
    assert (required, every) == ([new_rs], [old_rs, new_rs])
    assert util.find_old_replica_sets(d, [new_rs]) == ([], [])


def test_compute_hash() -> None:
    t = template("", "", {}, {"app": "web"})
    h = util.compute_hash(t, None)
    assert h == util.compute_hash(t, None), "not deterministic"
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert 1 <= len(h) <= 10  # the decimal digits of a uint32
    assert util.compute_hash(t, 0) != h, "a collision count of 0 still counts"
    assert util.compute_hash(t, 1) != util.compute_hash(t, 0)
    other = template("", "", {}, {"app": "web2"})
    assert util.compute_hash(other, None) != h


def test_safe_encode_string() -> None:
    # Each byte maps to alphabet[byte % 27]: '0' is 48 -> '4', '9' is 57 -> 'f'.
    assert util.safe_encode_string("09") == "4f"


@dataclass(frozen=True)
class RevisionCase:
    name: str
    revisions: list[str | None]
    want_max: int
    want_last: int


REVISION_CASES = [
    RevisionCase("none", [], 0, 0),
    RevisionCase("one", ["3"], 3, 0),
    RevisionCase("several, any order", ["2", "5", "3"], 5, 3),
    RevisionCase("without annotation counts as 0", [None, "1"], 1, 0),
    RevisionCase("unreadable ones are skipped", ["x", "4", "2"], 4, 2),
    RevisionCase("numbers, not strings", ["9", "10"], 10, 9),
]


@pytest.mark.parametrize("case", REVISION_CASES, ids=lambda c: c.name)
def test_max_and_last_revision(case: RevisionCase) -> None:
    rss: list[ReplicaSet | None] = [None]
    for value in case.revisions:
        target = rs("r", 0)
        if value is not None:
            target.metadata.annotations[util.REVISION_ANNOTATION] = value
        rss.append(target)
    assert util.max_revision(rss) == case.want_max, case.name
    assert util.last_revision(rss) == case.want_last, case.name


def test_revision_of_an_unreadable_annotation_is_an_error() -> None:
    target = rs("r", 0)
    target.metadata.annotations[util.REVISION_ANNOTATION] = "1.5"
    with pytest.raises(ValueError, match=r"1\.5"):
        util.revision(target)


def test_set_new_replica_set_annotations() -> None:
    d = deployment(3, surge=1, unavailable=0, selector={"name": "nginx"})
    d.metadata.annotations[util.REVISION_ANNOTATION] = "1"
    d.metadata.annotations["team"] = "a"
    target = owned_rs(d, "r", 0)
    assert util.set_new_replica_set_annotations(d, target, "1", False)
    annotations = target.metadata.annotations
    assert annotations["team"] == "a"
    assert annotations[util.REVISION_ANNOTATION] == "1"
    assert annotations[util.DESIRED_REPLICAS_ANNOTATION] == "3"
    assert annotations[util.MAX_REPLICAS_ANNOTATION] == "4"  # replicas + surge
    for i in range(2, 21):  # beyond "9" < "10" as strings
        util.set_new_replica_set_annotations(d, target, str(i), True)
        assert annotations[util.REVISION_ANNOTATION] == str(i)
    assert annotations[util.REVISION_HISTORY_ANNOTATION] == ",".join(str(i) for i in range(1, 20))
    assert not util.set_new_replica_set_annotations(d, target, "5", True), "a lower revision"


def test_revision_history_is_cut_to_its_limit() -> None:
    d = deployment(1)
    target = rs("r", 0)
    for i in range(1, 8):
        util.set_new_replica_set_annotations(d, target, str(i), True, rev_history_limit_in_chars=5)
    assert target.metadata.annotations[util.REVISION_HISTORY_ANNOTATION] == "4,5,6"


def test_replica_annotations_and_saturation() -> None:
    target = rs("r", 1, available=1)
    assert util.replicas_annotations_need_update(target, 10, 20)
    assert util.set_replicas_annotations(target, 10, 20)
    assert not util.replicas_annotations_need_update(target, 10, 20)
    assert util.replicas_annotations_need_update(target, 8, 20)
    assert util.replicas_annotations_need_update(target, 10, 16)
    assert not util.set_replicas_annotations(target, 10, 20)
    assert util.get_desired_replicas_annotation(target) == (10, True)
    assert util.get_desired_replicas_annotation(rs("bare", 1)) == (0, False)
    util.set_replicas_annotations(target, 1, 2)
    assert util.is_saturated(deployment(1), target)
    target.status.available_replicas = 0
    assert not util.is_saturated(deployment(1), target)
    assert not util.is_saturated(deployment(1), None)


def test_rollback_annotations_keep_the_controllers_own() -> None:
    d = deployment(1)
    d.metadata.annotations.update({util.REVISION_ANNOTATION: "7", "note": "new"})
    target = rs("r", 0)
    target.metadata.annotations.update({util.REVISION_ANNOTATION: "2", "note": "old", "x": "y"})
    util.set_deployment_annotations_to(d, target)
    assert dict(d.metadata.annotations) == {util.REVISION_ANNOTATION: "7", "note": "old", "x": "y"}


@dataclass(frozen=True)
class ActiveOrLatestCase:
    name: str
    new_rs: ReplicaSet | None
    old_rss: list[ReplicaSet]
    want: str | None


ACTIVE_OR_LATEST_CASES = [
    ActiveOrLatestCase("nothing", None, [], None),
    ActiveOrLatestCase("only the new one is active", rs("new", 3, created=NEW),
                       [rs("old", 0, created=OLD)], "new"),
    ActiveOrLatestCase("only an old one is active", rs("new", 0, created=NEW),
                       [rs("old", 2, created=OLD)], "old"),
    ActiveOrLatestCase("none active: the new one", rs("new", 0, created=NEW),
                       [rs("old", 0, created=OLD)], "new"),
    ActiveOrLatestCase("none active, no new: the newest old",
                       None, [rs("older", 0, created=OLDER), rs("old", 0, created=OLD)], "old"),
    ActiveOrLatestCase("two active: none", rs("new", 1, created=NEW),
                       [rs("old", 1, created=OLD)], None),
]  # fmt: skip


@pytest.mark.parametrize("case", ACTIVE_OR_LATEST_CASES, ids=lambda c: c.name)
def test_find_active_or_latest(case: ActiveOrLatestCase) -> None:
    got = util.find_active_or_latest(case.new_rs, case.old_rss)
    assert (got.metadata.name if got else None) == case.want, case.name


def test_replica_set_orderings() -> None:
    a, b, c = rs("a", 2, created=OLDER), rs("b", 2, created=NEW), rs("c", 5, created=OLD)
    assert [r.metadata.name for r in util.replica_sets_by_size_newer([a, b, c])] == ["c", "b", "a"]
    assert [r.metadata.name for r in util.replica_sets_by_size_older([a, b, c])] == ["c", "a", "b"]
    a.metadata.annotations[util.REVISION_ANNOTATION] = "3"
    b.metadata.annotations[util.REVISION_ANNOTATION] = "1"
    c.metadata.annotations[util.REVISION_ANNOTATION] = "2"
    assert [r.metadata.name for r in util.replica_sets_by_revision([a, b, c])] == ["b", "c", "a"]


def test_deployments_for_a_replica_set() -> None:
    web = deployment(1, name="web", selector={"app": "web"})
    other = deployment(1, name="other", selector={"app": "other"})
    everything = deployment(1, name="all")
    target = rs("r", 0)
    target.metadata.labels["app"] = "web"
    found = util.get_deployments_for_replica_set([web, other, everything], target)
    assert [d.metadata.name for d in found] == ["web"]
    assert util.get_deployments_for_replica_set([web], rs("unlabelled", 0)) == []


# -- creating the new replica set -------------------------------------------------------------


async def test_new_replica_set_is_named_by_its_template_hash(fake: Harness) -> None:
    client, controller, _ = fake
    d = deployment(3, surge=1, unavailable=0, selector={"app": "web"}, deadline=600)
    created = await controller.syncer.get_new_replica_set(d, [], [], True)
    template_hash = util.compute_hash(d.spec.template, None)
    assert created.metadata.name == f"foo-{template_hash}"
    assert created.spec.selector.match_labels[HASH] == template_hash
    assert created.spec.template.metadata.labels[HASH] == template_hash
    assert created.spec.replicas == 3
    assert created.metadata.annotations[util.REVISION_ANNOTATION] == "1"
    assert created.metadata.owner_references[0].uid == d.metadata.uid
    assert d.metadata.annotations[util.REVISION_ANNOTATION] == "1"
    cond = util.get_deployment_condition(d.status, "Progressing")
    assert cond is not None
    assert cond.reason == util.NEW_REPLICA_SET_REASON
    assert [verb for verb, _ in client.actions] == ["create", "update", "update_status"]


async def test_hash_collision_bumps_the_collision_count(fake: Harness) -> None:
    client, controller, replica_sets = fake
    d = deployment(1, selector={"app": "web"})
    squatter = rs(f"foo-{util.compute_hash(d.spec.template, None)}", 1)  # not d's template
    replica_sets.indexer.add(squatter)
    client.create_error = errors.AlreadyExists("exists")
    with pytest.raises(errors.AlreadyExists):
        await controller.syncer.get_new_replica_set(d, [], [], True)
    written = [obj for verb, obj in client.actions if verb == "update_status"]
    assert [w.status.collision_count for w in written] == [1]
    assert util.compute_hash(d.spec.template, 1) != util.compute_hash(d.spec.template, None)


async def test_an_existing_new_replica_set_of_ours_is_taken(fake: Harness) -> None:
    client, controller, replica_sets = fake
    d = deployment(1, selector={"app": "web"})
    ours = owned_rs(d, f"foo-{util.compute_hash(d.spec.template, None)}", 1)
    replica_sets.indexer.add(ours)
    client.create_error = errors.AlreadyExists("exists")
    got = await controller.syncer.get_new_replica_set(d, [], [], True)
    assert got is ours
    assert d.status.collision_count == 0


def test_old_pods_running() -> None:
    new_rs = rs("new", 1)
    old_rs = rs("old", 0)
    running, done = Pod(), Pod()
    running.status.phase = "Running"
    done.status.phase = "Succeeded"
    assert not old_pods_running(new_rs, [old_rs], {new_rs.metadata.uid: [running]})
    assert not old_pods_running(new_rs, [old_rs], {old_rs.metadata.uid: [done]})
    assert old_pods_running(new_rs, [old_rs], {old_rs.metadata.uid: [running]})
    old_rs.status.replicas = 1
    assert old_pods_running(new_rs, [old_rs], {})

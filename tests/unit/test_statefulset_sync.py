"""The StatefulSet controller's `sync`, table by table, on the fake client
(Kubernetes' pkg/controller/statefulset stateful_set_control_test.go: the
behaviours are ported, the code is kpy's).

Every case names what the listers hold (a StatefulSet, its pods and claims)
and the pod and claim writes the sync makes, as `verb Kind namespace/name`.
The set's ControllerRevisions are in the listers already; status writes are
checked by their own table below.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from kpy.api import errors
from kpy.api.apps.v1 import ControllerRevision, StatefulSet
from kpy.api.codec import to_dict
from kpy.api.core.v1 import PersistentVolumeClaim, Pod, PodCondition
from kpy.api.defaults import set_defaults
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.controllers.history import REVISION_HASH_LABEL, revision_patch, template_hash
from kpy.controllers.ownership import new_controller_ref
from kpy.controllers.replicaset import POD_OWNER_INDEX, pod_owner_index
from kpy.controllers.statefulset import StatefulSetController

NOW = 1_700_000_000.0
LABELS = {"app": "web"}
_uids = itertools.count(1)


# -- builders -----------------------------------------------------------------------------------


def stateful_set(
    *,
    replicas: int = 3,
    parallel: bool = False,
    image: str = "nginx:1",
    partition: int | None = None,
    max_unavailable: int | None = None,
    on_delete: bool = False,
    claims: bool = False,
    when_deleted: str = "",
    when_scaled: str = "",
    start: int | None = None,
    min_ready_seconds: int = 0,
    deleting: bool = False,
    current_revision: str = "",
) -> StatefulSet:
    sts = StatefulSet()
    sts.metadata.name = "web"
    sts.metadata.namespace = "default"
    sts.metadata.uid = "sts-uid"
    sts.metadata.generation = 1
    spec = sts.spec
    spec.replicas = replicas
    spec.service_name = "nginx"
    spec.selector.match_labels.update(LABELS)
    spec.template.metadata.labels.update(LABELS)
    spec.template.spec.containers.add(name="nginx", image=image)
    spec.min_ready_seconds = min_ready_seconds
    if parallel:
        spec.pod_management_policy = "Parallel"
    if on_delete:
        spec.update_strategy.type = "OnDelete"
    else:
        spec.update_strategy.type = "RollingUpdate"
        if partition is not None:
            spec.update_strategy.rolling_update.partition = partition
        if max_unavailable is not None:
            spec.update_strategy.rolling_update.max_unavailable.int_val = max_unavailable
    if claims:
        template = spec.volume_claim_templates.add()
        template.metadata.name = "www"
        template.spec.access_modes.append("ReadWriteOnce")
        template.spec.resources.requests["storage"].string = "1Gi"
    if when_deleted:
        spec.persistent_volume_claim_retention_policy.when_deleted = when_deleted
    if when_scaled:
        spec.persistent_volume_claim_retention_policy.when_scaled = when_scaled
    if start is not None:
        spec.ordinals.start = start
    if deleting:
        sts.metadata.deletion_timestamp.FromSeconds(int(NOW))
        sts.metadata.finalizers.append("foregroundDeletion")
    sts.status.current_revision = current_revision
    return set_defaults(sts)


def revision_name(sts: StatefulSet) -> str:
    return f"web-{template_hash(sts)}"


STS = stateful_set()
REV = revision_name(STS)
NEW = stateful_set(image="nginx:2")
NEW_REV = revision_name(NEW)


def updating(**kwargs: Any) -> StatefulSet:
    """The set with template nginx:2, whose pods still run nginx:1 (REV)."""
    return stateful_set(image="nginx:2", current_revision=REV, **kwargs)


def pod(
    ordinal: int,
    *,
    revision: str = REV,
    phase: str = "Running",
    ready: bool = True,
    ready_for: int = 100,
    terminating: bool = False,
) -> Pod:
    """Pod `web-<ordinal>`, ready for `ready_for` seconds before NOW."""
    p = Pod()
    p.metadata.name = f"web-{ordinal}"
    p.metadata.namespace = "default"
    p.metadata.uid = f"pod-uid-{ordinal}-{next(_uids)}"
    p.metadata.labels.update(LABELS)
    p.metadata.labels[REVISION_HASH_LABEL] = revision
    p.metadata.labels["statefulset.kubernetes.io/pod-name"] = f"web-{ordinal}"
    p.metadata.labels["apps.kubernetes.io/pod-index"] = str(ordinal)
    p.metadata.creation_timestamp.FromSeconds(int(NOW) - 1000)
    p.metadata.owner_references.append(new_controller_ref(STS, "apps/v1", "StatefulSet"))
    p.spec.containers.add(name="nginx", image="nginx:1")
    p.spec.node_name = "node-a"
    p.status.phase = phase
    if ready:
        condition = PodCondition(type="Ready", status="True")
        condition.last_transition_time.FromSeconds(int(NOW) - ready_for)
        p.status.conditions.append(condition)
    if terminating:
        p.metadata.deletion_timestamp.FromSeconds(int(NOW))
        p.metadata.finalizers.append("test/hold")
    return set_defaults(p)


def claim(name: str, *, terminating: bool = False) -> PersistentVolumeClaim:
    c = PersistentVolumeClaim()
    c.metadata.name = name
    c.metadata.namespace = "default"
    c.metadata.uid = f"claim-uid-{name}"
    c.metadata.labels.update(LABELS)
    c.spec.access_modes.append("ReadWriteOnce")
    c.spec.resources.requests["storage"].string = "1Gi"
    if terminating:
        c.metadata.deletion_timestamp.FromSeconds(int(NOW))
        c.metadata.finalizers.append("kubernetes.io/pvc-protection")
    return set_defaults(c)


def revision_of(sts: StatefulSet, number: int = 1) -> ControllerRevision:
    """The ControllerRevision the controller would make for `sts`'s template."""
    revision = ControllerRevision(data=revision_patch(sts), revision=number)
    revision.metadata.name = revision_name(sts)
    revision.metadata.namespace = "default"
    revision.metadata.labels.update(LABELS)
    revision.metadata.labels[REVISION_HASH_LABEL] = template_hash(sts)
    revision.metadata.owner_references.append(new_controller_ref(sts, "apps/v1", "StatefulSet"))
    return revision


# -- the table ----------------------------------------------------------------------------------


def create(name: str, kind: str = "Pod") -> str:
    return f"create {kind} default/{name}"


def delete(name: str) -> str:
    return f"delete Pod default/{name}"


def update_claim(name: str) -> str:
    return f"update PersistentVolumeClaim default/{name}"


@dataclass(frozen=True)
class Case:
    name: str
    sts: StatefulSet
    pods: list[Pod] = field(default_factory=list)
    claims: list[PersistentVolumeClaim] = field(default_factory=list)
    want: list[str] = field(default_factory=list)
    #: pod creations the controller still waits to see (its expectations).
    pending_creations: int = 0


CASES = [
    # -- OrderedReady scale up
    Case("OrderedReady, no pods: only web-0 is created", STS, want=[create("web-0")]),
    Case(
        "OrderedReady: web-1 once web-0 is Running and Ready",
        STS,
        pods=[pod(0)],
        want=[create("web-1")],
    ),
    Case("OrderedReady: nothing while web-0 is not Ready", STS, pods=[pod(0, ready=False)]),
    Case("OrderedReady: nothing while web-0 is Pending", STS, pods=[pod(0, phase="Pending")]),
    Case(
        "OrderedReady: nothing while web-0 is not available for minReadySeconds",
        stateful_set(min_ready_seconds=60),
        pods=[pod(0, ready_for=10)],
    ),
    Case(
        "OrderedReady: web-1 once web-0 has been ready for minReadySeconds",
        stateful_set(min_ready_seconds=60),
        pods=[pod(0, ready_for=61)],
        want=[create("web-1")],
    ),
    Case(
        "OrderedReady: a missing web-0 comes back before anything else",
        STS,
        pods=[pod(1), pod(2)],
        want=[create("web-0")],
    ),
    Case(
        "ordinals.start 5: web-5 first",
        stateful_set(start=5),
        want=[create("web-5")],
    ),
    Case(
        "all replicas healthy: nothing to do",
        STS,
        pods=[pod(0), pod(1), pod(2)],
    ),
    # -- Parallel
    Case(
        "Parallel, no pods: all created at once",
        stateful_set(parallel=True),
        want=[create("web-0"), create("web-1"), create("web-2")],
    ),
    Case(
        "Parallel: an unready pod does not hold the others back",
        stateful_set(parallel=True),
        pods=[pod(0, ready=False)],
        want=[create("web-1"), create("web-2")],
    ),
    # -- scale down
    Case(
        "OrderedReady scale down: the highest ordinal first, one at a time",
        stateful_set(replicas=1),
        pods=[pod(0), pod(1), pod(2)],
        want=[delete("web-2")],
    ),
    Case(
        "OrderedReady scale down: nothing while the condemned pod is terminating",
        stateful_set(replicas=1),
        pods=[pod(0), pod(1), pod(2, terminating=True)],
    ),
    Case(
        "OrderedReady scale down halts while any pod is unhealthy",
        stateful_set(replicas=1),
        pods=[pod(0, ready=False), pod(1), pod(2)],
    ),
    Case(
        "OrderedReady scale down: an unhealthy condemned pod below another waits",
        stateful_set(replicas=1),
        pods=[pod(0), pod(1, ready=False), pod(2)],
    ),
    Case(
        "OrderedReady scale down: the first unhealthy pod, if condemned, may go",
        stateful_set(replicas=1),
        pods=[pod(0), pod(1), pod(2, ready=False)],
        want=[delete("web-2")],
    ),
    Case(
        "Parallel scale down: every condemned pod at once",
        stateful_set(replicas=1, parallel=True),
        pods=[pod(0), pod(1), pod(2)],
        want=[delete("web-2"), delete("web-1")],
    ),
    Case(
        "ordinals.start moved up: web-0 is condemned, web-3 created",
        stateful_set(start=1, parallel=True),
        pods=[pod(0), pod(1), pod(2)],
        want=[create("web-3"), delete("web-0")],
    ),
    # -- failed pods
    Case(
        "a failed pod is deleted, to be created again",
        STS,
        pods=[pod(0), pod(1, phase="Failed", ready=False), pod(2)],
        want=[delete("web-1")],
    ),
    Case(
        "a succeeded pod is deleted, to be created again",
        stateful_set(parallel=True),
        pods=[pod(0, phase="Succeeded", ready=False), pod(1), pod(2)],
        want=[delete("web-0")],
    ),
    # -- volumeClaimTemplates
    Case(
        "a claim per ordinal, created before its pod",
        stateful_set(claims=True),
        want=[create("www-web-0", "PersistentVolumeClaim"), create("web-0")],
    ),
    Case(
        "a claim that outlived its pod is reused",
        stateful_set(claims=True),
        claims=[claim("www-web-0")],
        want=[create("web-0")],
    ),
    Case(
        "a claim being deleted is not recreated and blocks its pod",
        stateful_set(claims=True),
        claims=[claim("www-web-0", terminating=True)],
    ),
    Case(
        "Parallel: a claim being deleted blocks only its own pod",
        stateful_set(claims=True, parallel=True, replicas=2),
        claims=[claim("www-web-0", terminating=True)],
        want=[create("www-web-1", "PersistentVolumeClaim"), create("web-1")],
    ),
    Case(
        "a Pending pod whose claim went missing gets it back",
        stateful_set(claims=True, replicas=1),
        pods=[pod(0, phase="Pending", ready=False)],
        want=[create("www-web-0", "PersistentVolumeClaim")],
    ),
    Case(
        "a Pending pod whose claim is being deleted: the claim is not recreated",
        stateful_set(claims=True, replicas=1),
        pods=[pod(0, phase="Pending", ready=False)],
        claims=[claim("www-web-0", terminating=True)],
    ),
    Case(
        "Retain: a scaled-away pod's claim stays as it is",
        stateful_set(claims=True, replicas=1),
        pods=[pod(0), pod(1)],
        claims=[claim("www-web-0"), claim("www-web-1")],
        want=[delete("web-1")],
    ),
    Case(
        "whenScaled Delete: the condemned pod's claim is handed to the pod, then the pod goes",
        stateful_set(claims=True, replicas=1, when_scaled="Delete"),
        pods=[pod(0), pod(1)],
        claims=[claim("www-web-0"), claim("www-web-1")],
        want=[update_claim("www-web-1"), delete("web-1")],
    ),
    Case(
        "whenDeleted Delete: a claim gets the set as owner",
        stateful_set(claims=True, replicas=1, when_deleted="Delete"),
        pods=[pod(0)],
        claims=[claim("www-web-0")],
        want=[update_claim("www-web-0")],
    ),
    # -- RollingUpdate
    Case(
        "RollingUpdate: the highest ordinal first",
        updating(),
        pods=[pod(0), pod(1), pod(2)],
        want=[delete("web-2")],
    ),
    Case(
        "RollingUpdate: the next once the updated pod is Running and Ready",
        updating(),
        pods=[pod(0), pod(1), pod(2, revision=NEW_REV)],
        want=[delete("web-1")],
    ),
    Case(
        "RollingUpdate: waits while the updated pod is not Ready",
        updating(parallel=True),
        pods=[pod(0), pod(1), pod(2, revision=NEW_REV, ready=False)],
    ),
    Case(
        "RollingUpdate, partition 1: web-1 is the last to update",
        updating(partition=1),
        pods=[pod(0), pod(1), pod(2, revision=NEW_REV)],
        want=[delete("web-1")],
    ),
    Case(
        "RollingUpdate, partition 1: web-0 keeps the old revision",
        updating(partition=1),
        pods=[pod(0), pod(1, revision=NEW_REV), pod(2, revision=NEW_REV)],
    ),
    Case(
        "RollingUpdate, maxUnavailable 2: two at once",
        updating(parallel=True, max_unavailable=2),
        pods=[pod(0), pod(1), pod(2)],
        want=[delete("web-2"), delete("web-1")],
    ),
    Case(
        "RollingUpdate, maxUnavailable 2: one unavailable leaves room for one",
        updating(parallel=True, max_unavailable=2),
        pods=[pod(0), pod(1), pod(2, revision=NEW_REV, ready=False)],
        want=[delete("web-1")],
    ),
    Case(
        "OnDelete: old pods stay",
        updating(on_delete=True),
        pods=[pod(0), pod(1), pod(2)],
    ),
    Case(
        "OnDelete: a deleted pod comes back",
        updating(on_delete=True),
        pods=[pod(0), pod(2)],
        want=[create("web-1")],
    ),
    # -- expectations and deletion
    Case(
        "creations still expected: nothing until they are seen",
        stateful_set(parallel=True),
        pending_creations=1,
    ),
    Case("being deleted: nothing (the garbage collector's)", stateful_set(deleting=True)),
]


@dataclass
class Fixture:
    """A StatefulSetController over a FakeClient; its informers never run:
    `seed` puts objects both in the client and in the listers."""

    client: FakeClient
    informers: dict[type[Any], SharedInformer[Any]]
    controller: StatefulSetController

    @classmethod
    def new(cls) -> Fixture:
        client = FakeClient(now=lambda: NOW)
        informers: dict[type[Any], SharedInformer[Any]] = {
            kind: SharedInformer(client, kind)
            for kind in (StatefulSet, Pod, ControllerRevision, PersistentVolumeClaim)
        }
        informers[Pod].add_indexers({POD_OWNER_INDEX: pod_owner_index})
        controller = StatefulSetController(
            client,
            informers[StatefulSet],
            informers[Pod],
            informers[ControllerRevision],
            informers[PersistentVolumeClaim],
            now=lambda: NOW,
        )
        return cls(client, informers, controller)

    def seed(self, *objects: Any) -> None:
        for stored in self.client.add(*objects):
            self.informers[type(stored)].indexer.add(stored)

    def seed_set(self, sts: StatefulSet) -> None:
        """The set with its revision, and the first template's when it is updating."""
        self.seed(sts, revision_of(sts, 2))
        if sts.status.current_revision == REV and revision_name(sts) != REV:
            self.seed(revision_of(STS, 1))

    def close(self) -> None:
        self.controller.queue.shut_down()


def writes(client: FakeClient) -> list[str]:
    return [str(a) for a in client.writes() if a.kind in ("Pod", "PersistentVolumeClaim")]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_sync(case: Case) -> None:
    fx = Fixture.new()
    fx.seed_set(case.sts)
    fx.seed(*case.pods, *case.claims)
    if case.pending_creations:
        fx.controller.expectations.expect_creations("default/web", case.pending_creations)
    try:
        await fx.controller.sync("default/web")
    finally:
        fx.close()
    got = writes(fx.client)
    assert got == case.want, f"{case.name}: got {got}, want {case.want}"


# -- what the writes carry ------------------------------------------------------------------------


async def test_a_created_pod_has_its_identity_and_its_claims_volume() -> None:
    fx = Fixture.new()
    sts = stateful_set(claims=True, start=3)
    fx.seed_set(sts)
    await fx.controller.sync("default/web")
    fx.close()
    created = fx.client.stored(Pod, "web-3")
    assert created is not None
    assert (created.spec.hostname, created.spec.subdomain) == ("web-3", "nginx")
    labels = dict(created.metadata.labels)
    assert labels["statefulset.kubernetes.io/pod-name"] == "web-3"
    assert labels["apps.kubernetes.io/pod-index"] == "3"
    assert labels[REVISION_HASH_LABEL] == revision_name(sts)
    assert labels["app"] == "web"
    [volume] = created.spec.volumes
    assert (volume.name, volume.persistent_volume_claim.claim_name) == ("www", "www-web-3")
    [ref] = created.metadata.owner_references
    assert (ref.kind, ref.name, ref.controller) == ("StatefulSet", "web", True)
    claim_ = fx.client.stored(PersistentVolumeClaim, "www-web-3")
    assert claim_ is not None
    assert dict(claim_.metadata.labels) == LABELS
    assert list(claim_.metadata.owner_references) == [], "Retain: the claim outlives the set"


async def test_whendeleted_delete_creates_the_claim_owned_by_the_set() -> None:
    fx = Fixture.new()
    fx.seed_set(stateful_set(claims=True, when_deleted="Delete"))
    await fx.controller.sync("default/web")
    fx.close()
    claim_ = fx.client.stored(PersistentVolumeClaim, "www-web-0")
    assert claim_ is not None
    assert [(r.kind, r.uid) for r in claim_.metadata.owner_references] == [
        ("StatefulSet", "sts-uid")
    ]


async def test_whenscaled_delete_hands_the_condemned_claim_to_its_pod() -> None:
    fx = Fixture.new()
    condemned = pod(1)
    fx.seed_set(stateful_set(claims=True, replicas=1, when_scaled="Delete"))
    fx.seed(pod(0), condemned, claim("www-web-0"), claim("www-web-1"))
    await fx.controller.sync("default/web")
    fx.close()
    kept = fx.client.stored(PersistentVolumeClaim, "www-web-0")
    handed = fx.client.stored(PersistentVolumeClaim, "www-web-1")
    assert kept is not None
    assert handed is not None
    assert list(kept.metadata.owner_references) == []
    assert [(r.kind, r.name, r.uid) for r in handed.metadata.owner_references] == [
        ("Pod", "web-1", condemned.metadata.uid)
    ]


class Events:
    """Records what the controller would report."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def event(self, obj: Any, eventtype: str, reason: str, message: str) -> None:
        self.seen.append((eventtype, reason, message))


async def test_a_claim_being_deleted_blocks_its_pod_with_an_event() -> None:
    fx = Fixture.new()
    events = Events()
    fx.controller.recorder = events  # type: ignore[assignment]
    fx.seed_set(stateful_set(claims=True))
    fx.seed(claim("www-web-0", terminating=True))
    await fx.controller.sync("default/web")
    fx.close()
    assert fx.client.stored(Pod, "web-0") is None
    [(kind, reason, message)] = events.seen
    assert (kind, reason) == ("Warning", "FailedCreate")
    assert "PersistentVolumeClaim www-web-0 is being deleted" in message, message


async def test_creations_are_reported_in_kubernetes_words() -> None:
    fx = Fixture.new()
    events = Events()
    fx.controller.recorder = events  # type: ignore[assignment]
    fx.seed_set(stateful_set(claims=True))
    await fx.controller.sync("default/web")
    fx.close()
    assert events.seen == [
        (
            "Normal",
            "SuccessfulCreate",
            "create Claim www-web-0 Pod web-0 in StatefulSet web success",
        ),
        ("Normal", "SuccessfulCreate", "create Pod web-0 in StatefulSet web successful"),
    ]


async def test_below_the_partition_a_pod_comes_back_at_the_current_revision() -> None:
    fx = Fixture.new()
    fx.seed_set(updating(partition=2))
    fx.seed(pod(1, revision=REV), pod(2, revision=NEW_REV))
    await fx.controller.sync("default/web")
    fx.close()
    created = fx.client.stored(Pod, "web-0")
    assert created is not None
    assert created.metadata.labels[REVISION_HASH_LABEL] == REV
    assert created.spec.containers[0].image == "nginx:1"


async def test_at_or_above_the_partition_a_pod_comes_back_at_the_update_revision() -> None:
    fx = Fixture.new()
    fx.seed_set(updating(partition=1))
    fx.seed(pod(0, revision=REV), pod(2, revision=NEW_REV))
    await fx.controller.sync("default/web")
    fx.close()
    created = fx.client.stored(Pod, "web-1")
    assert created is not None
    assert created.metadata.labels[REVISION_HASH_LABEL] == NEW_REV
    assert created.spec.containers[0].image == "nginx:2"


async def test_a_failed_create_is_an_error_and_expects_nothing() -> None:
    fx = Fixture.new()
    fx.seed_set(stateful_set(parallel=True))
    fx.client.fail("create", "Pod", errors.Forbidden("exceeded quota"))
    with pytest.raises(errors.Forbidden):
        await fx.controller.sync("default/web")
    fx.close()
    assert fx.controller.expectations.satisfied("default/web")


# -- ControllerRevisions -------------------------------------------------------------------------


async def test_the_first_sync_records_revision_one_and_names_it_in_the_status() -> None:
    fx = Fixture.new()
    fx.seed(STS)
    await fx.controller.sync("default/web")
    fx.close()
    [revision] = fx.client.stored_list(ControllerRevision)
    assert revision.metadata.name == REV
    assert revision.revision == 1
    assert revision.metadata.labels[REVISION_HASH_LABEL] == template_hash(STS)
    data = to_dict(revision.data)
    assert data["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    stored = fx.client.stored(StatefulSet, "web")
    assert stored is not None
    assert (stored.status.current_revision, stored.status.update_revision) == (REV, REV)


async def test_a_new_template_is_the_update_revision_the_old_stays_current() -> None:
    fx = Fixture.new()
    fx.seed(updating(), revision_of(STS, 1), pod(0), pod(1), pod(2))
    await fx.controller.sync("default/web")
    fx.close()
    revisions = {r.metadata.name: r.revision for r in fx.client.stored_list(ControllerRevision)}
    assert revisions == {REV: 1, NEW_REV: 2}
    stored = fx.client.stored(StatefulSet, "web")
    assert stored is not None
    assert (stored.status.current_revision, stored.status.update_revision) == (REV, NEW_REV)


async def test_an_undo_renumbers_the_old_revision_and_rolls_back_to_it() -> None:
    # The set went back to nginx:1 while web-2 runs nginx:2.
    fx = Fixture.new()
    sts = stateful_set(current_revision=NEW_REV)
    fx.seed(sts, revision_of(STS, 1), revision_of(NEW, 2))
    fx.seed(pod(0, revision=NEW_REV), pod(1, revision=NEW_REV), pod(2, revision=NEW_REV))
    await fx.controller.sync("default/web")
    fx.close()
    revisions = {r.metadata.name: r.revision for r in fx.client.stored_list(ControllerRevision)}
    assert revisions == {REV: 3, NEW_REV: 2}
    assert writes(fx.client) == [delete("web-2")]


async def test_old_revisions_beyond_the_history_limit_go_unless_a_pod_runs_them() -> None:
    sts = stateful_set(image="nginx:9")
    sts.spec.revision_history_limit = 1
    old = [revision_of(stateful_set(image=f"nginx:{i}"), i) for i in (1, 2, 3)]
    first = revision_name(stateful_set(image="nginx:1"))
    fx = Fixture.new()
    fx.seed(sts, revision_of(sts, 4), *old, pod(0, revision=first))
    fx.controller.expectations.expect_creations("default/web", 0)
    await fx.controller.sync("default/web")
    fx.close()
    assert sorted(r.revision for r in fx.client.stored_list(ControllerRevision)) == [1, 4]


# -- status ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCase:
    name: str
    sts: StatefulSet
    pods: list[Pod]
    #: replicas, ready, available, current, updated
    want: tuple[int, int, int, int, int]
    want_current_revision: str


STATUS_CASES = [
    StatusCase("all up to date", STS, [pod(0), pod(1), pod(2)], (3, 3, 3, 3, 3), REV),
    StatusCase(
        "one not ready, one missing",
        STS,
        [pod(0), pod(1, ready=False)],
        (2, 1, 1, 2, 2),
        REV,
    ),
    StatusCase(
        "ready but not yet available for minReadySeconds",
        stateful_set(min_ready_seconds=60),
        [pod(0, ready_for=10), pod(1, ready_for=100)],
        (2, 2, 1, 2, 2),
        REV,
    ),
    StatusCase(
        "mid-update: current and updated counted apart",
        updating(),
        [pod(0), pod(1), pod(2, revision=NEW_REV)],
        (3, 3, 3, 2, 1),
        REV,
    ),
    StatusCase(
        "a terminating pod counts as a replica but not as current",
        updating(),
        [pod(0), pod(1), pod(2, terminating=True)],
        (3, 2, 2, 2, 0),
        REV,
    ),
    StatusCase(
        "every pod updated and ready: the update revision becomes current",
        updating(),
        [pod(0, revision=NEW_REV), pod(1, revision=NEW_REV), pod(2, revision=NEW_REV)],
        (3, 3, 3, 3, 3),
        NEW_REV,
    ),
    StatusCase(
        "a partitioned update never completes",
        updating(partition=1),
        [pod(0), pod(1, revision=NEW_REV), pod(2, revision=NEW_REV)],
        (3, 3, 3, 1, 2),
        REV,
    ),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: c.name)
async def test_status(case: StatusCase) -> None:
    fx = Fixture.new()
    sts = StatefulSet()
    sts.CopyFrom(case.sts)
    sts.metadata.generation = 3
    fx.seed_set(sts)
    fx.seed(*case.pods)
    # Act on nothing: the status describes what is there.
    fx.controller.expectations.expect_creations("default/web", 1)
    await fx.controller.sync("default/web")
    fx.close()
    stored = fx.client.stored(StatefulSet, "web")
    assert stored is not None
    s = stored.status
    got = (
        s.replicas,
        s.ready_replicas,
        s.available_replicas,
        s.current_replicas,
        s.updated_replicas,
    )
    assert got == case.want, f"{case.name}: got {got}, want {case.want}"
    assert s.current_revision == case.want_current_revision, case.name
    assert s.update_revision == revision_name(case.sts), case.name
    assert s.observed_generation == 0, f"{case.name}: a sync that did not act observed nothing"


async def test_a_sync_that_acts_observes_the_generation() -> None:
    fx = Fixture.new()
    sts = StatefulSet()
    sts.CopyFrom(STS)
    sts.metadata.generation = 5
    fx.seed_set(sts)
    fx.seed(pod(0), pod(1), pod(2))
    await fx.controller.sync("default/web")
    fx.close()
    stored = fx.client.stored(StatefulSet, "web")
    assert stored is not None
    assert stored.status.observed_generation == 5

"""The Deployment controller's `sync`, table by table, on the fake client
(Kubernetes' pkg/controller/deployment: deployment_controller_test.go,
sync_test.go, rolling_test.go, recreate_test.go and progress_test.go; the
cases are ported, the code is kpy's).

Each case names what the listers hold (a Deployment, its ReplicaSets and
pods) and the writes one `sync` makes, as in test_replicaset_sync.py:
`verb Kind namespace/name (subresource)`, `*` matching any text. Deployment
`foo` runs image v2 unless a case says otherwise; `{v1}` in a table stands
for the name of foo's ReplicaSet for image v1, `foo-<hash of that
template>` as the controller names it (what `kpyctl get rs` shows). Each
case presets the Deployment's revision and Progressing condition as an
earlier sync left them, so that the table shows only what this sync adds.
"""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api import errors
from kpy.api.apps.v1 import Deployment, ReplicaSet
from kpy.api.core.v1 import Pod
from kpy.api.defaults import set_defaults
from kpy.api.intstr import from_value
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.controllers.deployment import DeploymentController, util
from kpy.controllers.deployment.sync import new_replica_set_for
from kpy.controllers.replicaset import POD_OWNER_INDEX, pod_owner_index

if TYPE_CHECKING:
    from google.protobuf.message import Message

NOW = 1_700_000_000.0
_uids = itertools.count(1)


# -- builders (Kubernetes' newDeployment, newReplicaSet, newRSWithStatus) ----------------------


def deployment(
    replicas: int,
    *,
    image: str = "v2",
    surge: int | str = 1,
    unavailable: int | str = 0,
    strategy: str = "RollingUpdate",
    paused: bool = False,
    history: int = 10,
    revision: int = 0,
    deleting: bool = False,
    progressing: tuple[str, float] | None = None,
    status_replicas: tuple[int, int, int] = (0, 0, 0),
) -> Deployment:
    """Deployment `foo` running `image`. `progressing`: the reason and time
    of its Progressing condition; `status_replicas`: (replicas, updated,
    available) as its last status said."""
    d = Deployment()
    d.metadata.name = "foo"
    d.metadata.namespace = "default"
    d.metadata.uid = "foo-uid"
    d.metadata.generation = 1
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = "foo"
    d.spec.template.metadata.labels["app"] = "foo"
    d.spec.template.spec.containers.add(name="app", image=image)
    d.spec.strategy.type = strategy
    if strategy == "RollingUpdate":
        d.spec.strategy.rolling_update.max_surge.CopyFrom(from_value(surge))
        d.spec.strategy.rolling_update.max_unavailable.CopyFrom(from_value(unavailable))
    d.spec.paused = paused
    d.spec.revision_history_limit = history
    d.spec.progress_deadline_seconds = 600
    if revision:
        d.metadata.annotations[util.REVISION_ANNOTATION] = str(revision)
    if deleting:
        d.metadata.deletion_timestamp.FromSeconds(int(NOW))
        d.metadata.finalizers.append("foregroundDeletion")
    d.status.observed_generation = 1
    d.status.replicas, d.status.updated_replicas, d.status.available_replicas = status_replicas
    d.status.ready_replicas = d.status.available_replicas
    d.status.unavailable_replicas = max(0, d.status.replicas - d.status.available_replicas)
    if progressing is not None:
        reason, since = progressing
        d.status.conditions.append(
            util.new_deployment_condition("Progressing", "True", reason, "", now=since)
        )
    return set_defaults(d)


def available(d: Deployment) -> Deployment:
    """`d` with the Available condition a complete rollout gives it."""
    d.status.conditions.append(
        util.new_deployment_condition(
            util.DEPLOYMENT_AVAILABLE,
            "True",
            util.MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
            now=NOW - 50,
        )
    )
    return d


def replica_set(
    d: Deployment,
    image: str,
    replicas: int,
    *,
    available: int | None = None,
    revision: int = 1,
    age: int = 100,
    owned: bool = True,
) -> ReplicaSet:
    """The ReplicaSet of `d` for `image` (named as the controller names
    it), `available` of its `replicas` pods available (all by default), its
    replicas annotations saying it was sized for `d`'s replicas."""
    template = Deployment()
    template.CopyFrom(d)
    template.spec.template.spec.containers[0].image = image
    rs = new_replica_set_for(template)
    rs.metadata.uid = f"rs-uid-{next(_uids)}"
    rs.metadata.generation = 1
    rs.metadata.creation_timestamp.FromSeconds(int(NOW) - age)
    if not owned:
        del rs.metadata.owner_references[:]
    rs.metadata.annotations[util.REVISION_ANNOTATION] = str(revision)
    util.set_replicas_annotations(rs, d.spec.replicas, d.spec.replicas + util.max_surge(d))
    rs.spec.replicas = replicas
    available = replicas if available is None else available
    rs.status.replicas = replicas
    rs.status.ready_replicas = available
    rs.status.available_replicas = available
    rs.status.observed_generation = 1
    return set_defaults(rs)


def name_of(d: Deployment, image: str) -> str:
    """`foo-<hash>` of the ReplicaSet that runs `image` for `d`."""
    return replica_set(d, image, 0).metadata.name


# -- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    d: Deployment
    replica_sets: list[ReplicaSet] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    #: the writes, with `{v1}`... standing for the name of the ReplicaSet of that image.
    want: list[str] = field(default_factory=list)
    #: what the sync raises (to be retried), if anything.
    error: type[Exception] | None = None
    #: spec.replicas of the ReplicaSets afterwards, by image (unchecked if empty).
    sizes: dict[str, int] = field(default_factory=dict)
    #: the reason of the Progressing condition afterwards (unchecked if "").
    progressing: str = ""


D_STATUS = "update Deployment default/foo (status)"
D_UPDATE = "update Deployment default/foo"


def rs_update(image: str) -> str:
    return f"update ReplicaSet default/{{{image}}}"


# Mid-rollout: revision 2 (image v2) recorded, progress seen 10 s ago.
_d10 = deployment(
    10, surge=3, unavailable=2, revision=2, progressing=(util.REPLICA_SET_UPDATED_REASON, NOW - 10)
)
_recreate = deployment(3, strategy="Recreate")
_history = deployment(
    2,
    image="v4",
    history=1,
    revision=4,
    status_replicas=(2, 2, 2),
    progressing=(util.NEW_RS_AVAILABLE_REASON, NOW - 10),
)
# `kpyctl rollout undo --to-revision=1` wrote revision 1's template back.
_rolled_back = deployment(2, image="v1", revision=2, status_replicas=(2, 2, 2))

CASES = [
    Case(
        "a new Deployment creates its ReplicaSet at full size (surge 1 covers 1 replica)",
        deployment(1),
        want=["create ReplicaSet default/{v2}", D_UPDATE, D_STATUS, D_STATUS],
    ),
    Case(
        "a complete rollout with an up-to-date status writes nothing",
        available(
            deployment(
                2,
                revision=1,
                progressing=(util.NEW_RS_AVAILABLE_REASON, NOW - 50),
                status_replicas=(2, 2, 2),
            )
        ),
        replica_sets=[replica_set(deployment(2), "v2", 2)],
        want=[],
    ),
    Case(
        "a template change scales the new ReplicaSet up by maxSurge first",
        _d10,
        replica_sets=[replica_set(_d10, "v1", 10), replica_set(_d10, "v2", 0, revision=2)],
        want=[rs_update("v2"), D_STATUS],
        sizes={"v1": 10, "v2": 3},
    ),
    Case(
        "then the old ReplicaSet down by what maxUnavailable allows",
        _d10,
        replica_sets=[
            replica_set(_d10, "v1", 10),
            replica_set(_d10, "v2", 3, available=0, revision=2),
        ],
        want=[rs_update("v1"), D_STATUS],
        sizes={"v1": 8, "v2": 3},
    ),
    Case(
        "a broken new ReplicaSet keeps even unhealthy old pods (13 - 8 - 5 = 0)",
        _d10,
        replica_sets=[
            replica_set(_d10, "v1", 8, available=6),
            replica_set(_d10, "v2", 5, available=0, revision=2),
        ],
        want=[D_STATUS],
    ),
    Case(
        "a replicas change mid-rollout scales proportionally, without rolling",
        deployment(
            20,
            surge=3,
            unavailable=2,
            revision=2,
            progressing=(util.REPLICA_SET_UPDATED_REASON, NOW - 10),
        ),
        replica_sets=[
            replica_set(_d10, "v1", 8),
            replica_set(_d10, "v2", 5, available=0, revision=2),
        ],
        want=[rs_update("v1"), rs_update("v2"), D_STATUS],
        sizes={"v1": 14, "v2": 9},  # 10 more in proportion: 8 * 23/13 and 5 * 23/13
    ),
    Case(
        "a paused Deployment only scales: no new ReplicaSet for its new template",
        deployment(5, paused=True, revision=1),
        replica_sets=[replica_set(deployment(3), "v1", 3)],
        want=[D_STATUS, rs_update("v1"), D_STATUS],
    ),
    Case(
        "a paused Deployment does not roll out its new template",
        deployment(3, paused=True, revision=1),
        replica_sets=[replica_set(deployment(3), "v1", 3)],
        want=[D_STATUS, D_STATUS],
        sizes={"v1": 3},
        progressing=util.PAUSED_DEPLOY_REASON,
    ),
    Case(
        "Recreate scales the old ReplicaSet to 0 before anything else",
        _recreate,
        replica_sets=[replica_set(_recreate, "v1", 3)],
        want=[rs_update("v1"), D_STATUS],
        sizes={"v1": 0},
    ),
    Case(
        "Recreate creates the new ReplicaSet once the old pods are gone",
        _recreate,
        replica_sets=[replica_set(_recreate, "v1", 0)],
        want=["create ReplicaSet default/{v2}", D_UPDATE, D_STATUS, D_STATUS],
    ),
    Case(
        "a complete rollout deletes history beyond revisionHistoryLimit, oldest first",
        _history,
        replica_sets=[
            replica_set(_history, "v1", 0, revision=1),
            replica_set(_history, "v2", 0, revision=2),
            replica_set(_history, "v3", 0, revision=3),
            replica_set(_history, "v4", 2, revision=4),
        ],
        want=["delete ReplicaSet default/{v1}", "delete ReplicaSet default/{v2}", D_STATUS],
    ),
    Case(
        "no progress past the deadline sets ProgressDeadlineExceeded",
        deployment(
            2,
            revision=1,
            progressing=(util.REPLICA_SET_UPDATED_REASON, NOW - 700),
            status_replicas=(2, 2, 0),
        ),
        replica_sets=[replica_set(deployment(2), "v2", 2, available=0)],
        want=[D_STATUS],
        progressing=util.TIMED_OUT_REASON,
    ),
    Case(
        "after a rollback to revision 1, its ReplicaSet is the new one, as revision 3",
        _rolled_back,
        replica_sets=[
            replica_set(_rolled_back, "v1", 0, revision=1),
            replica_set(_rolled_back, "v2", 2, revision=2),
        ],
        # As in Kubernetes, the second step works on the lister's copy, which
        # the first just made stale: the sync fails with Conflict and its retry
        # (on fresh objects) goes on with the rollout.
        want=[rs_update("v1"), rs_update("v1")],
        error=errors.Conflict,
    ),
    Case(
        "a matching orphan ReplicaSet is adopted",
        deployment(1, revision=1),
        replica_sets=[replica_set(deployment(1), "v2", 1, owned=False)],
        want=["patch ReplicaSet default/{v2}", D_STATUS, D_STATUS],
    ),
    Case(
        "a Deployment being deleted only gets its status",
        deployment(3, deleting=True),
        replica_sets=[replica_set(deployment(3), "v1", 3)],
        want=[D_STATUS],
    ),
]


@dataclass
class Fixture:
    """A DeploymentController over a FakeClient, its informers never run:
    `seed` puts objects both in the client and in the listers."""

    client: FakeClient
    informers: dict[type[Any], SharedInformer[Any]]
    controller: DeploymentController

    @classmethod
    def new(cls) -> Fixture:
        client = FakeClient(now=lambda: NOW)
        informers: dict[type[Any], SharedInformer[Any]] = {
            kind: SharedInformer(client, kind) for kind in (Deployment, ReplicaSet, Pod)
        }
        informers[Pod].add_indexers({POD_OWNER_INDEX: pod_owner_index})
        controller = DeploymentController(
            client, informers[Deployment], informers[ReplicaSet], informers[Pod], now=lambda: NOW
        )
        return cls(client, informers, controller)

    def seed(self, *objects: Message) -> None:
        for stored in self.client.add(*objects):
            self.informers[type(stored)].indexer.add(stored)

    async def sync(self) -> None:
        try:
            await self.controller.sync("default/foo")
        finally:
            self.controller.queue.shut_down()


def expand(want: list[str], d: Deployment) -> list[str]:
    """`{v1}` in `want` as the name of d's ReplicaSet for image v1."""
    images = {f"{{{i}}}": name_of(d, i) for i in ("v1", "v2", "v3", "v4")}
    out = []
    for line in want:
        for placeholder, name in images.items():
            line = line.replace(placeholder, name)
        out.append(line)
    return out


def matches(got: list[str], want: list[str]) -> bool:
    return len(got) == len(want) and all(
        fnmatch.fnmatchcase(g, w) for g, w in zip(got, want, strict=True)
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_sync(case: Case) -> None:
    fx = Fixture.new()
    fx.seed(case.d, *case.replica_sets, *case.pods)
    if case.error is None:
        await fx.sync()
    else:
        with pytest.raises(case.error):
            await fx.sync()
    got = [str(a) for a in fx.client.writes()]
    want = expand(case.want, case.d)
    assert matches(got, want), f"{case.name}:\n got  {got}\n want {want}"
    if case.sizes:
        by_name = {rs.metadata.name: rs.spec.replicas for rs in fx.client.stored_list(ReplicaSet)}
        sizes = {image: by_name[name_of(case.d, image)] for image in case.sizes}
        assert sizes == case.sizes, case.name
    if case.progressing:
        stored = fx.client.stored(Deployment, "foo")
        assert stored is not None
        condition = util.get_deployment_condition(stored.status, util.DEPLOYMENT_PROGRESSING)
        assert condition is not None, case.name
        assert condition.reason == case.progressing, case.name

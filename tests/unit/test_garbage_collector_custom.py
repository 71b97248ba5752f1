"""The garbage collector with custom kinds, on the fake client with real
informers: it follows each Established CRD's kind, so ownerReferences to and
from custom objects are collected with every propagation policy, and it
stops following a kind when its CRD goes. Also the graph's `unobserve`,
which lets a kind go without judging its objects.

Each test works in an API group of its own under `.gc.test.kpy`; the kinds it
registers in the process's scheme are unregistered afterwards."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import codec, errors
from kpy.api.apiextensions.v1 import CustomResourceDefinition
from kpy.api.apps.v1 import Deployment
from kpy.api.core.v1 import ConfigMap
from kpy.api.meta.v1 import ObjectMeta, OwnerReference
from kpy.api.scheme import scheme
from kpy.api.unstructured import custom_kind, is_custom
from kpy.cache.events import EventBroadcaster
from kpy.cache.informer import EventHandler, SharedInformerFactory
from kpy.client.fake import FakeClient
from kpy.controllers.base import ControllerContext
from kpy.controllers.garbagecollector import new_garbage_collector
from kpy.controllers.garbagecollector.collector import watched_kinds
from kpy.controllers.garbagecollector.graph import Graph, ObjectRef, ObjectState, OwnerRef
from kpy.metrics import Metrics

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from kpy.api.unstructured import CustomObject
    from kpy.controllers.garbagecollector import GarbageCollector

SUFFIX = ".gc.test.kpy"
NS = "default"


@pytest.fixture(autouse=True)
def _forget_test_kinds() -> Iterator[None]:
    yield
    for info in scheme.all():
        if is_custom(info.message) and info.group.endswith(SUFFIX):
            scheme.unregister(info.api_version, info.kind)


def crd(group: str, *, established: bool = True) -> CustomResourceDefinition:
    body: dict[str, Any] = {
        "metadata": {"name": f"webapps.{group}", "uid": str(uuid.uuid4())},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "webapps", "kind": "WebApp", "singular": "webapp"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    if established:
        body["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
    return codec.from_dict(CustomResourceDefinition, body)


def webapp_class(group: str) -> type[CustomObject]:
    return custom_kind(
        f"{group}/v1", "WebApp", plural="webapps", status_subresource=True, storage_version="v1"
    )


def ref(obj: Any, *, block: bool = True) -> OwnerReference:
    kind = type(obj).__name__
    api = obj.api_version() if is_custom(type(obj)) else scheme.for_message(type(obj)).api_version
    return OwnerReference(
        api_version=api,
        kind=kind,
        name=obj.metadata.name,
        uid=obj.metadata.uid,
        block_owner_deletion=block,
    )


def meta(name: str, *owners: OwnerReference) -> ObjectMeta:
    return ObjectMeta(name=name, namespace=NS, owner_references=list(owners))


def deployment(name: str, *owners: OwnerReference) -> Deployment:
    labels = {"app": name}
    d = codec.from_dict(
        Deployment,
        {
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            }
        },
    )
    d.metadata.CopyFrom(meta(name, *owners))
    return d


async def wait_until(done: Callable[[], bool], what: str) -> None:
    try:
        with anyio.fail_after(10):
            while not done():  # noqa: ASYNC110 - the fake store has no event to wait on
                await anyio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"not reached within 10 s: {what}")


@asynccontextmanager
async def collecting(client: FakeClient) -> AsyncIterator[GarbageCollector]:
    """The garbage collector as the controller manager builds it, running."""
    informers = SharedInformerFactory(client)
    ctx = ControllerContext(client, informers, Metrics(), informers, EventBroadcaster(client))
    gc = new_garbage_collector(ctx)
    async with anyio.create_task_group() as tg:
        tg.start_soon(informers.run)
        await informers.wait_for_cache_sync()
        tg.start_soon(gc.run, 2)
        yield gc
        tg.cancel_scope.cancel()


def following(gc: GarbageCollector, group: str) -> bool:
    return gc.resolve(f"{group}/v1", "WebApp") is not None


# -- cascading deletion across custom and built-in kinds ---------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    #: "WebApp" or "ConfigMap"
    owner: str
    #: the kinds of its dependents ("WebApp", "ConfigMap", "Deployment")
    dependents: list[str]
    policy: str
    #: Orphan: the dependents stay, without the reference
    orphaned: bool = False


BUILT_IN = ["Deployment", "ConfigMap"]
CASES = [
    Case("custom owner, built-in dependents, Background", "WebApp", BUILT_IN, "Background"),
    Case("custom owner, built-in dependents, Foreground", "WebApp", BUILT_IN, "Foreground"),
    Case("custom owner, built-in dependent, Orphan", "WebApp", ["ConfigMap"], "Orphan", True),
    Case(
        "built-in owner, custom dependents, Background", "ConfigMap", ["WebApp"] * 2, "Background"
    ),
    Case("built-in owner, custom dependent, Foreground", "ConfigMap", ["WebApp"], "Foreground"),
    Case("built-in owner, custom dependent, Orphan", "ConfigMap", ["WebApp"], "Orphan", True),
    Case("custom owner, custom dependent, Background", "WebApp", ["WebApp"], "Background"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_cascading_deletion(case: Case) -> None:
    client = FakeClient()
    group = f"g{uuid.uuid4().hex[:8]}{SUFFIX}"
    client.add(crd(group))

    def make(kind: str, name: str, *owners: OwnerReference) -> Any:
        if kind == "WebApp":
            return WebApp(metadata=meta(name, *owners), spec={"replicas": 1})
        if kind == "Deployment":
            return deployment(name, *owners)
        return ConfigMap(metadata=meta(name, *owners))

    async with collecting(client) as gc:
        # The kind did not exist when the collector started: it follows the CRD.
        await wait_until(lambda: following(gc, group), "the WebApp kind followed")
        WebApp = webapp_class(group)
        owner = await client.create(make(case.owner, "owner"))
        dependents = [
            await client.create(make(kind, f"dep-{i}", ref(owner)))
            for i, kind in enumerate(case.dependents)
        ]
        await wait_until(
            lambda: len(gc.graph.dependents(owner.metadata.uid)) == len(dependents),
            "the dependents in the graph",
        )
        await client.delete(type(owner), "owner", namespace=NS, propagation_policy=case.policy)

        def stored(obj: Any) -> Any:
            return client.stored(type(obj), obj.metadata.name, NS)

        def gone(obj: Any) -> bool:
            return stored(obj) is None

        await wait_until(lambda: stored(owner) is None, f"{case.name}: the owner gone")
        for dep in dependents:
            if case.orphaned:
                left = stored(dep)
                assert left is not None, case.name
                assert list(left.metadata.owner_references) == [], case.name
            else:
                await wait_until(partial(gone, dep), f"{case.name}: dependent gone")
        if case.policy == "Foreground":
            # the owner went last: its dependents were deleted while it waited
            deletes = [a.name for a in client.writes() if a.verb == "delete"]
            assert deletes[0] == "owner", case.name
            assert sorted(deletes[1:]) == sorted(d.metadata.name for d in dependents), case.name


# -- following CRDs -----------------------------------------------------------------------------


async def test_an_owner_of_a_kind_not_followed_yet_is_never_judged_absent() -> None:
    """Until its CRD is Established, a reference to a WebApp is kept; once
    it is, the reference is looked at again and found dangling."""
    client = FakeClient()
    group = f"g{uuid.uuid4().hex[:8]}{SUFFIX}"
    WebApp = webapp_class(group)
    [pending] = client.add(crd(group, established=False))
    ghost = WebApp(metadata=ObjectMeta(name="ghost", namespace=NS, uid=str(uuid.uuid4())))
    async with collecting(client) as gc:
        await client.create(ConfigMap(metadata=meta("of-ghost", ref(ghost))))
        await wait_until(lambda: gc.graph.get(ghost.metadata.uid) is not None, "the ghost seen")
        for _ in range(20):  # the collector idles; the dependent stays
            await anyio.sleep(0.01)
        assert client.stored(ConfigMap, "of-ghost", NS) is not None
        assert not following(gc, group)

        pending.status.conditions.add(type="Established", status="True")
        await client.update_status(pending)
        await wait_until(
            lambda: client.stored(ConfigMap, "of-ghost", NS) is None, "the dependent collected"
        )


async def test_a_crd_that_goes_takes_the_dependents_of_its_objects() -> None:
    """The CRD's delete event may come before its last objects': the kind
    stops being followed, and its objects count as gone with their CRD (here
    the fake store even keeps the owner: only the CRD says it is gone)."""
    client = FakeClient()
    group = f"g{uuid.uuid4().hex[:8]}{SUFFIX}"
    WebApp = webapp_class(group)
    client.add(crd(group))
    async with collecting(client) as gc:
        await wait_until(lambda: following(gc, group), "the WebApp kind followed")
        owner = await client.create(WebApp(metadata=meta("owner"), spec={}))
        ghost = WebApp(metadata=ObjectMeta(name="ghost", namespace=NS, uid=str(uuid.uuid4())))
        dependents = [
            await client.create(ConfigMap(metadata=meta("of-owner", ref(owner)))),
            await client.create(ConfigMap(metadata=meta("of-ghost", ref(ghost, block=False)))),
        ]
        await wait_until(lambda: gc.graph.dependents(owner.metadata.uid) != [], "the graph built")

        await client.delete(CustomResourceDefinition, f"webapps.{group}", namespace="")
        await wait_until(lambda: not following(gc, group), "the kind no longer followed")
        assert gc.follower is not None
        assert gc.follower.followed_kinds() == []
        for dep in dependents:
            name = dep.metadata.name
            await wait_until(
                lambda n=name: client.stored(ConfigMap, n, NS) is None,  # type: ignore[misc]
                f"{name} collected",
            )
        assert gc.graph.get(owner.metadata.uid) is None


async def test_a_crd_read_in_another_version_keeps_the_dependents_of_its_objects() -> None:
    """The storage version moves from v1 to v2: the collector watches v2
    instead; nothing is judged gone on the way."""
    client = FakeClient()
    group = f"g{uuid.uuid4().hex[:8]}{SUFFIX}"
    [stored] = client.add(crd(group))
    async with collecting(client) as gc:
        await wait_until(lambda: following(gc, group), "the WebApp kind followed")
        owner = await client.create(webapp_class(group)(metadata=meta("owner"), spec={}))
        kept = await client.create(ConfigMap(metadata=meta("kept", ref(owner))))
        await wait_until(lambda: gc.graph.dependents(owner.metadata.uid) != [], "the graph built")

        v1 = stored.spec.versions[0]
        v1.storage = False
        stored.spec.versions.add().CopyFrom(v1)
        stored.spec.versions[1].name, stored.spec.versions[1].storage = "v2", True
        await client.update(stored)

        def watched_in() -> str:
            info = gc.resolve(f"{group}/v1", "WebApp")
            return "" if info is None else info.version

        await wait_until(lambda: watched_in() == "v2", "the WebApp kind followed in v2")
        await wait_until(lambda: bool(gc.graph.get(owner.metadata.uid)), "the owner seen again")
        for _ in range(20):  # the collector idles; the dependent stays
            await anyio.sleep(0.01)
        assert client.stored(ConfigMap, kept.metadata.name, NS) is not None


async def test_the_workers_wait_for_a_newly_followed_kind_to_be_listed() -> None:
    """As Kubernetes' collector holds its workers while new monitors sync:
    an owner orphaned just after its dependents' kind is followed still
    finds them (here the kind's first list fails, so it comes late)."""
    client = FakeClient()
    group = f"g{uuid.uuid4().hex[:8]}{SUFFIX}"
    client.add(crd(group))
    WebApp = webapp_class(group)
    owner = await client.create(ConfigMap(metadata=meta("owner")))
    await client.create(WebApp(metadata=meta("dependent", ref(owner)), spec={}))
    lists = 0

    def first_list_fails(_action: Any) -> None:
        nonlocal lists
        lists += 1
        if lists == 1:
            raise errors.Unavailable("the API server is restarting")

    client.prepend_reactor("list", "WebApp", first_list_fails)
    async with collecting(client) as gc:
        await wait_until(lambda: following(gc, group), "the WebApp kind followed")
        await client.delete(ConfigMap, "owner", namespace=NS, propagation_policy="Orphan")
        await wait_until(lambda: client.stored(ConfigMap, "owner", NS) is None, "owner gone")
        left = client.stored(WebApp, "dependent", NS)
        assert left is not None
        assert list(left.metadata.owner_references) == []
        assert lists >= 2


async def test_a_resource_the_server_does_not_serve_says_nothing_of_the_owner() -> None:
    """An API server that does not serve the kind (yet) answers "resource
    not found": that is retried, never taken for an absent owner."""
    client = FakeClient()
    group = f"g{uuid.uuid4().hex[:8]}{SUFFIX}"
    client.add(crd(group))
    async with collecting(client) as gc:
        await wait_until(lambda: following(gc, group), "the WebApp kind followed")
        WebApp = webapp_class(group)
        not_served = errors.NotFound(
            'the server could not find the requested resource "webapps" in ' + group + "/v1"
        )
        client.fail("get", "WebApp", not_served)
        ghost = WebApp(metadata=ObjectMeta(name="ghost", namespace=NS, uid=str(uuid.uuid4())))
        await client.create(ConfigMap(metadata=meta("of-ghost", ref(ghost))))
        await wait_until(
            lambda: any(a.verb == "get" and a.kind == "WebApp" for a in client.actions),
            "the owner looked up",
        )
        for _ in range(20):
            await anyio.sleep(0.01)
        assert client.stored(ConfigMap, "of-ghost", NS) is not None


def test_watched_kinds_leave_custom_kinds_to_their_crds() -> None:
    group = f"g{uuid.uuid4().hex[:8]}{SUFFIX}"
    webapp_class(group)
    kinds = {(i.group, i.kind) for i in watched_kinds()}
    assert (group, "WebApp") not in kinds
    assert ("apps", "Deployment") in kinds
    assert ("", "Event") not in kinds


# -- the graph: unobserve ---------------------------------------------------------------------


def _state(name: str, *owners: str, kind: str = "WebApp") -> ObjectState:
    api = "x.test/v1" if kind == "WebApp" else "v1"
    return ObjectState(
        ObjectRef(api, kind, "ns", name, name),
        owners=tuple(OwnerRef("x.test/v1", "WebApp", o, o) for o in owners),
    )


@dataclass(frozen=True)
class UnobserveCase:
    name: str
    states: list[ObjectState]
    unobserve: str
    #: uid -> observed, for every node left
    nodes: dict[str, bool]


UNOBSERVE = [
    UnobserveCase("a lone object goes", [_state("a")], "a", {}),
    UnobserveCase(
        "an owner with a dependent stays, virtual",
        [_state("a"), _state("cm", "a", kind="ConfigMap")],
        "a",
        {"a": False, "cm": True},
    ),
    UnobserveCase(
        "a dependent lets go of its virtual owner, which goes",
        [_state("w", "ghost")],
        "w",
        {},
    ),
    UnobserveCase("an unknown uid changes nothing", [_state("a")], "zzz", {"a": True}),
]


@pytest.mark.parametrize("case", UNOBSERVE, ids=lambda c: c.name)
def test_unobserve(case: UnobserveCase) -> None:
    graph = Graph()
    for st in case.states:
        graph.observe(st)
    graph.unobserve(case.unobserve)
    left = {uid: graph.get(uid) for uid in ("a", "cm", "w", "ghost", "zzz")}
    assert {u: n.observed for u, n in left.items() if n is not None} == case.nodes, case.name
    assert not graph.is_absent(ObjectRef("x.test/v1", "WebApp", "ns", "a", "a")), case.name


def test_nodes_of_a_kind() -> None:
    graph = Graph()
    graph.observe(_state("a"))
    graph.observe(_state("cm", "ghost", kind="ConfigMap"))
    found = sorted(n.identity.uid for n in graph.nodes_of("x.test", "WebApp"))
    assert found == ["a", "ghost"]
    assert [n.identity.uid for n in graph.nodes_of("", "ConfigMap")] == ["cm"]


# -- informers on a custom kind ----------------------------------------------------------------


async def test_an_informer_on_a_custom_kind_can_be_forgotten_and_made_again() -> None:
    """`SharedInformerFactory.informer(WebApp)` lists and watches a custom
    kind; `forget` stops it (its handlers hear nothing more) and a later
    `informer` lists afresh."""
    client = FakeClient()
    WebApp = webapp_class(f"g{uuid.uuid4().hex[:8]}{SUFFIX}")
    await client.create(WebApp(metadata=meta("first"), spec={}))
    factory = SharedInformerFactory(client)
    heard: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(factory.run)
        first = factory.informer(WebApp)
        first.add_event_handler(
            EventHandler(on_add=lambda obj, _initial: heard.append(obj.metadata.name))
        )
        await first.wait_for_sync()
        await client.create(WebApp(metadata=meta("second"), spec={}))
        await wait_until(lambda: heard == ["first", "second"], "both WebApps heard")
        assert [o.metadata.name for o in first.lister().list(NS)] == ["first", "second"]

        factory.forget(WebApp)
        await client.create(WebApp(metadata=meta("third"), spec={}))
        again = factory.informer(WebApp)
        assert again is not first
        await again.wait_for_sync()
        assert len(again.lister().list(NS)) == 3
        await anyio.sleep(0.05)
        assert heard == ["first", "second"]  # the forgotten informer is stopped
        factory.forget(WebApp)
        factory.forget(WebApp)  # twice: nothing to stop
        tg.cancel_scope.cancel()


def test_informers_are_made_and_forgotten_without_an_event_loop() -> None:
    """Components build their informers in constructors, before anything
    runs: neither call may need the event loop."""
    factory = SharedInformerFactory(FakeClient())
    WebApp = webapp_class(f"g{uuid.uuid4().hex[:8]}{SUFFIX}")
    first = factory.informer(WebApp)
    factory.forget(WebApp)
    assert factory.informer(WebApp) is not first

"""The in-memory FakeClient keeps the API server's rules that controllers
depend on: resourceVersions, AlreadyExists, validation and defaulting, the
status subresource, finalizers, selectors and watches (kpy/client/fake.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from kpy.api import errors
from kpy.api.apps.v1 import ReplicaSet
from kpy.api.core.v1 import ConfigMap, Node, Pod
from kpy.api.meta.v1 import Preconditions
from kpy.cache.informer import EventHandler, SharedInformer
from kpy.client.fake import Action, FakeClient


def pod(name: str = "web", *, labels: dict[str, str] | None = None, node: str = "") -> Pod:
    p = Pod()
    p.metadata.name = name
    p.metadata.namespace = "default"
    p.metadata.labels.update(labels or {})
    p.spec.containers.add(name="app", image="busybox")
    p.spec.node_name = node
    return p


def replica_set(name: str = "rs", replicas: int = 1) -> ReplicaSet:
    rs = ReplicaSet()
    rs.metadata.name = name
    rs.metadata.namespace = "default"
    rs.spec.replicas = replicas
    rs.spec.selector.match_labels["app"] = "web"
    rs.spec.template.metadata.labels["app"] = "web"
    rs.spec.template.spec.containers.add(name="app", image="busybox")
    return rs


# -- create -----------------------------------------------------------------------------------


async def test_create_sets_what_the_server_sets() -> None:
    client = FakeClient(now=lambda: 1_000.0)
    sent = pod()
    sent.status.phase = "Running"  # a client may not set the status on create
    created = await client.create(sent)
    m = created.metadata
    assert m.uid
    assert m.creation_timestamp.seconds == 1_000
    assert m.generation == 1
    assert m.resource_version == "1"
    assert created.status.phase == "Pending"
    assert created.spec.containers[0].image_pull_policy == "Always", "defaults run"
    assert not sent.metadata.uid, "the caller's object is not changed"
    assert client.stored(Pod, "web") == created


async def test_resource_versions_are_one_counter_across_kinds() -> None:
    client = FakeClient()
    a = await client.create(pod("a"))
    rs = await client.create(replica_set())
    b = await client.create(pod("b"))
    assert [a.metadata.resource_version, rs.metadata.resource_version] == ["1", "2"]
    assert b.metadata.resource_version == "3"


async def test_a_taken_name_is_already_exists() -> None:
    client = FakeClient()
    await client.create(pod())
    with pytest.raises(errors.AlreadyExists, match='pods "web" already exists'):
        await client.create(pod())


async def test_generate_name_gives_a_predictable_series() -> None:
    client = FakeClient()
    template = pod("")
    template.metadata.generate_name = "web-"
    first = await client.create(template)
    second = await client.create(template)
    assert first.metadata.name == "web-bbbbc"
    assert second.metadata.name == "web-bbbbd"


@dataclass(frozen=True)
class InvalidCase:
    name: str
    obj: Pod | ReplicaSet
    path: str


def _bad_name() -> Pod:
    return pod("Not_A_Name")


def _selector_mismatch() -> ReplicaSet:
    rs = replica_set()
    rs.spec.template.metadata.labels["app"] = "other"
    return rs


def _bad_generate_name() -> Pod:
    p = pod("")
    p.metadata.generate_name = "Bad_"
    return p


INVALID_CASES = [
    InvalidCase("a name that is no DNS subdomain", _bad_name(), "metadata.name"),
    InvalidCase("a template the selector misses", _selector_mismatch(), "spec.template"),
    InvalidCase("a bad generateName is reported as such", _bad_generate_name(), "generateName"),
]


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda c: c.name)
async def test_validation_refuses_bad_objects(case: InvalidCase) -> None:
    client = FakeClient()
    with pytest.raises(errors.Invalid) as caught:
        await client.create(case.obj)
    assert any(case.path in c.path for c in caught.value.causes), (case.name, caught.value)
    assert client.stored_list(type(case.obj)) == [], case.name


# -- update -----------------------------------------------------------------------------------


async def test_a_stale_resource_version_is_a_conflict() -> None:
    client = FakeClient()
    created = await client.create(pod())
    fresh = pod()
    fresh.CopyFrom(created)
    fresh.metadata.labels["v"] = "1"
    await client.update(fresh)
    created.metadata.labels["v"] = "2"
    with pytest.raises(errors.Conflict, match="has been modified"):
        await client.update(created)
    stored = client.stored(Pod, "web")
    assert stored is not None
    assert stored.metadata.labels["v"] == "1"


async def test_generation_counts_spec_changes_only() -> None:
    client = FakeClient()
    rs = await client.create(replica_set())
    rs.metadata.labels["touched"] = "yes"
    rs = await client.update(rs)
    assert rs.metadata.generation == 1
    rs.spec.replicas = 3
    rs = await client.update(rs)
    assert rs.metadata.generation == 2


async def test_status_and_main_paths_write_their_own_part() -> None:
    client = FakeClient()
    rs = await client.create(replica_set())
    rs.status.replicas = 5
    rs.spec.replicas = 9  # ignored on the status path
    after_status = await client.update_status(rs)
    assert (after_status.spec.replicas, after_status.status.replicas) == (1, 5)
    after_status.status.replicas = 0  # ignored on the main path
    after_status.spec.replicas = 2
    after_main = await client.update(after_status)
    assert (after_main.spec.replicas, after_main.status.replicas) == (2, 5)


async def test_an_update_that_changes_nothing_writes_nothing() -> None:
    client = FakeClient()
    created = await client.create(pod())
    again = await client.update(created)
    assert again.metadata.resource_version == created.metadata.resource_version


async def test_update_of_a_missing_object_is_not_found() -> None:
    with pytest.raises(errors.NotFound):
        await FakeClient().update(pod())


# -- delete -----------------------------------------------------------------------------------


async def test_delete_removes_an_object_without_finalizers() -> None:
    client = FakeClient()
    await client.create(pod())
    gone = await client.delete(Pod, "web")
    assert gone.deleted
    assert client.stored(Pod, "web") is None
    with pytest.raises(errors.NotFound):
        await client.get(Pod, "web")


async def test_finalizers_hold_a_deleted_object_until_they_are_removed() -> None:
    client = FakeClient(now=lambda: 500.0)
    held = pod()
    held.metadata.finalizers.append("example.com/hold")
    await client.create(held)
    pending = await client.delete(Pod, "web")
    assert not pending.deleted
    stored = client.stored(Pod, "web")
    assert stored is not None
    assert stored.metadata.deletion_timestamp.seconds == 500
    del stored.metadata.finalizers[:]
    await client.update(stored)
    assert client.stored(Pod, "web") is None


async def test_propagation_policies_are_recorded_as_finalizers() -> None:
    client = FakeClient()
    await client.create(replica_set())
    await client.delete(ReplicaSet, "rs", propagation_policy="Orphan")
    stored = client.stored(ReplicaSet, "rs")
    assert stored is not None
    assert list(stored.metadata.finalizers) == ["orphan"]


async def test_a_pod_on_a_node_waits_for_its_grace_period() -> None:
    client = FakeClient(now=lambda: 100.0)
    await client.create(pod(node="n1"))
    pending = await client.delete(Pod, "web")
    assert not pending.deleted
    assert pending.object.metadata.deletion_grace_period_seconds == 30
    assert pending.object.metadata.deletion_timestamp.seconds == 130
    assert (await client.delete(Pod, "web", grace_period_seconds=0)).deleted


async def test_a_uid_precondition_protects_a_successor() -> None:
    client = FakeClient()
    await client.create(pod())
    with pytest.raises(errors.Conflict, match="Precondition failed: UID"):
        await client.delete(Pod, "web", preconditions=Preconditions(uid="someone-else"))
    assert client.stored(Pod, "web") is not None


# -- list, selectors, watch --------------------------------------------------------------------


@dataclass(frozen=True)
class SelectorCase:
    name: str
    labels: str
    fields: str
    namespace: str | None
    want: list[str]


SELECTOR_CASES = [
    SelectorCase("everything", "", "", None, ["a", "b", "c"]),
    SelectorCase("one namespace", "", "", "default", ["a", "b"]),
    SelectorCase("equality", "app=web", "", None, ["a", "c"]),
    SelectorCase("set based", "app in (web,db),tier!=front", "", None, ["b", "c"]),
    SelectorCase("exists", "tier", "", None, ["a"]),
    SelectorCase("field", "", "spec.nodeName=n1", None, ["b"]),
    SelectorCase("both", "app=web", "metadata.namespace=other", None, ["c"]),
]


@pytest.mark.parametrize("case", SELECTOR_CASES, ids=lambda c: c.name)
async def test_list_filters_like_the_server(case: SelectorCase) -> None:
    client = FakeClient()
    client.add(
        pod("a", labels={"app": "web", "tier": "front"}),
        pod("b", labels={"app": "db"}, node="n1"),
    )
    other = pod("c", labels={"app": "web"})
    other.metadata.namespace = "other"
    client.add(other)
    listed = await client.list(
        Pod, namespace=case.namespace, label_selector=case.labels, field_selector=case.fields
    )
    assert [p.metadata.name for p in listed.items] == case.want, case.name


async def test_a_bad_selector_is_a_bad_request() -> None:
    with pytest.raises(errors.BadRequest, match="field label not supported"):
        await FakeClient().list(Pod, field_selector="spec.image=x")


async def test_watch_replays_changes_after_a_version() -> None:
    client = FakeClient()
    created = await client.create(pod())
    created.metadata.labels["v"] = "2"
    await client.update(created)
    await client.delete(Pod, "web")
    seen = []
    async with client.watch(Pod, resource_version=created.metadata.resource_version) as events:
        async for event in events:
            seen.append((event.type, event.object.metadata.labels.get("v", "")))
            if event.type == "DELETED":
                break
    assert seen == [("MODIFIED", "2"), ("DELETED", "2")]


async def test_an_informer_runs_on_the_fake() -> None:
    client = FakeClient()
    client.add(pod("before"))
    informer = SharedInformer(client, Pod)
    arrived = anyio.Event()

    def on_add(obj: Pod, _initial: bool) -> None:
        if obj.metadata.name == "after":
            arrived.set()

    informer.add_event_handler(EventHandler(on_add=on_add))
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        with anyio.fail_after(5):
            await informer.wait_for_sync()
            assert informer.lister().get("default", "before") is not None
            await client.create(pod("after"))
            await arrived.wait()
        assert informer.lister().get("default", "after") is not None
        tg.cancel_scope.cancel()


# -- patch, bind ------------------------------------------------------------------------------


async def test_merge_patch_and_its_resource_version_guard() -> None:
    client = FakeClient()
    created = await client.create(pod(labels={"a": "1", "b": "2"}))
    patched = await client.patch(
        Pod, "web", {"metadata": {"labels": {"a": None, "c": "3"}}}, patch_type="merge"
    )
    assert dict(patched.metadata.labels) == {"b": "2", "c": "3"}
    stale = {"metadata": {"resourceVersion": created.metadata.resource_version}}
    with pytest.raises(errors.Conflict):
        await client.patch(Pod, "web", stale, patch_type="merge")


@dataclass(frozen=True)
class PatchCase:
    name: str
    patch_type: str
    patch: Any
    images: list[tuple[str, str]] | None = None  # the containers after, when it applies
    error: type[errors.StatusError] | None = None
    message: str = ""


PATCH_CASES = [
    PatchCase(
        "strategic merges containers by name",
        "strategic",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}}},
        images=[("app", "nginx")],
    ),
    PatchCase(
        "strategic appends a container of another name",
        "strategic",
        {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "envoy"}]}}}},
        images=[("app", "busybox"), ("side", "envoy")],
    ),
    PatchCase(
        "merge replaces the list",
        "merge",
        {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "envoy"}]}}}},
        images=[("side", "envoy")],
    ),
    PatchCase(
        "json patch",
        "json",
        [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx"}],
        images=[("app", "nginx")],
    ),
    PatchCase(
        "json patch as text",
        "json",
        '[{"op": "replace", "path": "/spec/replicas", "value": 3}]',
        images=[("app", "busybox")],
    ),
    PatchCase(
        "a failed json test",
        "json",
        [{"op": "test", "path": "/spec/replicas", "value": 9}],
        error=errors.BadRequest,
        message="the patch cannot be applied: operation 0",
    ),
    PatchCase(
        "a json patch that is not a list",
        "json",
        {"spec": {}},
        error=errors.BadRequest,
        message="a json patch must be a list of operations",
    ),
    PatchCase(
        "a strategic directive that does not exist",
        "strategic",
        {"spec": {"$frob": 1}},
        error=errors.BadRequest,
        message="unknown directive",
    ),
    PatchCase(
        "more operations than the server takes",
        "json",
        [{"op": "test", "path": "/metadata/name", "value": "rs"}] * 10_001,
        error=errors.TooLarge,
        message="maximum operations",
    ),
]


@pytest.mark.parametrize("case", PATCH_CASES, ids=lambda c: c.name)
async def test_every_patch_type_applies_as_the_server_does(case: PatchCase) -> None:
    client = FakeClient()
    await client.create(replica_set())
    if case.error is not None:
        with pytest.raises(case.error, match=case.message):
            await client.patch(ReplicaSet, "rs", case.patch, patch_type=case.patch_type)  # type: ignore[arg-type]
        return
    patched = await client.patch(ReplicaSet, "rs", case.patch, patch_type=case.patch_type)  # type: ignore[arg-type]
    images = [(c.name, c.image) for c in patched.spec.template.spec.containers]
    assert images == case.images, case.name
    assert client.stored(ReplicaSet, "rs") == patched, case.name


async def test_cluster_scoped_kinds_ignore_the_namespace() -> None:
    client = FakeClient()
    node = Node()
    node.metadata.name = "n1"
    await client.create(node)
    listed = await client.list(Node, namespace="default")
    assert [n.metadata.name for n in listed.items] == ["n1"]
    assert (await client.get(Node, "n1", namespace="default")).metadata.namespace == ""


async def test_bind_sets_the_node_once() -> None:
    client = FakeClient()
    await client.create(pod())
    bound = await client.bind("web", "n1")
    assert bound.spec.node_name == "n1"
    with pytest.raises(errors.Conflict, match="already assigned"):
        await client.bind("web", "n2")


# -- actions and reactors ----------------------------------------------------------------------


async def test_actions_record_every_call_and_writes_leave_reads_out() -> None:
    client = FakeClient()
    await client.create(pod())
    await client.get(Pod, "web")
    await client.list(Pod)
    await client.delete(Pod, "web")
    assert [str(a) for a in client.actions] == [
        "create Pod default/web",
        "get Pod default/web",
        "list Pod",
        "delete Pod default/web",
    ]
    assert [a.verb for a in client.writes()] == ["create", "delete"]


async def test_a_reactor_makes_a_verb_fail() -> None:
    client = FakeClient()
    client.fail("create", "Pod", errors.Forbidden("quota exceeded"))
    with pytest.raises(errors.Forbidden, match="quota"):
        await client.create(pod())
    config = ConfigMap()
    config.metadata.name = "cm"
    await client.create(config)  # other kinds still work
    assert client.stored(Pod, "web") is None
    assert client.actions[0] == Action("create", "Pod", "default", "web", object=pod())


async def test_a_reactor_may_answer_in_the_stores_place() -> None:
    client = FakeClient()
    canned = pod("canned")
    client.prepend_reactor("get", "*", lambda _action: canned)
    assert (await client.get(Pod, "anything")).metadata.name == "canned"

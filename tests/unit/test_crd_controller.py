"""The CustomResourceDefinition controller on the fake client: the status
it writes (accepted names, stored versions, NamesAccepted, Established,
Terminating) and the cleanup finalizer it removes only once every object of
the kind is gone (after Kubernetes' naming and finalizer controller tests).

Each test works in API groups of its own under `.crd.test.kpy`; the kinds it
registers in the process's scheme are unregistered afterwards."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import codec, errors
from kpy.api.apiextensions.v1 import CustomResourceDefinition
from kpy.api.crd.kinds import CLEANUP_FINALIZER
from kpy.api.meta.v1 import ObjectMeta
from kpy.api.scheme import scheme
from kpy.api.unstructured import custom_kind, is_custom
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.controllers.crd import CRDController

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from kpy.api.unstructured import CustomObject

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
SUFFIX = ".crd.test.kpy"
HOLD = "example.com/hold"
SCHEMA = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


@pytest.fixture(autouse=True)
def _forget_test_kinds() -> Iterator[None]:
    yield
    for info in scheme.all():
        if is_custom(info.message) and info.group.endswith(SUFFIX):
            scheme.unregister(info.api_version, info.kind)


def new_group() -> str:
    return f"g{uuid.uuid4().hex[:8]}{SUFFIX}"


def crd(
    group: str,
    plural: str = "webapps",
    kind: str = "WebApp",
    *,
    created: int = 0,
    short: tuple[str, ...] = (),
    singular: str = "",
    versions: tuple[tuple[str, bool, bool], ...] = (("v1", True, True),),
    deleting: bool = False,
    stored: tuple[str, ...] = (),
) -> CustomResourceDefinition:
    """`versions`: (name, served, storage) each."""
    meta: dict[str, Any] = {
        "name": f"{plural}.{group}",
        "uid": str(uuid.uuid4()),
        "creationTimestamp": f"2026-01-01T00:00:{created:02d}Z",
        "finalizers": [CLEANUP_FINALIZER],
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    body: dict[str, Any] = {
        "metadata": meta,
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "kind": kind,
                "shortNames": list(short),
                "singular": singular or kind.lower(),
            },
            "versions": [
                {
                    "name": n,
                    "served": s,
                    "storage": st,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": SCHEMA},
                }
                for n, s, st in versions
            ],
        },
    }
    if stored:
        body["status"] = {"storedVersions": list(stored)}
    return codec.from_dict(CustomResourceDefinition, body)


@dataclass
class Harness:
    client: FakeClient
    crds: SharedInformer[CustomResourceDefinition]
    controller: CRDController
    requeues: list[tuple[str, float]] = field(default_factory=list)

    def add(self, *objs: CustomResourceDefinition) -> None:
        for stored in self.client.add(*objs):
            self.crds.indexer.add(stored)

    def refresh(self) -> None:
        """The lister catches up with the store, as the informer would."""
        for old in self.crds.indexer.list():
            self.crds.indexer.delete(old)
        for current in self.client.stored_list(CustomResourceDefinition):
            self.crds.indexer.add(current)

    def stored(self, name: str) -> CustomResourceDefinition | None:
        return self.client.stored(CustomResourceDefinition, name, namespace="")


def harness() -> Harness:
    client = FakeClient(now=NOW.timestamp)
    crds: SharedInformer[CustomResourceDefinition] = SharedInformer(
        client, CustomResourceDefinition
    )
    controller = CRDController(client, crds, now=lambda: NOW)
    h = Harness(client, crds, controller)
    controller.enqueue_after = lambda key, delay: h.requeues.append((key, delay))  # type: ignore[method-assign,assignment]
    return h


def conditions(found: CustomResourceDefinition | None) -> dict[str, tuple[str, str, str]]:
    assert found is not None
    return {c.type: (c.status, c.reason, c.message) for c in found.status.conditions}


ESTABLISHED = {
    "NamesAccepted": ("True", "NoConflicts", "no conflicts found"),
    "Established": ("True", "InitialNamesAccepted", "the initial names have been accepted"),
}


# -- names and conditions --------------------------------------------------------------------


@dataclass(frozen=True)
class NamingCase:
    name: str
    #: the CRDs stored (the last one is synced)
    crds: list[CustomResourceDefinition]
    conditions: dict[str, tuple[str, str, str]]
    accepted_plural: str
    stored_versions: list[str]


G = new_group()
NAMING = [
    NamingCase(
        "no clash: names accepted and Established",
        [crd(G, "webapps", "WebApp")],
        ESTABLISHED,
        "webapps",
        ["v1"],
    ),
    NamingCase(
        "a kind an older CRD has: KindConflict, not Established",
        [crd(G, "webapps", "WebApp"), crd(G, "sites", "WebApp", singular="site", created=5)],
        {
            "NamesAccepted": (
                "False",
                "KindConflict",
                f'"WebApp" is already in use by webapps.{G}; '
                f'"WebAppList" is already in use by webapps.{G}',
            ),
            "Established": ("False", "NotAccepted", "not all names are accepted"),
        },
        "",
        ["v1"],
    ),
    NamingCase(
        "the same kind, so the same default singular: SingularConflict first",
        [crd(G, "webapps", "WebApp"), crd(G, "sites", "WebApp", created=5)],
        {
            "NamesAccepted": (
                "False",
                "SingularConflict",
                f'"webapp" is already in use by webapps.{G}; '
                f'"WebApp" is already in use by webapps.{G}; '
                f'"WebAppList" is already in use by webapps.{G}',
            ),
            "Established": ("False", "NotAccepted", "not all names are accepted"),
        },
        "",
        ["v1"],
    ),
    NamingCase(
        "a short name an older CRD has: ShortNamesConflict",
        [
            crd(G, "webapps", "WebApp", short=("wa",)),
            crd(G, "sites", "Site", short=("wa",), created=5),
        ],
        {
            "NamesAccepted": (
                "False",
                "ShortNamesConflict",
                f'"wa" is already in use by webapps.{G}',
            ),
            "Established": ("False", "NotAccepted", "not all names are accepted"),
        },
        "",
        ["v1"],
    ),
    NamingCase(
        "the same names in another group: no clash",
        [crd(new_group(), "webapps", "WebApp"), crd(G, "webapps", "WebApp", created=5)],
        ESTABLISHED,
        "webapps",
        ["v1"],
    ),
    NamingCase(
        "the older of two clashing CRDs keeps its names",
        [crd(G, "sites", "WebApp", created=5), crd(G, "webapps", "WebApp")],
        ESTABLISHED,
        "webapps",
        ["v1"],
    ),
    NamingCase(
        "storage moved to v2: v2 added to the stored versions, v1 kept",
        [crd(G, versions=(("v1", True, False), ("v2", True, True)), stored=("v1",))],
        ESTABLISHED,
        "webapps",
        ["v1", "v2"],
    ),
]


@pytest.mark.parametrize("case", NAMING, ids=lambda c: c.name)
async def test_status_of_a_crd(case: NamingCase) -> None:
    h = harness()
    h.add(*case.crds)
    target = case.crds[-1].metadata.name
    await h.controller.sync(target)
    found = h.stored(target)
    assert conditions(found) == case.conditions, case.name
    assert found is not None
    assert found.status.accepted_names.plural == case.accepted_plural, case.name
    if case.accepted_plural:
        names = found.status.accepted_names
        assert (names.singular, names.list_kind) == ("webapp", "WebAppList"), case.name
    assert list(found.status.stored_versions) == case.stored_versions, case.name
    for c in found.status.conditions:
        assert c.last_transition_time.seconds == int(NOW.timestamp()), (case.name, c.type)
    assert [a.subresource for a in h.client.writes()] == ["status"], case.name

    # A second sync of an unchanged CRD writes nothing.
    h.refresh()
    h.client.clear_actions()
    await h.controller.sync(target)
    assert h.client.writes() == [], case.name


async def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    h = harness()
    g = new_group()
    h.add(crd(g))
    await h.controller.sync(f"webapps.{g}")
    h.refresh()
    later = CRDController(h.client, h.crds, now=lambda: NOW.replace(hour=11))
    # another CRD of the group changes nothing for this one
    h.add(crd(g, "sites", "Site", created=9))
    await later.sync(f"webapps.{g}")
    found = h.stored(f"webapps.{g}")
    assert found is not None
    assert {c.last_transition_time.seconds for c in found.status.conditions} == {
        int(NOW.timestamp())
    }


async def test_a_new_clash_enqueues_every_crd_of_the_group() -> None:
    h = harness()
    g, other = new_group(), new_group()
    h.add(crd(g), crd(g, "sites", "Site"), crd(other))
    keys: list[str] = []
    h.controller.enqueue_key = keys.append  # type: ignore[method-assign,assignment]
    h.controller._enqueue_group(crd(g, "shops", "Shop"))
    assert sorted(set(keys)) == sorted({f"shops.{g}", f"webapps.{g}", f"sites.{g}"})


# -- deletion ----------------------------------------------------------------------------------


def webapp_class(group: str) -> type[CustomObject]:
    return custom_kind(f"{group}/v1", "WebApp", plural="webapps", status_subresource=True)


def webapp(cls: type[CustomObject], namespace: str, name: str, *finalizers: str) -> CustomObject:
    return cls(
        metadata=ObjectMeta(name=name, namespace=namespace, finalizers=list(finalizers)),
        spec={"replicas": 1},
    )


@dataclass(frozen=True)
class DeletionCase:
    name: str
    #: (namespace, name, finalizers) of the WebApps stored
    objects: list[tuple[str, str, tuple[str, ...]]]
    #: the namespaces a delete-collection is sent for
    collections: list[str]
    crd_gone: bool
    #: the objects still stored afterwards, "namespace/name"
    left: list[str] = field(default_factory=list)
    terminating: tuple[str, str, str] | None = None


DELETION = [
    DeletionCase("no objects: the finalizer goes at once", [], [], crd_gone=True),
    DeletionCase(
        "objects in two namespaces: one delete-collection each, then the CRD goes",
        [("a", "one", ()), ("a", "two", ()), ("b", "three", ())],
        ["a", "b"],
        crd_gone=True,
    ),
    DeletionCase(
        "an object with a finalizer of its own holds the CRD",
        [("a", "held", (HOLD,)), ("b", "free", ())],
        ["a", "b"],
        crd_gone=False,
        left=["a/held"],
        terminating=(
            "True",
            "InstanceDeletionInProgress",
            f"CustomResource deletion is in progress: waiting for 1 webapps.{{group}} "
            f"with finalizers: a/held ({HOLD})",
        ),
    ),
    DeletionCase(
        "objects already being deleted get no second delete",
        [("a", "held", (HOLD,))],
        [],
        crd_gone=False,
        left=["a/held"],
    ),
]


@pytest.mark.parametrize("case", DELETION, ids=lambda c: c.name)
async def test_a_terminating_crd(case: DeletionCase) -> None:
    h = harness()
    g = new_group()
    cls = webapp_class(g)
    for ns, name, finalizers in case.objects:
        await h.client.create(webapp(cls, ns, name, *finalizers))
    if case.name.startswith("objects already"):
        for ns, name, _ in case.objects:
            await h.client.delete(cls, name, namespace=ns)
    h.add(crd(g, deleting=True))
    h.client.clear_actions()
    await h.controller.sync(f"webapps.{g}")
    collections = sorted(a.namespace for a in h.client.writes() if a.verb == "delete-collection")
    assert collections == case.collections, case.name
    found = h.stored(f"webapps.{g}")
    assert (found is None) == case.crd_gone, case.name
    left = [f"{o.metadata.namespace}/{o.metadata.name}" for o in h.client.stored_list(cls)]
    assert left == case.left, case.name
    if found is not None:
        assert CLEANUP_FINALIZER in found.metadata.finalizers, case.name
        assert h.requeues == [(f"webapps.{g}", 1.0)], case.name  # its informer has not listed
    if case.terminating is not None:
        status, reason, message = case.terminating
        expected = (status, reason, message.format(group=g))
        assert conditions(found)["Terminating"] == expected, case.name


async def test_the_finalizer_goes_only_after_the_last_object() -> None:
    h = harness()
    g = new_group()
    cls = webapp_class(g)
    await h.client.create(webapp(cls, "a", "held", HOLD))
    h.add(crd(g, deleting=True))
    key = f"webapps.{g}"
    for _ in range(2):  # nothing changes while the object is held
        await h.controller.sync(key)
        h.refresh()
        assert h.stored(key) is not None
    held = h.client.stored(cls, "held", namespace="a")
    assert held is not None
    assert held.metadata.HasField("deletion_timestamp")
    del held.metadata.finalizers[:]
    await h.client.update(held)
    assert h.client.stored_list(cls) == []
    await h.controller.sync(key)
    assert h.stored(key) is None


async def test_a_failed_delete_says_why_and_is_retried() -> None:
    h = harness()
    g = new_group()
    cls = webapp_class(g)
    await h.client.create(webapp(cls, "a", "one"))
    h.add(crd(g, deleting=True))
    h.client.fail("delete-collection", "WebApp", errors.Forbidden("deletecollection is forbidden"))
    with pytest.raises(errors.Forbidden):
        await h.controller.sync(f"webapps.{g}")
    assert conditions(h.stored(f"webapps.{g}"))["Terminating"] == (
        "True",
        "InstanceDeletionFailed",
        "could not issue all deletes: deletecollection is forbidden",
    )


async def test_a_crd_whose_names_were_never_accepted_touches_no_object() -> None:
    """Its kind and list kind are the older CRD's: deleting "its" objects
    would delete the older CRD's."""
    h = harness()
    g = new_group()
    cls = webapp_class(g)
    await h.client.create(webapp(cls, "a", "theirs"))
    h.add(crd(g, "webapps", "WebApp"), crd(g, "sites", "WebApp", created=5, deleting=True))
    h.client.clear_actions()
    await h.controller.sync(f"sites.{g}")
    assert h.stored(f"sites.{g}") is None
    assert [a.verb for a in h.client.writes()] == ["update", "patch"]  # status, finalizer
    assert len(h.client.stored_list(cls)) == 1
    assert scheme.for_message(cls).plural == "webapps"


async def wait_until(done: Callable[[], bool]) -> None:
    while not done():  # noqa: ASYNC110 - the fake store has no event to wait on
        await anyio.sleep(0.01)


async def test_the_deletion_of_the_last_object_brings_the_crd_back() -> None:
    """Event-driven: the controller's own informer on the kind wakes it."""
    client = FakeClient(now=NOW.timestamp)
    crds: SharedInformer[CustomResourceDefinition] = SharedInformer(
        client, CustomResourceDefinition
    )
    controller = CRDController(client, crds, now=lambda: NOW)
    g = new_group()
    cls = webapp_class(g)
    await client.create(webapp(cls, "a", "held", HOLD))
    client.add(crd(g, deleting=True))
    key = f"webapps.{g}"
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(crds.run)
            tg.start_soon(controller.run, 1)

            def terminating() -> bool:
                found = client.stored(CustomResourceDefinition, key, "")
                return found is not None and "Terminating" in conditions(found)

            await wait_until(terminating)
            held = client.stored(cls, "held", namespace="a")
            assert held is not None
            del held.metadata.finalizers[:]
            await client.update(held)
            await wait_until(lambda: client.stored(CustomResourceDefinition, key, "") is None)
            tg.cancel_scope.cancel()

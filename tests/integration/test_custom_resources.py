"""Custom resources and the controller manager, over a real API server and
etcd: a new CRD becomes Established; the garbage collector follows its kind,
so a Deployment owned by a custom object goes (with its ReplicaSets) when
that object goes, and every propagation policy works across custom and
built-in kinds; deleting the CRD deletes its objects first (an object with
a finalizer of its own holds it), refuses new ones meanwhile, and then the
CRD goes; an informer lists and watches a custom kind.

Each test makes its own API group, so tests share the session's API server
without seeing each other's kinds, and deletes its CRD at the end."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import codec, errors
from kpy.api.apiextensions.v1 import CustomResourceDefinition
from kpy.api.apps.v1 import Deployment, ReplicaSet
from kpy.api.core.v1 import ConfigMap
from kpy.api.meta.v1 import ObjectMeta, OwnerReference
from kpy.api.scheme import scheme
from kpy.api.unstructured import custom_kind, is_custom
from kpy.cache.informer import EventHandler, SharedInformerFactory
from tests.integration._controllers import eventually, running, workload

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kpy.api.unstructured import CustomObject
    from kpy.client import Client

HOLD = "example.com/hold"
SUFFIX = ".crgc.example.com"


@pytest.fixture(autouse=True)
def _forget_test_kinds() -> Iterator[None]:
    """The kinds a test registers in the process's scheme (it and the
    controller manager it runs) are unregistered afterwards: a later test's
    controllers must not meet kinds that are no longer served."""
    yield
    for info in scheme.all():
        if is_custom(info.message) and info.group.endswith(SUFFIX):
            scheme.unregister(info.api_version, info.kind)


def new_group() -> str:
    return f"t{uuid.uuid4().hex[:8]}{SUFFIX}"


def webapp_crd(group: str) -> CustomResourceDefinition:
    (crd,) = codec.load_manifest(f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: webapps.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{kind: WebApp, plural: webapps, shortNames: [wa]}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              replicas: {{type: integer}}
""")
    assert isinstance(crd, CustomResourceDefinition)
    return crd


def webapp_class(group: str) -> type[CustomObject]:
    return custom_kind(
        f"{group}/v1", "WebApp", plural="webapps", status_subresource=True, storage_version="v1"
    )


def conditions(crd: CustomResourceDefinition) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in crd.status.conditions}


async def get_or_none(client: Client, kind: type[Any], name: str, ns: str | None) -> Any:
    try:
        return await client.get(kind, name, namespace=ns)
    except errors.NotFound:
        return None


async def established(client: Client, group: str) -> CustomResourceDefinition:
    name = f"webapps.{group}"

    async def check() -> CustomResourceDefinition | None:
        crd = await client.get(CustomResourceDefinition, name)
        return crd if conditions(crd).get("Established", ("",))[0] == "True" else None

    found = await eventually(check, what=f"{name} Established")
    assert found is not None
    return found


async def create_when_served(client: Client, obj: Any) -> Any:
    """Creates `obj` once the API server serves its kind."""

    async def attempt() -> Any:
        try:
            return await client.create(obj)
        except errors.NotFound:  # the resource is not served yet
            return None

    return await eventually(attempt, what=f"{type(obj).__name__} served")


async def delete_crd(client: Client, group: str) -> None:
    """Deletes the test's CRD and waits until it is gone (the controller
    manager must run its `customresourcedefinition` controller)."""
    name = f"webapps.{group}"
    await client.delete(CustomResourceDefinition, name)

    async def gone() -> bool:
        return await get_or_none(client, CustomResourceDefinition, name, None) is None

    await eventually(gone, what=f"{name} gone")


async def test_a_crd_is_established_and_a_custom_owner_takes_its_deployment_along(
    client: Client, api_namespace: str
) -> None:
    ns = api_namespace
    group = new_group()
    WebApp = webapp_class(group)
    controllers = ("customresourcedefinition", "garbagecollector", "deployment", "replicaset")
    async with running(client, ns, *controllers):
        await client.create(webapp_crd(group))
        crd = await established(client, group)
        assert conditions(crd) == {
            "NamesAccepted": ("True", "NoConflicts"),
            "Established": ("True", "InitialNamesAccepted"),
        }
        names = crd.status.accepted_names
        assert (names.plural, names.singular, names.kind, list(names.short_names)) == (
            "webapps",
            "webapp",
            "WebApp",
            ["wa"],
        )
        assert list(crd.status.stored_versions) == ["v1"]

        shop = await create_when_served(
            client, WebApp(metadata=ObjectMeta(name="shop", namespace=ns), spec={"replicas": 1})
        )
        owned = workload(Deployment, "shop", 1)
        owned.metadata.owner_references.append(
            OwnerReference(
                api_version=f"{group}/v1",
                kind="WebApp",
                name="shop",
                uid=shop.metadata.uid,
                controller=True,
                block_owner_deletion=True,
            )
        )
        await client.create(owned)

        async def replicasets() -> list[ReplicaSet]:
            return list((await client.list(ReplicaSet, namespace=ns)).items)

        await eventually(replicasets, what="the Deployment's ReplicaSet")
        await client.delete(WebApp, "shop", namespace=ns)

        async def all_gone() -> bool:
            deployment = await get_or_none(client, Deployment, "shop", ns)
            return deployment is None and not await replicasets()

        await eventually(all_gone, what="the Deployment and its ReplicaSets collected")
        await delete_crd(client, group)


async def test_deleting_a_crd_deletes_its_objects_first(client: Client, api_namespace: str) -> None:
    ns = api_namespace
    group = new_group()
    name = f"webapps.{group}"
    WebApp = webapp_class(group)
    async with running(client, ns, "customresourcedefinition"):
        await client.create(webapp_crd(group))
        await established(client, group)
        await create_when_served(client, WebApp(metadata=ObjectMeta(name="free", namespace=ns)))
        await client.create(
            WebApp(metadata=ObjectMeta(name="held", namespace=ns, finalizers=[HOLD]))
        )
        await client.delete(CustomResourceDefinition, name)

        async def waiting() -> CustomResourceDefinition | None:
            crd = await client.get(CustomResourceDefinition, name)
            found = conditions(crd).get("Terminating")
            return crd if found == ("True", "InstanceDeletionInProgress") else None

        crd = await eventually(waiting, what="the CRD waiting for its objects")
        assert crd is not None
        [terminating] = [c for c in crd.status.conditions if c.type == "Terminating"]
        assert f"{ns}/held ({HOLD})" in terminating.message
        assert await get_or_none(client, WebApp, "free", ns) is None
        held = await client.get(WebApp, "held", namespace=ns)
        assert held.metadata.HasField("deletion_timestamp")

        # The API server refuses new objects while the CRD terminates.
        with pytest.raises(errors.MethodNotAllowed, match="terminating"):
            await client.create(WebApp(metadata=ObjectMeta(name="late", namespace=ns)))

        del held.metadata.finalizers[:]
        await client.update(held)

        async def crd_gone() -> bool:
            return await get_or_none(client, CustomResourceDefinition, name, None) is None

        await eventually(crd_gone, what="the CRD gone after its last object")
        with pytest.raises(errors.NotFound):
            await client.list(WebApp, namespace=ns)


async def test_an_informer_on_a_custom_kind_lists_and_watches(
    client: Client, api_namespace: str
) -> None:
    """`SharedInformerFactory.informer(WebApp)` over the real API server:
    the initial list, then adds, updates and deletes from the watch (whose
    bookmarks carry the custom kind too)."""
    ns = api_namespace
    group = new_group()
    WebApp = webapp_class(group)
    await client.create(webapp_crd(group))
    await create_when_served(client, WebApp(metadata=ObjectMeta(name="before", namespace=ns)))
    factory = SharedInformerFactory(client, namespace=ns)
    heard: list[tuple[str, Any]] = []
    informer = factory.informer(WebApp)
    informer.add_event_handler(
        EventHandler(
            on_add=lambda obj, _initial: heard.append(("add", obj.metadata.name)),
            on_update=lambda _old, new: heard.append(("update", new.spec.get("replicas"))),
            on_delete=lambda obj: heard.append(("delete", obj.metadata.name)),
        )
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(factory.run)
        with anyio.fail_after(15):
            await informer.wait_for_sync()
        after = await client.create(
            WebApp(metadata=ObjectMeta(name="after", namespace=ns), spec={"replicas": 1})
        )
        after.spec["replicas"] = 2
        await client.update(after)
        await client.delete(WebApp, "before", namespace=ns)

        async def all_heard() -> list[tuple[str, Any]]:
            return heard if len(heard) == 4 else []

        assert await eventually(all_heard, what="four events") == [
            ("add", "before"),
            ("add", "after"),
            ("update", 2),
            ("delete", "before"),
        ]
        [cached] = informer.lister().list(ns)
        assert cached.spec == {"replicas": 2}
        assert isinstance(cached, WebApp)
        tg.cancel_scope.cancel()
    await client.delete(WebApp, "after", namespace=ns)
    crd = await client.get(CustomResourceDefinition, f"webapps.{group}")
    del crd.metadata.finalizers[:]  # no controller manager runs here to do it
    await client.update(crd)
    await client.delete(CustomResourceDefinition, f"webapps.{group}")


@pytest.mark.parametrize(
    ("owner_kind", "policy"),
    [
        ("WebApp", "Foreground"),
        ("WebApp", "Orphan"),
        ("ConfigMap", "Background"),
        ("ConfigMap", "Foreground"),
        ("ConfigMap", "Orphan"),
    ],
)
async def test_propagation_policies_across_custom_and_built_in_kinds(
    client: Client, api_namespace: str, owner_kind: str, policy: str
) -> None:
    """A WebApp owning a ConfigMap, or a ConfigMap owning a WebApp, deleted
    with each policy: the dependent goes (Background, Foreground: before
    its owner) or stays without the reference (Orphan)."""
    ns = api_namespace
    group = new_group()
    WebApp = webapp_class(group)

    def make(kind: str, name: str, *owners: OwnerReference) -> Any:
        meta = ObjectMeta(name=name, namespace=ns, owner_references=list(owners))
        return WebApp(metadata=meta) if kind == "WebApp" else ConfigMap(metadata=meta)

    dependent_kind = "ConfigMap" if owner_kind == "WebApp" else "WebApp"
    async with running(client, ns, "customresourcedefinition", "garbagecollector"):
        await client.create(webapp_crd(group))
        await established(client, group)
        owner = await create_when_served(client, make(owner_kind, "owner"))
        api_version = f"{group}/v1" if owner_kind == "WebApp" else "v1"
        dependent = await client.create(
            make(
                dependent_kind,
                "dependent",
                OwnerReference(
                    api_version=api_version,
                    kind=owner_kind,
                    name="owner",
                    uid=owner.metadata.uid,
                    block_owner_deletion=True,
                ),
            )
        )
        # The collector sees each kind through its own watch: give it time to
        # see the dependent, or the owner may be orphaned (or wait) without
        # it, as in Kubernetes.
        await anyio.sleep(0.5)
        await client.delete(type(owner), "owner", namespace=ns, propagation_policy=policy)

        async def owner_gone() -> bool:
            return await get_or_none(client, type(owner), "owner", ns) is None

        await eventually(owner_gone, what=f"the {owner_kind} gone ({policy})")
        left = await get_or_none(client, type(dependent), "dependent", ns)
        if policy == "Orphan":
            assert left is not None
            assert list(left.metadata.owner_references) == []
        elif policy == "Foreground":
            assert left is None  # deleted before its owner could go
        else:

            async def dependent_gone() -> bool:
                return await get_or_none(client, type(dependent), "dependent", ns) is None

            await eventually(dependent_gone, what="the dependent collected")
        await delete_crd(client, group)

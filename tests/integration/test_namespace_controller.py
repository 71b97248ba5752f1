"""The namespace controller over the real API server. Each test makes its
own namespaces; the controller watches every namespace (cluster
informers), so the namespace given to `running` does not limit it."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import anyio

from kpy.api import errors
from kpy.api.codec import from_dict, load_manifest
from kpy.api.core.v1 import ConfigMap, Namespace, Pod, Secret
from kpy.api.meta.v1 import ObjectMeta
from kpy.api.scheme import scheme
from kpy.api.unstructured import custom_kind
from tests.integration._controllers import eventually, running

if TYPE_CHECKING:
    from kpy.client import Client

HOLD = "kpy.test/hold"


async def new_namespace(client: Client, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await client.create(from_dict(Namespace, {"metadata": {"name": name}}))
    return name


async def fill(client: Client, ns: str) -> None:
    """Two of each: configmaps, secrets, unbound pods."""
    for i in range(2):
        await client.create(from_dict(ConfigMap, {"metadata": {"name": f"cm-{i}"}}), namespace=ns)
        await client.create(from_dict(Secret, {"metadata": {"name": f"s-{i}"}}), namespace=ns)
        await client.create(
            from_dict(
                Pod,
                {
                    "metadata": {"name": f"p-{i}"},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            ),
            namespace=ns,
        )


async def namespace_or_none(client: Client, name: str) -> Namespace | None:
    try:
        return await client.get(Namespace, name)
    except errors.NotFound:
        return None


async def wait_namespace_gone(client: Client, name: str) -> None:
    async def check() -> bool:
        return await namespace_or_none(client, name) is None

    await eventually(check, what=f"namespace {name} gone")


async def content(client: Client, ns: str) -> list[Any]:
    found: list[Any] = []
    for kind in (ConfigMap, Secret, Pod):
        found += (await client.list(kind, namespace=ns)).items
    return found


def condition(ns: Namespace, kind: str) -> tuple[str, str]:
    for c in ns.status.conditions:
        if c.type == kind:
            return c.status, c.reason
    return "", ""


async def test_deleting_a_namespace_deletes_its_content_then_itself(client: Client) -> None:
    names = [await new_namespace(client, "ns-delete") for _ in range(2)]
    for name in names:
        await fill(client, name)
    keep = await new_namespace(client, "ns-keep")
    await fill(client, keep)
    async with running(client, keep, "namespace"):
        for name in names:
            await client.delete(Namespace, name)
        for name in names:
            await wait_namespace_gone(client, name)
            assert await content(client, name) == []
        assert len(await content(client, keep)) == 6
        assert await namespace_or_none(client, keep) is not None


async def test_finalizer_keeps_the_namespace_terminating(client: Client) -> None:
    ns = await new_namespace(client, "ns-held")
    await fill(client, ns)
    await client.create(
        from_dict(ConfigMap, {"metadata": {"name": "held", "finalizers": [HOLD]}}), namespace=ns
    )
    async with running(client, ns, "namespace"):
        await client.delete(Namespace, ns)

        async def only_held_left() -> Namespace | None:
            left = await content(client, ns)
            current = await namespace_or_none(client, ns)
            if [o.metadata.name for o in left] != ["held"] or current is None:
                return None
            if condition(current, "NamespaceFinalizersRemaining")[0] != "True":
                return None
            return current

        terminating = await eventually(only_held_left, what="only the held configmap left")
        assert terminating.status.phase == "Terminating"
        assert condition(terminating, "NamespaceContentRemaining") == (
            "True",
            "SomeResourcesRemain",
        )
        assert condition(terminating, "NamespaceDeletionContentFailure") == (
            "False",
            "ContentDeleted",
        )
        await anyio.sleep(0.5)
        assert await namespace_or_none(client, ns) is not None

        await client.patch(
            ConfigMap, "held", {"metadata": {"finalizers": None}}, namespace=ns, patch_type="merge"
        )
        await wait_namespace_gone(client, ns)


async def test_graceful_pod_keeps_the_namespace_until_its_agent_finishes(client: Client) -> None:
    ns = await new_namespace(client, "ns-graceful")
    await fill(client, ns)
    await client.bind("p-0", "node-that-plays-dead", namespace=ns)
    async with running(client, ns, "namespace"):
        await client.delete(Namespace, ns)

        async def pod_terminating() -> bool:
            left = await content(client, ns)
            return [o.metadata.name for o in left] == ["p-0"] and left[0].metadata.HasField(
                "deletion_timestamp"
            )

        await eventually(pod_terminating, what="only the bound pod left, terminating")
        assert await namespace_or_none(client, ns) is not None
        # What the node agent does once the containers stopped.
        await client.delete(Pod, "p-0", namespace=ns, grace_period_seconds=0)
        await wait_namespace_gone(client, ns)


async def test_custom_objects_go_with_their_namespace(client: Client) -> None:
    """The controller finds custom kinds through discovery, as Kubernetes'
    does: a CRD's objects in the namespace are deleted with it."""
    group = f"ns{uuid.uuid4().hex[:8]}.example.com"
    (crd,) = load_manifest(
        f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: gadgets.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{kind: Gadget, plural: gadgets}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""
    )
    await client.create(crd)
    gadget = custom_kind(f"{group}/v1", "Gadget", plural="gadgets")
    try:
        ns = await new_namespace(client, "ns-custom")

        async def created() -> bool:
            try:
                await client.create(gadget(metadata=ObjectMeta(name="g", namespace=ns)))
            except errors.NotFound:
                return False  # not served yet
            return True

        await eventually(created, what="a Gadget created once its CRD is served")
        async with running(client, ns, "namespace"):
            await client.delete(Namespace, ns)
            await wait_namespace_gone(client, ns)
        assert (await client.list(gadget, namespace=ns)).items == []
    finally:
        scheme.unregister(f"{group}/v1", "Gadget")

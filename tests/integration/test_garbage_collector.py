"""The garbage collector over the real API server. ConfigMaps, Secrets and
unbound Pods (deleted at once) play owners and dependents, so no other
controller is needed, except in the last test, where a ReplicaSet owns its
pods."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import anyio

from kpy.api import errors
from kpy.api.apps.v1 import ReplicaSet
from kpy.api.codec import from_dict
from kpy.api.core.v1 import ConfigMap, Pod, Secret
from tests.integration._controllers import eventually, running, workload

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.client import Client

HOLD = "kpy.test/hold"


def ref(obj: Any, *, block: bool = False) -> dict[str, Any]:
    """An ownerReference to `obj`."""
    return {
        "apiVersion": "v1",
        "kind": type(obj).__name__,
        "name": obj.metadata.name,
        "uid": obj.metadata.uid,
        "blockOwnerDeletion": block,
    }


def meta(name: str, owners: list[dict[str, Any]], finalizers: list[str]) -> dict[str, Any]:
    return {"name": name, "ownerReferences": owners, "finalizers": finalizers}


def configmap(name: str, *owners: dict[str, Any], finalizers: Sequence[str] = ()) -> ConfigMap:
    return from_dict(ConfigMap, {"metadata": meta(name, list(owners), list(finalizers))})


def secret(name: str, *owners: dict[str, Any]) -> Secret:
    return from_dict(Secret, {"metadata": meta(name, list(owners), [])})


def pod(name: str, *owners: dict[str, Any]) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": meta(name, list(owners), []),
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    )


async def get_or_none(client: Client, kind: type[Any], name: str, ns: str) -> Any | None:
    try:
        return await client.get(kind, name, namespace=ns)
    except errors.NotFound:
        return None


async def wait_gone(client: Client, ns: str, *objs: Any) -> None:
    async def check() -> bool:
        for obj in objs:
            if await get_or_none(client, type(obj), obj.metadata.name, ns) is not None:
                return False
        return True

    await eventually(check, what=f"{[o.metadata.name for o in objs]} gone")


async def owner_uids(client: Client, obj: Any, ns: str) -> list[str]:
    fresh = await client.get(type(obj), obj.metadata.name, namespace=ns)
    return [r.uid for r in fresh.metadata.owner_references]


async def test_background_deletes_dependents_of_a_deleted_owner(
    client: Client, api_namespace: str
) -> None:
    ns = api_namespace
    async with running(client, ns, "garbagecollector"):
        owner = await client.create(configmap("owner"))
        other = await client.create(secret("other"))
        deps = [
            await client.create(secret("dep-secret", ref(owner))),
            await client.create(pod("dep-pod", ref(owner, block=True))),
            await client.create(configmap("dep-cm", ref(owner))),
        ]
        shared = await client.create(configmap("shared", ref(owner), ref(other)))
        await client.delete(ConfigMap, "owner", namespace=ns)
        await wait_gone(client, ns, *deps)

        async def only_other_left() -> bool:
            return await owner_uids(client, shared, ns) == [other.metadata.uid]

        await eventually(only_other_left, what="the dangling reference removed")
        assert await get_or_none(client, Secret, "other", ns) is not None


async def test_reference_to_an_owner_that_never_existed(client: Client, api_namespace: str) -> None:
    ns = api_namespace
    async with running(client, ns, "garbagecollector"):
        ghost = configmap("ghost")
        ghost.metadata.uid = str(uuid.uuid4())
        # "real" exists, but under another uid than the reference says.
        real = await client.create(configmap("real"))
        impostor = configmap("real")
        impostor.metadata.uid = str(uuid.uuid4())
        deps = [
            await client.create(configmap("of-ghost", ref(ghost))),
            await client.create(pod("pod-of-impostor", ref(impostor))),
        ]
        kept = await client.create(secret("of-real", ref(real)))
        await wait_gone(client, ns, *deps)
        assert await owner_uids(client, kept, ns) == [real.metadata.uid]


async def test_chain_is_deleted_in_the_background(client: Client, api_namespace: str) -> None:
    ns = api_namespace
    async with running(client, ns, "garbagecollector"):
        a = await client.create(configmap("a"))
        b = await client.create(secret("b", ref(a)))
        c = await client.create(pod("c", ref(b)))
        await client.delete(ConfigMap, "a", namespace=ns)
        await wait_gone(client, ns, a, b, c)


async def test_foreground_waits_for_blocking_dependents(client: Client, api_namespace: str) -> None:
    ns = api_namespace
    async with running(client, ns, "garbagecollector"):
        # One kind for owner and dependents, so one watch; even so the
        # informer may deliver the owner's add and its deletion together,
        # before the dependents' adds: the collector must attempt dependents
        # that reach its graph after their owner started waiting.
        owner = await client.create(configmap("owner"))
        held = await client.create(configmap("held", ref(owner, block=True), finalizers=[HOLD]))
        plain = await client.create(configmap("plain", ref(owner, block=True)))
        loose = await client.create(configmap("loose", ref(owner)))
        deleted = await client.delete(
            ConfigMap, "owner", namespace=ns, propagation_policy="Foreground"
        )
        assert not deleted.deleted
        assert "foregroundDeletion" in deleted.object.metadata.finalizers
        await wait_gone(client, ns, plain, loose)

        async def held_deleting() -> bool:
            cm = await get_or_none(client, ConfigMap, "held", ns)
            return cm is not None and cm.metadata.HasField("deletion_timestamp")

        await eventually(held_deleting, what="the held dependent marked deleted")
        await anyio.sleep(0.5)
        waiting = await client.get(ConfigMap, "owner", namespace=ns)
        assert waiting.metadata.HasField("deletion_timestamp")
        assert list(waiting.metadata.finalizers) == ["foregroundDeletion"]

        await client.patch(
            ConfigMap, "held", {"metadata": {"finalizers": None}}, namespace=ns, patch_type="merge"
        )
        await wait_gone(client, ns, held, owner)


async def test_foreground_chain(client: Client, api_namespace: str) -> None:
    """A dependent with dependents of its own is deleted in the foreground
    too, so the top waits for the whole tree."""
    ns = api_namespace
    async with running(client, ns, "garbagecollector"):
        top = await client.create(configmap("top"))
        middle = await client.create(configmap("middle", ref(top, block=True)))
        leaf = await client.create(configmap("leaf", ref(middle, block=True), finalizers=[HOLD]))
        await client.delete(ConfigMap, "top", namespace=ns, propagation_policy="Foreground")

        async def middle_waits() -> bool:
            cm = await get_or_none(client, ConfigMap, "middle", ns)
            return cm is not None and "foregroundDeletion" in cm.metadata.finalizers

        await eventually(middle_waits, what="middle deleted in the foreground")
        assert await get_or_none(client, ConfigMap, "top", ns) is not None
        await client.patch(
            ConfigMap, "leaf", {"metadata": {"finalizers": None}}, namespace=ns, patch_type="merge"
        )
        await wait_gone(client, ns, leaf, middle, top)


async def test_orphan_keeps_dependents(client: Client, api_namespace: str) -> None:
    ns = api_namespace
    async with running(client, ns, "garbagecollector"):
        owner = await client.create(configmap("owner"))
        other = await client.create(configmap("other"))
        deps = [
            await client.create(secret("dep-secret", ref(owner, block=True))),
            await client.create(pod("dep-pod", ref(owner), ref(other))),
        ]
        await client.delete(ConfigMap, "owner", namespace=ns, propagation_policy="Orphan")
        await wait_gone(client, ns, owner)
        assert await owner_uids(client, deps[0], ns) == []
        assert await owner_uids(client, deps[1], ns) == [other.metadata.uid]
        await anyio.sleep(0.3)  # and they are not collected later either
        for dep in deps:
            assert await get_or_none(client, type(dep), dep.metadata.name, ns) is not None


async def test_pods_of_a_deleted_replicaset_follow_it(client: Client, api_namespace: str) -> None:
    """With the ReplicaSet controller: its pods carry controller references
    with blockOwnerDeletion, so a foreground delete waits for them."""
    ns = api_namespace
    rs = workload(ReplicaSet, "web", 2)
    async with running(client, ns, "replicaset", "garbagecollector"):
        await client.create(rs)

        async def two_pods() -> bool:
            return len((await client.list(Pod, namespace=ns)).items) == 2

        await eventually(two_pods, what="the ReplicaSet's pods")
        await client.delete(ReplicaSet, "web", namespace=ns, propagation_policy="Foreground")

        async def all_gone() -> bool:
            pods = (await client.list(Pod, namespace=ns)).items
            return not pods and await get_or_none(client, ReplicaSet, "web", ns) is None

        await eventually(all_gone, what="the ReplicaSet and its pods gone")

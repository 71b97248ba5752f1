"""The agent's objects manager (kpy/agent/objects.py) on the fake client:
one watch per object a pod uses, by name, started with the first pod that
uses it and stopped with the last; changes wake exactly the pods using the
object; lookups tell "missing" from "not loaded yet"; a claim's volume is
read with get; simulated nodes of one process share the watches."""

from __future__ import annotations

from collections import Counter
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

import anyio
import pytest

from kpy.agent.agent import AgentConfig
from kpy.agent.env import ConfigError
from kpy.agent.node import NodeConfig
from kpy.agent.objects import ObjectManager
from kpy.agent.simulated_nodes import SimulatedNodes
from kpy.api import errors
from kpy.api.codec import from_dict
from kpy.api.core.v1 import ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Secret
from kpy.client.fake import Action, FakeClient

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from kpy.client import Client


class Woken:
    """The `wake` callback: which pods were woken, and a way to await one."""

    def __init__(self) -> None:
        self.uids: Counter[str] = Counter()
        self._changed = anyio.Event()

    def __call__(self, uid: str) -> None:
        self.uids[uid] += 1
        self._changed.set()
        self._changed = anyio.Event()

    async def until(self, uid: str, times: int = 1) -> None:
        with anyio.fail_after(5):
            while self.uids[uid] < times:
                await self._changed.wait()


def pod(uid: str, *, secrets: tuple[str, ...] = (), config_map: str = "", claim: str = "") -> Pod:
    env: list[dict[str, Any]] = [
        {"name": f"S{i}", "valueFrom": {"secretKeyRef": {"name": s, "key": "k"}}}
        for i, s in enumerate(secrets)
    ]
    volumes: list[dict[str, Any]] = []
    if config_map:
        volumes.append({"name": "cfg", "configMap": {"name": config_map}})
    if claim:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": claim}})
    return from_dict(
        Pod,
        {
            "metadata": {"name": f"pod-{uid}", "namespace": "ns", "uid": uid},
            "spec": {"containers": [{"name": "app", "image": "x", "env": env}], "volumes": volumes},
        },
    )


def secret(name: str, value: str = "v") -> Secret:
    out = Secret(data={"k": value.encode()})
    out.metadata.name, out.metadata.namespace = name, "ns"
    return out


def claim(name: str, volume: str = "") -> PersistentVolumeClaim:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"]}
    spec["resources"] = {"requests": {"storage": "1Gi"}}
    if volume:
        spec["volumeName"] = volume
    return from_dict(
        PersistentVolumeClaim,
        {
            "metadata": {"name": name, "namespace": "ns"},
            "spec": spec,
            "status": {"phase": "Bound" if volume else "Pending"},
        },
    )


def volume(name: str) -> PersistentVolume:
    return from_dict(
        PersistentVolume,
        {
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/tmp"},
            },
        },
    )


@asynccontextmanager
async def running(client: FakeClient, woken: Woken, **options: Any) -> AsyncIterator[ObjectManager]:
    objects = ObjectManager(cast("Client", client), woken, **options)
    async with anyio.create_task_group() as tg:
        await tg.start(objects.run)
        yield objects
        tg.cancel_scope.cancel()


def calls(client: FakeClient, verb: str, kind: str) -> int:
    return sum(1 for a in client.actions if a.matches(verb, kind))


async def test_100_pods_sharing_10_secrets_open_10_watches() -> None:
    client, woken = FakeClient(), Woken()
    client.add(*(secret(f"s{i}", f"value-{i}") for i in range(10)))
    async with running(client, woken) as objects:
        pods = [pod(f"u{i}", secrets=(f"s{i % 10}",)) for i in range(100)]
        for p in pods:
            objects.track(p)
        with anyio.fail_after(5):
            for p in pods:
                await objects.wait_for_pod(p.metadata.uid)
        assert calls(client, "watch", "Secret") == 10
        assert calls(client, "list", "Secret") == 10
        assert objects.statistics().watches == 10
        assert objects.statistics().synced == 10
        found = objects.secret("ns", "s7")
        assert found is not None
        assert found.data["k"] == b"value-7"


async def test_a_watch_lives_from_the_first_pod_using_it_to_the_last() -> None:
    client, woken = FakeClient(), Woken()
    client.add(secret("shared"))
    async with running(client, woken) as objects:
        objects.track(pod("a", secrets=("shared",)))
        objects.track(pod("b", secrets=("shared",)))
        await objects.wait_for_pod("a")
        objects.untrack("a")
        assert objects.statistics().watches == 1, "b still uses it"
        await client.update(secret("shared", "new"))
        await woken.until("b", 2)  # its first list, then the change
        assert woken.uids["a"] == 1, "an untracked pod is not woken"
        objects.untrack("b")
        assert objects.statistics().watches == 0
        with pytest.raises(
            ConfigError, match='secret "shared" of namespace "ns" is not registered'
        ):
            objects.secret("ns", "shared")
        objects.track(pod("c", secrets=("shared",)))
        await objects.wait_for_pod("c")
        assert calls(client, "watch", "Secret") == 2, "watched again for the new pod"
        found = objects.secret("ns", "shared")
        assert found is not None
        assert found.data["k"] == b"new"


async def test_changes_wake_exactly_the_pods_using_the_object() -> None:
    client, woken = FakeClient(), Woken()
    async with running(client, woken) as objects:
        objects.track(pod("cm", config_map="app"))
        objects.track(pod("s", secrets=("db",)))
        await objects.wait_for_pod("cm")
        await objects.wait_for_pod("s")
        assert objects.config_map("ns", "app") is None, "missing: None once listed"
        app = from_dict(ConfigMap, {"metadata": {"name": "app", "namespace": "ns"}})
        cases: list[tuple[str, Callable[[], Awaitable[Any]], str]] = [
            ("configmap created", lambda: client.create(app), "cm"),
            ("secret created", lambda: client.create(secret("db")), "s"),
            ("secret changed", lambda: client.update(secret("db", "other")), "s"),
            ("secret deleted", lambda: client.delete(Secret, "db", namespace="ns"), "s"),
        ]
        for name, change, uid in cases:
            before = dict(woken.uids)
            await change()
            await woken.until(uid, before.get(uid, 0) + 1)
            others = {k: v for k, v in woken.uids.items() if k != uid}
            assert others == {k: v for k, v in before.items() if k != uid}, name
        assert objects.config_map("ns", "app") is not None
        assert objects.secret("ns", "db") is None, "deleted while in use"
        with pytest.raises(ConfigError, match="not registered"):
            objects.secret("ns", "unused")


async def test_an_object_not_listed_yet_is_not_taken_for_missing() -> None:
    client, woken = FakeClient(), Woken()
    client.add(secret("db"))
    refusing = True

    def refuse(_: Action) -> None:
        if refusing:
            raise errors.Forbidden("secrets is forbidden: not yet")

    client.prepend_reactor("list", "Secret", refuse)
    async with running(client, woken, sync_timeout=0.2) as objects:
        objects.track(pod("a", secrets=("db",)))
        with anyio.fail_after(2):
            await objects.wait_for_pod("a")  # gives up after the sync timeout
        with pytest.raises(ConfigError, match="failed to sync secret cache: ns/db is not listed"):
            objects.secret("ns", "db")
        refusing = False
        await woken.until("a")  # the reflector's retry lists it
        assert objects.secret("ns", "db") is not None


async def test_a_claims_volume_is_read_with_get_when_the_claim_names_it() -> None:
    client, woken = FakeClient(), Woken()
    client.add(claim("data"))
    async with running(client, woken, volume_backoff=(0.05, 0.1)) as objects:
        objects.track(pod("a", claim="data"))
        await objects.wait_for_pod("a")
        assert objects.persistent_volume_claim("ns", "data") is not None
        assert calls(client, "get", "PersistentVolume") == 0, "not bound: no volume to read"
        client.add(
            claim("data", "pv-1")
        )  # bound (as the binder writes it) before the volume exists
        await woken.until("a", 3)  # the list, the claim's change, its volume answered
        assert objects.persistent_volume("pv-1") is None
        client.add(volume("pv-1"))
        await woken.until("a", 4)  # read again after the back-off: found
        found = objects.persistent_volume("pv-1")
        assert found is not None
        assert found.spec.host_path.path == "/tmp"
        assert calls(client, "list", "PersistentVolume") == 0, "never listed, only got"
        assert calls(client, "watch", "PersistentVolume") == 0
        objects.untrack("a")
        assert objects.statistics().volumes == 0
        assert objects.persistent_volume("pv-1") is None


async def test_simulated_nodes_share_one_watch_per_object(tmp_path: Path) -> None:
    """Pods of two simulated nodes of one process using one Secret: one
    watch of it, and both run."""
    client = FakeClient()
    client.add(secret("shared"))
    node = NodeConfig(name="sim", root_dir=str(tmp_path), heartbeat=3600.0)
    nodes = SimulatedNodes(cast("Client", client), AgentConfig(node=node, root_dir=tmp_path), 2)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(nodes.run)
            for name, on in (("one", "sim-1"), ("two", "sim-2")):
                p = pod(name, secrets=("shared",))
                p.metadata.name, p.spec.node_name = name, on
                await client.create(p, namespace="ns")
            for name in ("one", "two"):
                async with client.watch(
                    Pod, namespace="ns", field_selector=f"metadata.name={name}"
                ) as events:
                    async for event in events:
                        if event.object.status.phase == "Running":
                            break
            assert calls(client, "watch", "Secret") == 1
            assert calls(client, "list", "Secret") == 1
            tg.cancel_scope.cancel()

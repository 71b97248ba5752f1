"""Persistent volumes over a real API server and etcd, with the binder, the
local-path provisioner and the protection controllers running: a claim
binds a fitting volume; a claim deleted under policy Delete takes its
volume with it; a claim of a missing class stays Pending with the event
Kubernetes gives; a local-path claim of an Immediate class gets a volume on
a Ready node, whose directory goes when the claim does.

Volumes and classes are cluster-scoped and etcd is shared by the session,
so every class here is named after the test's namespace."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import errors
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Event, Node, NodeCondition, PersistentVolume, PersistentVolumeClaim
from kpy.api.storage.v1 import StorageClass
from kpy.component import ElectionOptions
from kpy.controllers.manager import ControllerManager, ManagerConfig
from kpy.controllers.volume import (
    ANN_PROVISIONED_BY,
    PV_PROTECTION_FINALIZER,
    PVC_PROTECTION_FINALIZER,
)
from tests.integration._controllers import eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from kpy.client import Client

pytestmark = pytest.mark.etcd

CONTROLLERS = (
    "persistentvolume-binder",
    "local-path-provisioner",
    "pvc-protection",
    "pv-protection",
)


@asynccontextmanager
async def volume_controllers(
    client: Client, namespace: str, local_path_dir: Path
) -> AsyncIterator[ControllerManager]:
    manager = ControllerManager(
        client,
        ManagerConfig(
            controllers=CONTROLLERS,
            namespace=namespace,
            election=ElectionOptions(enabled=False),
            metrics_port=None,
            local_path_dir=local_path_dir,
        ),
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        with anyio.fail_after(15):
            await manager.leading.wait()
        yield manager
        tg.cancel_scope.cancel()


def claim(name: str, cls: str, size: str = "1Gi") -> PersistentVolumeClaim:
    body = {
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
            "storageClassName": cls,
        },
    }
    made: PersistentVolumeClaim = from_dict(PersistentVolumeClaim, body)
    return made


def volume(name: str, cls: str, size: str, *, policy: str = "Retain") -> PersistentVolume:
    body = {
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": f"/tmp/{name}"},
            "storageClassName": cls,
            "persistentVolumeReclaimPolicy": policy,
        },
    }
    made: PersistentVolume = from_dict(PersistentVolume, body)
    return made


async def _get(client: Client, kind: type[Any], name: str, namespace: str = "") -> Any:
    try:
        return await client.get(kind, name, namespace=namespace or None)
    except errors.NotFound:
        return None


async def _gone(client: Client, kind: type[Any], name: str, namespace: str = "") -> bool:
    return await _get(client, kind, name, namespace) is None


async def test_a_claim_binds_the_smallest_fitting_volume(
    client: Client, api_namespace: str, tmp_path: Path
) -> None:
    ns = api_namespace
    cls = f"{ns}-manual"
    for name, size in ((f"{ns}-big", "10Gi"), (f"{ns}-fits", "2Gi"), (f"{ns}-tiny", "100Mi")):
        await client.create(volume(name, cls, size))
    async with volume_controllers(client, ns, tmp_path):
        await client.create(claim("data", cls))

        async def bound() -> Any:
            c = await client.get(PersistentVolumeClaim, "data", namespace=ns)
            return c if c.status.phase == "Bound" else None

        stored = await eventually(bound, what="the claim Bound")
        assert stored.spec.volume_name == f"{ns}-fits"
        assert stored.status.capacity["storage"].string == "2Gi"
        assert PVC_PROTECTION_FINALIZER in stored.metadata.finalizers
        pv = await client.get(PersistentVolume, f"{ns}-fits")
        assert pv.spec.claim_ref.uid == stored.metadata.uid
        assert PV_PROTECTION_FINALIZER in pv.metadata.finalizers

        async def phases() -> Any:
            got = [
                (await client.get(PersistentVolume, f"{ns}-{n}")).status.phase
                for n in ("big", "fits", "tiny")
            ]
            return got if got == ["Available", "Bound", "Available"] else None

        await eventually(phases, what="the other volumes Available")


async def test_deleting_the_claim_deletes_a_delete_policy_volume(
    client: Client, api_namespace: str, tmp_path: Path
) -> None:
    ns = api_namespace
    cls = f"{ns}-manual"
    await client.create(volume(f"{ns}-pv", cls, "1Gi", policy="Delete"))
    async with volume_controllers(client, ns, tmp_path):
        await client.create(claim("data", cls))

        async def bound() -> bool:
            c = await client.get(PersistentVolumeClaim, "data", namespace=ns)
            return c.status.phase == "Bound"

        await eventually(bound, what="the claim Bound")
        await client.delete(PersistentVolumeClaim, "data", namespace=ns)
        await eventually(
            lambda: _gone(client, PersistentVolumeClaim, "data", ns), what="the claim gone"
        )
        await eventually(
            lambda: _gone(client, PersistentVolume, f"{ns}-pv"), what="the volume deleted"
        )


async def test_a_claim_of_a_missing_class_stays_pending_with_an_event(
    client: Client, api_namespace: str, tmp_path: Path
) -> None:
    ns = api_namespace
    cls = f"{ns}-missing"
    async with volume_controllers(client, ns, tmp_path):
        await client.create(claim("www-web-0", cls))

        async def event() -> list[str]:
            events = await client.list(
                Event, namespace=ns, field_selector="involvedObject.name=www-web-0"
            )
            return [f"{e.type} {e.reason}: {e.message}" for e in events.items]

        got = await eventually(event, what="an event on the claim")
        assert got == [f'Warning ProvisioningFailed: storageclass.storage.k8s.io "{cls}" not found']
        stored = await client.get(PersistentVolumeClaim, "www-web-0", namespace=ns)
        assert stored.status.phase == "Pending"
        assert not stored.spec.volume_name


async def _ready_node(client: Client, name: str) -> None:
    node = Node()
    node.metadata.name = name
    node.metadata.labels["kubernetes.io/hostname"] = name
    stored = await client.create(node)
    stored.status.conditions.append(NodeCondition(type="Ready", status="True"))
    await client.update_status(stored)


async def test_a_local_path_claim_gets_a_volume_on_a_ready_node(
    client: Client, api_namespace: str, tmp_path: Path
) -> None:
    ns = api_namespace
    cls = f"{ns}-local"
    node = f"{ns}-node"
    await _ready_node(client, node)
    sc = StorageClass(provisioner="kpy.io/local-path", volume_binding_mode="Immediate")
    sc.metadata.name = cls
    await client.create(sc)
    try:
        async with volume_controllers(client, ns, tmp_path):
            created = await client.create(claim("data", cls, "3Gi"))

            async def bound() -> Any:
                c = await client.get(PersistentVolumeClaim, "data", namespace=ns)
                return c if c.status.phase == "Bound" else None

            stored = await eventually(bound, what="the claim Bound")
            name = f"pvc-{created.metadata.uid}"
            assert stored.spec.volume_name == name
            pv = await client.get(PersistentVolume, name)
            assert pv.metadata.annotations[ANN_PROVISIONED_BY] == "kpy.io/local-path"
            assert pv.spec.host_path.path == str(tmp_path / f"{ns}_data_{name}")
            assert pv.spec.host_path.type == "DirectoryOrCreate"
            assert pv.spec.persistent_volume_reclaim_policy == "Delete"
            (term,) = pv.spec.node_affinity.required.node_selector_terms
            (req,) = term.match_expressions
            assert (req.key, req.operator) == ("kubernetes.io/hostname", "In")
            (chosen,) = req.values
            chosen_node = await client.get(Node, chosen)
            assert any(
                c.type == "Ready" and c.status == "True" for c in chosen_node.status.conditions
            )

            # What the agent does when a pod mounts it; gone with the claim.
            (tmp_path / f"{ns}_data_{name}").mkdir()
            await client.delete(PersistentVolumeClaim, "data", namespace=ns)
            await eventually(lambda: _gone(client, PersistentVolume, name), what="volume gone")
            assert not (tmp_path / f"{ns}_data_{name}").exists()
    finally:
        await client.delete(StorageClass, cls)
        await client.delete(Node, node)


async def test_a_claim_without_class_gets_the_default_class(
    client: Client, api_namespace: str
) -> None:
    ns = api_namespace
    sc = StorageClass(provisioner="kpy.io/local-path", volume_binding_mode="WaitForFirstConsumer")
    sc.metadata.name = f"{ns}-default"
    sc.metadata.annotations["storageclass.kubernetes.io/is-default-class"] = "true"
    await client.create(sc)
    try:
        body = claim("data", "")
        body.spec.ClearField("storage_class_name")
        stored = await client.create(body)
        assert stored.spec.storage_class_name == f"{ns}-default"
        none = claim("none", "")
        assert (await client.create(none)).spec.storage_class_name == ""
    finally:
        await client.delete(StorageClass, f"{ns}-default")


@pytest.mark.parametrize("expandable", [True, False], ids=["expandable", "fixed"])
async def test_a_bound_claim_grows_only_if_its_class_allows(
    client: Client, api_namespace: str, tmp_path: Path, expandable: bool
) -> None:
    ns = api_namespace
    cls = f"{ns}-manual"
    sc = StorageClass(provisioner="example.com/manual", allow_volume_expansion=expandable)
    sc.metadata.name = cls
    await client.create(sc)
    await client.create(volume(f"{ns}-pv", cls, "1Gi"))
    try:
        async with volume_controllers(client, ns, tmp_path):
            await client.create(claim("data", cls))

            async def bound() -> Any:
                c = await client.get(PersistentVolumeClaim, "data", namespace=ns)
                return c if c.status.phase == "Bound" else None

            stored = await eventually(bound, what="the claim Bound")
            stored.spec.resources.requests["storage"].string = "2Gi"
            if not expandable:
                with pytest.raises(errors.Forbidden, match="must support resize"):
                    await client.update(stored)
                return
            await client.update(stored)

            async def grown() -> bool:
                c = await client.get(PersistentVolumeClaim, "data", namespace=ns)
                return c.status.capacity["storage"].string == "2Gi"

            await eventually(grown, what="the claim's capacity 2Gi")
            pv = await client.get(PersistentVolume, f"{ns}-pv")
            assert pv.spec.capacity["storage"].string == "2Gi"
    finally:
        await client.delete(StorageClass, cls)

"""The scheduler's VolumeBinding over the real API server: a pod with a
WaitForFirstConsumer claim goes to the node of the volume that fits it,
the scheduler sets that volume's claimRef and binds the pod only once the
claim is Bound; a claim to provision gets the node in its
`volume.kubernetes.io/selected-node` annotation; a pod whose claim is
missing is told so and scheduled once the claim is there.

The PV controller and the provisioner are played by the tests (they are
another component): each waits for what the scheduler writes and answers
as they would; the last test runs them for real, with an agent, end to
end. Like test_scheduler.py, the module runs its own cluster
(an API server under another etcd prefix), so that the nodes it counts
are its own."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import errors
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod
from kpy.api.storage.v1 import StorageClass
from kpy.apiserver.process import APIServerProcess
from kpy.client import Client
from kpy.component import ElectionOptions
from kpy.controllers.manager import ControllerManager, ManagerConfig
from kpy.scheduler.plugins.volume_binding import ANN_SELECTED_NODE
from kpy.scheduler.scheduler import Scheduler
from tests.integration._agent import running_agent
from tests.integration._controllers import eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from kpy.storage import EtcdServer

HOSTNAME = "kubernetes.io/hostname"
TIMEOUT = 20.0


@pytest.fixture(scope="module")
def cluster(etcd_server: EtcdServer) -> Iterator[APIServerProcess]:
    """An empty cluster for this module, stopped by pid."""
    server = APIServerProcess(
        etcd_server.endpoint,
        bookmark_interval=0.5,
        extra_args=("--etcd-prefix", "/volume-sched-tests"),
    )
    server.start()
    pid = server.pid
    yield server
    server.stop()
    server.log_path.unlink(missing_ok=True)
    assert not Path(f"/proc/{pid}").exists()


@pytest.fixture
async def client(cluster: APIServerProcess, namespace: str) -> AsyncIterator[Client]:
    async with Client(cluster.address, retry_timeout=10.0) as c:
        ns = Namespace()
        ns.metadata.name = namespace
        await c.create(ns)
        c.config = dataclasses.replace(c.config, namespace=namespace)
        yield c


@contextlib.asynccontextmanager
async def world(client: Client, prefix: str, *objects: Any) -> AsyncIterator[None]:
    """Two nodes `<prefix>-a` and `<prefix>-b` and the cluster-wide
    `objects`, all deleted at the end."""
    made: list[Any] = []
    try:
        for name in (f"{prefix}-a", f"{prefix}-b"):
            n = from_dict(
                Node,
                {
                    "metadata": {"name": name, "labels": {HOSTNAME: name}},
                    "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
                },
            )
            created = await client.create(n)
            created.status.CopyFrom(n.status)
            made.append(await client.update_status(created))
        for obj in objects:
            made.append(await client.create(obj))
        yield
    finally:
        for obj in made:
            with contextlib.suppress(errors.NotFound):
                await client.delete(type(obj), obj.metadata.name)


@contextlib.asynccontextmanager
async def scheduling(client: Client, name: str) -> AsyncIterator[Scheduler]:
    scheduler = Scheduler(
        client, scheduler_name=name, election=ElectionOptions(enabled=False), bind_concurrency=8
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        with anyio.fail_after(15):
            await scheduler.leading.wait()
        yield scheduler
        tg.cancel_scope.cancel()


def storage_class(name: str, provisioner: str) -> StorageClass:
    return from_dict(
        StorageClass,
        {
            "metadata": {"name": name},
            "provisioner": provisioner,
            "volumeBindingMode": "WaitForFirstConsumer",
        },
    )


def volume(name: str, cls: str, node_name: str, size: str = "1Gi") -> PersistentVolume:
    return from_dict(
        PersistentVolume,
        {
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": cls,
                "hostPath": {"path": f"/tmp/{name}", "type": "DirectoryOrCreate"},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": HOSTNAME, "operator": "In", "values": [node_name]}
                                ]
                            }
                        ]
                    }
                },
            },
        },
    )


def claim(name: str, cls: str) -> PersistentVolumeClaim:
    return from_dict(
        PersistentVolumeClaim,
        {
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": cls,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )


def claim_pod(name: str, scheduler: str, claim_name: str) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {"name": name},
            "spec": {
                "schedulerName": scheduler,
                "containers": [{"name": "c", "image": "busybox"}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim_name}}],
            },
        },
    )


async def bind(client: Client, claim_name: str, pv_name: str) -> None:
    """What the PV controller does once a volume's claimRef names a claim."""
    pvc = await client.get(PersistentVolumeClaim, claim_name)
    pvc.spec.volume_name = pv_name
    pvc = await client.update(pvc)
    pvc.status.phase = "Bound"
    await client.update_status(pvc)
    pv = await client.get(PersistentVolume, pv_name)
    pv.status.phase = "Bound"
    await client.update_status(pv)


async def node_of(client: Client, name: str) -> str:
    return (await client.get(Pod, name)).spec.node_name


async def test_a_pod_goes_to_its_volumes_node_once_the_claim_is_bound(
    client: Client, namespace: str
) -> None:
    prefix, sched = namespace[:40], f"s-{namespace}"
    cls = f"{prefix}-wait"
    # Only node b has volumes big enough; of its two the smaller is taken.
    pvs = [
        volume(f"{prefix}-small", cls, f"{prefix}-a", "500Mi"),
        volume(f"{prefix}-big", cls, f"{prefix}-b", "10Gi"),
        volume(f"{prefix}-fit", cls, f"{prefix}-b"),
    ]
    async with world(client, prefix, storage_class(cls, "kubernetes.io/no-provisioner"), *pvs):
        await client.create(claim("data", cls))
        async with scheduling(client, sched):
            await client.create(claim_pod("p", sched, "data"))

            async def claim_ref() -> str:
                pv = await client.get(PersistentVolume, f"{prefix}-fit")
                return pv.spec.claim_ref.name

            assert await eventually(claim_ref, TIMEOUT, "claimRef set") == "data"
            # The pod waits for its claim: not bound yet.
            await anyio.sleep(0.5)
            assert await node_of(client, "p") == ""
            await bind(client, "data", f"{prefix}-fit")
            placed = await eventually(lambda: node_of(client, "p"), TIMEOUT, "pod bound")
            assert placed == f"{prefix}-b"
            for other in ("big", "small"):
                pv = await client.get(PersistentVolume, f"{prefix}-{other}")
                assert not pv.spec.HasField("claim_ref"), other


async def test_a_claim_to_provision_gets_the_chosen_node(client: Client, namespace: str) -> None:
    prefix, sched = namespace[:40], f"s-{namespace}"
    cls = f"{prefix}-local"
    async with world(client, prefix, storage_class(cls, "kpy.io/local-path")):
        await client.create(claim("data", cls))
        async with scheduling(client, sched):
            await client.create(claim_pod("p", sched, "data"))

            async def selected() -> str:
                pvc = await client.get(PersistentVolumeClaim, "data")
                return pvc.metadata.annotations.get(ANN_SELECTED_NODE, "")

            node_name = await eventually(selected, TIMEOUT, "selected-node annotation")
            assert node_name in (f"{prefix}-a", f"{prefix}-b")
            # The provisioner makes a volume on that node, the binder binds it.
            pv = volume(f"{prefix}-pvc-data", cls, node_name)
            pv.spec.claim_ref.namespace, pv.spec.claim_ref.name = namespace, "data"
            await client.create(pv)
            try:
                await bind(client, "data", f"{prefix}-pvc-data")
                placed = await eventually(lambda: node_of(client, "p"), TIMEOUT, "pod bound")
                assert placed == node_name
            finally:
                await client.delete(PersistentVolume, f"{prefix}-pvc-data")


async def test_a_pod_with_a_missing_claim_is_told_and_scheduled_when_it_comes(
    client: Client, namespace: str
) -> None:
    prefix, sched = namespace[:40], f"s-{namespace}"
    cls = f"{prefix}-wait"
    pv = volume(f"{prefix}-fit", cls, f"{prefix}-a")
    no_provisioner = storage_class(cls, "kubernetes.io/no-provisioner")
    async with world(client, prefix, no_provisioner, pv), scheduling(client, sched):
        await client.create(claim_pod("p", sched, "data"))

        async def refused() -> str:
            found = await client.get(Pod, "p")
            c = next((c for c in found.status.conditions if c.type == "PodScheduled"), None)
            return c.message if c is not None and c.status == "False" else ""

        message = await eventually(refused, TIMEOUT, "PodScheduled=False")
        assert message == '0/2 nodes are available: persistentvolumeclaim "data" not found.'

        await client.create(claim("data", cls))

        async def claim_ref() -> str:
            return (await client.get(PersistentVolume, f"{prefix}-fit")).spec.claim_ref.name

        assert await eventually(claim_ref, TIMEOUT, "claimRef set") == "data"
        await bind(client, "data", f"{prefix}-fit")
        placed = await eventually(lambda: node_of(client, "p"), TIMEOUT, "pod bound")
        assert placed == f"{prefix}-a"


@contextlib.asynccontextmanager
async def volume_controllers(
    client: Client, namespace: str, local_path_dir: Path
) -> AsyncIterator[None]:
    """The PV binder and the local-path provisioner, as `kpy up` runs them."""
    manager = ControllerManager(
        client,
        ManagerConfig(
            controllers=("persistentvolume-binder", "local-path-provisioner"),
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
        yield
        tg.cancel_scope.cancel()


def writer_pod(name: str, scheduler: str, script: str) -> Pod:
    pod = claim_pod(name, scheduler, "data")
    c = pod.spec.containers[0]
    c.command.extend(["sh", "-c", script])
    c.volume_mounts.add(name="d", mount_path=MOUNT)
    pod.spec.restart_policy = "Never"
    pod.spec.termination_grace_period_seconds = 1
    return pod


MOUNT = "/tmp/kpy-volume-scheduling/data"  # where the process runtime mounts


async def finished(client: Client, name: str) -> str:
    async def phase() -> str:
        got = await client.get(Pod, name)
        return got.status.phase if got.status.phase in ("Succeeded", "Failed") else ""

    return await eventually(phase, TIMEOUT, f"pod {name} finished")


async def test_a_local_path_claim_end_to_end(
    client: Client, namespace: str, tmp_path: Path
) -> None:
    """Scheduler, binder, provisioner and agent together: the pod's claim
    is provisioned on the node the pod goes to, and its data stays there
    for the next pod."""
    prefix, sched = namespace[:40], f"s-{namespace}"
    cls = f"{prefix}-local"
    disks = tmp_path / "local-path"
    sc = await client.create(storage_class(cls, "kpy.io/local-path"))
    try:
        async with (
            running_agent(client, runtime="process", root=tmp_path / "agents") as agent,
            volume_controllers(client, namespace, disks),
            scheduling(client, sched),
        ):
            await client.create(claim("data", cls))
            await client.create(writer_pod("writer", sched, f"echo kept > {MOUNT}/file"))
            assert await finished(client, "writer") == "Succeeded"
            assert await node_of(client, "writer") == agent.node_name
            pvc = await client.get(PersistentVolumeClaim, "data")
            assert pvc.metadata.annotations[ANN_SELECTED_NODE] == agent.node_name
            pv = await client.get(PersistentVolume, pvc.spec.volume_name)
            disk = Path(pv.spec.host_path.path)
            assert disk.is_relative_to(disks)
            assert (disk / "file").read_text() == "kept\n"

            read = f'test "$(cat {MOUNT}/file)" = kept'
            await client.create(writer_pod("reader", sched, read))
            assert await finished(client, "reader") == "Succeeded"
    finally:
        with contextlib.suppress(errors.NotFound):
            await client.delete(StorageClass, sc.metadata.name)

"""A pod's persistentVolumeClaim volumes on a real agent (process runtime):
the claim's bound hostPath volume is mounted where the pod asks, what one
pod writes the next pod reads, a readOnly claim cannot be written, and a
claim that is missing keeps the pod waiting, saying which claim, until it
is there and bound.

The PV controller is not needed: each test creates the PersistentVolume
and the claim and sets their bound state itself (the claim's volumeName
and phase Bound, the volume's claimRef and phase Bound), as the binder
would. PersistentVolumes are cluster-wide, so each is named after the
test's namespace."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kpy.api import codec, errors
from kpy.api.core.v1 import PersistentVolume, PersistentVolumeClaim, Pod
from tests.integration._agent import running_agent
from tests.integration._controllers import eventually

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.client import Client
    from tests.integration._agent import AgentHandle

# Under /tmp, where the process runtime makes its mount points.
MOUNT = "/tmp/kpy-pvc-mounts/data"
TIMEOUT = 30.0  # the machine is shared and loaded: generous
# The agent retries a volume that failed every 10 s; woken by the claim, the
# pod runs in well under a second, so this leaves ample slack either way.
WOKEN_WITHIN = 7.0


async def bound_claim(
    client: Client, namespace: str, claim: str, disk: Path, node_name: str
) -> str:
    """A hostPath PV at `disk` (DirectoryOrCreate, pinned to `node_name`)
    bound to claim `claim` of `namespace`; the PV's name."""
    pv_name = f"{namespace}-{claim}"
    pv = codec.from_dict(
        PersistentVolume,
        {
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "manual",
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(disk), "type": "DirectoryOrCreate"},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/hostname",
                                        "operator": "In",
                                        "values": [node_name],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
        },
    )
    pv = await client.create(pv)
    pvc = codec.from_dict(
        PersistentVolumeClaim,
        {
            "metadata": {"name": claim},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "manual",
                "resources": {"requests": {"storage": "1Gi"}},
                "volumeName": pv_name,
            },
        },
    )
    pvc = await client.create(pvc, namespace=namespace)
    pvc.status.phase = "Bound"
    pvc.status.access_modes.append("ReadWriteOnce")
    pvc.status.capacity["storage"].string = "1Gi"
    await client.update_status(pvc)
    pv = await client.get(PersistentVolume, pv_name)
    ref = pv.spec.claim_ref
    ref.kind, ref.api_version = "PersistentVolumeClaim", "v1"
    ref.namespace, ref.name, ref.uid = namespace, claim, pvc.metadata.uid
    pv = await client.update(pv)
    pv.status.phase = "Bound"
    await client.update_status(pv)
    return pv_name


def claim_pod(name: str, agent: AgentHandle, script: str, *, read_only: bool = False) -> Pod:
    return codec.from_dict(
        Pod,
        {
            "metadata": {"name": name},
            "spec": {
                "nodeName": agent.node_name,
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "command": ["sh", "-c", script],
                        "volumeMounts": [{"name": "data", "mountPath": MOUNT}],
                    }
                ],
                "volumes": [
                    {
                        "name": "data",
                        "persistentVolumeClaim": {"claimName": "data", "readOnly": read_only},
                    }
                ],
            },
        },
    )


async def finished(client: Client, name: str) -> str:
    """The pod's final phase, once it has one."""

    async def phase() -> str:
        got = await client.get(Pod, name)
        return got.status.phase if got.status.phase in ("Succeeded", "Failed") else ""

    return await eventually(phase, TIMEOUT, f"pod {name} finished")


async def deleted(client: Client, name: str) -> None:
    await client.delete(Pod, name, grace_period_seconds=0)

    async def gone() -> bool:
        try:
            await client.get(Pod, name)
        except errors.NotFound:
            return True
        return False

    await eventually(gone, TIMEOUT, f"pod {name} gone")


async def test_what_one_pod_writes_the_next_reads(
    client: Client, api_namespace: str, tmp_path: Path
) -> None:
    disk = tmp_path / "disks" / "data"  # not there yet: DirectoryOrCreate makes it
    async with running_agent(client, runtime="process", root=tmp_path / "agents") as agent:
        pv_name = await bound_claim(client, api_namespace, "data", disk, agent.node_name)
        try:
            await client.create(claim_pod("writer", agent, f"echo kept > {MOUNT}/file"))
            assert await finished(client, "writer") == "Succeeded"
            assert (disk / "file").read_text() == "kept\n"
            await deleted(client, "writer")

            read = f'test "$(cat {MOUNT}/file)" = kept'
            await client.create(claim_pod("reader", agent, read))
            assert await finished(client, "reader") == "Succeeded"

            write = f"echo more > {MOUNT}/other"
            await client.create(claim_pod("read-only", agent, write, read_only=True))
            assert await finished(client, "read-only") == "Failed"
            assert not (disk / "other").exists()
        finally:
            await client.delete(PersistentVolume, pv_name)


async def test_a_pod_waits_for_its_claim_naming_it(
    client: Client, api_namespace: str, tmp_path: Path
) -> None:
    disk = tmp_path / "disks" / "late"
    async with running_agent(client, runtime="process", root=tmp_path / "agents") as agent:
        await client.create(claim_pod("waiter", agent, f"touch {MOUNT}/arrived"))

        async def waiting_message() -> str:
            got = await client.get(Pod, "waiter")
            for status in got.status.container_statuses:
                if status.state.waiting.reason == "ContainerCreating":
                    return status.state.waiting.message
            return ""

        message = await eventually(waiting_message, TIMEOUT, "ContainerCreating with a message")
        assert 'persistentvolumeclaim "data" not found' in message
        assert (await client.get(Pod, "waiter")).status.phase == "Pending"

        pv_name = await bound_claim(client, api_namespace, "data", disk, agent.node_name)
        try:
            # The claim's arrival wakes the pod: it does not wait for the
            # agent's 10 s retry of a volume that failed.
            started = time.monotonic()
            assert await finished(client, "waiter") == "Succeeded"
            assert time.monotonic() - started < WOKEN_WITHIN
            assert (disk / "arrived").exists()
        finally:
            await client.delete(PersistentVolume, pv_name)

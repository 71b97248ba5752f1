"""The pvc-protection and pv-protection controllers' `sync`, table by
table, on the fake client (after Kubernetes' pvc_protection_controller_test.go
and pv_protection_controller_test.go): which finalizers the object is left
with, and whether it is gone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from kpy.api import codec
from kpy.api.core.v1 import PersistentVolume, PersistentVolumeClaim, Pod
from kpy.api.defaults import set_defaults
from kpy.apiserver.admission import admit
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.controllers.volume import PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER
from kpy.controllers.volume.protection import (
    PVCProtectionController,
    PVProtectionController,
    claims_of,
)

NOW = 1_700_000_000.0
PVC_F, PV_F = PVC_PROTECTION_FINALIZER, PV_PROTECTION_FINALIZER


def claim(*, finalizers: tuple[str, ...] = (PVC_F,), deleting: bool = False) -> Any:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    meta = {"name": "data", "namespace": "default", "uid": "data-uid"}
    c = set_defaults(codec.from_dict(PersistentVolumeClaim, {"metadata": meta, "spec": spec}))
    c.metadata.finalizers.extend(finalizers)
    if deleting:
        c.metadata.deletion_timestamp.FromSeconds(int(NOW))
    return c


def pod(
    name: str,
    *,
    uses: str = "data",
    phase: str = "Running",
    ephemeral: str = "",
    namespace: str = "default",
) -> Pod:
    p = Pod()
    p.metadata.name, p.metadata.namespace = name, namespace
    p.spec.containers.add(name="c", image="busybox")
    if uses:
        v = p.spec.volumes.add(name="v")
        v.persistent_volume_claim.claim_name = uses
    if ephemeral:
        v = p.spec.volumes.add(name=ephemeral)
        v.ephemeral.volume_claim_template.spec.access_modes.append("ReadWriteOnce")
    p.status.phase = phase
    return p


def volume(
    *, finalizers: tuple[str, ...] = (PV_F,), deleting: bool = False, phase: str = "Bound"
) -> Any:
    spec = {
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "1Gi"},
        "hostPath": {"path": "/tmp/pv-1"},
    }
    meta = {"name": "pv-1", "uid": "pv-1-uid"}
    v = set_defaults(codec.from_dict(PersistentVolume, {"metadata": meta, "spec": spec}))
    v.metadata.finalizers.extend(finalizers)
    if deleting:
        v.metadata.deletion_timestamp.FromSeconds(int(NOW))
    v.status.phase = phase
    return v


def shown(obj: Any) -> str:
    if obj is None:
        return "gone"
    return ",".join(obj.metadata.finalizers) or "no finalizer"


@dataclass(frozen=True)
class ClaimCase:
    name: str
    claim: Any
    pods: list[Pod]
    want: str
    live_pods: tuple[Pod, ...] = ()  # in the API but not yet in the lister


CLAIM_CASES = [
    ClaimCase("a claim without the finalizer gets it", claim(finalizers=()), [], PVC_F),
    ClaimCase("a claim with it keeps it", claim(), [], PVC_F),
    ClaimCase(
        "a deleted claim no pod uses is let go",
        claim(deleting=True),
        [pod("other", uses="elsewhere")],
        "gone",
    ),
    ClaimCase(
        "a deleted claim a running pod uses is kept", claim(deleting=True), [pod("web")], PVC_F
    ),
    ClaimCase(
        "a deleted claim a pending pod uses is kept",
        claim(deleting=True),
        [pod("web", phase="Pending")],
        PVC_F,
    ),
    ClaimCase(
        "a pod that finished does not hold the claim",
        claim(deleting=True),
        [pod("job-1", phase="Succeeded"), pod("job-2", phase="Failed")],
        "gone",
    ),
    ClaimCase(
        "a pod of another namespace does not hold the claim",
        claim(deleting=True),
        [pod("web", namespace="other")],
        "gone",
    ),
    ClaimCase(
        "a pod the lister has not seen yet holds the claim",
        claim(deleting=True),
        [],
        PVC_F,
        live_pods=(pod("new"),),
    ),
    ClaimCase(
        "another finalizer stays",
        claim(finalizers=(PVC_F, "example.com/backup"), deleting=True),
        [],
        "example.com/backup",
    ),
]


@pytest.mark.parametrize("case", CLAIM_CASES, ids=lambda c: c.name)
async def test_pvc_protection(case: ClaimCase) -> None:
    client = FakeClient(now=lambda: NOW)
    claims = SharedInformer(client, PersistentVolumeClaim)
    pods = SharedInformer(client, Pod)
    controller = PVCProtectionController(client, claims, pods)
    try:
        for stored in client.add(case.claim):
            claims.indexer.add(stored)
        for stored in client.add(*case.pods):
            pods.indexer.add(stored)
        client.add(*case.live_pods)
        await controller.sync("default/data")
        got = shown(client.stored(PersistentVolumeClaim, "data"))
        assert got == case.want, f"{case.name}: {got}"
    finally:
        controller.queue.shut_down()


@dataclass(frozen=True)
class VolumeCase:
    name: str
    volume: Any
    want: str


VOLUME_CASES = [
    VolumeCase("a volume without the finalizer gets it", volume(finalizers=()), PV_F),
    VolumeCase("a deleted Bound volume is kept", volume(deleting=True), PV_F),
    VolumeCase(
        "a deleted Released volume is let go", volume(deleting=True, phase="Released"), "gone"
    ),
    VolumeCase(
        "a deleted Available volume is let go", volume(deleting=True, phase="Available"), "gone"
    ),
]


@pytest.mark.parametrize("case", VOLUME_CASES, ids=lambda c: c.name)
async def test_pv_protection(case: VolumeCase) -> None:
    client = FakeClient(now=lambda: NOW)
    volumes = SharedInformer(client, PersistentVolume)
    controller = PVProtectionController(client, volumes)
    try:
        for stored in client.add(case.volume):
            volumes.indexer.add(stored)
        await controller.sync("pv-1")
        (got,) = [shown(v) for v in client.stored_list(PersistentVolume)] or ["gone"]
        assert got == case.want, f"{case.name}: {got}"
    finally:
        controller.queue.shut_down()


@pytest.mark.parametrize(
    ("obj", "finalizer"),
    [(claim(finalizers=()), PVC_F), (volume(finalizers=()), PV_F)],
    ids=["claim", "volume"],
)
def test_admission_adds_the_finalizer_once(obj: Any, finalizer: str) -> None:
    admit(obj)
    admit(obj)
    assert list(obj.metadata.finalizers) == [finalizer]


def test_claims_of_names_ephemeral_claims_after_pod_and_volume() -> None:
    assert claims_of(pod("web", uses="data", ephemeral="scratch")) == ["data", "web-scratch"]

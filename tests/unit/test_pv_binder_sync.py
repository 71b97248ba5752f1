"""The PV controller's `sync`, table by table, on the fake client (after
Kubernetes' pkg/controller/volume/persistentvolume binder_test.go and
provision_test.go).

Each case seeds volumes, claims and classes, syncs every key until nothing
changes, and shows what is stored as short strings:
`pv-name Phase ns/claim` for a volume and `claim Phase volume` for a claim,
plus the events recorded as `Reason: message`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from kpy.api import codec
from kpy.api.core.v1 import Node, PersistentVolume, PersistentVolumeClaim
from kpy.api.defaults import set_defaults
from kpy.api.storage.v1 import StorageClass
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.controllers.volume import (
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_DEFAULT_CLASS,
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
)
from kpy.controllers.volume.binder import PersistentVolumeController

NOW = 1_700_000_000.0
KINDS = (PersistentVolume, PersistentVolumeClaim, StorageClass, Node)
NO_CLASS = (
    "data FailedBinding: no persistent volumes available for this claim and no storage class is set"
)


def pv(
    name: str,
    size: str = "1Gi",
    *,
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    cls: str = "",
    claim: str = "",
    claim_uid: str = "",
    policy: str = "Retain",
    phase: str = "",
    labels: dict[str, str] | None = None,
    node: str = "",
    annotations: dict[str, str] | None = None,
) -> PersistentVolume:
    spec: dict[str, Any] = {
        "capacity": {"storage": size},
        "accessModes": list(modes),
        "hostPath": {"path": f"/tmp/{name}"},
        "persistentVolumeReclaimPolicy": policy,
    }
    if cls:
        spec["storageClassName"] = cls
    if claim:
        spec["claimRef"] = {"namespace": "default", "name": claim, "uid": claim_uid}
    if node:
        spec["nodeAffinity"] = {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                        ]
                    }
                ]
            }
        }
    meta = {"name": name, "uid": f"{name}-uid", "labels": labels or {}}
    meta["annotations"] = annotations or {}
    out = set_defaults(codec.from_dict(PersistentVolume, {"metadata": meta, "spec": spec}))
    if phase:
        out.status.phase = phase
    return out


def pvc(
    name: str,
    size: str = "1Gi",
    *,
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    cls: str | None = "",
    volume: str = "",
    phase: str = "",
    selector: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    uid: str = "",
) -> PersistentVolumeClaim:
    spec: dict[str, Any] = {
        "accessModes": list(modes),
        "resources": {"requests": {"storage": size}},
    }
    if cls is not None:
        spec["storageClassName"] = cls
    if volume:
        spec["volumeName"] = volume
    if selector:
        spec["selector"] = {"matchLabels": selector}
    meta = {
        "name": name,
        "namespace": "default",
        "uid": uid or f"{name}-uid",
        "annotations": annotations or {},
    }
    out = set_defaults(codec.from_dict(PersistentVolumeClaim, {"metadata": meta, "spec": spec}))
    if phase:
        out.status.phase = phase
    return out


def sc(
    name: str,
    *,
    mode: str = "Immediate",
    provisioner: str = "kpy.io/local-path",
    default: bool = False,
    created: int = 0,
    expand: bool = False,
) -> StorageClass:
    meta: dict[str, Any] = {"name": name}
    if default:
        meta["annotations"] = {ANN_DEFAULT_CLASS: "true"}
    out = codec.from_dict(
        StorageClass,
        {"metadata": meta, "provisioner": provisioner, "volumeBindingMode": mode},
    )
    out.metadata.creation_timestamp.FromSeconds(int(NOW) + created)
    if expand:
        out.allow_volume_expansion = True
    return set_defaults(out)


def node(name: str) -> Node:
    out = Node()
    out.metadata.name = name
    out.metadata.labels["kubernetes.io/hostname"] = name
    return out


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def event(self, obj: Any, eventtype: str, reason: str, message: str) -> None:
        line = f"{obj.metadata.name} {reason}: {message}"
        if line not in self.events:
            self.events.append(line)


@dataclass
class Fixture:
    client: FakeClient
    informers: dict[type[Any], SharedInformer[Any]]
    controller: PersistentVolumeController
    recorder: Recorder

    @classmethod
    def new(cls) -> Fixture:
        client = FakeClient(now=lambda: NOW)
        informers: dict[type[Any], SharedInformer[Any]] = {
            kind: SharedInformer(client, kind) for kind in KINDS
        }
        recorder = Recorder()
        controller = PersistentVolumeController(
            client,
            informers[PersistentVolume],
            informers[PersistentVolumeClaim],
            informers[StorageClass],
            informers[Node],
            recorder=recorder,  # type: ignore[arg-type]
        )
        return cls(client, informers, controller, recorder)

    def seed(self, *objects: Any) -> None:
        self.client.add(*objects)
        self.resync()

    def resync(self) -> None:
        """Puts what the client stores into the listers (the watch's job)."""
        for kind in KINDS:
            indexer = self.informers[kind].indexer
            for old in list(indexer.list()):
                indexer.delete(old)
            for obj in self.client.stored_list(kind):
                indexer.add(obj)

    def keys(self) -> list[str]:
        claims = [
            f"default/{c.metadata.name}" for c in self.client.stored_list(PersistentVolumeClaim)
        ]
        volumes = [v.metadata.name for v in self.client.stored_list(PersistentVolume)]
        return claims + volumes

    async def settle(self, rounds: int = 5) -> None:
        """Syncs every key, round after round, until a round writes nothing."""
        for _ in range(rounds):
            before = len(self.client.writes())
            for key in self.keys():
                await self.controller.sync(key)
                self.resync()
            if len(self.client.writes()) == before:
                return
        raise AssertionError("the binder never settled")

    def volumes(self) -> list[str]:
        shown = []
        for v in sorted(self.client.stored_list(PersistentVolume), key=lambda v: v.metadata.name):
            ref = v.spec.claim_ref
            claim = f" {ref.namespace}/{ref.name}" if v.spec.HasField("claim_ref") else ""
            shown.append(f"{v.metadata.name} {v.status.phase}{claim}")
        return shown

    def claims(self) -> list[str]:
        shown = []
        for c in sorted(
            self.client.stored_list(PersistentVolumeClaim), key=lambda c: c.metadata.name
        ):
            volume = f" {c.spec.volume_name}" if c.spec.volume_name else ""
            shown.append(f"{c.metadata.name} {c.status.phase}{volume}")
        return shown

    def close(self) -> None:
        self.controller.queue.shut_down()


@dataclass(frozen=True)
class Case:
    name: str
    objects: list[Any]
    volumes: list[str]
    claims: list[str]
    events: list[str] = field(default_factory=list)


CASES = [
    Case(
        "a claim binds the only fitting volume",
        [pv("pv-1"), pvc("data")],
        ["pv-1 Bound default/data"],
        ["data Bound pv-1"],
    ),
    Case(
        "the smallest fitting volume wins",
        [pv("big", "10Gi"), pv("small", "2Gi"), pv("tiny", "512Mi"), pvc("data", "1Gi")],
        ["big Available", "small Bound default/data", "tiny Available"],
        ["data Bound small"],
    ),
    Case(
        "access modes must be a superset",
        [
            pv("rwo", "1Gi"),
            pv("rwx", "5Gi", modes=("ReadWriteMany", "ReadWriteOnce")),
            pvc("data", modes=("ReadWriteMany",)),
        ],
        ["rwo Available", "rwx Bound default/data"],
        ["data Bound rwx"],
    ),
    Case(
        "the class must be the same",
        [pv("plain"), pv("fast", cls="fast"), sc("fast"), pvc("data", cls="fast")],
        ["fast Bound default/data", "plain Available"],
        ["data Bound fast"],
    ),
    Case(
        "the selector must match the volume's labels",
        [
            pv("a", labels={"tier": "cold"}),
            pv("b", "5Gi", labels={"tier": "hot"}),
            pvc("data", selector={"tier": "hot"}),
        ],
        ["a Available", "b Bound default/data"],
        ["data Bound b"],
    ),
    Case(
        "a volume pre-bound by claimRef goes to its claim",
        [pv("small"), pv("mine", "5Gi", claim="data"), pvc("data")],
        ["mine Bound default/data", "small Available"],
        ["data Bound mine"],
    ),
    Case(
        "a volume pre-bound to another claim is not taken",
        [pv("theirs", claim="other"), pvc("data")],
        ["theirs Available default/other"],
        ["data Pending"],
        [NO_CLASS],
    ),
    Case(
        "a claim pre-bound by volumeName gets that volume",
        [pv("small"), pv("chosen", "5Gi"), pvc("data", volume="chosen")],
        ["chosen Bound default/data", "small Available"],
        ["data Bound chosen"],
    ),
    Case(
        "a claim pre-bound to a volume too small waits",
        [pv("chosen", "512Mi"), pvc("data", volume="chosen")],
        ["chosen Available"],
        ["data Pending chosen"],
        ['data FailedBinding: Cannot bind to requested volume "chosen": requested PV is too small'],
    ),
    Case(
        "no fitting volume and no class",
        [pv("tiny", "1Mi"), pvc("data")],
        ["tiny Available"],
        ["data Pending"],
        [NO_CLASS],
    ),
    Case(
        "a missing class",
        [pvc("www-web-0", cls="my-storage-class")],
        [],
        ["www-web-0 Pending"],
        ['www-web-0 ProvisioningFailed: storageclass.storage.k8s.io "my-storage-class" not found'],
    ),
    Case(
        "waiting for the first consumer",
        [
            sc("local-path", mode="WaitForFirstConsumer"),
            pv("pv-1", cls="local-path"),
            pvc("data", cls="local-path"),
        ],
        ["pv-1 Available"],
        ["data Pending"],
        ["data WaitForFirstConsumer: waiting for first consumer to be created before binding"],
    ),
    Case(
        "the first consumer placed: a volume on its node binds",
        [
            node("n1"),
            node("n2"),
            sc("local-path", mode="WaitForFirstConsumer"),
            pv("on-n1", cls="local-path", node="n1"),
            pv("on-n2", "5Gi", cls="local-path", node="n2"),
            pvc("data", cls="local-path", annotations={ANN_SELECTED_NODE: "n2"}),
        ],
        ["on-n1 Available", "on-n2 Bound default/data"],
        ["data Bound on-n2"],
    ),
    Case(
        "a dynamic class waits for its provisioner",
        [sc("fast", provisioner="example.com/nfs"), pvc("data", cls="fast")],
        [],
        ["data Pending"],
        [
            "data ExternalProvisioning: Waiting for a volume to be created either by the "
            "external provisioner 'example.com/nfs' or manually by the system administrator. "
            "If volume creation is delayed, please verify that the provisioner is running and "
            "correctly registered."
        ],
    ),
    Case(
        "a claim without class gets the newest default class",
        [
            sc("old", default=True),
            sc("new", default=True, created=10),
            sc("other"),
            pv("pv-1", cls="new"),
            pvc("data", cls=None),
        ],
        ["pv-1 Bound default/data"],
        ["data Bound pv-1"],
    ),
    Case(
        "an empty class asks for no class",
        [sc("local-path", default=True), pv("classless"), pvc("data", cls="")],
        ["classless Bound default/data"],
        ["data Bound classless"],
    ),
    Case(
        "a claim deleted: Retain keeps the volume Released",
        [pv("kept", claim="gone", claim_uid="gone-uid", phase="Bound")],
        ["kept Released default/gone"],
        [],
    ),
    Case(
        "a claim deleted: Delete deletes the volume",
        [pv("temp", claim="gone", claim_uid="gone-uid", phase="Bound", policy="Delete")],
        [],
        [],
    ),
    Case(
        "a claim deleted: a provisioned volume is left to its provisioner",
        [
            pv(
                "pvc-1",
                claim="gone",
                claim_uid="gone-uid",
                phase="Bound",
                policy="Delete",
                annotations={ANN_PROVISIONED_BY: "kpy.io/local-path"},
            )
        ],
        ["pvc-1 Released default/gone"],
        [],
    ),
    Case(
        "a claim recreated under the same name does not get the old volume back",
        [
            pv("kept", claim="data", claim_uid="old-uid", phase="Bound"),
            pvc("data", uid="new-uid"),
        ],
        ["kept Released default/data"],
        ["data Pending"],
        [NO_CLASS],
    ),
    Case(
        "a bound claim whose volume is gone is Lost",
        [pvc("data", volume="vanished", phase="Bound")],
        [],
        ["data Lost vanished"],
        ["data ClaimLost: Bound claim has lost its PersistentVolume. Data on the volume is lost!"],
    ),
    Case(
        "a volume bound to nothing is Available",
        [pv("free", phase="Released")],
        ["free Available"],
        [],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_binder_sync(case: Case) -> None:
    fx = Fixture.new()
    fx.seed(*case.objects)
    try:
        await fx.settle()
        assert fx.volumes() == case.volumes, f"{case.name}: {fx.volumes()}"
        assert fx.claims() == case.claims, f"{case.name}: {fx.claims()}"
        assert fx.recorder.events == case.events, f"{case.name}: {fx.recorder.events}"
    finally:
        fx.close()


async def test_binding_annotates_both_sides_and_fills_the_claim_status() -> None:
    fx = Fixture.new()
    fx.seed(pv("pv-1", "2Gi", modes=("ReadWriteOnce", "ReadOnlyMany")), pvc("data"))
    try:
        await fx.settle()
        (volume,) = fx.client.stored_list(PersistentVolume)
        (claim,) = fx.client.stored_list(PersistentVolumeClaim)
        assert volume.metadata.annotations[ANN_BOUND_BY_CONTROLLER] == "yes"
        assert volume.spec.claim_ref.uid == "data-uid"
        assert volume.spec.claim_ref.kind == "PersistentVolumeClaim"
        assert volume.status.HasField("last_phase_transition_time")
        assert claim.metadata.annotations[ANN_BIND_COMPLETED] == "yes"
        assert claim.metadata.annotations[ANN_BOUND_BY_CONTROLLER] == "yes"
        assert list(claim.status.access_modes) == ["ReadWriteOnce", "ReadOnlyMany"]
        assert claim.status.capacity["storage"].string == "2Gi"
    finally:
        fx.close()


async def test_a_claim_pre_bound_by_its_author_is_not_marked_bound_by_controller() -> None:
    fx = Fixture.new()
    fx.seed(pv("pv-1"), pvc("data", volume="pv-1"))
    try:
        await fx.settle()
        (claim,) = fx.client.stored_list(PersistentVolumeClaim)
        assert claim.metadata.annotations[ANN_BIND_COMPLETED] == "yes"
        assert ANN_BOUND_BY_CONTROLLER not in claim.metadata.annotations
    finally:
        fx.close()


async def test_a_provisioner_claim_is_annotated_for_its_provisioner() -> None:
    fx = Fixture.new()
    fx.seed(sc("fast", provisioner="example.com/nfs"), pvc("data", cls="fast"))
    try:
        await fx.settle()
        (claim,) = fx.client.stored_list(PersistentVolumeClaim)
        assert claim.metadata.annotations[ANN_STORAGE_PROVISIONER] == "example.com/nfs"
    finally:
        fx.close()


async def test_a_claim_just_created_is_read_live_before_its_volume_is_released() -> None:
    """The claim cache may lag behind the volume's: the API has the last word."""
    fx = Fixture.new()
    fx.seed(pv("pv-1", claim="data", claim_uid="data-uid", phase="Bound"))
    fx.client.add(pvc("data", volume="pv-1", phase="Bound"))  # not in the lister yet
    try:
        await fx.controller.sync("pv-1")
        assert fx.volumes() == ["pv-1 Bound default/data"]
    finally:
        fx.close()


@pytest.mark.parametrize(("expand", "want"), [(True, "2Gi"), (False, "1Gi")])
async def test_a_bound_claim_that_grows_grows_its_volume_if_its_class_allows(
    expand: bool, want: str
) -> None:
    fx = Fixture.new()
    fx.seed(sc("fast", expand=expand), pv("pv-1", cls="fast"), pvc("data", cls="fast"))
    try:
        await fx.settle()
        (claim,) = fx.client.stored_list(PersistentVolumeClaim)
        claim.spec.resources.requests["storage"].string = "2Gi"
        await fx.client.update(claim)
        fx.resync()
        await fx.settle()
        (volume,) = fx.client.stored_list(PersistentVolume)
        (claim,) = fx.client.stored_list(PersistentVolumeClaim)
        assert volume.spec.capacity["storage"].string == want
        assert claim.status.capacity["storage"].string == want
        resized = "data VolumeResizeSuccessful: Resize volume succeeded"
        assert (resized in fx.recorder.events) == expand, fx.recorder.events
    finally:
        fx.close()

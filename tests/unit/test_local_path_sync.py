"""The local-path provisioner's `sync`, table by table, on the fake client:
which volume it makes for a claim (`name node path`), and what it does
with a released volume it made."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kpy.api import codec
from kpy.api.core.v1 import Node, NodeCondition, PersistentVolume, PersistentVolumeClaim
from kpy.api.defaults import set_defaults
from kpy.api.storage.v1 import StorageClass
from kpy.api.validation import validate
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.controllers.volume import ANN_PROVISIONED_BY, ANN_SELECTED_NODE
from kpy.controllers.volume.local_path import LocalPathProvisioner

NOW = 1_700_000_000.0
KINDS = (PersistentVolumeClaim, PersistentVolume, StorageClass, Node)
DIR = Path("/srv/kpy/local-path")


def sc(
    name: str = "local-path",
    *,
    mode: str = "Immediate",
    provisioner: str = "kpy.io/local-path",
    parameters: dict[str, str] | None = None,
    policy: str = "Delete",
) -> StorageClass:
    body = {
        "metadata": {"name": name},
        "provisioner": provisioner,
        "volumeBindingMode": mode,
        "reclaimPolicy": policy,
        "parameters": parameters or {},
    }
    return set_defaults(codec.from_dict(StorageClass, body))


def pvc(
    name: str = "data",
    *,
    cls: str = "local-path",
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    node: str = "",
    volume: str = "",
) -> PersistentVolumeClaim:
    spec: dict[str, Any] = {
        "accessModes": list(modes),
        "resources": {"requests": {"storage": "2Gi"}},
        "storageClassName": cls,
    }
    if volume:
        spec["volumeName"] = volume
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"{name}-uid"}
    if node:
        meta["annotations"] = {ANN_SELECTED_NODE: node}
    return set_defaults(codec.from_dict(PersistentVolumeClaim, {"metadata": meta, "spec": spec}))


def node(name: str, *, ready: bool = True, unschedulable: bool = False) -> Node:
    n = Node()
    n.metadata.name = name
    n.spec.unschedulable = unschedulable
    n.status.conditions.append(NodeCondition(type="Ready", status="True" if ready else "False"))
    return n


def made(
    name: str, node_name: str, path: str, *, phase: str = "Bound", policy: str = "Delete"
) -> Any:
    body = {
        "metadata": {"name": name, "annotations": {ANN_PROVISIONED_BY: "kpy.io/local-path"}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": path, "type": "DirectoryOrCreate"},
            "storageClassName": "local-path",
            "persistentVolumeReclaimPolicy": policy,
            "claimRef": {"namespace": "default", "name": "gone", "uid": "gone-uid"},
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
    }
    pv = set_defaults(codec.from_dict(PersistentVolume, body))
    pv.status.phase = phase
    return pv


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def event(self, obj: Any, eventtype: str, reason: str, message: str) -> None:
        self.events.append(f"{reason}: {message}")


@dataclass
class Fixture:
    client: FakeClient
    controller: LocalPathProvisioner
    recorder: Recorder
    removed: list[Path] = field(default_factory=list)

    @classmethod
    def new(cls, *objects: Any) -> Fixture:
        client = FakeClient(now=lambda: NOW)
        informers: dict[type[Any], SharedInformer[Any]] = {
            kind: SharedInformer(client, kind) for kind in KINDS
        }
        for stored in client.add(*objects):
            informers[type(stored)].indexer.add(stored)
        recorder = Recorder()
        removed: list[Path] = []
        controller = LocalPathProvisioner(
            client,
            informers[PersistentVolumeClaim],
            informers[PersistentVolume],
            informers[StorageClass],
            informers[Node],
            directory=DIR,
            remove=removed.append,
            recorder=recorder,  # type: ignore[arg-type]
        )
        return cls(client, controller, recorder, removed)

    def volumes(self) -> list[str]:
        return [
            f"{pv.metadata.name} {_node(pv)} {pv.spec.host_path.path}"
            for pv in self.client.stored_list(PersistentVolume)
        ]


def _node(pv: PersistentVolume) -> str:
    (term,) = pv.spec.node_affinity.required.node_selector_terms
    (req,) = term.match_expressions
    return str(req.values[0])


@dataclass(frozen=True)
class Case:
    name: str
    objects: list[Any]
    want: list[str]
    events: list[str] = field(default_factory=list)


PROVISIONED = [
    'Provisioning: External provisioner is provisioning volume for claim "default/data"',
    "ProvisioningSucceeded: Successfully provisioned volume pvc-data-uid",
]

CASES = [
    Case(
        "Immediate: the Ready node with the fewest volumes",
        [
            sc(),
            node("a", ready=False),
            node("b"),
            node("c"),
            node("d", unschedulable=True),
            made("pvc-old", "b", f"{DIR}/default_old_pvc-old"),
            pvc(),
        ],
        [
            f"pvc-data-uid c {DIR}/default_data_pvc-data-uid",
            f"pvc-old b {DIR}/default_old_pvc-old",
        ],
        PROVISIONED,
    ),
    Case(
        "Immediate without a Ready node: nothing yet",
        [sc(), node("a", ready=False), pvc()],
        [],
        [
            'ProvisioningFailed: failed to provision volume with StorageClass "local-path": '
            "no Ready node to create the volume's directory on"
        ],
    ),
    Case(
        "WaitForFirstConsumer before the scheduler chose: nothing",
        [sc(mode="WaitForFirstConsumer"), node("a"), pvc()],
        [],
    ),
    Case(
        "WaitForFirstConsumer: the node the scheduler chose",
        [sc(mode="WaitForFirstConsumer"), node("a"), node("b"), pvc(node="b")],
        [f"pvc-data-uid b {DIR}/default_data_pvc-data-uid"],
        PROVISIONED,
    ),
    Case(
        "the class's path",
        [sc(parameters={"path": "/data/fast"}), node("a"), pvc()],
        ["pvc-data-uid a /data/fast/default_data_pvc-data-uid"],
        PROVISIONED,
    ),
    Case(
        "rancher's name is accepted",
        [sc(provisioner="rancher.io/local-path"), node("a"), pvc()],
        [f"pvc-data-uid a {DIR}/default_data_pvc-data-uid"],
        PROVISIONED,
    ),
    Case(
        "another provisioner's class: nothing",
        [sc(provisioner="example.com/nfs"), node("a"), pvc()],
        [],
    ),
    Case("a bound claim: nothing", [sc(), node("a"), pvc(volume="pv-1")], []),
    Case(
        "ReadWriteMany cannot be a directory on one node",
        [sc(), node("a"), pvc(modes=("ReadWriteMany",))],
        [],
        [
            'ProvisioningFailed: failed to provision volume with StorageClass "local-path": '
            "local-path volumes only support the ReadWriteOnce and ReadWriteOncePod access modes"
        ],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_provision(case: Case) -> None:
    fx = Fixture.new(*case.objects)
    try:
        await fx.controller.sync("default/data")
        assert sorted(fx.volumes()) == case.want, f"{case.name}: {fx.volumes()}"
        assert fx.recorder.events == case.events, f"{case.name}: {fx.recorder.events}"
    finally:
        fx.controller.queue.shut_down()


async def test_the_volume_made_is_valid_and_bound_to_the_claim() -> None:
    fx = Fixture.new(sc(policy="Retain"), node("a"), pvc(modes=("ReadWriteOncePod",)))
    try:
        await fx.controller.sync("default/data")
        (pv,) = fx.client.stored_list(PersistentVolume)
        assert validate(pv) == []
        assert pv.spec.claim_ref.uid == "data-uid"
        assert pv.spec.host_path.type == "DirectoryOrCreate"
        assert pv.spec.persistent_volume_reclaim_policy == "Retain"
        assert pv.spec.storage_class_name == "local-path"
        assert pv.spec.capacity["storage"].string == "2Gi"
        assert list(pv.spec.access_modes) == ["ReadWriteOncePod"]
        assert pv.metadata.annotations[ANN_PROVISIONED_BY] == "kpy.io/local-path"
    finally:
        fx.controller.queue.shut_down()


@dataclass(frozen=True)
class ReclaimCase:
    name: str
    pv: Any
    removed: list[str]
    left: list[str]
    events: list[str] = field(default_factory=list)


RECLAIM = [
    ReclaimCase(
        "a released volume: directory removed, volume deleted",
        made("pvc-1", "a", f"{DIR}/default_gone_pvc-1", phase="Released"),
        [f"{DIR}/default_gone_pvc-1"],
        [],
    ),
    ReclaimCase(
        "a bound volume is left alone",
        made("pvc-1", "a", f"{DIR}/default_gone_pvc-1"),
        [],
        ["pvc-1"],
    ),
    ReclaimCase(
        "Retain is left alone",
        made("pvc-1", "a", f"{DIR}/default_gone_pvc-1", phase="Released", policy="Retain"),
        [],
        ["pvc-1"],
    ),
    ReclaimCase(
        "a directory not of ours is never removed",
        made("pvc-1", "a", "/home/someone", phase="Released"),
        [],
        ["pvc-1"],
        [
            f"VolumeFailedDelete: /home/someone is not a local-path directory of this controller "
            f'manager (under {DIR} or its class\'s path): remove it on node "a", then delete '
            "the volume"
        ],
    ),
]


@pytest.mark.parametrize("case", RECLAIM, ids=lambda c: c.name)
async def test_reclaim(case: ReclaimCase) -> None:
    fx = Fixture.new(sc(), case.pv)
    try:
        await fx.controller.sync("pvc-1")
        assert [str(p) for p in fx.removed] == case.removed, case.name
        left = [pv.metadata.name for pv in fx.client.stored_list(PersistentVolume)]
        assert left == case.left, case.name
        assert fx.recorder.events == case.events, f"{case.name}: {fx.recorder.events}"
    finally:
        fx.controller.queue.shut_down()


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        ([], Path("/var/lib/kpy/local-path")),
        (["--local-path-dir", "/srv/cluster/local-path"], Path("/srv/cluster/local-path")),
    ],
    ids=["default", "flag"],
)
def test_the_controller_manager_flag_sets_the_directory(argv: list[str], want: Path) -> None:
    from kpy.controllers import main

    parser = main._parser()
    config = main._config(parser, parser.parse_args(argv))
    assert config.local_path_dir == want

"""VolumeBinding, with cases after Kubernetes'
pkg/scheduler/framework/plugins/volumebinding/volume_binding_test.go and
binder_test.go: PreFilter and Filter as tables, Reserve / PreBind /
Unreserve against a fake VolumeSource, and the scheduler's handling of a
PreBind that fails."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import errors
from kpy.api.core.v1 import (
    NodeSelector,
    NodeSelectorTerm,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
    Volume,
)
from kpy.api.meta.v1 import LabelSelector, ObjectMeta
from kpy.api.storage.v1 import StorageClass
from kpy.scheduler import main as scheduler_main
from kpy.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    Framework,
    NodeInfo,
    Profile,
    Status,
    fit_error_message,
    new_status,
)
from kpy.scheduler.plugins.volume_binding import (
    ANN_SELECTED_NODE,
    ERR_REASON_BIND_CONFLICT,
    ERR_REASON_NODE_CONFLICT,
    ERR_REASON_PV_NOT_EXIST,
    ERR_UNBOUND_IMMEDIATE,
    NO_PROVISIONER,
    VolumeBinding,
    topology_allows,
)
from kpy.scheduler.profiles import default_profile
from kpy.scheduler.scheduler import Scheduler
from tests.unit.scheduler.sched_builders import container, node, pod, req

if TYPE_CHECKING:
    from collections.abc import Sequence

HOSTNAME = "kubernetes.io/hostname"
WFFC = "wait"  # class with WaitForFirstConsumer and no provisioner
IMMEDIATE = "immediate-class"
LOCAL_PATH = "local-path"  # WaitForFirstConsumer, provisioner kpy.io/local-path


def rejected(*reasons: str) -> Status:
    return new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, *reasons)


def storage_class(name: str, mode: str, provisioner: str = NO_PROVISIONER) -> StorageClass:
    return StorageClass(
        metadata=ObjectMeta(name=name), provisioner=provisioner, volume_binding_mode=mode
    )


CLASSES = {
    c.metadata.name: c
    for c in (
        storage_class(WFFC, "WaitForFirstConsumer"),
        storage_class(IMMEDIATE, "Immediate", "kpy.io/local-path"),
        storage_class(LOCAL_PATH, "WaitForFirstConsumer", "kpy.io/local-path"),
    )
}


def claim(
    name: str,
    *,
    cls: str | None = WFFC,
    size: str = "1Gi",
    volume: str = "",
    modes: Sequence[str] = ("ReadWriteOnce",),
    selector: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    deleting: bool = False,
) -> PersistentVolumeClaim:
    c = PersistentVolumeClaim(
        metadata=ObjectMeta(
            name=name, namespace="ns", uid=f"uid-{name}", annotations=annotations or {}
        )
    )
    if cls is not None:
        c.spec.storage_class_name = cls
    c.spec.access_modes.extend(modes)
    c.spec.resources.requests["storage"].string = size
    if volume:
        c.spec.volume_name = volume
        c.status.phase = "Bound"
    else:
        c.status.phase = "Pending"
    if selector is not None:
        c.spec.selector.CopyFrom(LabelSelector(match_labels=selector))
    if deleting:
        c.metadata.deletion_timestamp.seconds = 1
    return c


def pv(
    name: str,
    *,
    size: str = "1Gi",
    cls: str = WFFC,
    node_name: str | None = None,
    modes: Sequence[str] = ("ReadWriteOnce",),
    bound_to: str = "",
    labels: dict[str, str] | None = None,
) -> PersistentVolume:
    v = PersistentVolume(metadata=ObjectMeta(name=name, labels=labels or {}))
    v.spec.capacity["storage"].string = size
    v.spec.storage_class_name = cls
    v.spec.access_modes.extend(modes)
    v.spec.host_path.path = f"/data/{name}"
    if node_name is not None:
        v.spec.node_affinity.required.CopyFrom(
            NodeSelector(
                node_selector_terms=[
                    NodeSelectorTerm(match_expressions=[req(HOSTNAME, "In", node_name)])
                ]
            )
        )
    if bound_to:
        v.spec.claim_ref.namespace, v.spec.claim_ref.name = "ns", bound_to
        v.status.phase = "Bound"
    else:
        v.status.phase = "Available"
    return v


def claim_pod(*claims: str, ephemeral: Sequence[str] = (), name: str = "p") -> Pod:
    p = pod(container(), name=name, namespace="ns", uid=f"uid-{name}")
    for c in claims:
        volume = Volume(name=f"vol-{c}")
        volume.persistent_volume_claim.claim_name = c
        p.spec.volumes.append(volume)
    for e in ephemeral:
        volume = Volume(name=e)
        volume.ephemeral.SetInParent()
        p.spec.volumes.append(volume)
    return p


def host(name: str, **labels: str) -> NodeInfo:
    return NodeInfo(node(name, labels={HOSTNAME: name, **labels}))


@dataclass
class FakeVolumes:
    """A VolumeSource over dicts; its writes are recorded and, when
    `binder` is set, answered the way the PV controller and provisioner
    would (the claim becomes Bound)."""

    claims: dict[str, PersistentVolumeClaim] = field(default_factory=dict)
    pvs: dict[str, PersistentVolume] = field(default_factory=dict)
    classes: dict[str, StorageClass] = field(default_factory=lambda: dict(CLASSES))
    writes: list[tuple[str, str, str]] = field(default_factory=list)
    binder: bool = True
    fail_with: Exception | None = None

    def claim(self, namespace: str, name: str) -> PersistentVolumeClaim | None:
        return self.claims.get(name)

    def volume(self, name: str) -> PersistentVolume | None:
        return self.pvs.get(name)

    def volumes(self) -> Sequence[PersistentVolume]:
        return list(self.pvs.values())

    def storage_class(self, name: str) -> StorageClass | None:
        return self.classes.get(name)

    async def bind_volume(self, volume: PersistentVolume, claim: PersistentVolumeClaim) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.writes.append(("bind", volume.metadata.name, claim.metadata.name))
        if self.binder:
            self._bind(claim.metadata.name, volume.metadata.name)

    async def select_node(self, claim: PersistentVolumeClaim, node_name: str) -> None:
        self.writes.append(("select-node", claim.metadata.name, node_name))
        if self.binder:
            self.pvs[f"pvc-{claim.metadata.name}"] = pv(
                f"pvc-{claim.metadata.name}",
                cls=claim.spec.storage_class_name,
                node_name=node_name,
                bound_to=claim.metadata.name,
            )
            self._bind(claim.metadata.name, f"pvc-{claim.metadata.name}", node_name)

    def _bind(self, claim_name: str, volume: str, node_name: str = "") -> None:
        c = PersistentVolumeClaim()
        c.CopyFrom(self.claims[claim_name])
        c.spec.volume_name, c.status.phase = volume, "Bound"
        if node_name:
            c.metadata.annotations[ANN_SELECTED_NODE] = node_name
        self.claims[claim_name] = c
        self.pvs[volume].spec.claim_ref.name = claim_name


# --- PreFilter and Filter ---


@dataclass
class FilterCase:
    name: str
    pod: Pod
    claims: Sequence[PersistentVolumeClaim] = ()
    pvs: Sequence[PersistentVolume] = ()
    want_pre_filter: Status = SUCCESS
    #: node name -> expected Filter status (nodes "a" and "b" exist)
    want: dict[str, Status] = field(default_factory=dict)


FILTER_CASES = [
    FilterCase(
        "pod without claims skips",
        pod(container(), name="p"),
        want_pre_filter=new_status(Code.SKIP),
    ),
    FilterCase(
        "missing claim",
        claim_pod("data"),
        want_pre_filter=rejected('persistentvolumeclaim "data" not found'),
    ),
    FilterCase(
        "missing ephemeral claim",
        claim_pod(ephemeral=["scratch"]),
        want_pre_filter=rejected(
            "waiting for ephemeral volume controller to create the "
            'persistentvolumeclaim "p-scratch"'
        ),
    ),
    FilterCase(
        "claim being deleted",
        claim_pod("data"),
        [claim("data", deleting=True)],
        want_pre_filter=rejected('persistentvolumeclaim "data" is being deleted'),
    ),
    FilterCase(
        "unbound immediate claim",
        claim_pod("data"),
        [claim("data", cls=IMMEDIATE)],
        want_pre_filter=rejected(ERR_UNBOUND_IMMEDIATE),
    ),
    FilterCase(
        "unbound claim without class is immediate",
        claim_pod("data"),
        [claim("data", cls=None)],
        want_pre_filter=rejected(ERR_UNBOUND_IMMEDIATE),
    ),
    FilterCase(
        "unbound claim of a missing class",
        claim_pod("data"),
        [claim("data", cls="gold")],
        want_pre_filter=rejected(
            'storageclass.storage.k8s.io "gold" not found (asked for by '
            'persistentvolumeclaim "data")'
        ),
    ),
    FilterCase(
        "bound claim, volume without affinity",
        claim_pod("data"),
        [claim("data", volume="pv-1")],
        [pv("pv-1", bound_to="data")],
        want={"a": SUCCESS, "b": SUCCESS},
    ),
    FilterCase(
        "bound claim, volume pinned to a",
        claim_pod("data"),
        [claim("data", volume="pv-1")],
        [pv("pv-1", node_name="a", bound_to="data")],
        want={"a": SUCCESS, "b": rejected(ERR_REASON_NODE_CONFLICT)},
    ),
    FilterCase(
        "bound claim, volume gone",
        claim_pod("data"),
        [claim("data", volume="pv-1")],
        want={"a": rejected(ERR_REASON_PV_NOT_EXIST), "b": rejected(ERR_REASON_PV_NOT_EXIST)},
    ),
    FilterCase(
        "wffc claim, available volume on b",
        claim_pod("data"),
        [claim("data")],
        [pv("pv-1", node_name="b")],
        want={"a": rejected(ERR_REASON_BIND_CONFLICT), "b": SUCCESS},
    ),
    FilterCase(
        "wffc claim, no volume, no provisioner",
        claim_pod("data"),
        [claim("data")],
        want={"a": rejected(ERR_REASON_BIND_CONFLICT), "b": rejected(ERR_REASON_BIND_CONFLICT)},
    ),
    FilterCase(
        "wffc claim, volume too small",
        claim_pod("data"),
        [claim("data", size="5Gi")],
        [pv("pv-1", size="1Gi")],
        want={"a": rejected(ERR_REASON_BIND_CONFLICT), "b": rejected(ERR_REASON_BIND_CONFLICT)},
    ),
    FilterCase(
        "wffc claim, access modes not offered",
        claim_pod("data"),
        [claim("data", modes=("ReadWriteMany",))],
        [pv("pv-1")],
        want={"a": rejected(ERR_REASON_BIND_CONFLICT), "b": rejected(ERR_REASON_BIND_CONFLICT)},
    ),
    FilterCase(
        "wffc claim, other class",
        claim_pod("data"),
        [claim("data")],
        [pv("pv-1", cls=LOCAL_PATH)],
        want={"a": rejected(ERR_REASON_BIND_CONFLICT), "b": rejected(ERR_REASON_BIND_CONFLICT)},
    ),
    FilterCase(
        "wffc claim, selector misses the volume",
        claim_pod("data"),
        [claim("data", selector={"tier": "fast"})],
        [pv("pv-1", labels={"tier": "slow"})],
        want={"a": rejected(ERR_REASON_BIND_CONFLICT), "b": rejected(ERR_REASON_BIND_CONFLICT)},
    ),
    FilterCase(
        "wffc claim, selector matches the volume",
        claim_pod("data"),
        [claim("data", selector={"tier": "fast"})],
        [pv("pv-1", labels={"tier": "fast"})],
        want={"a": SUCCESS, "b": SUCCESS},
    ),
    FilterCase(
        "wffc claim, volume bound to another claim",
        claim_pod("data"),
        [claim("data")],
        [pv("pv-1", bound_to="other")],
        want={"a": rejected(ERR_REASON_BIND_CONFLICT), "b": rejected(ERR_REASON_BIND_CONFLICT)},
    ),
    FilterCase(
        "two claims cannot share one volume",
        claim_pod("one", "two"),
        [claim("one"), claim("two")],
        [pv("pv-1")],
        want={"a": rejected(ERR_REASON_BIND_CONFLICT), "b": rejected(ERR_REASON_BIND_CONFLICT)},
    ),
    FilterCase(
        "local-path claim is provisioned anywhere",
        claim_pod("data"),
        [claim("data", cls=LOCAL_PATH)],
        want={"a": SUCCESS, "b": SUCCESS},
    ),
    FilterCase(
        "claim with a selected node goes only there",
        claim_pod("data"),
        [claim("data", cls=LOCAL_PATH, annotations={ANN_SELECTED_NODE: "b"})],
        want={"a": rejected(ERR_REASON_BIND_CONFLICT), "b": SUCCESS},
    ),
    FilterCase(
        "bound conflict and bind conflict both reported",
        claim_pod("old", "new"),
        [claim("old", volume="pv-1"), claim("new")],
        [pv("pv-1", node_name="b", bound_to="old")],
        want={
            "a": rejected(ERR_REASON_NODE_CONFLICT, ERR_REASON_BIND_CONFLICT),
            "b": rejected(ERR_REASON_BIND_CONFLICT),
        },
    ),
]


@pytest.mark.parametrize("case", FILTER_CASES, ids=[c.name for c in FILTER_CASES])
def test_pre_filter_and_filter(case: FilterCase) -> None:
    source = FakeVolumes(
        claims={c.metadata.name: c for c in case.claims},
        pvs={v.metadata.name: v for v in case.pvs},
    )
    plugin = VolumeBinding(source)
    state = CycleState()
    nodes = [host("a"), host("b")]
    _, status = plugin.pre_filter(state, case.pod, nodes)
    assert status == case.want_pre_filter, case.name
    if status.code:
        return
    got = {n.name: plugin.filter(state, case.pod, n) for n in nodes}
    assert got == case.want, case.name


TOPOLOGY_CASES = [
    ("no terms allow every node", [], {"zone": "x"}, True),
    ("one term matches", [[("zone", ("x", "y"))]], {"zone": "y"}, True),
    ("one term misses", [[("zone", ("x",))]], {"zone": "y"}, False),
    ("label absent", [[("zone", ("x",))]], {}, False),
    ("expressions are ANDed", [[("zone", ("x",)), ("rack", ("1",))]], {"zone": "x"}, False),
    ("terms are ORed", [[("zone", ("x",))], [("rack", ("1",))]], {"rack": "1"}, True),
]


@pytest.mark.parametrize(
    ("name", "terms", "labels", "want"), TOPOLOGY_CASES, ids=[c[0] for c in TOPOLOGY_CASES]
)
def test_allowed_topologies(
    name: str, terms: list[list[tuple[str, tuple[str, ...]]]], labels: dict[str, str], want: bool
) -> None:
    assert topology_allows(terms, labels) is want, name


def test_fit_error_message_counts_volume_reasons() -> None:
    source = FakeVolumes(
        claims={"data": claim("data", volume="pv-1")},
        pvs={"pv-1": pv("pv-1", node_name="c", bound_to="data")},
    )
    fw = Framework(Profile.of(VolumeBinding(source)))
    nodes = [host("a"), host("b")]
    result = fw.schedule_pod(claim_pod("data"), nodes, rng=random.Random(0))
    assert result.node_info is None
    assert fit_error_message(2, result.diagnosis) == (
        "0/2 nodes are available: 2 node(s) had volume node affinity conflict."
    )
    source.claims["data"] = claim("data", cls=IMMEDIATE)
    result = fw.schedule_pod(claim_pod("data"), nodes, rng=random.Random(0))
    assert fit_error_message(2, result.diagnosis) == (
        "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."
    )


def test_default_profile_lists_volume_binding_when_given_volumes() -> None:
    profile = default_profile(volumes=FakeVolumes(), volume_bind_timeout=5)
    names = [p.name for p in profile.filter]
    assert names.index("VolumeBinding") == names.index("NodeResourcesFit") + 1
    assert [p.name for p in profile.reserve] == ["VolumeBinding"]
    assert [p.name for p in profile.pre_bind] == ["VolumeBinding"]
    assert "VolumeBinding" not in [p.name for p in default_profile().filter]


# --- Reserve, PreBind, Unreserve ---


def scheduled(
    plugin: VolumeBinding, p: Pod, nodes: Sequence[NodeInfo], node_name: str
) -> CycleState:
    """PreFilter, Filter on every node, Reserve on `node_name`."""
    state = CycleState()
    state.all_nodes = nodes
    _, status = plugin.pre_filter(state, p, nodes)
    assert status == SUCCESS
    for n in nodes:
        plugin.filter(state, p, n)
    assert plugin.reserve(state, p, node_name) == SUCCESS
    return state


@dataclass
class BindCase:
    name: str
    claims: Sequence[PersistentVolumeClaim]
    pvs: Sequence[PersistentVolume]
    node: str
    want_writes: list[tuple[str, str, str]]


BIND_CASES = [
    BindCase(
        "smallest fitting volume is bound",
        [claim("data", size="2Gi")],
        [pv("big", size="10Gi"), pv("small", size="1Gi"), pv("fits", size="3Gi")],
        "a",
        [("bind", "fits", "data")],
    ),
    BindCase(
        "volume pinned to the node",
        [claim("data")],
        [pv("on-a", node_name="a"), pv("on-b", node_name="b")],
        "b",
        [("bind", "on-b", "data")],
    ),
    BindCase(
        "volume pre-bound to the claim wins",
        [claim("data")],
        [pv("smaller", size="1Gi"), pv("mine", size="5Gi", bound_to="data")],
        "a",
        [("bind", "mine", "data")],
    ),
    BindCase(
        "provisioned claim gets the selected node",
        [claim("data", cls=LOCAL_PATH)],
        [],
        "b",
        [("select-node", "data", "b")],
    ),
    BindCase(
        "an available volume before provisioning",
        [claim("data", cls=LOCAL_PATH)],
        [pv("pv-1", cls=LOCAL_PATH)],
        "a",
        [("bind", "pv-1", "data")],
    ),
    BindCase(
        "bound claims need no write",
        [claim("data", volume="pv-1")],
        [pv("pv-1", bound_to="data")],
        "a",
        [],
    ),
]


@pytest.mark.parametrize("case", BIND_CASES, ids=[c.name for c in BIND_CASES])
async def test_reserve_and_pre_bind(case: BindCase) -> None:
    source = FakeVolumes(
        claims={c.metadata.name: c for c in case.claims},
        pvs={v.metadata.name: v for v in case.pvs},
    )
    plugin = VolumeBinding(source, bind_timeout=5, poll_interval=0.01)
    p = claim_pod(*source.claims)
    state = scheduled(plugin, p, [host("a"), host("b")], case.node)
    assert await plugin.pre_bind(state, p, case.node) == SUCCESS, case.name
    assert source.writes == case.want_writes, case.name
    assert all(c.status.phase == "Bound" for c in source.claims.values()), case.name


async def test_a_reserved_volume_is_not_offered_to_the_next_pod() -> None:
    source = FakeVolumes(
        claims={"one": claim("one"), "two": claim("two")}, pvs={"pv-1": pv("pv-1")}
    )
    plugin = VolumeBinding(source)
    nodes = [host("a")]
    scheduled(plugin, claim_pod("one", name="first"), nodes, "a")
    second = claim_pod("two", name="second")
    state = CycleState()
    plugin.pre_filter(state, second, nodes)
    assert plugin.filter(state, second, nodes[0]) == rejected(ERR_REASON_BIND_CONFLICT)


async def test_unreserve_gives_the_volume_back() -> None:
    source = FakeVolumes(
        claims={"one": claim("one"), "two": claim("two")}, pvs={"pv-1": pv("pv-1")}
    )
    plugin = VolumeBinding(source)
    nodes = [host("a")]
    first = claim_pod("one", name="first")
    state = scheduled(plugin, first, nodes, "a")
    plugin.unreserve(state, first, "a")
    plugin.unreserve(state, first, "a")  # idempotent
    second = claim_pod("two", name="second")
    scheduled(plugin, second, nodes, "a")  # asserts the reserve succeeded


async def test_a_claim_reserved_for_provisioning_stays_on_its_node() -> None:
    source = FakeVolumes(claims={"data": claim("data", cls=LOCAL_PATH)})
    plugin = VolumeBinding(source)
    nodes = [host("a"), host("b")]
    scheduled(plugin, claim_pod("data", name="first"), nodes, "b")
    second = claim_pod("data", name="second")
    state = CycleState()
    plugin.pre_filter(state, second, nodes)
    assert plugin.filter(state, second, nodes[0]) == rejected(ERR_REASON_BIND_CONFLICT)
    assert plugin.filter(state, second, nodes[1]) == SUCCESS


@dataclass
class PreBindFailure:
    name: str
    source: FakeVolumes
    want_code: Code
    want_text: str


PRE_BIND_FAILURES = [
    PreBindFailure(
        "nobody binds: the wait times out",
        FakeVolumes(claims={"data": claim("data")}, pvs={"pv-1": pv("pv-1")}, binder=False),
        Code.ERROR,
        "binding volumes: timed out waiting for the condition (claims not Bound within 0.1s: data)",
    ),
    PreBindFailure(
        "the API refuses the volume update",
        FakeVolumes(
            claims={"data": claim("data")},
            pvs={"pv-1": pv("pv-1")},
            fail_with=errors.Conflict("the object has been modified"),
        ),
        Code.ERROR,
        "binding volumes: the object has been modified",
    ),
]


@pytest.mark.parametrize("case", PRE_BIND_FAILURES, ids=[c.name for c in PRE_BIND_FAILURES])
async def test_pre_bind_failures(case: PreBindFailure) -> None:
    plugin = VolumeBinding(case.source, bind_timeout=0.1, poll_interval=0.01)
    p = claim_pod("data")
    state = scheduled(plugin, p, [host("a")], "a")
    status = await plugin.pre_bind(state, p, "a")
    assert status.code is case.want_code, case.name
    assert case.want_text in status.message(), case.name


async def test_provisioning_given_up_is_unschedulable() -> None:
    source = FakeVolumes(claims={"data": claim("data", cls=LOCAL_PATH)}, binder=False)
    plugin = VolumeBinding(source, bind_timeout=5, poll_interval=0.01)
    p = claim_pod("data")
    state = scheduled(plugin, p, [host("a")], "a")
    async with anyio.create_task_group() as tg:
        result: list[Status] = []

        async def run() -> None:
            result.append(await plugin.pre_bind(state, p, "a"))

        tg.start_soon(run)
        await anyio.sleep(0.05)
        # The provisioner could not make the volume there: it resets the annotation.
        assert source.writes == [("select-node", "data", "a")]
        source.claims["data"] = claim("data", cls=LOCAL_PATH)
    assert result == [
        new_status(
            Code.UNSCHEDULABLE,
            'selectedNode annotation reset for persistentvolumeclaim "data"',
        )
    ]


# --- the scheduler around it ---


class _Client:
    """Takes the status patches the scheduler makes; nothing else."""

    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    async def patch(self, *args: Any, **kwargs: Any) -> None:
        self.patches.append(args[2])


@dataclass
class _Binder:
    name: str = "RecordingBinder"
    bound: list[str] = field(default_factory=list)

    async def bind(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        self.bound.append(node_name)
        return SUCCESS


async def test_scheduler_binds_after_the_claims_and_retries_when_pre_bind_fails() -> None:
    source = FakeVolumes(claims={"data": claim("data")}, pvs={"pv-1": pv("pv-1")}, binder=False)
    plugin = VolumeBinding(source, bind_timeout=0.05, poll_interval=0.01)
    binder = _Binder()
    client = _Client()
    s = Scheduler(client, profile=Profile.of(plugin, binder))  # type: ignore[arg-type]
    s.cache.add_node(node("a", labels={HOSTNAME: "a"}, allocatable={"pods": "10"}))
    p = claim_pod("data")
    s.queue.add(p, "ns/p")
    async with anyio.create_task_group() as binds:
        s.schedule_one(await s.queue.pop(), binds)
    # PreBind timed out: nothing bound, the assumption and the volume released.
    assert binder.bound == []
    assert "ns/p" not in s.cache
    condition = client.patches[-1]["status"]["conditions"][0]
    assert condition["reason"] == "SchedulerError"
    assert "binding volumes: timed out waiting for the condition" in condition["message"]
    assert plugin._assumed_volumes == {}
    # The volume is bound this time; the retried pod is bound after its claim.
    source.binder = True
    with anyio.fail_after(30):
        info = await s.queue.pop()
    async with anyio.create_task_group() as binds:
        s.schedule_one(info, binds)
    assert binder.bound == ["a"]
    assert source.writes[-1] == ("bind", "pv-1", "data")


# --- the framework's Reserve and PreBind points ---


@dataclass
class Recorder:
    """A Reserve and PreBind plugin that logs its calls into `log`."""

    name: str
    log: list[str]
    reserve_status: Status = SUCCESS
    pre_bind_status: Status = SUCCESS

    def reserve(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        self.log.append(f"reserve {self.name}")
        return self.reserve_status

    def unreserve(self, state: CycleState, pod: Pod, node_name: str) -> None:
        self.log.append(f"unreserve {self.name}")

    async def pre_bind(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        self.log.append(f"preBind {self.name}")
        return self.pre_bind_status


NO = new_status(Code.UNSCHEDULABLE, "no")


@dataclass
class PointCase:
    name: str
    reserve: tuple[Status, Status]
    pre_bind: tuple[Status, Status]
    want_reserve: Status
    want_pre_bind: Status
    want_log: list[str]


POINT_CASES = [
    PointCase("all succeed", (SUCCESS, SUCCESS), (SUCCESS, SUCCESS), SUCCESS, SUCCESS,
              ["reserve A", "reserve B", "preBind A", "preBind B"]),
    PointCase("second reserve fails: all unreserved, last first", (SUCCESS, NO),
              (SUCCESS, SUCCESS), NO.with_plugin("B"), SUCCESS,
              ["reserve A", "reserve B", "unreserve B", "unreserve A"]),
    PointCase("a Skip from PreBind is no failure", (SUCCESS, SUCCESS),
              (new_status(Code.SKIP), SUCCESS), SUCCESS, SUCCESS,
              ["reserve A", "reserve B", "preBind A", "preBind B"]),
    PointCase("first PreBind failure stops the rest", (SUCCESS, SUCCESS), (NO, SUCCESS),
              SUCCESS, NO.with_plugin("A"), ["reserve A", "reserve B", "preBind A"]),
]  # fmt: skip


@pytest.mark.parametrize("case", POINT_CASES, ids=[c.name for c in POINT_CASES])
async def test_framework_runs_reserve_and_pre_bind(case: PointCase) -> None:
    log: list[str] = []
    a = Recorder("A", log, case.reserve[0], case.pre_bind[0])
    b = Recorder("B", log, case.reserve[1], case.pre_bind[1])
    fw = Framework(Profile.of(a, b))
    state, p = CycleState(), pod(container(), name="p")
    assert fw.run_reserve(state, p, "n") == case.want_reserve, case.name
    if not case.want_reserve.code:
        assert await fw.run_pre_bind(state, p, "n") == case.want_pre_bind, case.name
    assert log == case.want_log, case.name


async def test_scheduler_retries_a_pod_whose_reserve_fails() -> None:
    log: list[str] = []
    binder = _Binder()
    client = _Client()
    profile = Profile.of(Recorder("Refuses", log, reserve_status=NO), binder)
    s = Scheduler(client, profile=profile)  # type: ignore[arg-type]
    s.cache.add_node(node("a", allocatable={"pods": "10"}))
    s.queue.add(pod(container(), name="p", namespace="ns", uid="uid-p"), "ns/p")
    async with anyio.create_task_group() as binds:
        s.schedule_one(await s.queue.pop(), binds)
    assert log == ["reserve Refuses", "unreserve Refuses"]
    assert binder.bound == []
    assert "ns/p" not in s.cache
    condition = client.patches[-1]["status"]["conditions"][0]
    assert condition["message"] == 'running Reserve plugin "Refuses": no'


FLAG_CASES = [
    ("default is kube-scheduler's", [], 600.0, ""),
    ("set", ["--volume-bind-timeout", "30"], 30.0, ""),
    ("zero refused", ["--volume-bind-timeout", "0"], None,
     "--volume-bind-timeout must be positive, got 0"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "argv", "want", "error"), FLAG_CASES, ids=[c[0] for c in FLAG_CASES]
)
def test_volume_bind_timeout_flag(
    name: str, argv: list[str], want: float | None, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if want is not None:
        assert scheduler_main._parser().parse_args(argv).volume_bind_timeout == want, name
        return
    with pytest.raises(SystemExit):
        scheduler_main.main([*argv, "--server", "127.0.0.1:1"])
    assert error in capsys.readouterr().err, name


@dataclass
class Crashes:
    name: str = "Crashes"

    async def pre_bind(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        raise RuntimeError("boom")


async def test_a_pre_bind_that_crashes_retries_the_pod_and_spares_the_loop() -> None:
    binder = _Binder()
    client = _Client()
    s = Scheduler(client, profile=Profile.of(Crashes(), binder))  # type: ignore[arg-type]
    s.cache.add_node(node("a", allocatable={"pods": "10"}))
    s.queue.add(pod(container(), name="p", namespace="ns", uid="uid-p"), "ns/p")
    async with anyio.create_task_group() as binds:
        s.schedule_one(await s.queue.pop(), binds)
    assert binder.bound == []
    assert "ns/p" not in s.cache
    condition = client.patches[-1]["status"]["conditions"][0]
    assert condition["message"] == "pre-binding ns/p to a failed: boom"

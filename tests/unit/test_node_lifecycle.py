"""The node lifecycle controller's monitor, tainting pass and NoSchedule
sync, table by table, on the fake client with a stepped clock (Kubernetes'
pkg/controller/nodelifecycle/node_lifecycle_controller_test.go: the cases
are its ideas, the code is kpy's).

Each case seeds nodes (with their Lease) and pods, runs one monitor pass at
t=0 (the controller first hears of every node), steps the clock, renews the
Leases of the nodes still alive, runs a second monitor pass, the tainting
pass and a NoSchedule sync of every node, and then asserts what a user sees
with `kpyctl get nodes` / `describe node`: the Ready status, the taints and
the pods' Ready condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from kpy.api import errors
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import Node, NodeCondition, Pod, PodCondition, Taint
from kpy.api.defaults import set_defaults
from kpy.cache.informer import SharedInformer
from kpy.client.fake import Action, FakeClient
from kpy.controllers import main as cm_main
from kpy.controllers.node_lifecycle import (
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    NodeLifecycleController,
    NodeLifecycleOptions,
    TokenBucket,
    ZoneState,
    compute_zone_state,
)

T0 = 1_700_000_000.0
GRACE = 50.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def node(
    name: str,
    *,
    ready: str | None = "True",
    zone: str = "",
    taints: tuple[str, ...] = (),
    unschedulable: bool = False,
    pressure: tuple[str, ...] = (),
) -> Node:
    """`taints`: "key:Effect" strings; `pressure`: the pressure conditions True."""
    n = Node()
    n.metadata.name = name
    n.metadata.creation_timestamp.FromSeconds(int(T0) - 1000)
    if zone:
        n.metadata.labels["topology.kubernetes.io/zone"] = zone
    n.spec.unschedulable = unschedulable
    for t in taints:
        key, effect = t.split(":")
        n.spec.taints.append(Taint(key=key, effect=effect))
    if ready is not None:
        c = NodeCondition(type="Ready", status=ready, reason="KubeletReady")
        c.last_heartbeat_time.FromSeconds(int(T0) - 5)
        n.status.conditions.append(c)
        for kind in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            status = "True" if kind in pressure else "False"
            n.status.conditions.append(NodeCondition(type=kind, status=status))
    return set_defaults(n)


def lease(name: str, renewed: float) -> Lease:
    le = Lease()
    le.metadata.name = name
    le.metadata.namespace = "kube-node-lease"
    le.spec.holder_identity = name
    le.spec.renew_time.FromNanoseconds(int(renewed * 1e9))
    return le


def pod(name: str, node_name: str, *, ready: bool = True) -> Pod:
    p = Pod()
    p.metadata.name = name
    p.metadata.namespace = "default"
    p.metadata.uid = f"uid-{name}"
    p.spec.node_name = node_name
    p.spec.containers.add(name="app", image="busybox")
    p.status.phase = "Running"
    p.status.conditions.append(PodCondition(type="Ready", status="True" if ready else "False"))
    return set_defaults(p)


@dataclass
class Fixture:
    client: FakeClient
    nodes: SharedInformer[Node]
    leases: SharedInformer[Lease]
    pods: SharedInformer[Pod]
    controller: NodeLifecycleController
    clock: Clock

    @classmethod
    def new(cls, options: NodeLifecycleOptions | None = None) -> Fixture:
        clock = Clock()
        client = FakeClient(now=clock)
        nodes = SharedInformer(client, Node)
        leases = SharedInformer(client, Lease)
        pods = SharedInformer(client, Pod)
        controller = NodeLifecycleController(
            client, nodes, leases, pods, options=options, now=clock
        )
        return cls(client, nodes, leases, pods, controller, clock)

    def seed(self, *objects: Any) -> None:
        self.client.add(*objects)
        self.refresh()

    def refresh(self) -> None:
        """The listers catch up with the store (the informers' job when they run)."""
        for informer in (self.nodes, self.leases, self.pods):
            informer.indexer.replace(self.client.stored_list(informer.kind), "0")

    def renew(self, *names: str) -> None:
        for name in names:
            stored = self.client.stored(Lease, name, "kube-node-lease")
            assert stored is not None
            stored.spec.renew_time.FromNanoseconds(int(self.clock.t * 1e9))
            stored.metadata.resource_version = ""
            self.client.add(stored)
        self.refresh()

    async def step(self, seconds: float, *, alive: tuple[str, ...] = ()) -> None:
        """Steps the clock, renews the Leases of `alive`, runs every pass."""
        self.clock.t += seconds
        self.renew(*alive)
        await self.controller.monitor()
        self.refresh()
        await self.controller.tainting_pass()
        self.refresh()
        for n in self.client.stored_list(Node):
            await self.controller.sync(n.metadata.name)
        self.refresh()

    def ready(self, name: str) -> NodeCondition:
        n = self.client.stored(Node, name, "")
        assert n is not None
        return next(c for c in n.status.conditions if c.type == "Ready")

    def taints(self, name: str) -> list[str]:
        n = self.client.stored(Node, name, "")
        assert n is not None
        return sorted(f"{t.key}:{t.effect}" for t in n.spec.taints)

    def pod_ready(self, name: str) -> str:
        p = self.client.stored(Pod, name)
        assert p is not None
        return next(c.status for c in p.status.conditions if c.type == "Ready")

    def close(self) -> None:
        self.controller.queue.shut_down()


UNREACHABLE = [f"{UNREACHABLE_TAINT}:NoExecute", f"{UNREACHABLE_TAINT}:NoSchedule"]
MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure:NoSchedule"
DISK_PRESSURE = "node.kubernetes.io/disk-pressure:NoSchedule"
PID_PRESSURE = "node.kubernetes.io/pid-pressure:NoSchedule"
NOT_READY = [f"{NOT_READY_TAINT}:NoExecute", f"{NOT_READY_TAINT}:NoSchedule"]


@dataclass(frozen=True)
class Case:
    name: str
    node: Node
    #: seconds from the first pass to the second.
    elapsed: float
    #: whether the agent renews its Lease meanwhile.
    renewed: bool
    want_ready: str
    want_taints: list[str] = field(default_factory=list)
    want_pod_ready: str = "True"
    want_reason: str = ""


CASES = [
    Case("lease renewed: nothing changes", node("n"), 120, True, "True"),
    Case(
        "lease stale within the grace period: nothing changes", node("n"), GRACE - 1, False, "True"
    ),
    Case(
        "lease stale past the grace period: Unknown, unreachable taints, pods not ready",
        node("n"),
        GRACE + 1,
        False,
        "Unknown",
        UNREACHABLE,
        "False",
        "NodeStatusUnknown",
    ),
    Case(
        "the agent says NotReady: stays False, not-ready taints, pods not ready",
        node("n", ready="False"),
        10,
        True,
        "False",
        NOT_READY,
        "False",
    ),
    Case(
        "back Ready: the taints go",
        node("n", taints=(f"{UNREACHABLE_TAINT}:NoExecute", f"{UNREACHABLE_TAINT}:NoSchedule")),
        10,
        True,
        "True",
    ),
    Case(
        "not-ready taints swap to unreachable once the agent goes silent",
        node("n", ready="False", taints=(f"{NOT_READY_TAINT}:NoExecute",)),
        GRACE + 1,
        False,
        "Unknown",
        UNREACHABLE,
        "False",
    ),
    Case(
        "a node that never posted status is Unknown after the startup grace period",
        node("n", ready=None),
        61,
        False,
        "Unknown",
        UNREACHABLE,
        "False",
        "NodeStatusNeverUpdated",
    ),
    Case(
        "a cordoned node gets the unschedulable taint",
        node("n", unschedulable=True),
        1,
        True,
        "True",
        ["node.kubernetes.io/unschedulable:NoSchedule"],
    ),
    Case(
        "memory pressure: the memory-pressure NoSchedule taint, the pods stay ready",
        node("n", pressure=("MemoryPressure",)),
        10,
        True,
        "True",
        [MEMORY_PRESSURE],
    ),
    Case(
        "every pressure: one NoSchedule taint each",
        node("n", pressure=("MemoryPressure", "DiskPressure", "PIDPressure")),
        10,
        True,
        "True",
        [MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE],
    ),
    Case(
        "the pressure is over: its taint goes, the others stay",
        node("n", pressure=("DiskPressure",), taints=(MEMORY_PRESSURE, DISK_PRESSURE)),
        10,
        True,
        "True",
        [DISK_PRESSURE],
    ),
    Case(
        "a silent node under pressure: unreachable, the pressure Unknown and untainted",
        node("n", pressure=("MemoryPressure",), taints=(MEMORY_PRESSURE,)),
        GRACE + 1,
        False,
        "Unknown",
        UNREACHABLE,
        "False",
    ),
    Case(
        "other taints are left alone",
        node("n", taints=("example.com/gpu:NoSchedule",)),
        GRACE + 1,
        False,
        "Unknown",
        ["example.com/gpu:NoSchedule", *UNREACHABLE],
        "False",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_monitor(case: Case) -> None:
    # Two healthy nodes keep the zone from being fully disrupted.
    fx = Fixture.new()
    fx.seed(case.node, node("healthy-1"), node("healthy-2"))
    fx.seed(*(lease(n, T0) for n in ("n", "healthy-1", "healthy-2")))
    fx.seed(pod("p", "n"), pod("elsewhere", "healthy-1"))
    try:
        await fx.step(0, alive=("n", "healthy-1", "healthy-2"))
        alive = ("n", "healthy-1", "healthy-2") if case.renewed else ("healthy-1", "healthy-2")
        await fx.step(case.elapsed, alive=alive)
    finally:
        fx.close()
    ready = fx.ready("n")
    assert ready.status == case.want_ready, f"{case.name}: Ready {ready.status}"
    if case.want_reason:
        assert ready.reason == case.want_reason, f"{case.name}: reason {ready.reason}"
    assert fx.taints("n") == sorted(case.want_taints), f"{case.name}: taints {fx.taints('n')}"
    assert fx.pod_ready("p") == case.want_pod_ready, f"{case.name}: pod Ready"
    assert fx.pod_ready("elsewhere") == "True", f"{case.name}: a pod on a healthy node"
    assert fx.taints("healthy-1") == [], f"{case.name}: a healthy node's taints"


async def test_unknown_sets_every_condition_and_says_why() -> None:
    fx = Fixture.new()
    fx.seed(node("n"), node("a"), node("b"), *(lease(x, T0) for x in "nab"))
    await fx.step(0, alive=("n", "a", "b"))
    await fx.step(GRACE + 1, alive=("a", "b"))
    fx.close()
    stored = fx.client.stored(Node, "n", "")
    assert stored is not None
    got = {c.type: (c.status, c.message) for c in stored.status.conditions}
    stopped = "Kubelet stopped posting node status."
    assert got == dict.fromkeys(
        ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"), ("Unknown", stopped)
    )


async def test_a_returning_node_loses_its_taints() -> None:
    """Unknown and tainted; the agent comes back and posts Ready: taints go."""
    fx = Fixture.new()
    fx.seed(node("n"), node("a"), node("b"), *(lease(x, T0) for x in "nab"))
    await fx.step(0, alive=("n", "a", "b"))
    await fx.step(GRACE + 1, alive=("a", "b"))
    assert fx.taints("n") == sorted(UNREACHABLE)
    back = fx.client.stored(Node, "n", "")
    assert back is not None
    ready = next(c for c in back.status.conditions if c.type == "Ready")
    ready.status = "True"
    ready.last_heartbeat_time.FromSeconds(int(fx.clock.t))
    fx.client.add(back)
    await fx.step(1, alive=("n", "a", "b"))
    fx.close()
    assert fx.taints("n") == []


async def test_times_written_are_whole_seconds() -> None:
    """As Kubernetes' metav1.Time: a condition's lastTransitionTime and a
    taint's timeAdded read 2026-12-07T17:28:00Z, never with nanoseconds."""
    fx = Fixture.new()
    fx.seed(node("n"), node("a"), node("b"), *(lease(x, T0) for x in "nab"), pod("p", "n"))
    await fx.step(0, alive=("n", "a", "b"))
    await fx.step(GRACE + 1.25, alive=("a", "b"))
    fx.close()
    stored = fx.client.stored(Node, "n", "")
    p = fx.client.stored(Pod, "p", "default")
    assert stored is not None
    assert p is not None
    times = {f"node condition {c.type}": c.last_transition_time for c in stored.status.conditions}
    times |= {f"taint {t.key}:{t.effect}": t.time_added for t in stored.spec.taints}
    times |= {f"pod condition {c.type}": c.last_transition_time for c in p.status.conditions}
    assert len(times) >= 7, sorted(times)  # 4 node conditions, 2 taints, the pod's Ready
    fractions = {name: t.nanos for name, t in times.items() if t.nanos}
    assert fractions == {}


async def test_a_failing_node_does_not_stop_the_pass() -> None:
    fx = Fixture.new()
    names = ("bad", "good", "a", "b", "c")
    fx.seed(*(node(n) for n in names), *(lease(n, T0) for n in names))

    def conflict(action: Action) -> None:
        if action.name == "bad":
            raise errors.Conflict("the object has been modified")

    fx.client.prepend_reactor("update", "Node", conflict)
    await fx.step(0, alive=names)
    await fx.step(GRACE + 1, alive=("a", "b", "c"))
    fx.close()
    assert fx.ready("bad").status == "True", "its update failed"
    assert fx.ready("good").status == "Unknown"


# -- zones and rate limits ---------------------------------------------------------------------


async def run_zones(
    zones: dict[str, tuple[int, int]], steps: list[float], options: NodeLifecycleOptions
) -> tuple[Fixture, list[int]]:
    """Zones of (total, down) nodes; after the first pass the down ones go
    silent. Returns the number of NoExecute-tainted nodes after each step."""
    fx = Fixture.new(options)
    everyone: list[str] = []
    alive: list[str] = []
    for zone, (total, down) in zones.items():
        names = [f"{zone}-{i}" for i in range(total)]
        fx.seed(*(node(n, zone=zone) for n in names), *(lease(n, T0) for n in names))
        everyone += names
        alive += names[down:]
    await fx.step(0, alive=tuple(everyone))
    counts = []
    for seconds in steps:
        await fx.step(seconds, alive=tuple(alive))
        counts.append(
            sum(
                1
                for n in fx.client.stored_list(Node)
                if any(t.effect == "NoExecute" for t in n.spec.taints)
            )
        )
    fx.close()
    return fx, counts


@dataclass(frozen=True)
class ZoneCase:
    name: str
    zones: dict[str, tuple[int, int]]
    steps: list[float]
    want: list[int]
    options: NodeLifecycleOptions = field(default_factory=NodeLifecycleOptions)


ZONE_CASES = [
    ZoneCase(
        "normal zone: one node every 10 s (0.1/s, burst 1)",
        {"a": (10, 2)},
        [GRACE + 1, 1, 10],
        [1, 1, 2],
    ),
    ZoneCase(
        "partially disrupted small zone: no taints at all",
        {"a": (5, 3)},
        [GRACE + 1, 100, 1000],
        [0, 0, 0],
    ),
    ZoneCase(
        "partially disrupted large zone: the secondary rate, one every 100 s",
        {"a": (5, 3)},
        [GRACE + 1, 50, 60],
        [1, 1, 2],
        NodeLifecycleOptions(large_cluster_size_threshold=4),
    ),
    ZoneCase(
        "one zone fully down, another healthy: the down zone is tainted at the normal rate",
        {"a": (2, 2), "b": (2, 0)},
        [GRACE + 1, 10],
        [1, 2],
    ),
    ZoneCase(
        "every zone fully down: nothing is tainted",
        {"a": (2, 2), "b": (2, 2)},
        [GRACE + 1, 100, 1000],
        [0, 0, 0],
    ),
]


@pytest.mark.parametrize("case", ZONE_CASES, ids=lambda c: c.name)
async def test_zone_rate_limits(case: ZoneCase) -> None:
    _, counts = await run_zones(case.zones, case.steps, case.options)
    assert counts == case.want, f"{case.name}: tainted after each step {counts}, want {case.want}"


async def test_a_full_disruption_takes_the_no_execute_taints_off() -> None:
    """One node is down and tainted; then every node goes silent: the
    control plane is likely the one cut off, so no node keeps a NoExecute
    taint; once some come back, the one still Unknown is tainted again."""
    fx = Fixture.new()
    names = ("x", "y", "z")
    fx.seed(*(node(n) for n in names), *(lease(n, T0) for n in names))
    await fx.step(0, alive=names)
    await fx.step(GRACE + 1, alive=("y", "z"))
    assert f"{UNREACHABLE_TAINT}:NoExecute" in fx.taints("x")
    await fx.step(GRACE + 1, alive=())
    assert fx.controller.zones[""].state == ZoneState.FULL_DISRUPTION
    assert [c for n in names for c in fx.taints(n) if c.endswith("NoExecute")] == []
    await fx.step(1000, alive=())
    assert [c for n in names for c in fx.taints(n) if c.endswith("NoExecute")] == []
    for n in ("y", "z"):
        back = fx.client.stored(Node, n, "")
        assert back is not None
        for c in back.status.conditions:
            c.status = "True" if c.type == "Ready" else "False"
            c.last_heartbeat_time.FromSeconds(int(fx.clock.t))
        fx.client.add(back)
    await fx.step(1, alive=("y", "z"))
    fx.close()
    assert fx.controller.zones[""].state == ZoneState.NORMAL
    assert f"{UNREACHABLE_TAINT}:NoExecute" in fx.taints("x")
    assert fx.taints("y") == fx.taints("z") == []


# -- pure pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ready", "want"),
    [
        ("all ready", ["True"] * 3, ZoneState.NORMAL),
        ("none ready", ["Unknown", "False"], ZoneState.FULL_DISRUPTION),
        ("two of three down: not more than two", ["True", "False", "False"], ZoneState.NORMAL),
        ("three of five down: 60%", ["True"] * 2 + ["False"] * 3, ZoneState.PARTIAL_DISRUPTION),
        ("three of six down: 50%", ["True"] * 3 + ["False"] * 3, ZoneState.NORMAL),
    ],
)
def test_compute_zone_state(name: str, ready: list[str], want: str) -> None:
    assert compute_zone_state(ready, 0.55) == want, name


def test_token_bucket() -> None:
    bucket = TokenBucket(0.1, 0.0)
    got = [bucket.try_accept(t) for t in (0.0, 1.0, 9.9, 10.1, 10.2)]
    assert got == [True, False, False, True, False]
    assert not TokenBucket(0, 0.0).try_accept(1e9), "a rate of 0 never accepts"


def test_options_name_the_flag_at_fault() -> None:
    with pytest.raises(ValueError, match="--node-monitor-grace-period must be positive"):
        NodeLifecycleOptions(node_monitor_grace_period=0).check()


def test_the_controller_manager_flags(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cm_main._parser()
    args = parser.parse_args(["--node-monitor-grace-period", "10s", "--node-eviction-rate", "1"])
    options = cm_main._config(parser, args).node_monitor
    assert (options.node_monitor_grace_period, options.node_eviction_rate) == (10.0, 1.0)
    assert options.node_monitor_period == 5.0
    assert cm_main.duration("500ms") == 0.5
    assert cm_main.duration("2m") == 120.0
    with pytest.raises(SystemExit):
        cm_main._config(parser, parser.parse_args(["--node-monitor-grace-period", "0"]))
    assert "--node-monitor-grace-period must be positive, got 0.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--node-monitor-grace-period", "soon"])
    assert "invalid duration 'soon'" in capsys.readouterr().err

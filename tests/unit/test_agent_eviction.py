"""Node-pressure eviction's pure logic, table by table (Kubernetes'
pkg/kubelet/eviction helpers_test.go and eviction_manager_test.go: the
ideas are theirs, the code kpy's): the flags, thresholds over a stepped
clock (conditions, grace periods, the transition period), the ranking of
pods, the chosen pod's grace period and the message its status carries."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from kpy.agent.eviction import (
    EvictionConfig,
    EvictionManager,
    Observation,
    PodStats,
    choose,
    parse_duration,
    parse_eviction_config,
    parse_thresholds,
    rank,
)
from kpy.agent.main import config_from
from kpy.agent.node import node_conditions
from kpy.agent.status import Observed, pod_status
from kpy.api.core.v1 import Pod

if TYPE_CHECKING:
    from pathlib import Path

Mi = 1024 * 1024
Gi = 1024 * Mi

# -- flags -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParseCase:
    name: str
    hard: str | None
    soft: str | None = None
    grace: str | None = None
    want: tuple[str, ...] = ()  # str(Threshold) of each
    error: str = ""


PARSE_CASES = [
    ParseCase(
        "no flag: Kubernetes' defaults",
        None,
        want=(
            "memory.available<100Mi",
            "nodefs.available<10%",
            "nodefs.inodesFree<5%",
            "imagefs.available<15%",
        ),
    ),
    ParseCase(
        "given, it replaces the defaults", "memory.available<1Gi", want=("memory.available<1Gi",)
    ),
    ParseCase("empty: no hard threshold at all", "", want=()),
    ParseCase("0% and 100% are dropped", "nodefs.available<0%,imagefs.available<100%", want=()),
    ParseCase("pid.available as a count", "pid.available<1k", want=("pid.available<1k",)),
    ParseCase(
        "a soft threshold takes its grace period",
        "",
        "memory.available<1Gi",
        "memory.available=1m30s",
        want=("memory.available<1Gi for 90s",),
    ),
    ParseCase(
        "an unknown signal",
        "memory.free<1Gi",
        error="--eviction-hard: unsupported eviction signal 'memory.free'",
    ),
    ParseCase("not signal<value", "memory.available=1Gi", error="is not signal<value"),
    ParseCase("not a quantity", "memory.available<lots", error="'lots' is not a quantity"),
    ParseCase("zero is not positive", "memory.available<0", error="must be positive"),
    ParseCase("a percentage above 100", "nodefs.available<150%", error="within 0% and 100%"),
    ParseCase("a signal twice", "memory.available<1Gi,memory.available<2Gi", error="given twice"),
    ParseCase(
        "a soft threshold without a grace period",
        "",
        "memory.available<1Gi",
        error="--eviction-soft: memory.available<1Gi has no grace period",
    ),
    ParseCase(
        "a grace period that is no duration",
        "",
        "memory.available<1Gi",
        "memory.available=soon",
        error="--eviction-soft-grace-period memory.available: 'soon' is not a duration",
    ),
]


@pytest.mark.parametrize("case", PARSE_CASES, ids=lambda c: c.name)
def test_parse_thresholds(case: ParseCase) -> None:
    if case.error:
        with pytest.raises(ValueError, match=re.escape(case.error)):
            parse_thresholds(case.hard, case.soft, case.grace)
        return
    got = tuple(str(t) for t in parse_thresholds(case.hard, case.soft, case.grace))
    assert got == case.want, f"{case.name}: {got}"


@pytest.mark.parametrize(
    ("text", "want"),
    [("0", 0.0), ("10s", 10.0), ("5m", 300.0), ("1m30s", 90.0), ("1h", 3600.0), ("250ms", 0.25)],
)
def test_parse_duration(text: str, want: float) -> None:
    assert parse_duration(text, "--x") == pytest.approx(want), text


@pytest.mark.parametrize("text", ["", "5", "-1s", "1d", "s"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"--x: .* duration"):
        parse_duration(text, "--x")


def test_eviction_config_from_settings() -> None:
    config = parse_eviction_config(
        {
            "eviction_hard": "memory.available<1Gi",
            "eviction_pressure_transition_period": "30s",
            "eviction_max_pod_grace_period": 20,
            "housekeeping_interval": "2s",
        }
    )
    assert [str(t) for t in config.thresholds] == ["memory.available<1Gi"]
    assert (config.pressure_transition_period, config.max_pod_grace_period) == (30.0, 20)
    assert config.housekeeping_interval == 2.0
    defaults = parse_eviction_config({})
    assert defaults == EvictionConfig.default()
    assert (defaults.pressure_transition_period, defaults.housekeeping_interval) == (300.0, 10.0)
    with pytest.raises(ValueError, match="--housekeeping-interval must be positive"):
        parse_eviction_config({"housekeeping_interval": "0"})
    with pytest.raises(ValueError, match="--eviction-max-pod-grace-period"):
        parse_eviction_config({"eviction_max_pod_grace_period": "soon"})


# -- thresholds over time -----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def memory(available: int, capacity: int = 8 * Gi) -> dict[str, Observation]:
    return {"memory.available": Observation(available, capacity)}


def disk(fraction_free: float) -> dict[str, Observation]:
    capacity = 100 * Gi
    return {"nodefs.available": Observation(int(capacity * fraction_free), capacity)}


@dataclass(frozen=True)
class Tick:
    after: float  # seconds since the previous pass
    observed: dict[str, Observation]
    conditions: frozenset[str]
    acted: tuple[str, ...] = ()  # signals acted on


@dataclass(frozen=True)
class TimeCase:
    name: str
    hard: str
    ticks: list[Tick]
    soft: str | None = None
    grace: str | None = None
    transition: float = 300.0


MEM = frozenset({"MemoryPressure"})
DISK = frozenset({"DiskPressure"})
NONE: frozenset[str] = frozenset()

TIME_CASES = [
    TimeCase(
        "plenty available: no pressure",
        "memory.available<100Mi",
        [Tick(0, memory(4 * Gi), NONE)],
    ),
    TimeCase(
        "a hard threshold met: pressure and eviction at once",
        "memory.available<100Mi",
        [Tick(0, memory(50 * Mi), MEM, ("memory.available",))],
    ),
    TimeCase(
        "exactly at the threshold is not below it",
        "memory.available<100Mi",
        [Tick(0, memory(100 * Mi), NONE)],
    ),
    TimeCase(
        "a percentage of the capacity",
        "nodefs.available<10%",
        [Tick(0, disk(0.2), NONE), Tick(10, disk(0.05), DISK, ("nodefs.available",))],
    ),
    TimeCase(
        "the condition stays for the transition period once the threshold clears",
        "memory.available<100Mi",
        [
            Tick(0, memory(50 * Mi), MEM, ("memory.available",)),
            Tick(10, memory(4 * Gi), MEM),
            Tick(289, memory(4 * Gi), MEM),
            Tick(1, memory(4 * Gi), NONE),
        ],
    ),
    TimeCase(
        "a zero transition period clears at once",
        "memory.available<100Mi",
        [Tick(0, memory(50 * Mi), MEM, ("memory.available",)), Tick(10, memory(4 * Gi), NONE)],
        transition=0.0,
    ),
    TimeCase(
        "a soft threshold: pressure at once, eviction after its grace period",
        "",
        [
            Tick(0, memory(500 * Mi), MEM),
            Tick(59, memory(500 * Mi), MEM),
            Tick(1, memory(500 * Mi), MEM, ("memory.available",)),
        ],
        soft="memory.available<1Gi",
        grace="memory.available=1m",
    ),
    TimeCase(
        "a soft threshold that clears starts its grace period again",
        "",
        [
            Tick(0, memory(500 * Mi), MEM),
            Tick(50, memory(2 * Gi), MEM),
            Tick(10, memory(500 * Mi), MEM),
            Tick(59, memory(500 * Mi), MEM),
            Tick(1, memory(500 * Mi), MEM, ("memory.available",)),
        ],
        soft="memory.available<1Gi",
        grace="memory.available=1m",
    ),
    TimeCase(
        "a signal not measured is not met",
        "pid.available<100",
        [Tick(0, memory(50 * Mi), NONE)],
    ),
]


@pytest.mark.parametrize("case", TIME_CASES, ids=lambda c: c.name)
def test_thresholds_over_time(case: TimeCase) -> None:
    clock = Clock()
    config = EvictionConfig(
        thresholds=parse_thresholds(case.hard, case.soft, case.grace),
        pressure_transition_period=case.transition,
    )
    manager = EvictionManager(config, clock=clock)
    for i, tick in enumerate(case.ticks):
        clock.t += tick.after
        step = manager.observe(tick.observed)
        assert step.conditions == tick.conditions, f"{case.name}, pass {i}: {step.conditions}"
        assert manager.conditions == tick.conditions, f"{case.name}, pass {i}"
        acted = tuple(t.signal for t in step.met)
        assert acted == tick.acted, f"{case.name}, pass {i}: acted on {acted}"


def test_memory_is_reclaimed_first() -> None:
    manager = EvictionManager(EvictionConfig(parse_thresholds(None)), clock=Clock())
    step = manager.observe({**disk(0.01), **memory(10 * Mi)})
    assert step.conditions == MEM | DISK
    assert step.to_reclaim is not None
    assert step.to_reclaim.signal == "memory.available"


# -- choosing the pod ---------------------------------------------------------------------------


def pod(
    name: str,
    *,
    request: str = "",
    priority: int | None = None,
    grace: int | None = None,
    static: bool = False,
    containers: tuple[str, ...] = ("app",),
) -> Pod:
    p = Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.uid = name, "default", f"uid-{name}"
    for c in containers:
        spec = p.spec.containers.add(name=c, image="busybox")
        if request:
            spec.resources.requests["memory"].string = request
    if priority is not None:
        p.spec.priority = priority
    if grace is not None:
        p.spec.termination_grace_period_seconds = grace
    if static:
        p.metadata.annotations["kubernetes.io/config.source"] = "file"
    return p


def using(amount: int, container: str = "app", resource: str = "memory") -> PodStats:
    return PodStats({container: {resource: amount}})


@dataclass(frozen=True)
class RankCase:
    name: str
    pods: list[Pod]
    stats: dict[str, PodStats]
    want: list[str]
    resource: str = "memory"


RANK_CASES = [
    RankCase(
        "over its requests before under, whatever the priority",
        [pod("under", request="1Gi", priority=-10), pod("over", request="10Mi", priority=100)],
        {"uid-under": using(500 * Mi), "uid-over": using(20 * Mi)},
        ["over", "under"],
    ),
    RankCase(
        "then the lower priority first",
        [pod("high", priority=100), pod("low", priority=1), pod("none")],
        {"uid-high": using(900 * Mi), "uid-low": using(10 * Mi), "uid-none": using(20 * Mi)},
        ["none", "low", "high"],
    ),
    RankCase(
        "then the larger usage above requests first",
        [pod("small", request="100Mi"), pod("big", request="100Mi"), pod("besteffort")],
        {
            "uid-small": using(150 * Mi),
            "uid-big": using(400 * Mi),
            "uid-besteffort": using(250 * Mi),
        },
        ["big", "besteffort", "small"],
    ),
    RankCase(
        "a pod with no figures first",
        [pod("measured"), pod("unknown")],
        {"uid-measured": using(900 * Mi)},
        ["unknown", "measured"],
    ),
    RankCase(
        "PIDs: priority, then processes",
        [pod("few", priority=0), pod("many", priority=0), pod("low", priority=-1)],
        {
            "uid-few": using(3, resource="pids"),
            "uid-many": using(40, resource="pids"),
            "uid-low": using(1, resource="pids"),
        },
        ["low", "many", "few"],
        resource="pids",
    ),
]


@pytest.mark.parametrize("case", RANK_CASES, ids=lambda c: c.name)
def test_rank(case: RankCase) -> None:
    got = [p.metadata.name for p in rank(case.resource, case.pods, case.stats)]
    assert got == case.want, f"{case.name}: {got}"


@dataclass(frozen=True)
class ChooseCase:
    name: str
    pods: list[Pod]
    stats: dict[str, PodStats]
    want_pod: str | None
    want_grace: int = 1
    want_message: str = ""
    soft: bool = False
    max_grace: int = 0
    observed: dict[str, Observation] = field(default_factory=lambda: memory(50 * Mi))


CHOOSE_CASES = [
    ChooseCase(
        "hard: 1 s, the kubelet's message naming the container over its request",
        [pod("a", request="10Mi"), pod("b", request="1Gi")],
        {"uid-a": using(20 * Mi, "app"), "uid-b": using(30 * Mi)},
        "a",
        want_message=(
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "
            "Container app was using 20Mi, request is 10Mi, has larger consumption of memory. "
        ),
    ),
    ChooseCase(
        "a BestEffort container's request is 0; one under its request is not named",
        [pod("x", containers=("web", "side"))],
        {"uid-x": PodStats({"web": {"memory": 20 * Mi}, "side": {"memory": 0}})},
        "x",
        want_message=(
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "
            "Container web was using 20Mi, request is 0, has larger consumption of memory. "
        ),
    ),
    ChooseCase(
        "soft: the pod's grace period, at most the maximum",
        [pod("a", grace=60)],
        {"uid-a": using(Mi)},
        "a",
        want_grace=20,
        soft=True,
        max_grace=20,
    ),
    ChooseCase(
        "soft: a shorter grace period of the pod's own stands",
        [pod("a", grace=5)],
        {"uid-a": using(Mi)},
        "a",
        want_grace=5,
        soft=True,
        max_grace=20,
    ),
    ChooseCase(
        "soft with a negative maximum: the pod's own (30 s by default)",
        [pod("a")],
        {"uid-a": using(Mi)},
        "a",
        want_grace=30,
        soft=True,
        max_grace=-1,
    ),
    ChooseCase(
        "critical pods are never evicted",
        [pod("static", static=True), pod("critical", priority=2_000_000_000), pod("user")],
        {"uid-static": using(Gi), "uid-critical": using(Gi), "uid-user": using(Mi)},
        "user",
    ),
    ChooseCase(
        "nothing but critical pods: nobody",
        [pod("static", static=True)],
        {"uid-static": using(Gi)},
        None,
    ),
    ChooseCase(
        "no threshold met: nobody",
        [pod("a")],
        {"uid-a": using(Gi)},
        None,
        observed=memory(4 * Gi),
    ),
]


@pytest.mark.parametrize("case", CHOOSE_CASES, ids=lambda c: c.name)
def test_choose(case: ChooseCase) -> None:
    # A soft threshold of 1 s acts on the second pass, one second on.
    hard, soft, grace = (
        ("", "memory.available<100Mi", "memory.available=1s")
        if case.soft
        else ("memory.available<100Mi", None, None)
    )
    thresholds = parse_thresholds(hard, soft, grace)
    clock = Clock()
    manager = EvictionManager(
        EvictionConfig(thresholds, max_pod_grace_period=case.max_grace), clock=clock
    )
    manager.observe(case.observed)
    clock.t += 1
    step = manager.observe(case.observed)
    victim = choose(manager, step, case.pods, case.stats)
    if case.want_pod is None:
        assert victim is None, f"{case.name}: chose {victim}"
        return
    assert victim is not None, f"{case.name}: chose nobody"
    assert victim.pod.metadata.name == case.want_pod, f"{case.name}: {victim.pod.metadata.name}"
    assert victim.grace_period == case.want_grace, f"{case.name}: grace {victim.grace_period}"
    assert victim.resource == "memory", case.name
    if case.want_message:
        assert victim.message == case.want_message, f"{case.name}: {victim.message!r}"


def test_disk_message_names_the_threshold_as_a_quantity() -> None:
    manager = EvictionManager(
        EvictionConfig(parse_thresholds("nodefs.available<10%")), clock=Clock()
    )
    step = manager.observe({"nodefs.available": Observation(5 * Gi, 100 * Gi)})
    victim = choose(
        manager, step, [pod("a")], {"uid-a": using(3 * Gi, resource="ephemeral-storage")}
    )
    assert victim is not None
    assert victim.message == (
        "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, "
        "available: 5Gi. Container app was using 3Gi, request is 0, has larger consumption "
        "of ephemeral-storage. "
    )


# -- what the Node and the pod show ------------------------------------------------------------


@pytest.mark.parametrize(
    ("pressure", "want"),
    [
        (
            frozenset(),
            {
                "MemoryPressure": ("False", "KubeletHasSufficientMemory"),
                "DiskPressure": ("False", "KubeletHasNoDiskPressure"),
                "PIDPressure": ("False", "KubeletHasSufficientPID"),
                "Ready": ("True", "KubeletReady"),
            },
        ),
        (
            frozenset({"MemoryPressure", "DiskPressure", "PIDPressure"}),
            {
                "MemoryPressure": ("True", "KubeletHasInsufficientMemory"),
                "DiskPressure": ("True", "KubeletHasDiskPressure"),
                "PIDPressure": ("True", "KubeletHasInsufficientPID"),
                "Ready": ("True", "KubeletReady"),
            },
        ),
    ],
)
def test_node_conditions(pressure: frozenset[str], want: dict[str, tuple[str, str]]) -> None:
    got = {c.type: (c.status, c.reason) for c in node_conditions(pressure)}
    assert got == want, f"pressure {sorted(pressure)}: {got}"


def test_an_evicted_pod_is_failed_whatever_its_containers_say() -> None:
    p = pod("a")
    p.spec.restart_policy = "Always"
    seen = Observed(runtime="process", phase="Failed", reason="Evicted", message="low memory")
    status = pod_status(p, seen, 1000.0)
    assert (status.phase, status.reason, status.message) == ("Failed", "Evicted", "low memory")


# -- the agent's flags and config file ---------------------------------------------------------


def test_agent_flags(tmp_path: Path) -> None:
    config, _ = config_from(
        [
            "--root-dir",
            str(tmp_path),
            "--eviction-hard",
            "memory.available<1Gi,nodefs.available<5%",
            "--eviction-soft",
            "memory.available<2Gi",
            "--eviction-soft-grace-period",
            "memory.available=1m",
            "--eviction-max-pod-grace-period",
            "15",
            "--housekeeping-interval",
            "2s",
        ]
    )
    got = [str(t) for t in config.eviction.thresholds]
    assert got == ["memory.available<1Gi", "nodefs.available<5%", "memory.available<2Gi for 60s"]
    assert (config.eviction.max_pod_grace_period, config.eviction.housekeeping_interval) == (15, 2)
    defaults, _ = config_from(["--root-dir", str(tmp_path)])
    assert defaults.eviction == EvictionConfig.default()


def test_agent_config_file_takes_mappings(tmp_path: Path) -> None:
    file = tmp_path / "agent.yaml"
    file.write_text(
        "eviction-soft: {memory.available: 1Gi}\n"
        "eviction-soft-grace-period: {memory.available: 30s}\n"
        "eviction-pressure-transition-period: 1m\n"
    )
    config, _ = config_from(["--config", str(file), "--root-dir", str(tmp_path)])
    assert "memory.available<1Gi for 30s" in [str(t) for t in config.eviction.thresholds]
    assert config.eviction.pressure_transition_period == 60.0


def test_a_bad_flag_stops_the_agent_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        config_from(["--root-dir", str(tmp_path), "--eviction-hard", "memory<1Gi"])
    err = capsys.readouterr().err
    assert "--eviction-hard: unsupported eviction signal 'memory'" in err, err

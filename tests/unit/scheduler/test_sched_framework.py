"""The scheduling framework: statuses, NodeInfo, profiles, running plugins,
normalization and weights, host selection, and kube-scheduler's FitError
message (pkg/scheduler/framework/runtime/framework_test.go,
plugins/helper/normalize_score_test.go, schedule_one_test.go, types_test.go)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import pytest

from kpy.scheduler import main as scheduler_main
from kpy.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    Diagnosis,
    FilterPlugin,
    Framework,
    NodeInfo,
    NodeScore,
    PluginError,
    PostFilterResult,
    PreFilterResult,
    Profile,
    ScoredNode,
    ScorePlugin,
    Status,
    default_normalize_score,
    fit_error_message,
    new_status,
)
from kpy.scheduler.profiles import default_profile
from kpy.scheduler.scheduler import Scheduler
from tests.unit.scheduler.sched_builders import (
    container,
    node,
    pod,
    req,
    required,
    taint,
    term,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.core.v1 import Pod

UNRESOLVABLE = Code.UNSCHEDULABLE_AND_UNRESOLVABLE


# --- fake plugins ---


@dataclass
class FakeFilter:
    """Rejects the nodes listed in `reject` with `reason`; can Skip in PreFilter
    and narrow the nodes with a PreFilterResult."""

    name: str
    reject: frozenset[str] = frozenset()
    reason: str = "rejected"
    code: Code = Code.UNSCHEDULABLE
    pre_filter_status: Status = SUCCESS
    pre_filter_nodes: frozenset[str] | None = None
    calls: list[str] = field(default_factory=list)

    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status]:
        result = None if self.pre_filter_nodes is None else PreFilterResult(self.pre_filter_nodes)
        return result, self.pre_filter_status

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status:
        self.calls.append(node_info.name)
        if node_info.name in self.reject:
            return new_status(self.code, self.reason)
        return SUCCESS


@dataclass
class FakeScore:
    """Scores each node from a table; normalizes with DefaultNormalizeScore
    when `normalize` is set."""

    name: str
    table: dict[str, int]
    normalize: bool = False

    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status]:
        return self.table.get(node_info.name, 0), SUCCESS


@dataclass
class NormalizingScore(FakeScore):
    reverse: bool = False

    def normalize_score(self, state: CycleState, pod: Pod, scores: list[NodeScore]) -> Status:
        return default_normalize_score(100, self.reverse, scores)


@dataclass
class SkippingScore(FakeScore):
    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status:
        return new_status(Code.SKIP)


def infos(*names: str) -> list[NodeInfo]:
    return [NodeInfo(node(n)) for n in names]


# --- Status ---


def test_status_basics() -> None:
    status = new_status(Code.UNSCHEDULABLE, "a", "b")
    assert status.message() == "a, b"
    assert status.is_rejected()
    assert not status.is_success()
    assert status.with_plugin("P") == Status(Code.UNSCHEDULABLE, ("a", "b"), "P")
    assert SUCCESS.is_success()
    assert not SUCCESS.code  # success is falsy: `if status.code` means failure
    assert new_status(Code.SKIP).is_skip()
    assert not new_status(Code.ERROR).is_rejected()


# --- normalization (plugins/helper/normalize_score_test.go) ---


@pytest.mark.parametrize(
    ("scores", "reverse", "expected"),
    [
        ([1, 2, 3, 4], False, [25, 50, 75, 100]),
        ([1, 2, 3, 4], True, [75, 50, 25, 0]),
        ([1000, 10, 20, 30], False, [100, 1, 2, 3]),
        ([1000, 10, 20, 30], True, [0, 99, 98, 97]),
        ([1, 1, 1, 1], False, [100, 100, 100, 100]),
        ([1, 1, 1, 1], True, [0, 0, 0, 0]),
        ([0, 1, 1, 1], True, [100, 0, 0, 0]),
        ([0, 0, 0, 0], False, [0, 0, 0, 0]),
        ([0, 0, 0, 0], True, [100, 100, 100, 100]),
    ],
)
def test_default_normalize_score(scores: list[int], reverse: bool, expected: list[int]) -> None:
    node_scores = [NodeScore(f"n{i}", s) for i, s in enumerate(scores)]
    assert default_normalize_score(100, reverse, node_scores).is_success()
    assert [s.score for s in node_scores] == expected


# --- scoring: normalization, weights ---


def test_run_score_normalizes_then_weights_then_sums() -> None:
    profile = Profile.of(
        NormalizingScore("Raw", {"a": 1, "b": 2, "c": 4}),  # -> 25, 50, 100
        NormalizingScore("Reversed", {"a": 0, "b": 1, "c": 2}, reverse=True),  # -> 100, 50, 0
        FakeScore("Plain", {"a": 10, "b": 20, "c": 30}),
        weights={"Raw": 2, "Reversed": 3},
    )
    fw = Framework(profile)
    nodes = infos("a", "b", "c")
    state = CycleState()
    per_plugin = fw.run_score_plugins(state, pod(), nodes)
    assert per_plugin == {"Raw": [50, 100, 200], "Reversed": [300, 150, 0], "Plain": [10, 20, 30]}
    scored = fw.run_score(state, pod(), nodes)
    assert [(s.node_info.name, s.score) for s in scored] == [("a", 360), ("b", 270), ("c", 230)]


def test_a_skipped_score_plugin_does_not_count() -> None:
    fw = Framework(Profile.of(SkippingScore("Skipper", {"a": 100}), FakeScore("Other", {"b": 1})))
    nodes = infos("a", "b")
    state = CycleState()
    assert fw.run_pre_score(state, pod(), nodes).is_success()
    assert state.skip_score_plugins == {"Skipper"}
    assert [s.score for s in fw.run_score(state, pod(), nodes)] == [0, 1]


def test_an_out_of_range_score_is_an_error() -> None:
    fw = Framework(Profile.of(FakeScore("Wild", {"a": 101})))
    with pytest.raises(PluginError, match="invalid score 101") as caught:
        fw.run_score(CycleState(), pod(), infos("a"))
    assert caught.value.status.plugin == "Wild"


# --- select_host ---


def test_select_host_picks_the_highest_score() -> None:
    nodes = infos("a", "b", "c")
    scored = [ScoredNode(nodes[0], 10), ScoredNode(nodes[1], 30), ScoredNode(nodes[2], 20)]
    assert Framework.select_host(scored, random.Random(0)).name == "b"


def test_select_host_breaks_ties_uniformly() -> None:
    nodes = infos("a", "b", "c", "d")
    scored = [ScoredNode(nodes[0], 5), *(ScoredNode(n, 9) for n in nodes[1:])]
    rng = random.Random(42)
    picks = Counter(Framework.select_host(scored, rng).name for _ in range(30_000))
    assert "a" not in picks
    for name in ("b", "c", "d"):
        assert abs(picks[name] - 10_000) < 500, picks
    # Seeded, the choices repeat exactly.
    one, two = random.Random(7), random.Random(7)
    first = [Framework.select_host(scored, one).name for _ in range(20)]
    assert first == [Framework.select_host(scored, two).name for _ in range(20)]


def test_select_host_refuses_an_empty_list() -> None:
    with pytest.raises(ValueError, match="no nodes"):
        Framework.select_host([], random.Random(0))


# --- find_nodes_that_fit and the diagnosis ---


def test_the_first_rejecting_filter_decides_and_is_named() -> None:
    first = FakeFilter("First", reject=frozenset({"a"}), reason="first says no")
    second = FakeFilter("Second", reject=frozenset({"a", "b"}), reason="second says no")
    fw = Framework(Profile.of(first, second))
    feasible, diagnosis = fw.find_nodes_that_fit(pod(), infos("a", "b", "c"))
    assert [n.name for n in feasible] == ["c"]
    assert diagnosis == {
        "a": Status(Code.UNSCHEDULABLE, ("first says no",), "First"),
        "b": Status(Code.UNSCHEDULABLE, ("second says no",), "Second"),
    }
    assert diagnosis.unschedulable_plugins == {"First", "Second"}
    assert "a" not in second.calls  # not run once First rejected the node


def test_a_pre_filter_skip_turns_the_filter_off() -> None:
    skipping = FakeFilter(
        "Skipping", reject=frozenset({"a"}), pre_filter_status=new_status(Code.SKIP)
    )
    fw = Framework(Profile.of(skipping))
    state = CycleState()
    feasible, _ = fw.find_nodes_that_fit(pod(), infos("a", "b"), state=state)
    assert [n.name for n in feasible] == ["a", "b"]
    assert state.skip_filter_plugins == {"Skipping"}
    assert skipping.calls == []


def test_a_pre_filter_rejection_applies_to_every_node() -> None:
    status = new_status(UNRESOLVABLE, "pod affinity terms conflict")
    fw = Framework(Profile.of(FakeFilter("Picky", pre_filter_status=status)))
    feasible, diagnosis = fw.find_nodes_that_fit(pod(), infos("a", "b", "c"))
    assert feasible == []
    assert set(diagnosis) == {"a", "b", "c"}
    assert diagnosis["a"].plugin == "Picky"
    assert (
        fit_error_message(3, diagnosis) == "0/3 nodes are available: pod affinity terms conflict."
    )


def test_a_pre_filter_error_is_raised() -> None:
    fw = Framework(
        Profile.of(FakeFilter("Broken", pre_filter_status=new_status(Code.ERROR, "boom")))
    )
    with pytest.raises(PluginError, match='running PreFilter plugin "Broken": boom'):
        fw.find_nodes_that_fit(pod(), infos("a"))


def test_a_filter_error_is_raised() -> None:
    fw = Framework(Profile.of(FakeFilter("Broken", reject=frozenset({"a"}), code=Code.ERROR)))
    with pytest.raises(PluginError, match='running "Broken" filter plugin: rejected'):
        fw.find_nodes_that_fit(pod(), infos("a"))


def test_pre_filter_results_narrow_the_nodes() -> None:
    one = FakeFilter("One", pre_filter_nodes=frozenset({"a", "b"}), reject=frozenset({"a"}))
    two = FakeFilter("Two", pre_filter_nodes=frozenset({"a", "c"}))
    fw = Framework(Profile.of(one, two))
    feasible, diagnosis = fw.find_nodes_that_fit(pod(), infos("a", "b", "c"))
    assert feasible == []
    absent = new_status(UNRESOLVABLE, "node(s) didn't satisfy plugin(s) [One Two]")
    assert diagnosis["b"] == absent
    assert diagnosis["c"] == absent
    assert diagnosis["a"].plugin == "One"
    assert fit_error_message(3, diagnosis) == (
        "0/3 nodes are available: 1 rejected, 2 node(s) didn't satisfy plugin(s) [One Two]."
    )


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            [frozenset({"a"}), frozenset({"b"})],
            "node(s) didn't satisfy plugin(s) [P0 P1] simultaneously",
        ),
        ([frozenset()], "node(s) didn't satisfy plugin P0"),
    ],
)
def test_disjoint_pre_filter_results_reject_the_pod(
    sets: list[frozenset[str]], message: str
) -> None:
    fw = Framework(
        Profile.of(*(FakeFilter(f"P{i}", pre_filter_nodes=s) for i, s in enumerate(sets)))
    )
    result, status = fw.run_pre_filter(CycleState(), pod(), infos("a", "b"))
    assert status == new_status(UNRESOLVABLE, message)
    assert result is not None
    assert result.node_names == frozenset()


@pytest.mark.parametrize(
    ("num_nodes", "percentage", "want"),
    [
        (50, 0, 50),
        (99, 0, 99),
        (100, 0, 100),
        (200, 0, 100),  # 49% of 200 is 98, but never under 100
        (1000, 0, 420),  # 50 - 1000/125 = 42%
        (5000, 0, 500),  # 10%
        (10000, 0, 500),  # the adaptive share bottoms out at 5%
        (1000, 10, 100),
        (3000, 10, 300),
        (1000, 100, 1000),
    ],
)
def test_num_feasible_nodes_to_find(num_nodes: int, percentage: int, want: int) -> None:
    fw = Framework(Profile(percentage_of_nodes_to_score=percentage))
    assert fw.num_feasible_nodes_to_find(num_nodes) == want


PERCENTAGE_FLAG_CASES = [
    ("default: adaptive", [], 420, ""),
    ("fixed share", ["--percentage-of-nodes-to-score", "30"], 300, ""),
    ("every node", ["--percentage-of-nodes-to-score", "100"], 1000, ""),
    ("over 100 refused", ["--percentage-of-nodes-to-score", "101"], None,
     "--percentage-of-nodes-to-score must be between 0 and 100, got 101"),
    ("negative refused", ["--percentage-of-nodes-to-score", "-1"], None,
     "--percentage-of-nodes-to-score must be between 0 and 100, got -1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "argv", "want", "error"),
    PERCENTAGE_FLAG_CASES,
    ids=[c[0] for c in PERCENTAGE_FLAG_CASES],
)
def test_percentage_of_nodes_to_score_flag(
    name: str, argv: list[str], want: int | None, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """kpy-scheduler's --percentage-of-nodes-to-score reaches the profile:
    how many feasible nodes of 1,000 are found before scoring."""
    if want is not None:
        percentage = scheduler_main._parser().parse_args(argv).percentage_of_nodes_to_score
        scheduler = Scheduler(object(), percentage_of_nodes_to_score=percentage)  # type: ignore[arg-type]
        assert scheduler.framework.num_feasible_nodes_to_find(1000) == want, name
        return
    with pytest.raises(SystemExit):
        scheduler_main.main([*argv, "--server", "127.0.0.1:1"])
    assert error in capsys.readouterr().err, name


def test_the_search_stops_early_and_resumes_where_it_stopped() -> None:
    fw = Framework(Profile.of(FakeFilter("Any")))
    nodes = infos(*(f"n{i:03}" for i in range(200)))
    first, _ = fw.find_nodes_that_fit(pod(), nodes)
    second, _ = fw.find_nodes_that_fit(pod(), nodes)
    assert [n.name for n in first] == [f"n{i:03}" for i in range(100)]
    assert [n.name for n in second] == [f"n{i:03}" for i in range(100, 200)]
    everything, _ = fw.find_nodes_that_fit(pod(), nodes, find_all=True)
    assert len(everything) == 200


# --- fit_error_message ---


def rejected(*reasons: str, code: Code = Code.UNSCHEDULABLE) -> Status:
    return new_status(code, *reasons)


TAINT_REASON: Final = "node(s) had untolerated taint {k1: v1}"


@pytest.mark.parametrize(
    ("num_nodes", "statuses", "message"),
    [
        pytest.param(
            5,
            [rejected(TAINT_REASON)] * 3 + [rejected("Insufficient cpu")] * 2,
            f"0/5 nodes are available: 2 Insufficient cpu, 3 {TAINT_REASON}.",
            id="counted and sorted as strings",
        ),
        pytest.param(
            3,
            [rejected("Insufficient cpu", "Insufficient memory"), rejected("Insufficient memory")],
            "0/3 nodes are available: 1 Insufficient cpu, 2 Insufficient memory.",
            id="every reason of a node counts",
        ),
        pytest.param(
            19,
            [rejected("B")] * 10 + [rejected("A")] * 9,
            "0/19 nodes are available: 10 B, 9 A.",
            id="Go's sort.Strings puts 10 before 9",
        ),
        pytest.param(
            2,
            [rejected("node(s) were unschedulable", code=UNRESOLVABLE)],
            "0/2 nodes are available: 1 node(s) were unschedulable.",
            id="one node rejected of two",
        ),
        pytest.param(0, [], "0/0 nodes are available:", id="nothing to report"),
    ],
)
def test_fit_error_message(num_nodes: int, statuses: list[Status], message: str) -> None:
    diagnosis = {f"n{i}": s for i, s in enumerate(statuses)}
    assert fit_error_message(num_nodes, diagnosis) == message


def test_fit_error_message_appends_the_post_filter_message() -> None:
    diagnosis = Diagnosis(
        {"n": rejected("Insufficient cpu")},
        post_filter_msg="preemption: 0/1 nodes are available: 1 No preemption victims found.",
    )
    assert fit_error_message(1, diagnosis) == (
        "0/1 nodes are available: 1 Insufficient cpu. "
        "preemption: 0/1 nodes are available: 1 No preemption victims found."
    )


# --- the default profile end to end ---


def resources(cpu: str = "4", memory: str = "8Gi", pods: str = "110") -> dict[str, str]:
    return {"cpu": cpu, "memory": memory, "pods": pods}


def test_default_profile_lists_kube_schedulers_plugins_and_weights() -> None:
    profile = default_profile()
    assert [p.name for p in profile.filter] == [
        "NodeUnschedulable",
        "NodeName",
        "TaintToleration",
        "NodeAffinity",
        "NodePorts",
        "NodeResourcesFit",
        "PodTopologySpread",
        "InterPodAffinity",
    ]
    assert [p.name for p in profile.pre_filter] == [
        "NodeAffinity",
        "NodePorts",
        "NodeResourcesFit",
        "PodTopologySpread",
        "InterPodAffinity",
    ]
    assert [p.name for p in profile.post_filter] == ["DefaultPreemption"]
    assert [p.name for p in profile.score] == [
        "TaintToleration",
        "NodeAffinity",
        "NodeResourcesFit",
        "PodTopologySpread",
        "InterPodAffinity",
        "NodeResourcesBalancedAllocation",
    ]
    weights = {p.name: profile.weight(p.name) for p in profile.score}
    assert weights == {
        "TaintToleration": 3,
        "NodeAffinity": 2,
        "NodeResourcesFit": 1,
        "PodTopologySpread": 2,
        "InterPodAffinity": 2,
        "NodeResourcesBalancedAllocation": 1,
    }
    assert all(isinstance(p, FilterPlugin) for p in profile.filter)
    assert all(isinstance(p, ScorePlugin) for p in profile.score)


def test_default_profile_explains_why_a_pod_fits_nowhere() -> None:
    tainted = [taint("k1", "v1", "NoSchedule")]
    nodes = [
        NodeInfo(node("small-1", allocatable=resources(cpu="1"))),
        NodeInfo(node("small-2", allocatable=resources(cpu="1"))),
        NodeInfo(node("tainted-1", allocatable=resources(), taints=tainted)),
        NodeInfo(node("tainted-2", allocatable=resources(), taints=tainted)),
        NodeInfo(node("tainted-3", allocatable=resources(), taints=tainted)),
    ]
    wants_two_cpus = pod(container({"cpu": "2"}), name="p")
    result = Framework(default_profile()).schedule_pod(wants_two_cpus, nodes, random.Random(0))
    assert result.node_info is None
    assert result.evaluated_nodes == 5
    assert result.diagnosis["small-1"] == Status(
        UNRESOLVABLE, ("Insufficient cpu",), "NodeResourcesFit"
    )
    assert result.diagnosis["tainted-1"].plugin == "TaintToleration"
    assert fit_error_message(5, result.diagnosis) == (
        "0/5 nodes are available: 2 Insufficient cpu, 3 node(s) had untolerated taint {k1: v1}."
    )


def test_default_profile_narrows_by_node_name_affinity() -> None:
    nodes = [NodeInfo(node(n, allocatable=resources(cpu="1"))) for n in ("a", "b", "c")]
    pinned = pod(
        container({"cpu": "2"}),
        affinity=required(term(fields=[req("metadata.name", "In", "a")])),
    )
    result = Framework(default_profile()).schedule_pod(pinned, nodes, random.Random(0))
    assert result.node_info is None
    assert fit_error_message(3, result.diagnosis) == (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) didn't satisfy plugin(s) [NodeAffinity]."
    )


def test_default_profile_prefers_the_emptier_untainted_node() -> None:
    busy = NodeInfo(node("busy", allocatable=resources()), [pod(container({"cpu": "3"}))])
    soft = NodeInfo(
        node("soft", allocatable=resources(), taints=[taint("k", "", "PreferNoSchedule")])
    )
    empty = NodeInfo(node("empty", allocatable=resources()))
    wants = pod(container({"cpu": "500m", "memory": "1Gi"}))
    fw = Framework(default_profile())
    result = fw.schedule_pod(wants, [busy, soft, empty], random.Random(0))
    assert result.node_info is empty
    assert result.feasible_nodes == 3


def test_schedule_pod_with_a_single_feasible_node_skips_scoring() -> None:
    scorer = FakeScore("Unused", {})
    fw = Framework(Profile.of(FakeFilter("Only", reject=frozenset({"a"})), scorer))
    result = fw.schedule_pod(pod(), infos("a", "b"), random.Random(0))
    assert result.node_info is not None
    assert result.node_info.name == "b"
    assert (result.evaluated_nodes, result.feasible_nodes) == (2, 1)


def test_schedule_pod_without_nodes() -> None:
    result = Framework(default_profile()).schedule_pod(pod(), [], random.Random(0))
    assert result.node_info is None
    assert result.evaluated_nodes == 0


# --- post filter ---


@dataclass
class FakePostFilter:
    name: str
    status: Status
    nominate: str = ""

    def post_filter(
        self, state: CycleState, pod: Pod, diagnosis: Diagnosis
    ) -> tuple[PostFilterResult | None, Status]:
        return (PostFilterResult(self.nominate) if self.nominate else None), self.status


@pytest.mark.parametrize(
    ("plugins", "want_status", "want_node"),
    [
        pytest.param(
            [FakePostFilter("A", rejected("no")), FakePostFilter("B", SUCCESS, "n1")],
            SUCCESS,
            "n1",
            id="the first success wins",
        ),
        pytest.param(
            [FakePostFilter("A", rejected("x")), FakePostFilter("B", rejected("y"))],
            Status(Code.UNSCHEDULABLE, ("x", "y"), "A"),
            None,
            id="rejections add up, the first rejector is named",
        ),
        pytest.param(
            [
                FakePostFilter("A", rejected("final", code=UNRESOLVABLE)),
                FakePostFilter("B", SUCCESS, "n1"),
            ],
            Status(UNRESOLVABLE, ("final",), "A"),
            None,
            id="unresolvable stops",
        ),
    ],
)
def test_run_post_filter(
    plugins: list[FakePostFilter], want_status: Status, want_node: str | None
) -> None:
    fw = Framework(Profile.of(*plugins))
    result, status = fw.run_post_filter(CycleState(), pod(), Diagnosis())
    assert status == want_status
    assert (result.nominated_node_name if result else None) == want_node


# --- profiles ---


def test_profile_of_places_plugins_at_their_extension_points() -> None:
    f, s = FakeFilter("F"), NormalizingScore("S", {})
    profile = Profile.of(f, s, weights={"S": 4}, scheduler_name="mine")
    assert profile.pre_filter == (f,)
    assert profile.filter == (f,)
    assert profile.score == (s,)
    assert profile.pre_score == ()
    assert profile.weight("S") == 4
    assert profile.weight("F") == 1
    assert profile.scheduler_name == "mine"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Profile.of(FakeFilter("X"), FakeFilter("X")), "lists a plugin twice"),
        (lambda: Profile.of(FakeScore("S", {}), weights={"S": 0}), "must be positive"),
        (lambda: Profile(percentage_of_nodes_to_score=101), "within 0..100"),
    ],
)
def test_invalid_profiles_are_refused(make: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()  # type: ignore[operator]


# --- NodeInfo ---


def test_node_info_accounts_for_its_pods() -> None:
    info = NodeInfo(node("n", allocatable={"cpu": "2", "memory": "1Gi", "pods": "3"}))
    with_requests = pod(container({"cpu": "500m", "memory": "100Mi"}), name="a", uid="a")
    without = pod(container(), name="b", uid="b")
    generation = info.generation
    info.add_pod(with_requests)
    info.add_pod(without)
    assert info.generation != generation
    assert info.pod_count == 2
    assert (info.requested.milli_cpu, info.requested.memory) == (500, 100 * 1024 * 1024)
    assert info.non_zero_requested.milli_cpu == 600
    assert info.non_zero_requested.memory == 300 * 1024 * 1024
    assert info.allocatable.allowed_pod_number == 3
    # Re-adding a pod replaces it rather than counting it twice.
    info.add_pod(pod(container({"cpu": "1"}), name="a", uid="a"))
    assert info.pod_count == 2
    assert info.requested.milli_cpu == 1000
    assert info.remove_pod(without)
    assert not info.remove_pod(without)
    assert info.non_zero_requested.milli_cpu == 1000
    assert [p.metadata.name for p in info.pods] == ["a"]


def test_node_info_clone_is_independent() -> None:
    info = NodeInfo(node("n", labels={"a": "b"}), [pod(container({"cpu": "1"}), name="x", uid="x")])
    copy = info.clone()
    copy.add_pod(pod(container({"cpu": "1"}), name="y", uid="y"))
    assert (info.pod_count, info.requested.milli_cpu) == (1, 1000)
    assert (copy.pod_count, copy.requested.milli_cpu) == (2, 2000)
    assert copy.labels == {"a": "b"}


def test_set_node_refreshes_what_is_cached_from_the_node() -> None:
    info = NodeInfo(node("n", labels={"zone": "a"}, allocatable={"cpu": "1"}))
    info.node_cache["Plugin"] = "stale"
    info.set_node(node("n", labels={"zone": "b"}, allocatable={"cpu": "2"}))
    assert info.labels == {"zone": "b"}
    assert info.allocatable.milli_cpu == 2000
    assert info.node_cache == {}


# --- Bind ---


@dataclass
class FakeBinder:
    name: str
    skip: bool = False
    bound: list[tuple[str, str]] = field(default_factory=list)

    async def bind(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        if self.skip:
            return new_status(Code.SKIP)
        self.bound.append((pod.metadata.name, node_name))
        return SUCCESS


async def test_the_first_binder_that_does_not_skip_binds() -> None:
    skipper, binder, spare = (
        FakeBinder("Skipper", skip=True),
        FakeBinder("Binder"),
        FakeBinder("Spare"),
    )
    fw = Framework(Profile.of(skipper, binder, spare))
    status = await fw.run_bind(CycleState(), pod(name="p"), "n1")
    assert status == SUCCESS
    assert (skipper.bound, binder.bound, spare.bound) == ([], [("p", "n1")], [])


async def test_without_a_binder_nothing_is_bound() -> None:
    status = await Framework(Profile.of(FakeBinder("Skipper", skip=True))).run_bind(
        CycleState(), pod(name="p"), "n1"
    )
    assert status.is_skip()


async def test_default_binder_hands_the_pod_to_the_api_call() -> None:
    calls: list[tuple[str, str]] = []

    async def bind(p: Pod, node_name: str) -> None:
        calls.append((p.metadata.name, node_name))

    fw = Framework(default_profile(bind=bind))
    assert [b.name for b in fw.profile.bind] == ["DefaultBinder"]
    assert (await fw.run_bind(CycleState(), pod(name="p"), "n1")) == SUCCESS
    assert calls == [("p", "n1")]

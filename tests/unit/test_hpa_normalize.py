"""The HPA's normalisation: stabilisation windows and scaling policies,
table by table (after Kubernetes' horizontal_test.go normalisation tables:
TestNormalizeDesiredReplicas, TestNormalizeDesiredReplicasWithBehavior,
TestCalculateScaleUpLimitWithScalingRules / ...ScaleDownLimitWithBehaviors,
TestStoreScaleEvents; the cases are ported, the code is kpy's)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from kpy.controllers.podautoscaler.normalize import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Policy,
    Recommendation,
    ScaleEvent,
    ScalingRules,
    limit_with_behavior,
    limit_with_rules,
    record_scale_event,
    scale_down_limit,
    scale_up_limit,
    stabilize,
    stabilize_with_behavior,
)

NOW = 1_000_000.0


def recs(*pairs: tuple[int, float]) -> list[Recommendation]:
    """(replicas, seconds ago) pairs."""
    return [Recommendation(r, NOW - ago) for r, ago in pairs]


def events(*pairs: tuple[int, float]) -> list[ScaleEvent]:
    """(change, seconds ago) pairs."""
    return [ScaleEvent(c, NOW - ago) for c, ago in pairs]


# -- without behavior -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StabilizeCase:
    name: str
    history: list[Recommendation]
    desired: int
    want: int
    want_reason: str


STABILIZE = [
    StabilizeCase("no history", [], 3, 3, "ReadyForNewScale"),
    StabilizeCase(
        "a higher proposal within 5 minutes holds a scale-down",
        recs((5, 100), (4, 50)),
        2,
        5,
        "ScaleDownStabilized",
    ),
    StabilizeCase(
        "proposals older than the window do not count",
        recs((9, 400), (4, 50)),
        2,
        4,
        "ScaleDownStabilized",
    ),
    StabilizeCase("a scale-up is never held", recs((3, 10)), 6, 6, "ReadyForNewScale"),
]


@pytest.mark.parametrize("case", STABILIZE, ids=lambda c: c.name)
def test_stabilize(case: StabilizeCase) -> None:
    got = stabilize(case.history, case.desired, NOW)
    assert (got.replicas, got.reason) == (case.want, case.want_reason), case.name
    assert Recommendation(case.desired, NOW) in got.history, case.name
    assert len(got.history) <= len(case.history) + 1, case.name


def test_stabilize_reuses_the_slot_of_an_old_proposal() -> None:
    got = stabilize(recs((9, 400), (4, 50)), 2, NOW)
    assert got.history == [Recommendation(2, NOW), Recommendation(4, NOW - 50)]


@dataclass(frozen=True)
class RulesCase:
    name: str
    current: int
    desired: int
    min: int
    max: int
    want: int
    want_reason: str


RULES = [
    RulesCase("within range", 3, 5, 1, 10, 5, "DesiredWithinRange"),
    RulesCase("below the minimum", 3, 1, 2, 10, 2, "TooFewReplicas"),
    RulesCase("above the maximum", 3, 6, 1, 5, 5, "TooManyReplicas"),
    RulesCase("at most twice the current", 3, 20, 1, 50, 6, "ScaleUpLimit"),
    RulesCase("at least 4 when small", 1, 20, 1, 50, 4, "ScaleUpLimit"),
]


@pytest.mark.parametrize("case", RULES, ids=lambda c: c.name)
def test_limit_with_rules(case: RulesCase) -> None:
    got = limit_with_rules(case.current, case.desired, case.min, case.max)
    assert (got.replicas, got.reason) == (case.want, case.want_reason), case.name


# -- with behavior --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BehaviorStabilizeCase:
    name: str
    history: list[Recommendation]
    current: int
    desired: int
    up_window: int
    down_window: int
    want: int
    want_reason: str


BEHAVIOR_STABILIZE = [
    BehaviorStabilizeCase(
        "scale-down held by the highest proposal in the window",
        recs((5, 100), (4, 50)),
        current=5, desired=2, up_window=0, down_window=300,
        want=5, want_reason="ScaleDownStabilized",
    ),
    BehaviorStabilizeCase(
        "scale-down goes ahead once the window has passed",
        recs((5, 100), (4, 50)),
        current=5, desired=2, up_window=0, down_window=30,
        want=2, want_reason="ReadyForNewScale",
    ),
    BehaviorStabilizeCase(
        "scale-up held by the lowest proposal in the up window",
        recs((3, 20), (6, 10)),
        current=3, desired=8, up_window=60, down_window=300,
        want=3, want_reason="ScaleUpStabilized",
    ),
    BehaviorStabilizeCase(
        "scale-up to the lowest recent proposal above current",
        recs((5, 20), (6, 10)),
        current=3, desired=8, up_window=60, down_window=300,
        want=5, want_reason="ScaleUpStabilized",
    ),
    BehaviorStabilizeCase(
        "no window: the proposal stands",
        recs((9, 20)),
        current=3, desired=1, up_window=0, down_window=0,
        want=1, want_reason="ReadyForNewScale",
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", BEHAVIOR_STABILIZE, ids=lambda c: c.name)
def test_stabilize_with_behavior(case: BehaviorStabilizeCase) -> None:
    got = stabilize_with_behavior(
        case.history,
        case.current,
        case.desired,
        NOW,
        up_window=case.up_window,
        down_window=case.down_window,
    )
    assert (got.replicas, got.reason) == (case.want, case.want_reason), case.name


@dataclass(frozen=True)
class LimitCase:
    name: str
    current: int
    rules: ScalingRules
    want: int
    ups: list[ScaleEvent] = field(default_factory=list)
    downs: list[ScaleEvent] = field(default_factory=list)


def rules(*policies: tuple[str, int, int], select: str = "Max") -> ScalingRules:
    return ScalingRules(0, select, tuple(Policy(t, v, p) for t, v, p in policies))


UP_LIMITS = [
    LimitCase("default: 4 pods beat 100% of 1", 1, DEFAULT_SCALE_UP, 5),
    LimitCase("default: 100% beats 4 pods of 10", 10, DEFAULT_SCALE_UP, 20),
    LimitCase("Min takes the smaller change", 10, rules(("Pods", 4, 15), ("Percent", 100, 15), select="Min"), 14),  # noqa: E501
    LimitCase("Disabled: no change", 10, rules(("Pods", 4, 15), select="Disabled"), 10),
    LimitCase(
        "pods added within the period count against it",
        6, rules(("Pods", 4, 60)), 6, ups=events((4, 30)),
    ),
    LimitCase(
        "pods added before the period do not",
        6, rules(("Pods", 4, 60)), 10, ups=events((4, 90)),
    ),
    LimitCase(
        "percent rounds up so a small target can grow",
        1, rules(("Percent", 10, 15)), 2,
    ),
    LimitCase(
        "pods removed within the period give room back",
        4, rules(("Pods", 2, 60)), 8, downs=events((2, 30)),
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", UP_LIMITS, ids=lambda c: c.name)
def test_scale_up_limit(case: LimitCase) -> None:
    got = scale_up_limit(case.current, case.ups, case.downs, case.rules, NOW)
    assert got == case.want, case.name


DOWN_LIMITS = [
    LimitCase("default: all may go", 10, DEFAULT_SCALE_DOWN, 0),
    LimitCase("one pod per period", 10, rules(("Pods", 1, 60)), 9),
    LimitCase("Max takes the larger change", 10, rules(("Pods", 1, 60), ("Percent", 50, 60)), 5),
    LimitCase("Min takes the smaller change", 10, rules(("Pods", 1, 60), ("Percent", 50, 60), select="Min"), 9),  # noqa: E501
    LimitCase("Disabled: no change", 10, rules(("Percent", 100, 15), select="Disabled"), 10),
    LimitCase(
        "pods removed within the period count against it",
        8, rules(("Pods", 2, 60)), 8, downs=events((2, 30)),
    ),
    LimitCase("percent rounds down", 3, rules(("Percent", 50, 60)), 1),
]  # fmt: skip


@pytest.mark.parametrize("case", DOWN_LIMITS, ids=lambda c: c.name)
def test_scale_down_limit(case: LimitCase) -> None:
    got = scale_down_limit(case.current, case.ups, case.downs, case.rules, NOW)
    assert got == case.want, case.name


@dataclass(frozen=True)
class BehaviorLimitCase:
    name: str
    current: int
    desired: int
    min: int
    max: int
    want: int
    want_reason: str
    up: ScalingRules = DEFAULT_SCALE_UP
    down: ScalingRules = DEFAULT_SCALE_DOWN
    ups: list[ScaleEvent] = field(default_factory=list)


BEHAVIOR_LIMITS = [
    BehaviorLimitCase("within range", 3, 5, 1, 10, 5, "DesiredWithinRange"),
    BehaviorLimitCase("capped by maxReplicas", 3, 50, 1, 6, 6, "TooManyReplicas"),
    BehaviorLimitCase("capped by the scale-up rate", 3, 50, 1, 20, 7, "ScaleUpLimit"),
    BehaviorLimitCase("floored by minReplicas", 5, 1, 2, 10, 2, "TooFewReplicas"),
    BehaviorLimitCase(
        "floored by the scale-down rate", 5, 1, 1, 10, 4, "ScaleDownLimit",
        down=rules(("Pods", 1, 60)),
    ),
    BehaviorLimitCase(
        "a used-up scale-up budget keeps the current count", 6, 20, 1, 20, 6, "ScaleUpLimit",
        up=rules(("Pods", 2, 60)), ups=events((3, 10)),
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", BEHAVIOR_LIMITS, ids=lambda c: c.name)
def test_limit_with_behavior(case: BehaviorLimitCase) -> None:
    got = limit_with_behavior(
        case.current,
        case.desired,
        case.min,
        case.max,
        up=case.up,
        down=case.down,
        ups=case.ups,
        downs=[],
        now=NOW,
    )
    assert (got.replicas, got.reason) == (case.want, case.want_reason), case.name


def test_record_scale_event_reuses_an_outdated_slot() -> None:
    policy = rules(("Pods", 4, 60))
    got = record_scale_event(events((1, 120), (2, 30)), 3, policy, NOW)
    assert got == [ScaleEvent(3, NOW), ScaleEvent(2, NOW - 30)]
    got = record_scale_event(events((2, 30)), 3, policy, NOW)
    assert got == [ScaleEvent(2, NOW - 30), ScaleEvent(3, NOW)]

"""From a metrics proposal to the replicas the HPA sets (Kubernetes'
normalizeDesiredReplicas and normalizeDesiredReplicasWithBehaviors in
pkg/controller/podautoscaler/horizontal.go), as pure functions.

Two paths, as in Kubernetes:

- No `behavior`: the highest proposal of the last `downscale window`
  (300 s) wins (`stabilize`), then the result is kept within
  minReplicas..maxReplicas and a scale-up to at most max(2 * current, 4)
  (`limit_with_rules`).
- With `behavior`: the proposal is held between the lowest of the scale-up
  window and the highest of the scale-down window (`stabilize_with_behavior`),
  then limited by the policies (`limit_with_behavior`): within each policy's
  period the replicas at its start may grow by `value` pods or percent
  (scale-up) or shrink by them (scale-down); `selectPolicy` Max takes the
  policy that allows the largest change, Min the smallest, Disabled none.

Every function takes the time (`now`, seconds) and the history it needs and
returns a new history; nothing here keeps state or reads a clock. Each also
returns the (reason, message) Kubernetes writes into the AbleToScale or
ScalingLimited condition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DEFAULT_SCALE_DOWN",
    "DEFAULT_SCALE_UP",
    "DOWNSCALE_STABILIZATION_WINDOW",
    "Limited",
    "Policy",
    "Recommendation",
    "ScaleEvent",
    "ScalingRules",
    "Stabilized",
    "limit_with_behavior",
    "limit_with_rules",
    "record_scale_event",
    "scale_down_limit",
    "scale_up_limit",
    "stabilize",
    "stabilize_with_behavior",
]

#: --horizontal-pod-autoscaler-downscale-stabilization
DOWNSCALE_STABILIZATION_WINDOW: Final = 300
_SCALE_UP_LIMIT_FACTOR: Final = 2.0
_SCALE_UP_LIMIT_MINIMUM: Final = 4.0


@dataclass(frozen=True, slots=True)
class Recommendation:
    replicas: int
    timestamp: float


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    """A rescale by `change` replicas (positive, in its direction)."""

    change: int
    timestamp: float
    outdated: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    type: str  # "Pods" or "Percent"
    value: int
    period_seconds: int


@dataclass(frozen=True, slots=True)
class ScalingRules:
    """`behavior.scaleUp` or `behavior.scaleDown`, defaults applied."""

    stabilization_window_seconds: int
    select_policy: str
    policies: tuple[Policy, ...]

    @classmethod
    def from_api(cls, rules: Any, default: ScalingRules) -> ScalingRules:
        """From an HPAScalingRules message; what it leaves unset comes from `default`."""
        return cls(
            rules.stabilization_window_seconds
            if rules.HasField("stabilization_window_seconds")
            else default.stabilization_window_seconds,
            rules.select_policy or default.select_policy,
            tuple(Policy(p.type, p.value, p.period_seconds) for p in rules.policies)
            or default.policies,
        )


#: Kubernetes' defaults: up at once by max(4 pods, 100%) per 15 s; down by
#: 100% per 15 s after a 300 s window.
DEFAULT_SCALE_UP: Final = ScalingRules(
    0, "Max", (Policy("Pods", 4, 15), Policy("Percent", 100, 15))
)
DEFAULT_SCALE_DOWN: Final = ScalingRules(
    DOWNSCALE_STABILIZATION_WINDOW, "Max", (Policy("Percent", 100, 15),)
)


@dataclass(frozen=True, slots=True)
class Stabilized:
    replicas: int
    reason: str
    message: str
    history: list[Recommendation]


@dataclass(frozen=True, slots=True)
class Limited:
    replicas: int
    reason: str
    message: str


_READY = ("ReadyForNewScale", "recommended size matches current size")
_DOWN_STABILIZED = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, "
    "applying the highest recent recommendation",
)
_UP_STABILIZED = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
)
_WITHIN = ("DesiredWithinRange", "the desired count is within the acceptable range")
_TOO_FEW = ("TooFewReplicas", "the desired replica count is less than the minimum replica count")
_TOO_MANY = ("TooManyReplicas", "the desired replica count is more than the maximum replica count")
_UP_LIMIT = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
)
_DOWN_LIMIT = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
)


def _recorded(
    history: Sequence[Recommendation], replicas: int, now: float, old: int | None
) -> list[Recommendation]:
    """`history` with this proposal recorded, over the old sample at index `old` if any."""
    updated = list(history)
    if old is None:
        updated.append(Recommendation(replicas, now))
    else:
        updated[old] = Recommendation(replicas, now)
    return updated


# -- without behavior ---------------------------------------------------------------------------


def stabilize(
    history: Sequence[Recommendation],
    desired: int,
    now: float,
    window: float = DOWNSCALE_STABILIZATION_WINDOW,
) -> Stabilized:
    """The highest of `desired` and the proposals of the last `window` seconds."""
    highest = desired
    old: int | None = None
    for i, rec in enumerate(history):
        if rec.timestamp < now - window:
            old = i
        elif rec.replicas > highest:
            highest = rec.replicas
    reason, message = _DOWN_STABILIZED if highest != desired else _READY
    return Stabilized(highest, reason, message, _recorded(history, desired, now, old))


def limit_with_rules(current: int, desired: int, min_replicas: int, max_replicas: int) -> Limited:
    """`desired` within min..max and at most max(2 * current, 4) (Kubernetes'
    convertDesiredReplicasWithRules)."""
    up_limit = int(max(_SCALE_UP_LIMIT_FACTOR * current, _SCALE_UP_LIMIT_MINIMUM))
    if max_replicas > up_limit:
        maximum, limiting = up_limit, _UP_LIMIT
    else:
        maximum, limiting = max_replicas, _TOO_MANY
    if desired < min_replicas:
        return Limited(min_replicas, *_TOO_FEW)
    if desired > maximum:
        return Limited(maximum, *limiting)
    return Limited(desired, *_WITHIN)


# -- with behavior ------------------------------------------------------------------------------


def stabilize_with_behavior(
    history: Sequence[Recommendation],
    current: int,
    desired: int,
    now: float,
    *,
    up_window: int,
    down_window: int,
) -> Stabilized:
    """`desired` held between the lowest proposal of the last `up_window`
    seconds and the highest of the last `down_window` seconds, starting
    from `current` (Kubernetes' stabilizeRecommendationWithBehaviors)."""
    up_cutoff, down_cutoff = now - up_window, now - down_window
    up, down = desired, desired
    old: int | None = None
    for i, rec in enumerate(history):
        if rec.timestamp > up_cutoff:
            up = min(up, rec.replicas)
        if rec.timestamp > down_cutoff:
            down = max(down, rec.replicas)
        if rec.timestamp < up_cutoff and rec.timestamp < down_cutoff:
            old = i
    recommendation = min(max(current, up), down)
    if recommendation == desired:
        reason, message = _READY
    else:
        reason, message = _UP_STABILIZED if desired >= current else _DOWN_STABILIZED
    return Stabilized(recommendation, reason, message, _recorded(history, desired, now, old))


def _changed_within(period: int, events: Sequence[ScaleEvent], now: float) -> int:
    return sum(e.change for e in events if e.timestamp > now - period)


def _period_start(
    current: int, policy: Policy, ups: Sequence[ScaleEvent], downs: Sequence[ScaleEvent], now: float
) -> int:
    """The replicas at the start of the policy's period."""
    added = _changed_within(policy.period_seconds, ups, now)
    removed = _changed_within(policy.period_seconds, downs, now)
    return current - added + removed


def scale_up_limit(
    current: int,
    ups: Sequence[ScaleEvent],
    downs: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: float,
) -> int:
    """The most replicas the scale-up policies allow now."""
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(current, policy, ups, downs, now)
        if policy.type == "Pods":
            proposals.append(start + policy.value)
        else:  # rounded up, or a small target could never grow
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    if not proposals:
        return current
    return min(proposals) if rules.select_policy == "Min" else max(proposals)


def scale_down_limit(
    current: int,
    ups: Sequence[ScaleEvent],
    downs: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: float,
) -> int:
    """The fewest replicas the scale-down policies allow now."""
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(current, policy, ups, downs, now)
        if policy.type == "Pods":
            proposals.append(start - policy.value)
        else:
            proposals.append(int(start * (1 - policy.value / 100)))
    if not proposals:
        return current
    return max(proposals) if rules.select_policy == "Min" else min(proposals)


def limit_with_behavior(
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    *,
    up: ScalingRules,
    down: ScalingRules,
    ups: Sequence[ScaleEvent],
    downs: Sequence[ScaleEvent],
    now: float,
) -> Limited:
    """`desired` within min..max and the rate the policies allow (Kubernetes'
    convertDesiredReplicasWithBehaviorRate)."""
    if desired > current:
        limit = max(scale_up_limit(current, ups, downs, up, now), current)
        if max_replicas > limit:
            maximum, limiting = limit, _UP_LIMIT
        else:
            maximum, limiting = max_replicas, _TOO_MANY
        if desired > maximum:
            return Limited(maximum, *limiting)
    elif desired < current:
        limit = min(scale_down_limit(current, ups, downs, down, now), current)
        if min_replicas < limit:
            minimum, limiting = limit, _DOWN_LIMIT
        else:
            minimum, limiting = min_replicas, _TOO_FEW
        if desired < minimum:
            return Limited(minimum, *limiting)
    return Limited(desired, *_WITHIN)


def record_scale_event(
    events: Sequence[ScaleEvent], change: int, rules: ScalingRules, now: float
) -> list[ScaleEvent]:
    """`events` with a rescale by `change` recorded; an event older than the
    longest policy period is outdated and its slot reused, so the history
    stays as short as the policies need (Kubernetes' storeScaleEvent)."""
    longest = max((p.period_seconds for p in rules.policies), default=0)
    updated = [replace(e, outdated=True) if e.timestamp < now - longest else e for e in events]
    for i, e in enumerate(updated):
        if e.outdated:
            updated[i] = ScaleEvent(change, now)
            return updated
    updated.append(ScaleEvent(change, now))
    return updated

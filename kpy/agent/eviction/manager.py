"""The eviction manager's decisions, pure and on an injected clock
(Kubernetes' pkg/kubelet/eviction/eviction_manager.go `synchronize`).

    manager = EvictionManager(config, clock=time.monotonic)
    step = manager.observe(observations)     # each housekeeping pass
    step.conditions                          # {"MemoryPressure"}: True on the Node
    victim = choose(step, candidates, stats) # None, or the one pod to evict now

Contract, as the kubelet's:
- a threshold is met while the amount available is below it; a soft one
  acts only once it has been met for its whole grace period, and forgets
  when it stops being met;
- a pressure condition is True while any threshold of its signals is met
  (grace period or not) and for `pressure_transition_period` after the last
  time one was, so a node near a threshold does not flap;
- at most one pod is evicted per pass, to reclaim the resource of the first
  threshold acted on (memory before the others). Pods are ranked by whether
  their usage of that resource exceeds their requests, then by priority
  (lower first), then by usage above requests (larger first); for PIDs by
  priority, then by processes. A pod with no figures ranks first. Critical
  pods (static, mirror, or of priority 2000000000 and more) are never
  evicted.
- the evicted pod's grace period: 1 s for a hard threshold; for a soft one
  the pod's own, at most `max_pod_grace_period` (negative: the pod's own).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from kpy.agent.eviction.thresholds import SIGNALS
from kpy.api.quantity import BINARY_SI, DECIMAL_SI, Quantity

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from kpy.agent.eviction.thresholds import EvictionConfig, Threshold
    from kpy.api.core.v1 import Container, Pod

__all__ = [
    "DISRUPTION_TARGET",
    "EVICTED",
    "TERMINATION_BY_KUBELET",
    "Eviction",
    "EvictionManager",
    "Observation",
    "PodStats",
    "Step",
    "choose",
    "is_critical",
    "rank",
]

#: the pod status reason of an evicted pod (the kubelet's eviction.Reason).
EVICTED: Final = "Evicted"
#: the pod condition an evicted pod gets, and its reason (v1.DisruptionTarget,
#: v1.PodReasonTerminationByKubelet).
DISRUPTION_TARGET: Final = "DisruptionTarget"
TERMINATION_BY_KUBELET: Final = "TerminationByKubelet"
#: the grace period of a pod evicted for a hard threshold (the kubelet's
#: immediateEvictionGracePeriodSeconds).
HARD_EVICTION_GRACE: Final = 1
SYSTEM_CRITICAL_PRIORITY: Final = 2_000_000_000
DEFAULT_GRACE: Final = 30
_MIRROR: Final = "kubernetes.io/config.mirror"
_SOURCE: Final = "kubernetes.io/config.source"


@dataclass(frozen=True, slots=True)
class Observation:
    """A signal's amount available and the capacity it is a part of."""

    available: int
    capacity: int


@dataclass(frozen=True, slots=True)
class PodStats:
    """What one pod uses: per container, per resource (`memory` bytes,
    `ephemeral-storage` bytes, `inodes`, `pids`); `volumes` adds what the
    pod's local volumes hold, per resource."""

    containers: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    volumes: Mapping[str, int] = field(default_factory=dict)

    def usage(self, resource: str) -> int:
        return sum(c.get(resource, 0) for c in self.containers.values()) + self.volumes.get(
            resource, 0
        )


@dataclass(frozen=True, slots=True)
class Step:
    """What one pass decided: the pressure conditions now True, the
    thresholds acted on (grace periods met), and the observations."""

    conditions: frozenset[str]
    met: tuple[Threshold, ...]
    observations: Mapping[str, Observation]

    @property
    def to_reclaim(self) -> Threshold | None:
        """The threshold whose resource is reclaimed first (memory first)."""
        if not self.met:
            return None
        return sorted(self.met, key=lambda t: t.signal != "memory.available")[0]


@dataclass(frozen=True, slots=True)
class Eviction:
    """The pod to evict, with the grace period and the message its status
    carries (phase Failed, reason Evicted)."""

    pod: Pod
    grace_period: int
    resource: str
    message: str


class EvictionManager:
    """Thresholds over time; see the module docstring."""

    def __init__(
        self, config: EvictionConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self._clock = clock
        self._first_observed: dict[Threshold, float] = {}
        self._condition_last_observed: dict[str, float] = {}
        self.conditions: frozenset[str] = frozenset()

    def observe(self, observations: Mapping[str, Observation]) -> Step:
        now = self._clock()
        met = [t for t in self.config.thresholds if _met(t, observations)]
        self._first_observed = {t: self._first_observed.get(t, now) for t in met}
        for t in met:
            self._condition_last_observed[SIGNALS[t.signal].condition] = now
        period = self.config.pressure_transition_period
        # Seen in this pass, or within the transition period before it.
        self._condition_last_observed = {
            c: at
            for c, at in self._condition_last_observed.items()
            if at == now or now - at < period
        }
        self.conditions = frozenset(self._condition_last_observed)
        acted = tuple(t for t in met if now - self._first_observed[t] >= t.grace_period)
        return Step(self.conditions, acted, dict(observations))

    def grace_period(self, threshold: Threshold, pod: Pod) -> int:
        if threshold.hard:
            return HARD_EVICTION_GRACE
        spec = pod.spec
        own = (
            spec.termination_grace_period_seconds
            if spec.HasField("termination_grace_period_seconds")
            else DEFAULT_GRACE
        )
        limit = self.config.max_pod_grace_period
        return own if limit < 0 else min(own, limit)


def _met(t: Threshold, observations: Mapping[str, Observation]) -> bool:
    seen = observations.get(t.signal)
    return seen is not None and seen.available < t.amount(seen.capacity)


def is_critical(pod: Pod) -> bool:
    """Static and mirror pods, and pods of system-critical priority (the
    kubelet's IsCriticalPod)."""
    annotations = pod.metadata.annotations
    if _MIRROR in annotations or annotations.get(_SOURCE, "api") != "api":
        return True
    return pod.spec.HasField("priority") and pod.spec.priority >= SYSTEM_CRITICAL_PRIORITY


def _priority(pod: Pod) -> int:
    return pod.spec.priority if pod.spec.HasField("priority") else 0


def requests(pod: Pod, resource: str) -> int:
    """What the pod requests of `resource`: its app containers' sum, or its
    largest init container's if more (a request that does not parse counts 0)."""

    apps = sum(_request(c, resource) for c in pod.spec.containers)
    inits = max((_request(c, resource) for c in pod.spec.init_containers), default=0)
    return max(apps, inits)


def rank(resource: str, pods: Sequence[Pod], stats: Mapping[str, PodStats]) -> list[Pod]:
    """The pods in the order to evict them to reclaim `resource` (stats by pod uid)."""

    def key(pod: Pod) -> tuple[int, ...]:
        s = stats.get(pod.metadata.uid)
        if s is None:
            return (0,)  # no figures: first, as the kubelet does
        usage = s.usage(resource)
        if resource == "pids":
            return (1, _priority(pod), -usage)
        above = usage - requests(pod, resource)
        return (1, 0 if above > 0 else 1, _priority(pod), -above)

    return sorted(pods, key=key)


def choose(
    manager: EvictionManager,
    step: Step,
    pods: Sequence[Pod],
    stats: Mapping[str, PodStats],
) -> Eviction | None:
    """The one pod to evict in this pass, or None (nothing acted on, or
    only critical pods left)."""
    threshold = step.to_reclaim
    if threshold is None:
        return None
    resource = SIGNALS[threshold.signal].resource
    for pod in rank(resource, [p for p in pods if not is_critical(p)], stats):
        message = eviction_message(resource, pod, stats.get(pod.metadata.uid), step)
        return Eviction(pod, manager.grace_period(threshold, pod), resource, message)
    return None


def _request(c: Container, resource: str) -> int:
    q = c.resources.requests.get(resource)
    if q is None or not q.string:
        return 0
    try:
        return Quantity(q.string).value()
    except ValueError:
        return 0  # stored before the API server checked quantities


def _quantity(amount: int, resource: str) -> str:
    fmt = BINARY_SI if resource in ("memory", "ephemeral-storage") else DECIMAL_SI
    return str(Quantity.from_int(amount, fmt))


def eviction_message(resource: str, pod: Pod, stats: PodStats | None, step: Step) -> str:
    """The kubelet's words: "The node was low on resource: memory. Threshold
    quantity: 100Mi, available: 50Mi. Container x was using 20Mi, request is
    0, has larger consumption of memory. " (one sentence per container
    using more than it requests)."""
    message = f"The node was low on resource: {resource}. "
    for t in step.met:
        if SIGNALS[t.signal].resource != resource:
            continue
        seen = step.observations[t.signal]
        message += (
            f"Threshold quantity: {_quantity(t.amount(seen.capacity), resource)}, "
            f"available: {_quantity(seen.available, resource)}. "
        )
        break
    if stats is None or resource not in ("memory", "ephemeral-storage"):
        return message
    for c in pod.spec.containers:
        used = stats.containers.get(c.name, {}).get(resource)
        if used is None:
            continue
        q = c.resources.requests.get(resource)
        request = q.string if q is not None and q.string else "0"
        if used > _request(c, resource):
            message += (
                f"Container {c.name} was using {_quantity(used, resource)}, request is "
                f"{request}, has larger consumption of {resource}. "
            )
    return message

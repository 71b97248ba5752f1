"""How many replicas a resource metric asks for (Kubernetes'
pkg/controller/podautoscaler/replica_calculator.go), as pure functions.

Contract:
- Figures are in milli-units, as Kubernetes' metrics client keeps them:
  CPU in millicores, memory in thousandths of a byte; requests likewise.
- `group_pods` sorts the target's pods the way Kubernetes does: pods being
  deleted or Failed are ignored; Pending pods, and (for CPU) pods not yet
  ready or still in their CPU initialisation period whose sample predates
  readiness, are "unready"; pods with no sample are "missing"; the rest are
  ready and counted.
- `resource_replicas` (a Utilization target) and `plain_metric_replicas`
  (an AverageValue target) compute the proposal: ceil(ready pods * usage /
  target) when no pod is unready or missing and the ratio is outside the
  tolerance; otherwise missing pods count as using their request (or the
  target) on a scale-down and nothing on a scale-up, unready pods as
  nothing on a scale-up, and the proposal keeps the current count when the
  correction would flip the direction or fall within the tolerance.
- They raise `MetricsError` with the message Kubernetes gives ("missing
  request for cpu in container app of Pod web-1", "no pods returned by
  selector while calculating replica count", ...). Nothing here mutates
  its arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from kpy.api.quantity import Quantity

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from kpy.api.core.v1 import Pod

__all__ = [
    "CPU_INITIALIZATION_PERIOD",
    "DEFAULT_TOLERANCE",
    "DELAY_OF_INITIAL_READINESS_STATUS",
    "MetricsError",
    "PodGroups",
    "PodMetric",
    "ReplicaProposal",
    "Tolerances",
    "group_pods",
    "plain_metric_replicas",
    "pod_requests",
    "resource_replicas",
    "utilization_ratio",
]

#: --horizontal-pod-autoscaler-tolerance
DEFAULT_TOLERANCE: Final = 0.1
#: --horizontal-pod-autoscaler-cpu-initialization-period (5 minutes)
CPU_INITIALIZATION_PERIOD: Final = 300.0
#: --horizontal-pod-autoscaler-initial-readiness-delay (30 seconds)
DELAY_OF_INITIAL_READINESS_STATUS: Final = 30.0


class MetricsError(Exception):
    """The metric cannot give a replica count; the message says why."""


@dataclass(frozen=True, slots=True)
class PodMetric:
    """One pod's usage: `value` in milli-units (its containers summed), taken
    at `timestamp` (wall seconds) over the `window` (seconds) before it."""

    value: int
    timestamp: float = 0.0
    window: float = 0.0


@dataclass(frozen=True, slots=True)
class Tolerances:
    """How far below (`down`) or above (`up`) 1.0 the usage ratio may be
    before the HPA acts (`behavior.scale*.tolerance`, else 10%)."""

    down: float = DEFAULT_TOLERANCE
    up: float = DEFAULT_TOLERANCE

    def within(self, ratio: float) -> bool:
        return 1.0 - self.down <= ratio <= 1.0 + self.up


@dataclass(frozen=True, slots=True)
class PodGroups:
    ready_count: int
    unready: frozenset[str]
    missing: frozenset[str]
    ignored: frozenset[str]


@dataclass(frozen=True, slots=True)
class ReplicaProposal:
    """A metric's proposal: the replicas, the utilisation in percent of the
    requests (0 for a plain target) and the average raw value (milli-units)."""

    replicas: int
    utilization: int
    raw_average: int


def group_pods(
    pods: Sequence[Pod],
    metrics: Mapping[str, PodMetric],
    resource: str,
    now: float,
    *,
    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
    delay_of_initial_readiness_status: float = DELAY_OF_INITIAL_READINESS_STATUS,
) -> PodGroups:
    """Kubernetes' groupPods; see the module docstring."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        name = pod.metadata.name
        if pod.metadata.HasField("deletion_timestamp") or pod.status.phase == "Failed":
            ignored.add(name)
            continue
        if pod.status.phase == "Pending":
            unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            missing.add(name)
            continue
        if resource == "cpu" and _cpu_unready(
            pod, metric, now, cpu_initialization_period, delay_of_initial_readiness_status
        ):
            unready.add(name)
            continue
        ready += 1
    return PodGroups(ready, frozenset(unready), frozenset(missing), frozenset(ignored))


def _cpu_unready(
    pod: Pod, metric: PodMetric, now: float, init_period: float, initial_delay: float
) -> bool:
    condition = next((c for c in pod.status.conditions if c.type == "Ready"), None)
    if condition is None or not pod.status.HasField("start_time"):
        return True
    started = pod.status.start_time.ToNanoseconds() / 1e9
    transition = condition.last_transition_time.ToNanoseconds() / 1e9
    if started + init_period > now:
        # Still initialising: a sample from before the pod was ready (or
        # from less than one window after) shows start-up work, not load.
        return condition.status == "False" or metric.timestamp < transition + metric.window
    # Long started: unready only if it never became ready at all.
    return condition.status == "False" and started + initial_delay > transition


def pod_requests(pods: Sequence[Pod], resource: str) -> dict[str, int]:
    """Each pod's request of `resource` (its containers summed, milli-units);
    MetricsError naming the first container without one."""
    requests: dict[str, int] = {}
    for pod in pods:
        total = 0
        for container in pod.spec.containers:
            q = container.resources.requests.get(resource)
            if q is None or not q.string:
                raise MetricsError(
                    f"missing request for {resource} in container {container.name}"
                    f" of Pod {pod.metadata.name}"
                )
            total += Quantity(q.string).milli_value()
        requests[pod.metadata.name] = total
    return requests


def utilization_ratio(
    metrics: Mapping[str, PodMetric], requests: Mapping[str, int], target_utilization: int
) -> tuple[float, int, int]:
    """(usage ratio, utilisation %, average raw value) over the pods that
    have both a sample and a request (Kubernetes' GetResourceUtilizationRatio)."""
    total = requested = entries = 0
    for name, metric in metrics.items():
        request = requests.get(name)
        if request is None:
            continue  # a sample of a pod we do not know: extraneous
        total += metric.value
        requested += request
        entries += 1
    if requested == 0:
        raise MetricsError("no metrics returned matched known pods")
    utilization = total * 100 // requested
    return utilization / target_utilization, utilization, total // entries


def _usage_ratio(metrics: Mapping[str, PodMetric], target: int) -> tuple[float, int]:
    usage = sum(m.value for m in metrics.values()) // len(metrics)
    return usage / target, usage


def resource_replicas(
    current_replicas: int,
    target_utilization: int,
    resource: str,
    pods: Sequence[Pod],
    metrics: Mapping[str, PodMetric],
    now: float,
    *,
    tolerances: Tolerances = Tolerances(),
    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
    delay_of_initial_readiness_status: float = DELAY_OF_INITIAL_READINESS_STATUS,
) -> ReplicaProposal:
    """Replicas for a Utilization target (Kubernetes' GetResourceReplicas)."""
    if not pods:
        raise MetricsError("no pods returned by selector while calculating replica count")
    groups = group_pods(
        pods,
        metrics,
        resource,
        now,
        cpu_initialization_period=cpu_initialization_period,
        delay_of_initial_readiness_status=delay_of_initial_readiness_status,
    )
    usable = {n: m for n, m in metrics.items() if n not in groups.ignored | groups.unready}
    if not usable:
        raise MetricsError("did not receive metrics for targeted pods (pods might be unready)")
    requests = pod_requests(pods, resource)
    ratio, utilization, raw = utilization_ratio(usable, requests, target_utilization)

    def adjusted(filled: dict[str, PodMetric]) -> float:
        return utilization_ratio(filled, requests, target_utilization)[0]

    # Missing pods on a scale-down use their request (or the target, if higher).
    fallback = max(100, target_utilization)
    replicas = _correct(
        current_replicas,
        ratio,
        groups,
        usable,
        tolerances,
        adjusted,
        missing_on_scale_down=lambda name: requests[name] * fallback // 100,
    )
    return ReplicaProposal(replicas, utilization, raw)


def plain_metric_replicas(
    current_replicas: int,
    target_usage: int,
    resource: str,
    pods: Sequence[Pod],
    metrics: Mapping[str, PodMetric],
    now: float,
    *,
    tolerances: Tolerances = Tolerances(),
    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
    delay_of_initial_readiness_status: float = DELAY_OF_INITIAL_READINESS_STATUS,
) -> ReplicaProposal:
    """Replicas for an AverageValue target of `target_usage` milli-units per
    pod (Kubernetes' calcPlainMetricReplicas)."""
    if not pods:
        raise MetricsError("no pods returned by selector while calculating replica count")
    groups = group_pods(
        pods,
        metrics,
        resource,
        now,
        cpu_initialization_period=cpu_initialization_period,
        delay_of_initial_readiness_status=delay_of_initial_readiness_status,
    )
    usable = {n: m for n, m in metrics.items() if n not in groups.ignored | groups.unready}
    if not usable:
        raise MetricsError("did not receive metrics for targeted pods (pods might be unready)")
    ratio, usage = _usage_ratio(usable, target_usage)
    replicas = _correct(
        current_replicas,
        ratio,
        groups,
        usable,
        tolerances,
        lambda filled: _usage_ratio(filled, target_usage)[0],
        missing_on_scale_down=lambda _name: target_usage,
    )
    return ReplicaProposal(replicas, 0, usage)


def _correct(
    current: int,
    ratio: float,
    groups: PodGroups,
    usable: dict[str, PodMetric],
    tolerances: Tolerances,
    ratio_of: Callable[[dict[str, PodMetric]], float],
    *,
    missing_on_scale_down: Callable[[str], int],
) -> int:
    """The proposal from `ratio`, corrected for missing and unready pods."""
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerances.within(ratio):
            return current
        return math.ceil(ratio * groups.ready_count)
    filled = dict(usable)
    if ratio < 1.0:
        filled.update((n, PodMetric(missing_on_scale_down(n))) for n in groups.missing)
    elif ratio > 1.0:
        filled.update((n, PodMetric(0)) for n in groups.missing)
    if scale_up_with_unready:
        filled.update((n, PodMetric(0)) for n in groups.unready)
    new_ratio = ratio_of(filled)
    if tolerances.within(new_ratio) or (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        return current  # too small a change, or the correction flips the direction
    replicas = math.ceil(new_ratio * len(filled))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current  # counting more pods would flip the direction
    return replicas

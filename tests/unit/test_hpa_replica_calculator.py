"""The HPA's replica calculation, table by table (Kubernetes'
pkg/controller/podautoscaler/replica_calculator_test.go: the cases are
ported, the code is kpy's).

Each case is a set of pods (request, usage, readiness, phase) and a target;
it names the replicas and utilisation the calculator must propose, or the
error it must give. Usage and requests are in milli-units, as the
calculator takes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from kpy.api.core.v1 import Pod, PodCondition
from kpy.controllers.podautoscaler.replica_calculator import (
    MetricsError,
    PodMetric,
    Tolerances,
    plain_metric_replicas,
    resource_replicas,
)

NOW = 1_700_000_000.0
LONG_AGO = NOW - 3600  # started and ready long before: past the CPU initialisation period
HOT = NOW - 5  # started and ready 5 s ago: its sample predates readiness by a window


@dataclass(frozen=True)
class P:
    """One pod: its CPU request (millicores; None: none), its usage (None:
    no sample), readiness and phase."""

    request: int | None = 1000
    usage: int | None = 0
    ready: bool = True
    phase: str = "Running"
    started: float = LONG_AGO
    deleting: bool = False


def build(index: int, p: P) -> Pod:
    pod = Pod()
    pod.metadata.name = f"pod-{index}"
    pod.metadata.namespace = "default"
    c = pod.spec.containers.add(name="app", image="busybox")
    if p.request is not None:
        c.resources.requests["cpu"].string = f"{p.request}m"
        c.resources.requests["memory"].string = f"{p.request}Mi"
    pod.status.phase = p.phase
    pod.status.start_time.FromSeconds(int(p.started))
    condition = PodCondition(type="Ready", status="True" if p.ready else "False")
    condition.last_transition_time.FromSeconds(int(p.started))
    pod.status.conditions.append(condition)
    if p.deleting:
        pod.metadata.deletion_timestamp.FromSeconds(int(NOW))
    return pod


@dataclass(frozen=True)
class Case:
    name: str
    current: int
    pods: list[P]
    target: int  # utilisation percent
    want: int = 0
    want_utilization: int = 0
    error: str = ""
    resource: str = "cpu"
    tolerances: Tolerances = field(default_factory=Tolerances)


def pods(*usage: int | None, request: int = 1000) -> list[P]:
    return [P(request=request, usage=u) for u in usage]


CASES = [
    Case("scale up", 3, pods(300, 500, 700), target=30, want=5, want_utilization=50),
    Case(
        "scale up with unready pods: they count as using nothing",
        3,
        [P(usage=300, ready=False), P(usage=500), P(usage=700)],
        target=30,
        want=4,
        want_utilization=60,
    ),
    Case(
        "scale up with pods in their CPU initialisation period: as unready",
        3,
        [P(usage=300, started=HOT, ready=True), P(usage=500), P(usage=700)],
        target=30,
        want=4,
        want_utilization=60,
    ),
    Case(
        "unready pods that would turn the scale-up into a scale-down: no change",
        3,
        [P(usage=400), P(usage=500, ready=False), P(usage=700, ready=False)],
        target=30,
        want=3,
        want_utilization=40,
    ),
    Case(
        "failed pods are ignored",
        4,
        [P(usage=500), P(usage=700), P(usage=100, phase="Failed"), P(usage=100, phase="Failed")],
        target=30,
        want=4,
        want_utilization=60,
    ),
    Case(
        "pods being deleted are ignored",
        4,
        [P(usage=500), P(usage=700), P(usage=100, deleting=True), P(usage=100, deleting=True)],
        target=30,
        want=4,
        want_utilization=60,
    ),
    Case(
        "pending pods count as unready",
        3,
        [P(usage=500), P(usage=700), P(usage=None, phase="Pending")],
        target=30,
        want=4,
        want_utilization=60,
    ),
    Case("scale down", 5, pods(100, 300, 500, 250, 250), target=50, want=3, want_utilization=28),
    Case(
        "scale down ignores unready pods",
        5,
        [P(usage=100), P(usage=300), P(usage=500), P(usage=250, ready=False), P(250, ready=False)],
        target=50,
        want=2,
        want_utilization=30,
    ),
    Case(
        "within the 10% tolerance: no change",
        3,
        [P(request=900, usage=1010), P(request=1000, usage=1030), P(request=1100, usage=1020)],
        target=100,
        want=3,
        want_utilization=102,
    ),
    Case(
        "a wider scale-up tolerance holds a 20% rise",
        3,
        pods(1200, 1200, 1200),
        target=100,
        want=3,
        want_utilization=120,
        tolerances=Tolerances(up=0.25),
    ),
    Case(
        "a missing metric at the target: no change",
        2,
        pods(1000, None),
        target=100,
        want=2,
        want_utilization=100,
    ),
    Case(
        "missing metrics on a scale-up count as using nothing",
        4,
        pods(3000, 3000, None, None),
        target=100,
        want=6,
        want_utilization=300,
    ),
    Case(
        "missing metrics on a scale-down count as using their whole request",
        4,
        pods(100, 100, None, None),
        target=100,
        want=3,
        want_utilization=10,
    ),
    Case(
        "missing metrics that would flip a scale-down into a scale-up: no change",
        4,
        pods(100, 100, None, None),
        target=50,
        want=4,
        want_utilization=10,
    ),
    Case(
        "memory: readiness does not matter",
        3,
        [P(usage=300, ready=False), P(usage=500), P(usage=700)],
        target=30,
        resource="memory",
        want=5,
        want_utilization=50,
    ),
    Case(
        "a pod without a request",
        2,
        [P(usage=500), P(request=None, usage=500)],
        target=50,
        error="missing request for cpu in container app of Pod pod-1",
    ),
    Case(
        "no pods",
        1,
        [],
        target=50,
        error="no pods returned by selector while calculating replica count",
    ),
    Case(
        "only unready pods",
        2,
        [P(usage=500, ready=False), P(usage=500, ready=False)],
        target=50,
        error="did not receive metrics for targeted pods (pods might be unready)",
    ),
]


def metrics_of(specs: list[P], resource: str) -> dict[str, PodMetric]:
    scale = 1024 * 1024 * 1000 if resource == "memory" else 1  # Mi, in milli-units
    return {
        f"pod-{i}": PodMetric(p.usage * scale, timestamp=NOW, window=15)
        for i, p in enumerate(specs)
        if p.usage is not None
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_resource_replicas(case: Case) -> None:
    built = [build(i, p) for i, p in enumerate(case.pods)]
    metrics = metrics_of(case.pods, case.resource)
    if case.error:
        with pytest.raises(MetricsError) as raised:
            resource_replicas(case.current, case.target, case.resource, built, metrics, NOW)
        assert str(raised.value) == case.error, case.name
        return
    got = resource_replicas(
        case.current, case.target, case.resource, built, metrics, NOW, tolerances=case.tolerances
    )
    assert (got.replicas, got.utilization) == (case.want, case.want_utilization), case.name


@dataclass(frozen=True)
class PlainCase:
    name: str
    current: int
    pods: list[P]
    target: int  # average millicores per pod
    want: int
    want_usage: int


PLAIN_CASES = [
    PlainCase("scale up on an average value", 3, pods(300, 500, 700), 200, 8, 500),
    PlainCase("scale down on an average value", 4, pods(100, 100, 100, 100), 200, 2, 100),
    PlainCase("within tolerance", 3, pods(200, 210, 220), 200, 3, 210),
    PlainCase(
        "missing pods on a scale-down count as at the target",
        4,
        pods(100, 100, None, None),
        200,
        3,
        100,
    ),
]


@pytest.mark.parametrize("case", PLAIN_CASES, ids=lambda c: c.name)
def test_plain_metric_replicas(case: PlainCase) -> None:
    built = [build(i, p) for i, p in enumerate(case.pods)]
    got = plain_metric_replicas(
        case.current, case.target, "cpu", built, metrics_of(case.pods, "cpu"), NOW
    )
    assert (got.replicas, got.raw_average) == (case.want, case.want_usage), case.name


def test_a_sample_taken_before_the_pod_was_ready_for_a_window_is_not_trusted() -> None:
    """Within the initialisation period, a ready pod's sample counts only if
    it covers a whole window after the pod became ready."""
    p = build(0, P(usage=900, started=NOW - 100))
    p.status.conditions[0].last_transition_time.FromSeconds(int(NOW - 10))
    q = build(1, P(usage=100))
    metrics = {"pod-0": PodMetric(900, NOW, 15), "pod-1": PodMetric(100, NOW, 15)}
    got = resource_replicas(2, 50, "cpu", [p, q], metrics, NOW)
    # pod-0 is unready: only pod-1's 10% counts and the scale-down goes ahead.
    assert (got.replicas, got.utilization) == (1, 10)

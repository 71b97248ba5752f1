"""The HPA controller's `sync`, table by table, on the fake client with a
fake metrics source and a fake scale subresource (after Kubernetes'
pkg/controller/podautoscaler/horizontal_test.go: the cases are ported, the
code is kpy's).

Each case names the target's replicas, its pods' CPU usage (millicores of a
1000m request), the HPA, and what a user then sees: the replicas the scale
subresource is set to (None: left alone), the events, and the conditions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import pytest

from kpy.api import errors
from kpy.api.apps.v1 import Deployment
from kpy.api.autoscaling.v1 import Scale
from kpy.api.autoscaling.v2 import HorizontalPodAutoscaler
from kpy.api.core.v1 import Pod, PodCondition
from kpy.api.defaults import set_defaults
from kpy.api.labels import selector_from_label_selector
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.clock import FakeClock
from kpy.controllers import main as controllers_main
from kpy.controllers.podautoscaler import HorizontalController, StatsMetricsClient
from kpy.controllers.podautoscaler.metrics import METRIC_WINDOW
from kpy.controllers.podautoscaler.replica_calculator import MetricsError, PodMetric
from kpy.rpc.apiserver.v1 import StatsResponse

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from kpy.cache.events import EventRecorder

NOW = 1_700_000_000.0
LABELS = {"app": "web"}
UP = "New size: {}; reason: cpu resource utilization (percentage of request) above target"


def deployment(replicas: int) -> Deployment:
    d = Deployment()
    d.metadata.name, d.metadata.namespace = "web", "default"
    d.spec.replicas = replicas
    d.spec.selector.match_labels.update(LABELS)
    d.spec.template.metadata.labels.update(LABELS)
    d.spec.template.spec.containers.add(name="app", image="busybox")
    return set_defaults(d)


def hpa(
    *,
    target: int = 50,
    min_replicas: int = 1,
    max_replicas: int = 10,
    kind: str = "Deployment",
    down_window: int | None = None,
) -> HorizontalPodAutoscaler:
    h = HorizontalPodAutoscaler()
    h.metadata.name, h.metadata.namespace = "web", "default"
    ref = h.spec.scale_target_ref
    ref.api_version, ref.kind, ref.name = "apps/v1", kind, "web"
    h.spec.min_replicas, h.spec.max_replicas = min_replicas, max_replicas
    m = h.spec.metrics.add(type="Resource")
    m.resource.name = "cpu"
    m.resource.target.type = "Utilization"
    m.resource.target.average_utilization = target
    if down_window is not None:
        h.spec.behavior.scale_down.stabilization_window_seconds = down_window
    return set_defaults(h)


def pod(index: int, *, request: bool = True) -> Pod:
    p = Pod()
    p.metadata.name, p.metadata.namespace = f"web-{index}", "default"
    p.metadata.labels.update(LABELS)
    c = p.spec.containers.add(name="app", image="busybox")
    if request:
        c.resources.requests["cpu"].string = "1000m"
    p.status.phase = "Running"
    p.status.start_time.FromSeconds(int(NOW) - 3600)
    ready = PodCondition(type="Ready", status="True")
    ready.last_transition_time.FromSeconds(int(NOW) - 3600)
    p.status.conditions.append(ready)
    return set_defaults(p)


class FakeScales:
    """The scale subresource of the fake client's objects."""

    def __init__(self, client: FakeClient) -> None:
        self.client = client
        self.updates: list[int] = []

    async def get_scale(
        self, kind: type[Message], name: str, *, namespace: str | None = None
    ) -> Scale:
        obj: Any = await self.client.get(kind, name, namespace=namespace)
        s = Scale()
        s.metadata.name, s.metadata.namespace = name, obj.metadata.namespace
        s.spec.replicas = obj.spec.replicas
        s.status.replicas = obj.status.replicas
        s.status.selector = str(selector_from_label_selector(obj.spec.selector))
        return s

    async def update_scale(
        self, kind: type[Message], scale: Scale, *, namespace: str | None = None
    ) -> Scale:
        obj: Any = await self.client.get(kind, scale.metadata.name, namespace=namespace)
        obj.spec.replicas = scale.spec.replicas
        await self.client.update(obj)
        self.updates.append(scale.spec.replicas)
        return scale


@dataclass
class FakeMetrics:
    cpu: dict[str, int] = field(default_factory=dict)
    failure: Exception | None = None

    async def pod_metrics(self, namespace: str, resource: str) -> dict[str, PodMetric]:
        if self.failure is not None:
            raise self.failure
        return {name: PodMetric(v, NOW, 15) for name, v in self.cpu.items()}


@dataclass
class Recorder:
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def event(self, obj: Any, eventtype: str, reason: str, message: str) -> None:
        self.events.append((eventtype, reason, message))


@dataclass
class Fixture:
    client: FakeClient
    scales: FakeScales
    metrics: FakeMetrics
    recorder: Recorder
    clock: FakeClock
    hpas: SharedInformer[HorizontalPodAutoscaler]
    pods: SharedInformer[Pod]
    controller: HorizontalController

    @classmethod
    def new(cls) -> Fixture:
        clock = FakeClock(start=NOW)
        client = FakeClient(now=clock.now)
        scales, metrics, recorder = FakeScales(client), FakeMetrics(), Recorder()
        hpas = SharedInformer(client, HorizontalPodAutoscaler)
        pods = SharedInformer(client, Pod)
        controller = HorizontalController(
            client,
            scales,
            metrics,
            hpas,
            pods,
            clock=clock,
            recorder=cast("EventRecorder", recorder),
        )
        return cls(client, scales, metrics, recorder, clock, hpas, pods, controller)

    def seed(self, *objects: Message) -> None:
        for stored in self.client.add(*objects):
            if isinstance(stored, HorizontalPodAutoscaler):
                self.hpas.indexer.add(stored)
            elif isinstance(stored, Pod):
                self.pods.indexer.add(stored)

    def refresh_hpa(self) -> HorizontalPodAutoscaler:
        stored = self.client.stored(HorizontalPodAutoscaler, "web")
        assert stored is not None
        self.hpas.indexer.update(stored)
        return stored

    def conditions(self) -> dict[str, tuple[str, str]]:
        return {c.type: (c.status, c.reason) for c in self.refresh_hpa().status.conditions}


@dataclass(frozen=True)
class Case:
    name: str
    replicas: int
    usage: list[int | None]  # per pod; None: no sample
    hpa: HorizontalPodAutoscaler = field(default_factory=hpa)
    want_scale: int | None = None
    want_events: list[tuple[str, str]] = field(default_factory=list)  # (reason, message start)
    want_conditions: dict[str, tuple[str, str]] = field(default_factory=dict)
    requests: bool = True


CASES = [
    Case(
        "cpu above target: scales up",
        1,
        [900],
        want_scale=2,
        want_events=[("SuccessfulRescale", UP.format(2))],
        want_conditions={
            "AbleToScale": ("True", "SucceededRescale"),
            "ScalingActive": ("True", "ValidMetricFound"),
            "ScalingLimited": ("False", "DesiredWithinRange"),
        },
    ),
    Case(
        "within the tolerance: left alone",
        2,
        [520, 530],
        want_conditions={
            "AbleToScale": ("True", "ReadyForNewScale"),
            "ScalingActive": ("True", "ValidMetricFound"),
        },
    ),
    Case(
        "a scale-down is held for the 300 s window",
        3,
        [50, 50, 50],
        want_conditions={"AbleToScale": ("True", "ScaleDownStabilized")},
    ),
    Case(
        "with behavior and no window: scales down at once, to minReplicas",
        3,
        [50, 50, 50],
        hpa=hpa(down_window=0, min_replicas=2),
        want_scale=2,
        want_events=[("SuccessfulRescale", "New size: 2; reason: All metrics below target")],
        want_conditions={"ScalingLimited": ("True", "TooFewReplicas")},
    ),
    Case(
        "capped by maxReplicas",
        2,
        [1000, 1000],
        hpa=hpa(max_replicas=3),
        want_scale=3,
        want_events=[("SuccessfulRescale", UP.format(3))],
        want_conditions={"ScalingLimited": ("True", "TooManyReplicas")},
    ),
    Case(
        "more replicas than maxReplicas: brought down to it",
        5,
        [50] * 5,
        hpa=hpa(max_replicas=3),
        want_scale=3,
        want_events=[
            (
                "SuccessfulRescale",
                "New size: 3; reason: Current number of replicas above Spec.MaxReplicas",
            )
        ],
    ),
    Case(
        "a target at zero replicas: scaling is disabled",
        0,
        [],
        want_conditions={"ScalingActive": ("False", "ScalingDisabled")},
    ),
    Case(
        "no metrics for any pod: ScalingActive=False",
        2,
        [None, None],
        want_events=[
            ("FailedGetResourceMetric", "failed to get cpu utilization: did not receive"),
            ("FailedComputeMetricsReplicas", "invalid metrics (1 invalid out of 1)"),
        ],
        want_conditions={"ScalingActive": ("False", "FailedGetResourceMetric")},
    ),
    Case(
        "pods without a cpu request",
        1,
        [500],
        requests=False,
        want_events=[
            (
                "FailedGetResourceMetric",
                "failed to get cpu utilization: missing request for cpu in container app",
            ),
            ("FailedComputeMetricsReplicas", "invalid metrics"),
        ],
        want_conditions={"ScalingActive": ("False", "FailedGetResourceMetric")},
    ),
    Case(
        "a target kind without a scale subresource",
        1,
        [500],
        hpa=hpa(kind="DaemonSet"),
        want_events=[("FailedGetScale", "unable to determine resource for scale target")],
        want_conditions={"AbleToScale": ("False", "FailedGetScale")},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_sync(case: Case) -> None:
    fx = Fixture.new()
    fx.seed(deployment(case.replicas), case.hpa)
    for i, usage in enumerate(case.usage):
        fx.seed(pod(i, request=case.requests))
        if usage is not None:
            fx.metrics.cpu[f"web-{i}"] = usage
    try:
        # A failure is told in events and conditions, not raised: the next
        # periodic sync retries it rather than the queue's back-off.
        await fx.controller.sync("default/web")
    finally:
        fx.controller.queue.shut_down()
    want_updates = [] if case.want_scale is None else [case.want_scale]
    assert fx.scales.updates == want_updates, case.name
    got_events = [(r, m) for _t, r, m in fx.recorder.events]
    assert len(got_events) == len(case.want_events), f"{case.name}: {got_events}"
    for (reason, message), (want_reason, want_start) in zip(
        got_events, case.want_events, strict=True
    ):
        assert reason == want_reason, f"{case.name}: {reason} {message!r}"
        assert message.startswith(want_start), f"{case.name}: {reason} {message!r}"
    conditions = fx.conditions()
    for kind, want in case.want_conditions.items():
        assert conditions.get(kind) == want, f"{case.name}: {kind} is {conditions.get(kind)}"


async def test_status_shows_the_utilisation_and_the_rescale() -> None:
    fx = Fixture.new()
    fx.seed(deployment(2), hpa(target=50), pod(0), pod(1))
    fx.metrics.cpu = {"web-0": 800, "web-1": 1000}
    await fx.controller.sync("default/web")
    fx.controller.queue.shut_down()
    s = fx.refresh_hpa().status
    assert (s.current_replicas, s.desired_replicas) == (2, 4)
    [metric] = s.current_metrics
    assert (metric.type, metric.resource.name) == ("Resource", "cpu")
    assert metric.resource.current.average_utilization == 90
    assert metric.resource.current.average_value.string == "900m"
    assert s.last_scale_time.seconds == int(NOW)


async def test_scales_down_once_the_window_has_passed_on_the_clock() -> None:
    """The periodic resync and the stabilisation window both run on the
    injected clock: nothing sleeps."""
    fx = Fixture.new()
    fx.seed(deployment(4), hpa(down_window=60), *(pod(i) for i in range(4)))
    fx.metrics.cpu = {f"web-{i}": 500 for i in range(4)}
    await fx.controller.sync("default/web")  # at target: records 4
    fx.metrics.cpu = {f"web-{i}": 100 for i in range(4)}  # the load stops
    for _ in range(3):  # 15 s, 30 s, 45 s: still within the window
        fx.clock.advance(15)
        assert len(fx.controller.queue) == 1, "each sync requeues its key after 15 s"
        key = await fx.controller.queue.get()
        fx.refresh_hpa()  # what the informer would have delivered
        await fx.controller.sync(key)
        fx.controller.queue.done(key)
    assert fx.scales.updates == []
    assert fx.conditions()["AbleToScale"] == ("True", "ScaleDownStabilized")
    fx.clock.advance(30)  # 75 s: the first recommendation has left the window
    key = await fx.controller.queue.get()
    fx.refresh_hpa()
    await fx.controller.sync(key)
    fx.controller.queue.done(key)
    fx.controller.queue.shut_down()
    assert fx.scales.updates == [1]
    assert fx.recorder.events[-1][1:] == (
        "SuccessfulRescale",
        "New size: 1; reason: All metrics below target",
    )


async def test_a_failing_metrics_source_keeps_the_replicas() -> None:
    fx = Fixture.new()
    fx.seed(deployment(2), hpa(), pod(0), pod(1))
    fx.metrics.failure = errors.Unavailable("no agent answered")
    await fx.controller.sync("default/web")
    assert fx.scales.updates == []
    assert fx.conditions()["ScalingActive"] == ("False", "FailedGetResourceMetric")
    s = fx.refresh_hpa().status
    assert s.current_replicas == 2
    # Retried by the periodic resync, not by the queue's fast back-off.
    assert (len(fx.controller.queue), fx.controller.queue.num_requeues("default/web")) == (0, 0)
    fx.clock.advance(15)
    assert len(fx.controller.queue) == 1
    fx.controller.queue.shut_down()


@pytest.mark.parametrize(
    ("usage", "want_updates", "want_active"),
    [
        ([900, 900], [4], ("True", "ValidMetricFound")),
        ([100, 100], [], ("False", "FailedGetPodsMetric")),
    ],
    ids=["the working metric scales up", "but never down on its own word"],
)
async def test_one_metric_failing_among_several(
    usage: list[int], want_updates: list[int], want_active: tuple[str, str]
) -> None:
    fx = Fixture.new()
    h = hpa(down_window=0)
    pods_metric = h.spec.metrics.add(type="Pods").pods
    pods_metric.metric.name = "requests_per_second"
    pods_metric.target.type = "AverageValue"
    pods_metric.target.average_value.string = "10"
    fx.seed(deployment(2), h, pod(0), pod(1))
    fx.metrics.cpu = {f"web-{i}": u for i, u in enumerate(usage)}
    await fx.controller.sync("default/web")
    fx.controller.queue.shut_down()
    assert fx.scales.updates == want_updates
    assert fx.conditions()["ScalingActive"] == want_active
    assert "FailedGetPodsMetric" in [reason for _t, reason, _m in fx.recorder.events]


async def test_a_deleted_hpa_is_forgotten() -> None:
    fx = Fixture.new()
    fx.seed(deployment(2), hpa(), pod(0), pod(1))
    fx.metrics.cpu = {"web-0": 500, "web-1": 500}
    await fx.controller.sync("default/web")
    assert fx.controller._history
    fx.hpas.indexer.delete(fx.refresh_hpa())
    await fx.controller.sync("default/web")
    fx.controller.queue.shut_down()
    assert not fx.controller._history


# -- wiring: metrics from Stats, and the manager's flags --------------------------------------


class FakeStats:
    def __init__(self) -> None:
        self.calls = 0

    async def stats(
        self, *, namespace: str = "", node: str = "", nodes: bool = False
    ) -> StatsResponse:
        self.calls += 1
        answer = StatsResponse()
        web = answer.pods.add(namespace=namespace, name="web-0", node="n1")
        web.containers.add(name="app", cpu_nanocores=250_000_001, memory_bytes=10 << 20)
        web.containers.add(name="side", cpu_nanocores=1, memory_bytes=1 << 20)
        answer.pods.add(namespace="elsewhere", name="other")
        return answer


@pytest.mark.parametrize(
    ("resource", "want"),
    [("cpu", 251 + 1), ("memory", (11 << 20) * 1000)],
    ids=["cpu in millicores, each container rounded up", "memory in milli-bytes"],
)
async def test_pod_metrics_from_the_agents_stats(resource: str, want: int) -> None:
    metrics = await StatsMetricsClient(FakeStats(), now=lambda: NOW).pod_metrics(
        "default", resource
    )
    assert metrics == {"web-0": PodMetric(want, NOW, METRIC_WINDOW)}


async def test_one_stats_answer_serves_a_namespace_for_a_few_seconds() -> None:
    """The agents measure CPU since their previous sample: asking back to
    back would measure a window of milliseconds."""
    stats, now = FakeStats(), [NOW]
    metrics = StatsMetricsClient(stats, now=lambda: now[0], max_age=5)
    await metrics.pod_metrics("default", "cpu")
    await metrics.pod_metrics("default", "memory")
    assert stats.calls == 1
    now[0] += 5
    await metrics.pod_metrics("default", "cpu")
    assert stats.calls == 2


async def test_pod_metrics_of_an_unreported_resource() -> None:
    with pytest.raises(MetricsError, match='resource metric "gpu" is not reported'):
        await StatsMetricsClient(FakeStats()).pod_metrics("default", "gpu")


def test_the_manager_runs_the_hpa_controller_with_its_flags() -> None:
    parser = controllers_main._parser()
    args = parser.parse_args(
        [
            "--horizontal-pod-autoscaler-sync-period=5s",
            "--horizontal-pod-autoscaler-downscale-stabilization=1m",
            "--horizontal-pod-autoscaler-tolerance=0.2",
        ]
    )
    config = controllers_main._config(parser, args)
    assert (config.hpa.sync_period, config.hpa.downscale_stabilization) == (5.0, 60)
    assert config.hpa.tolerance == 0.2
    assert "horizontalpodautoscaling" in config.controllers

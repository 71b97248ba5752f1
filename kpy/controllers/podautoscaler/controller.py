"""The HorizontalPodAutoscaler controller (Kubernetes'
pkg/controller/podautoscaler/horizontal.go).

Every HPA is synced when it appears or its spec changes, and then every
`sync_period` (15 s, --horizontal-pod-autoscaler-sync-period) on its own
timer: each sync requeues its key after the period on the queue's clock,
so there is no global tick and a fake clock drives it in tests.

`sync(key)`:
1. reads the target's `scale` subresource (so Deployments, ReplicaSets,
   StatefulSets and anything scalable work alike); a failure is the
   FailedGetScale event and AbleToScale=False;
2. a target at zero replicas is left alone (ScalingActive=False,
   ScalingDisabled); one outside minReplicas..maxReplicas is brought inside;
   otherwise each metric proposes replicas from the pods the scale's
   selector matches (`replica_calculator`) and the highest proposal wins;
   metrics that fail set ScalingActive=False (and the controller does not
   scale down on the others' word alone, as Kubernetes);
3. the proposal is stabilised and rate-limited (`normalize`): the legacy
   path without `behavior`, the policies with it; conditions AbleToScale
   and ScalingLimited say what held it back;
4. a change is written through the scale subresource with the
   SuccessfulRescale event ("New size: 4; reason: cpu resource utilization
   (percentage of request) above target"); the status (currentReplicas,
   desiredReplicas, currentMetrics, lastScaleTime, conditions) is written
   when it changed.

The recommendation and scale-event history per HPA lives in this
controller (as in Kubernetes: a restart forgets it) and goes when the HPA
goes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from kpy.api import errors
from kpy.api.autoscaling.v2 import (
    HorizontalPodAutoscaler,
    HorizontalPodAutoscalerCondition,
    MetricStatus,
)
from kpy.api.core.v1 import Pod
from kpy.api.labels import parse_selector
from kpy.api.quantity import Quantity
from kpy.api.scheme import scheme
from kpy.cache.events import NORMAL, WARNING
from kpy.cache.informer import EventHandler
from kpy.cache.store import split_key
from kpy.clock import WallClock
from kpy.controllers.base import Controller, deleted_object, key_of
from kpy.controllers.podautoscaler import normalize
from kpy.controllers.podautoscaler.metrics import MetricsClient, StatsClient, StatsMetricsClient
from kpy.controllers.podautoscaler.replica_calculator import (
    CPU_INITIALIZATION_PERIOD,
    DEFAULT_TOLERANCE,
    DELAY_OF_INITIAL_READINESS_STATUS,
    MetricsError,
    ReplicaProposal,
    Tolerances,
    plain_metric_replicas,
    resource_replicas,
)

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from kpy.api.autoscaling.v1 import Scale
    from kpy.cache.events import EventRecorder
    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.clock import Clock
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.podautoscaler")

__all__ = [
    "SYNC_PERIOD",
    "HPAOptions",
    "HorizontalController",
    "ScaleClient",
    "new_hpa_controller",
]

#: --horizontal-pod-autoscaler-sync-period
SYNC_PERIOD: Final = 15.0


@runtime_checkable
class ScaleClient(Protocol):
    """The scale subresource, as `kpy.client.Client` offers it."""

    async def get_scale(
        self, kind: type[Message], name: str, *, namespace: str | None = None
    ) -> Scale: ...

    async def update_scale(
        self, kind: type[Message], scale: Scale, *, namespace: str | None = None
    ) -> Scale: ...


@dataclass(frozen=True, slots=True)
class HPAOptions:
    """The kube-controller-manager flags of the HPA, with their defaults."""

    sync_period: float = SYNC_PERIOD
    downscale_stabilization: int = normalize.DOWNSCALE_STABILIZATION_WINDOW
    tolerance: float = DEFAULT_TOLERANCE
    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD
    initial_readiness_delay: float = DELAY_OF_INITIAL_READINESS_STATUS


@dataclass
class _History:
    """What one HPA's earlier syncs leave for the next (dropped with it)."""

    recommendations: list[normalize.Recommendation] = field(default_factory=list)
    ups: list[normalize.ScaleEvent] = field(default_factory=list)
    downs: list[normalize.ScaleEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Proposal:
    replicas: int
    metric: str  # "cpu resource utilization (percentage of request)"


class _Reported(Exception):
    """A failure already told in an event and the conditions; the next
    periodic sync tries again."""


class _MetricFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class HorizontalController(Controller):
    name = "horizontalpodautoscaling"

    def __init__(
        self,
        client: ClientProtocol,
        scales: ScaleClient,
        metrics_client: MetricsClient,
        hpas: SharedInformer[HorizontalPodAutoscaler],
        pods: SharedInformer[Pod],
        *,
        options: HPAOptions | None = None,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        recorder: EventRecorder | None = None,
    ) -> None:
        """`clock`: wall-clock time for the queue's resyncs, the histories and
        the timestamps written into the status."""
        self._clock: Clock = clock or WallClock()
        super().__init__(metrics=metrics, clock=self._clock, recorder=recorder)
        self._client = client
        self._scales = scales
        self._metrics_client = metrics_client
        self._hpas: Lister[HorizontalPodAutoscaler] = hpas.lister()
        self._pods: Lister[Pod] = pods.lister()
        self._options = options or HPAOptions()
        self._history: dict[str, _History] = {}
        hpas.add_event_handler(
            EventHandler(
                on_add=lambda hpa, _initial: self.enqueue(hpa),
                on_update=self._update_hpa,
                on_delete=self._delete_hpa,
            )
        )

    # -- handlers -------------------------------------------------------------------------

    def _update_hpa(self, old: HorizontalPodAutoscaler, new: HorizontalPodAutoscaler) -> None:
        # Our own status writes come back here: only a new spec is worth a
        # sync before the periodic one.
        if old.metadata.generation != new.metadata.generation:
            self.enqueue(new)

    def _delete_hpa(self, obj: Any) -> None:
        found = deleted_object(obj)
        key = key_of(found) if found is not None else str(obj.key)
        self._history.pop(key, None)

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        hpa = self._hpas.get(namespace, name)
        if hpa is None:
            self._history.pop(key, None)
            return
        # The next periodic sync, whatever this one does: a failure told in
        # an event is retried then, not hammered with back-off (as Kubernetes).
        self.enqueue_after(key, self._options.sync_period)
        work = HorizontalPodAutoscaler()
        work.CopyFrom(hpa)
        try:
            await self._reconcile(key, work, hpa)
        except _Reported as e:
            log.warning(
                "autoscaling failed; the next sync retries",
                extra={"controller": self.name, "key": key, "error": str(e)},
            )

    async def _reconcile(
        self, key: str, hpa: HorizontalPodAutoscaler, original: HorizontalPodAutoscaler
    ) -> None:
        kind, scale = await self._get_scale(hpa, original)
        history = self._history.setdefault(key, _History())
        current = scale.spec.replicas
        if not history.recommendations:
            history.recommendations.append(normalize.Recommendation(current, self._clock.now()))
        min_replicas = hpa.spec.min_replicas if hpa.spec.HasField("min_replicas") else 1
        statuses: list[MetricStatus] = []
        failure: MetricsError | None = None
        if current == 0 and min_replicas != 0:
            desired, reason = 0, ""
            self._condition(
                hpa,
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            )
        elif current > hpa.spec.max_replicas:
            desired, reason = (
                hpa.spec.max_replicas,
                "Current number of replicas above Spec.MaxReplicas",
            )
        elif current < min_replicas:
            desired, reason = min_replicas, "Current number of replicas below Spec.MinReplicas"
        else:
            try:
                proposal, statuses, failure = await self._replicas_for_metrics(hpa, scale)
            except MetricsError as e:
                self._set_status(hpa, current, hpa.status.desired_replicas, statuses, rescale=False)
                await self._write_status(hpa, original)
                self.record(hpa, WARNING, "FailedComputeMetricsReplicas", str(e))
                raise _Reported(str(e)) from e
            reason = ""
            if proposal.replicas > current:
                reason = f"{proposal.metric} above target"
            elif proposal.replicas < current:
                reason = "All metrics below target"
            desired = self._normalize(key, hpa, current, proposal.replicas, min_replicas)
        rescale = desired != current
        if rescale:
            await self._rescale(kind, scale, hpa, original, desired, reason, statuses)
            self._record_scale_event(key, hpa, current, desired)
        else:
            desired = current
        self._set_status(hpa, current, desired, statuses, rescale=rescale)
        await self._write_status(hpa, original)
        if failure is not None:  # some metrics worked and were acted on
            raise _Reported(str(failure))

    async def _get_scale(
        self, hpa: HorizontalPodAutoscaler, original: HorizontalPodAutoscaler
    ) -> tuple[type[Message], Scale]:
        ref = hpa.spec.scale_target_ref
        try:
            kind = _target_kind(ref.api_version, ref.kind)
            scale = await self._scales.get_scale(kind, ref.name, namespace=hpa.metadata.namespace)
        except (errors.StatusError, ValueError) as e:
            message = str(e) if isinstance(e, ValueError) else e.message
            self.record(hpa, WARNING, "FailedGetScale", message)
            self._condition(
                hpa,
                "AbleToScale",
                "False",
                "FailedGetScale",
                f"the HPA controller was unable to get the target's current scale: {message}",
            )
            await self._write_status(hpa, original)
            raise _Reported(message) from e
        self._condition(
            hpa,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        )
        return kind, scale

    async def _rescale(
        self,
        kind: type[Message],
        scale: Scale,
        hpa: HorizontalPodAutoscaler,
        original: HorizontalPodAutoscaler,
        desired: int,
        reason: str,
        statuses: list[MetricStatus],
    ) -> None:
        current = scale.spec.replicas
        scale.spec.replicas = desired
        try:
            await self._scales.update_scale(kind, scale, namespace=hpa.metadata.namespace)
        except errors.StatusError as e:
            self.record(
                hpa,
                WARNING,
                "FailedRescale",
                f"New size: {desired}; reason: {reason}; error: {e.message}",
            )
            self._condition(
                hpa,
                "AbleToScale",
                "False",
                "FailedUpdateScale",
                f"the HPA controller was unable to update the target scale: {e.message}",
            )
            self._set_status(hpa, current, hpa.status.desired_replicas, statuses, rescale=False)
            await self._write_status(hpa, original)
            raise _Reported(e.message) from e
        self._condition(
            hpa,
            "AbleToScale",
            "True",
            "SucceededRescale",
            f"the HPA controller was able to update the target scale to {desired}",
        )
        self.record(hpa, NORMAL, "SuccessfulRescale", f"New size: {desired}; reason: {reason}")
        log.info(
            "rescaled",
            extra={"controller": self.name, "key": key_of(hpa), "from": current, "to": desired},
        )

    # -- metrics ----------------------------------------------------------------------------

    async def _replicas_for_metrics(
        self, hpa: HorizontalPodAutoscaler, scale: Scale
    ) -> tuple[_Proposal, list[MetricStatus], MetricsError | None]:
        """The highest proposal of the metrics that worked, their statuses,
        and the first failure if some failed; MetricsError (with the
        ScalingActive condition set) when none can be trusted."""
        if not scale.status.selector:
            self.record(
                hpa, WARNING, "SelectorRequired", "the HPA target's scale is missing a selector"
            )
            self._condition(
                hpa,
                "ScalingActive",
                "False",
                "InvalidSelector",
                "the HPA target's scale is missing a selector",
            )
            raise MetricsError("the HPA target's scale is missing a selector")
        try:
            selector = parse_selector(scale.status.selector)
        except ValueError as e:
            self._condition(
                hpa,
                "ScalingActive",
                "False",
                "InvalidSelector",
                f"the HPA target's scale has an invalid selector: {e}",
            )
            raise MetricsError(f"the HPA target's scale has an invalid selector: {e}") from e
        pods = self._pods.list(hpa.metadata.namespace, selector)
        best: _Proposal | None = None
        statuses: list[MetricStatus] = []
        first: _MetricFailed | None = None
        failed = 0
        for spec in hpa.spec.metrics:
            status = MetricStatus()
            try:
                proposal = await self._replicas_for_metric(hpa, spec, scale, pods, status)
            except _MetricFailed as e:
                failed += 1
                first = first or e
                statuses.append(status)
                continue
            statuses.append(status)
            if best is None or proposal.replicas > best.replicas:
                best = proposal
        error = None
        if first is not None:
            error = MetricsError(
                f"invalid metrics ({failed} invalid out of {len(hpa.spec.metrics)}),"
                f" first error is: {first}"
            )
        if best is None or (first is not None and best.replicas < scale.spec.replicas):
            if first is not None:
                self._condition(
                    hpa,
                    "ScalingActive",
                    "False",
                    first.reason,
                    f"the HPA was unable to compute the replica count: {first}",
                )
            raise error or MetricsError("the HPA has no metrics to scale on")
        self._condition(
            hpa,
            "ScalingActive",
            "True",
            "ValidMetricFound",
            f"the HPA was able to successfully calculate a replica count from {best.metric}",
        )
        return best, statuses, error

    async def _replicas_for_metric(
        self,
        hpa: HorizontalPodAutoscaler,
        spec: Any,
        scale: Scale,
        pods: list[Pod],
        status: MetricStatus,
    ) -> _Proposal:
        if spec.type != "Resource":
            reason = f"FailedGet{spec.type or 'Unknown'}Metric"
            message = (
                f'unable to get metric of type "{spec.type}": kpy serves resource metrics'
                " (cpu, memory) only"
            )
            self.record(hpa, WARNING, reason, message)
            raise _MetricFailed(reason, message)
        resource, target = spec.resource.name, spec.resource.target
        now = self._clock.now()
        status.type = "Resource"
        status.resource.name = resource
        try:
            metrics = await self._metrics_client.pod_metrics(hpa.metadata.namespace, resource)
            options = self._options
            kwargs: dict[str, Any] = {
                "tolerances": _tolerances(hpa, options.tolerance),
                "cpu_initialization_period": options.cpu_initialization_period,
                "delay_of_initial_readiness_status": options.initial_readiness_delay,
            }
            if target.HasField("average_utilization"):
                got: ReplicaProposal = resource_replicas(
                    scale.spec.replicas,
                    target.average_utilization,
                    resource,
                    pods,
                    metrics,
                    now,
                    **kwargs,
                )
                name = f"{resource} resource utilization (percentage of request)"
                status.resource.current.average_utilization = got.utilization
            elif target.HasField("average_value"):
                wanted = Quantity(target.average_value.string).milli_value()
                got = plain_metric_replicas(
                    scale.spec.replicas, wanted, resource, pods, metrics, now, **kwargs
                )
                name = f"{resource} resource"
            else:
                raise MetricsError(
                    "invalid resource metric source: neither a utilization target"
                    " nor a value target was set"
                )
        except MetricsError as e:
            status.resource.ClearField("current")
            message = f"failed to get {resource} utilization: {e}"
            self.record(hpa, WARNING, "FailedGetResourceMetric", message)
            raise _MetricFailed("FailedGetResourceMetric", message) from e
        except errors.StatusError as e:
            status.resource.ClearField("current")
            message = (
                f"failed to get {resource} utilization: unable to get metrics"
                f" for resource {resource}: {e.message}"
            )
            self.record(hpa, WARNING, "FailedGetResourceMetric", message)
            raise _MetricFailed("FailedGetResourceMetric", message) from e
        status.resource.current.average_value.string = str(Quantity.from_milli(got.raw_average))
        return _Proposal(got.replicas, name)

    # -- normalisation ----------------------------------------------------------------------

    def _normalize(
        self, key: str, hpa: HorizontalPodAutoscaler, current: int, proposed: int, minimum: int
    ) -> int:
        history = self._history[key]
        now = self._clock.now()
        maximum = hpa.spec.max_replicas
        if not hpa.spec.HasField("behavior"):
            window = self._options.downscale_stabilization
            stable = normalize.stabilize(history.recommendations, proposed, now, window)
            limited = normalize.limit_with_rules(current, stable.replicas, minimum, maximum)
        else:
            up, down = self._rules(hpa)
            stable = normalize.stabilize_with_behavior(
                history.recommendations,
                current,
                proposed,
                now,
                up_window=up.stabilization_window_seconds,
                down_window=down.stabilization_window_seconds,
            )
            limited = normalize.limit_with_behavior(
                current,
                stable.replicas,
                minimum,
                maximum,
                up=up,
                down=down,
                ups=history.ups,
                downs=history.downs,
                now=now,
            )
        history.recommendations = stable.history
        self._condition(hpa, "AbleToScale", "True", stable.reason, stable.message)
        limiting = "False" if limited.replicas == stable.replicas else "True"
        self._condition(hpa, "ScalingLimited", limiting, limited.reason, limited.message)
        return limited.replicas

    def _rules(
        self, hpa: HorizontalPodAutoscaler
    ) -> tuple[normalize.ScalingRules, normalize.ScalingRules]:
        behavior = hpa.spec.behavior
        down_default = normalize.ScalingRules(
            self._options.downscale_stabilization,
            normalize.DEFAULT_SCALE_DOWN.select_policy,
            normalize.DEFAULT_SCALE_DOWN.policies,
        )
        return (
            normalize.ScalingRules.from_api(behavior.scale_up, normalize.DEFAULT_SCALE_UP),
            normalize.ScalingRules.from_api(behavior.scale_down, down_default),
        )

    def _record_scale_event(
        self, key: str, hpa: HorizontalPodAutoscaler, current: int, desired: int
    ) -> None:
        if not hpa.spec.HasField("behavior"):
            return
        history = self._history[key]
        up, down = self._rules(hpa)
        now = self._clock.now()
        if desired > current:
            history.ups = normalize.record_scale_event(history.ups, desired - current, up, now)
        else:
            history.downs = normalize.record_scale_event(
                history.downs, current - desired, down, now
            )

    # -- status ---------------------------------------------------------------------------

    def _condition(
        self, hpa: HorizontalPodAutoscaler, kind: str, status: str, reason: str, message: str
    ) -> None:
        """Sets a condition; its transition time moves only when its status does."""
        for c in hpa.status.conditions:
            if c.type == kind:
                if c.status != status:
                    c.status = status
                    _stamp(c.last_transition_time, self._clock.now())
                c.reason, c.message = reason, message
                return
        condition = HorizontalPodAutoscalerCondition(
            type=kind, status=status, reason=reason, message=message
        )
        _stamp(condition.last_transition_time, self._clock.now())
        hpa.status.conditions.append(condition)

    def _set_status(
        self,
        hpa: HorizontalPodAutoscaler,
        current: int,
        desired: int,
        statuses: list[MetricStatus],
        *,
        rescale: bool,
    ) -> None:
        s = hpa.status
        s.current_replicas = current
        s.desired_replicas = desired
        s.observed_generation = hpa.metadata.generation
        del s.current_metrics[:]
        s.current_metrics.extend(statuses)
        if rescale:
            _stamp(s.last_scale_time, self._clock.now())

    async def _write_status(
        self, hpa: HorizontalPodAutoscaler, original: HorizontalPodAutoscaler
    ) -> None:
        if hpa.status == original.status:
            return
        await self._client.update_status(hpa)


def _target_kind(api_version: str, kind: str) -> type[Message]:
    info = scheme.lookup(api_version, kind)
    if info is None or info.kind not in _SCALABLE:
        raise ValueError(
            f'unable to determine resource for scale target reference: {kind} in "{api_version}"'
            " is not a kind with a scale subresource (Deployment, ReplicaSet, StatefulSet"
            " in apps/v1); fix spec.scaleTargetRef"
        )
    message: type[Message] = info.message
    return message


#: The kinds the API server serves a scale subresource for.
_SCALABLE: Final = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"})


def _tolerances(hpa: HorizontalPodAutoscaler, default: float) -> Tolerances:
    behavior = hpa.spec.behavior

    def of(rules: Any) -> float:
        if rules.HasField("tolerance") and rules.tolerance.string:
            return float(Quantity(rules.tolerance.string).as_approximate_float())
        return default

    return Tolerances(down=of(behavior.scale_down), up=of(behavior.scale_up))


def _stamp(ts: Any, now: float) -> None:
    ts.FromSeconds(int(now))


def new_hpa_controller(
    ctx: ControllerContext, options: HPAOptions | None = None
) -> HorizontalController:
    """The HPA controller of the manager: the scale subresource and the
    metrics both come through the manager's client (a `kpy.client.Client`)."""
    client = ctx.client
    if not isinstance(client, ScaleClient) or not hasattr(client, "stats"):
        raise TypeError(
            "the horizontalpodautoscaling controller needs a client with the scale"
            " subresource and stats (kpy.client.Client)"
        )
    stats: StatsClient = client
    return HorizontalController(
        client,
        client,
        StatsMetricsClient(stats),
        ctx.informers.informer(HorizontalPodAutoscaler),
        ctx.informers.informer(Pod),
        options=options,
        metrics=ctx.metrics,
        recorder=ctx.events.new_recorder("horizontal-pod-autoscaler"),
    )

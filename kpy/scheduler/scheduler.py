"""The scheduler: pending pods in, bindings out (kube-scheduler's
scheduler.go and schedule_one.go).

- Informers feed two places. Pods without spec.nodeName whose
  schedulerName is ours go to the `SchedulingQueue`; bound pods that hold
  resources go to the `Cache`. Nodes go to the cache. A change that could
  let an unschedulable pod fit (a node added or changed, a bound pod
  deleted or finished) moves the unschedulable pods back to be tried.
- The scheduling loop (only while this replica leads) takes one pod at a
  time: the framework filters every node, scores the feasible ones and
  picks the best (ties at random). The pod is assumed on that node in the
  cache at once, and bound in the background (at most `bind_concurrency`
  bindings in flight), so the next pod is scheduled without waiting for
  the API. A failed binding forgets the assumption and the pod is retried
  after its back-off; a pod bound meanwhile by someone else is dropped.
- A pod that fits nowhere gets PodScheduled=False, reason Unschedulable,
  with Kubernetes' message ("0/3 nodes are available: ..."), and a
  FailedScheduling event; a bound pod gets a Scheduled event naming its
  node (the API server sets PodScheduled=True on binding).
- `explain(pod)` runs the same filters and scores for one pod without
  assuming or binding anything: the Scheduler gRPC service's answer.

Informers and the cache run on every replica, so a standby can explain
too; only the leader schedules.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc

from kpy.api import errors
from kpy.api.core.v1 import Node, Pod
from kpy.cache.events import NORMAL, WARNING, EventBroadcaster
from kpy.cache.informer import EventHandler, SharedInformerFactory, deleted_object
from kpy.component import ElectionOptions, run_elected
from kpy.metrics import Metrics
from kpy.rpc.scheduler import v1 as rpc
from kpy.scheduler import service
from kpy.scheduler.cache import Cache, holds_resources, pod_key
from kpy.scheduler.framework import (
    NO_NODES_AVAILABLE,
    CycleState,
    Framework,
    PluginError,
    ScoredNode,
    default_profile,
    fit_error_message,
)
from kpy.scheduler.queue import QueueClosedError, QueuedPodInfo, SchedulingQueue

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.client import Client
    from kpy.scheduler.framework import Profile

log = logging.getLogger("kpy.scheduler")

__all__ = ["DEFAULT_SCHEDULER_NAME", "Decision", "Scheduler"]

DEFAULT_SCHEDULER_NAME: Final = "default-scheduler"
COMPONENT: Final = "kpy-scheduler"
LEASE_NAME: Final = "kpy-scheduler"


class Scheduler:
    """See the module docstring."""

    def __init__(
        self,
        client: Client,
        *,
        scheduler_name: str = DEFAULT_SCHEDULER_NAME,
        profile: Profile | None = None,
        election: ElectionOptions | None = None,
        metrics_host: str = "127.0.0.1",
        metrics_port: int | None = None,
        explain_address: tuple[str, int] | None = None,
        announce: Callable[[str], None] | None = None,
        bind_concurrency: int = 64,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.scheduler_name = scheduler_name
        self.framework = Framework(
            profile or default_profile(scheduler_name, bind=self._bind_through_api)
        )
        self.election = election or ElectionOptions(name=LEASE_NAME)
        self.metrics = Metrics()
        self.metrics_host, self.metrics_port = metrics_host, metrics_port
        self.explain_address = explain_address
        self.explain_port = 0
        self._announce = announce or (lambda line: None)
        self.queue = SchedulingQueue()
        self.cache = Cache()
        self.informers = SharedInformerFactory(client)
        self.events = EventBroadcaster(client)
        self.recorder = self.events.new_recorder(scheduler_name)
        self.leading = anyio.Event()
        self._rng = rng or random.Random()
        self._binds = anyio.CapacityLimiter(bind_concurrency)
        self._attempts = self.metrics.counter(
            "scheduler_schedule_attempts", "Scheduling attempts by result.", ["result"]
        )
        self._latency = self.metrics.histogram(
            "scheduler_pod_scheduling_duration_seconds",
            "From first queued to bound, per pod.",
            [],
        )
        self._algorithm = self.metrics.histogram(
            "scheduler_scheduling_algorithm_duration_seconds",
            "The filter, score and select decision alone, per attempt.",
            [],
        )
        self.metrics.add_gauge_source(
            "scheduler_pending_pods", "Pending pods by queue.", "queue", self.queue.pending
        )
        self._wire()

    # -- informers --------------------------------------------------------------------

    def _wire(self) -> None:
        pods = self.informers.informer(Pod)
        pods.add_event_handler(
            EventHandler(
                on_add=lambda pod, _initial: self._pod_changed(None, pod),
                on_update=self._pod_changed,
                on_delete=self._pod_deleted,
            )
        )
        nodes = self.informers.informer(Node)
        nodes.add_event_handler(
            EventHandler(
                on_add=lambda node, _initial: self._node_changed(None, node),
                on_update=self._node_changed,
                on_delete=self._node_deleted,
            )
        )

    def responsible_for(self, pod: Pod) -> bool:
        return (pod.spec.scheduler_name or DEFAULT_SCHEDULER_NAME) == self.scheduler_name

    def _pod_changed(self, old: Pod | None, pod: Pod) -> None:
        key = pod_key(pod)
        if pod.spec.node_name:
            if key in self.queue:
                self.queue.delete(key)  # bound (by us, or by someone else)
            was_counted = key in self.cache
            self.cache.add_pod(pod)
            if was_counted and not holds_resources(pod):
                self.queue.move_all_to_active_or_backoff("AssignedPodFinished")
            return
        if pod.metadata.HasField("deletion_timestamp"):
            self.queue.delete(key)
        elif self.responsible_for(pod):
            if old is None:
                self.queue.add(pod, key)
            else:
                self.queue.update(pod, key)

    def _pod_deleted(self, obj: Any) -> None:
        pod = deleted_object(obj)
        if pod is None:
            return
        key = pod_key(pod)
        self.queue.delete(key)
        if key in self.cache:
            self.cache.remove_pod(pod)
            self.queue.move_all_to_active_or_backoff("AssignedPodDelete")

    def _node_changed(self, old: Node | None, node: Node) -> None:
        self.cache.add_node(node)
        if old is None or _scheduling_relevant(old) != _scheduling_relevant(node):
            self.queue.move_all_to_active_or_backoff("NodeAdd" if old is None else "NodeUpdate")

    def _node_deleted(self, obj: Any) -> None:
        node = deleted_object(obj)
        if node is not None:
            self.cache.remove_node(node.metadata.name)

    # -- running ----------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[int | None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Informers always; scheduling while leading. Reports the metrics port."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.informers.run)
            tg.start_soon(self.events.run)
            if self.explain_address is not None:
                host, port = self.explain_address
                self.explain_port = await tg.start(service.serve, self, host, port)
                self._announce(f"{COMPONENT} serving explain on {host}:{self.explain_port}")
            await self.informers.wait_for_cache_sync()
            await run_elected(
                COMPONENT,
                self.client,
                self.metrics,
                self.election,
                self.schedule_loop,
                metrics_host=self.metrics_host,
                metrics_port=self.metrics_port,
                task_status=task_status,
            )
            tg.cancel_scope.cancel()

    async def schedule_loop(self) -> None:
        """Schedules pods one at a time until cancelled; binds in the background."""
        log.info("scheduling", extra={"scheduler": self.scheduler_name})
        self.leading.set()
        try:
            async with anyio.create_task_group() as binds:
                while True:
                    try:
                        info = await self.queue.pop()
                    except QueueClosedError:
                        return
                    self.schedule_one(info, binds)
                    await anyio.lowlevel.checkpoint()  # let informers and binds run between pods
        finally:
            self.queue.close()

    def schedule_one(self, info: QueuedPodInfo, binds: anyio.abc.TaskGroup) -> None:
        """One scheduling cycle; it does not await, so the cache holds still."""
        pod, key, cycle = info.pod, info.key, self.queue.scheduling_cycle
        if key in self.cache or pod.metadata.HasField("deletion_timestamp"):
            self.queue.done(key)
            return
        started = time.perf_counter()
        decision = self.decide(pod)
        self._algorithm.observe(time.perf_counter() - started)
        if decision.node is None:
            self._attempts.labels("unschedulable").inc()
            self.queue.add_unschedulable(info, cycle)
            info.unschedulable_plugins = decision.rejected_by
            self.recorder.event(pod, WARNING, "FailedScheduling", decision.message)
            binds.start_soon(self._mark_unschedulable, pod, decision.message)
            return
        assumed = Pod()
        assumed.CopyFrom(pod)
        assumed.spec.node_name = decision.node
        self.cache.assume_pod(assumed)
        binds.start_soon(self._bind, info, cycle, decision.node)

    def decide(self, pod: Pod) -> Decision:
        """The node for `pod` now, or why none fits (no side effects)."""
        nodes = self.cache.node_infos()
        try:
            result = self.framework.schedule_pod(pod, nodes, self._rng)
        except PluginError as e:
            return Decision(None, f"running the scheduling framework: {e}", set())
        if result.node_info is None:
            message = (
                fit_error_message(len(nodes), result.diagnosis) if nodes else NO_NODES_AVAILABLE
            )
            return Decision(None, message, set(result.diagnosis.unschedulable_plugins))
        return Decision(result.node_info.name, "", set())

    def explain(self, pod: Pod) -> rpc.ExplainResponse:
        """Every node's verdict for `pod`: the filter that rejected it, or its
        scores. Binds and assumes nothing."""
        nodes = self.cache.node_infos()
        state = CycleState()
        response = rpc.ExplainResponse()
        feasible, diagnosis = self.framework.find_nodes_that_fit(
            pod, nodes, state=state, find_all=True
        )
        if feasible:
            status = self.framework.run_pre_score(state, pod, feasible)
            per_plugin = (
                self.framework.run_score_plugins(state, pod, feasible) if not status.code else {}
            )
            totals = [
                sum(scores[i] for scores in per_plugin.values()) for i in range(len(feasible))
            ]
            order = sorted(range(len(feasible)), key=lambda i: -totals[i])
            for i in order:
                result = response.nodes.add(node=feasible[i].name, feasible=True, score=totals[i])
                for plugin, scores in per_plugin.items():
                    result.plugin_scores[plugin] = scores[i]
            response.selected = self.framework.select_host(
                [ScoredNode(feasible[i], totals[i]) for i in order], self._rng
            ).name
        for name, status in sorted(diagnosis.items()):
            response.nodes.add(node=name, plugin=status.plugin, reasons=list(status.reasons))
        if not nodes:
            response.message = NO_NODES_AVAILABLE
        elif not feasible:
            response.message = fit_error_message(len(nodes), diagnosis)
        else:
            response.message = f"{len(feasible)}/{len(nodes)} nodes are available"
        return response

    async def _bind(self, info: QueuedPodInfo, cycle: int, node: str) -> None:
        pod, key = info.pod, info.key
        async with self._binds:
            try:
                status = await self.framework.run_bind(CycleState(), pod, node)
                if status.code:
                    raise errors.Internal(f"binding {key} to {node}: {status.message()}")
            except (errors.Conflict, errors.NotFound):
                # Bound by someone else, or gone: the informer says which.
                self.cache.forget_pod(key)
                self.queue.done(key)
                self._attempts.labels("error").inc()
                return
            except errors.StatusError as e:
                log.warning("binding failed", extra={"pod": key, "node": node, "error": str(e)})
                self.cache.forget_pod(key)
                self.queue.add_unschedulable(info, cycle - 1)  # -1: straight to back-off
                self._attempts.labels("error").inc()
                return
        self.queue.done(key)
        self._attempts.labels("scheduled").inc()
        self._latency.observe(max(0.0, self.queue.now() - info.initial_timestamp))
        self.recorder.event(pod, NORMAL, "Scheduled", f"Successfully assigned {key} to {node}")

    async def _bind_through_api(self, pod: Pod, node: str) -> None:
        await self.client.bind(pod.metadata.name, node, namespace=pod.metadata.namespace)

    async def _mark_unschedulable(self, pod: Pod, message: str) -> None:
        """PodScheduled=False, reason Unschedulable, unless it already says so."""
        current = next((c for c in pod.status.conditions if c.type == "PodScheduled"), None)
        if (
            current is not None
            and current.status == "False"
            and current.reason == "Unschedulable"
            and current.message == message
        ):
            return
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": _now_rfc3339(),
        }
        patch = {"status": {"conditions": [condition]}}
        async with self._binds:
            try:
                await self.client.patch(
                    Pod,
                    pod.metadata.name,
                    patch,
                    namespace=pod.metadata.namespace,
                    subresource="status",
                )
            except errors.StatusError as e:
                log.info(
                    "could not mark pod unschedulable", extra={"pod": pod_key(pod), "error": str(e)}
                )


@dataclass(frozen=True, slots=True)
class Decision:
    """What the framework concluded for one pod: the node, or why none."""

    node: str | None
    message: str
    rejected_by: set[str]


def _scheduling_relevant(node: Node) -> tuple[Any, ...]:
    """What about a node can make a pod fit that did not: a change here
    retries the unschedulable pods."""
    return (
        node.spec.unschedulable,
        tuple((t.key, t.value, t.effect) for t in node.spec.taints),
        tuple(sorted(node.metadata.labels.items())),
        tuple(sorted((k, str(v)) for k, v in node.status.allocatable.items())),
    )


def _now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

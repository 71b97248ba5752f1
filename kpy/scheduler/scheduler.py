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
  node (the API server sets PodScheduled=True on binding). While pods
  wait to be scheduled, events are written at a trickle and the rest once
  the queue empties (the EventBroadcaster's busy pacing), so a burst of
  pods costs the API server one write per pod, the binding, until it ends.
- Volumes: the VolumeBinding plugin reads claims, volumes and classes
  from the scheduler's informers; a change to any of them moves the
  unschedulable pods back to be tried. After the node is chosen the
  Reserve plugins run at once (a failure forgets the assumption and
  retries the pod after its back-off); in the background, the PreBind
  plugins (VolumeBinding binds the pod's claims and waits for them, at
  most `volume_bind_timeout` seconds) run before Bind, outside the bind
  concurrency limit since they mostly wait. A PreBind or Bind failure
  unreserves, forgets the assumption, reports FailedScheduling and
  retries the pod after its back-off.
- Preemption: a pod that fits nowhere runs the PostFilter plugins
  (DefaultPreemption). When they name a node, the pod's
  status.nominatedNodeName is set, the victims get a DisruptionTarget
  condition and a Preempted event and are deleted (gracefully), and the
  pod waits, unschedulable, for their deletion to move it back. Until it
  binds, pods of no higher priority see it on that node, so they cannot
  take the room made for it.
- One bad object never stops the loop: a pod whose quantities cannot be
  parsed, or whose cycle fails in any plugin, gets FailedScheduling and
  PodScheduled=False reason SchedulerError with what is wrong, and is
  tried again after its back-off; a node that cannot be parsed is left
  out (see the Cache) and counted in "0/N nodes are available" as "node(s)
  had invalid resource quantities".
- `explain(pod)` runs the same filters and scores for one pod without
  assuming or binding anything: the Scheduler gRPC service's answer.

Informers and the cache run on every replica, so a standby can explain
too; only the leader schedules.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc

from kpy.api import errors
from kpy.api.core.v1 import Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod
from kpy.api.storage.v1 import StorageClass
from kpy.cache.events import NORMAL, WARNING, EventBroadcaster
from kpy.cache.informer import EventHandler, SharedInformerFactory, deleted_object
from kpy.component import ElectionOptions, run_elected
from kpy.metrics import Metrics
from kpy.rpc.scheduler import v1 as rpc
from kpy.scheduler import service
from kpy.scheduler.cache import Cache, holds_resources, pod_key
from kpy.scheduler.framework import (
    NO_NODES_AVAILABLE,
    Code,
    CycleState,
    Diagnosis,
    Framework,
    PluginError,
    ScoredNode,
    fit_error_message,
    new_status,
)
from kpy.scheduler.plugins.default_preemption import pod_priority
from kpy.scheduler.plugins.volume_binding import DEFAULT_BIND_TIMEOUT
from kpy.scheduler.profiles import default_profile
from kpy.scheduler.queue import QueueClosedError, QueuedPodInfo, SchedulingQueue
from kpy.scheduler.resources import invalid_pod_quantities
from kpy.scheduler.spreading import DefaultSpreadSelector
from kpy.scheduler.volumes import InformerVolumes

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from kpy.client import Client
    from kpy.door import ServingTLS
    from kpy.scheduler.framework import NodeInfo, Profile

log = logging.getLogger("kpy.scheduler")

__all__ = ["DEFAULT_SCHEDULER_NAME", "INVALID_NODE_REASON", "Decision", "Scheduler"]

DEFAULT_SCHEDULER_NAME: Final = "default-scheduler"
COMPONENT: Final = "kpy-scheduler"
LEASE_NAME: Final = "kpy-scheduler"
#: Events held while pods wait (see schedule_loop): a burst of this many
#: pods keeps every Scheduled event (about 1 KiB each), a longer one drops
#: the excess (counted), as client-go's broadcaster drops under pressure.
EVENT_QUEUE_SIZE: Final = 20_000


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
        explain_tls: ServingTLS | None = None,
        explain_clients: frozenset[str] = frozenset(),
        announce: Callable[[str], None] | None = None,
        bind_concurrency: int = 64,
        rng: random.Random | None = None,
        volume_bind_timeout: float = DEFAULT_BIND_TIMEOUT,
        percentage_of_nodes_to_score: int = 0,
    ) -> None:
        self.client = client
        self.scheduler_name = scheduler_name
        self.informers = SharedInformerFactory(client)
        self._namespaces = self.informers.informer(Namespace).lister()
        self.framework = Framework(
            profile
            or default_profile(
                scheduler_name,
                bind=self._bind_through_api,
                namespace_labels=self._namespace_labels,
                default_spread_selector=DefaultSpreadSelector(self.informers),
                volumes=InformerVolumes(self.informers, client),
                volume_bind_timeout=volume_bind_timeout,
                percentage_of_nodes_to_score=percentage_of_nodes_to_score,
            )
        )
        self.election = election or ElectionOptions(name=LEASE_NAME)
        self.metrics = Metrics()
        self.metrics_host, self.metrics_port = metrics_host, metrics_port
        self.explain_address = explain_address
        self.explain_port = 0
        # The explain service's door (kpy.door): TLS and who it answers.
        self._explain_tls, self._explain_clients = explain_tls, explain_clients
        self._announce = announce or (lambda line: None)
        self.queue = SchedulingQueue()
        self.cache = Cache()
        self.events = EventBroadcaster(client, queue_size=EVENT_QUEUE_SIZE)
        self.recorder = self.events.new_recorder(scheduler_name)
        self.leading = anyio.Event()
        self._rng = rng or random.Random()
        # Preemptors and the node made room on: key -> (node, pod). Other pods
        # of no higher priority see those pods on the node until they bind.
        self._nominated: dict[str, tuple[str, Pod]] = {}
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
        self.metrics.add_counter_source(
            "kpy_events",
            "Events recorded, by what became of them (kpy.cache.events.EventStatistics).",
            "outcome",
            self.events.counts,
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
        # A claim, volume or class that appears or changes may let a pod
        # waiting on VolumeBinding fit (kube-scheduler's PVC/PV/StorageClass events).
        for kind, event in (
            (PersistentVolumeClaim, "PvcChange"),
            (PersistentVolume, "PvChange"),
            (StorageClass, "StorageClassChange"),
        ):
            self.informers.informer(kind).add_event_handler(self._requeue_on(event))

    def _requeue_on(self, event: str) -> EventHandler[Any]:
        """A handler that moves the unschedulable pods back on add or update."""

        def changed(*_: object) -> None:
            self.queue.move_all_to_active_or_backoff(event)

        return EventHandler(on_add=changed, on_update=changed)

    def _namespace_labels(self, name: str) -> Mapping[str, str] | None:
        ns = self._namespaces.get("", name)
        return ns.metadata.labels if ns is not None else None

    def responsible_for(self, pod: Pod) -> bool:
        return (pod.spec.scheduler_name or DEFAULT_SCHEDULER_NAME) == self.scheduler_name

    def _pod_changed(self, old: Pod | None, pod: Pod) -> None:
        key = pod_key(pod)
        if pod.spec.node_name:
            self._nominated.pop(key, None)
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
        self._nominated.pop(key, None)
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
                self.explain_port = await tg.start(
                    functools.partial(
                        service.serve,
                        tls=self._explain_tls,
                        clients=self._explain_clients,
                    ),
                    self,
                    host,
                    port,
                )
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
                    # While pods wait, bindings are the writes that matter:
                    # events trickle out, and catch up once the queue is empty.
                    self.events.set_busy(self.queue.has_active())
                    try:
                        info = await self.queue.pop()
                    except QueueClosedError:
                        return
                    self.schedule_one(info, binds)
                    await anyio.lowlevel.checkpoint()  # let informers and binds run between pods
        finally:
            self.events.set_busy(False)
            self.queue.close()

    def schedule_one(self, info: QueuedPodInfo, binds: anyio.abc.TaskGroup) -> None:
        """One scheduling cycle; it does not await, so the cache holds still."""
        pod, key, cycle = info.pod, info.key, self.queue.scheduling_cycle
        if key in self.cache or pod.metadata.HasField("deletion_timestamp"):
            self.queue.done(key)
            return
        started = time.perf_counter()
        decision = self.decide(pod, preempt=True)
        self._algorithm.observe(time.perf_counter() - started)
        if decision.error:
            # Not an answer about the cluster: nothing that happens there helps,
            # so back-off decides when to look again, not cluster events.
            self._attempts.labels("error").inc()
            self.queue.add_backoff(info)
            self.recorder.event(pod, WARNING, "FailedScheduling", decision.message)
            binds.start_soon(self._mark_unschedulable, pod, decision.message, "SchedulerError")
            return
        if decision.node is None:
            self._attempts.labels("unschedulable").inc()
            self.queue.add_unschedulable(info, cycle)
            info.unschedulable_plugins = decision.rejected_by
            self.recorder.event(pod, WARNING, "FailedScheduling", decision.message)
            nominated = decision.nominated_node
            if nominated:
                self._nominated[key] = (nominated, pod)
                binds.start_soon(self._preempt, pod, nominated, decision.victims)
            elif decision.nominated_node is not None:
                self._nominated.pop(key, None)
            binds.start_soon(
                self._mark_unschedulable, pod, decision.message, "Unschedulable", nominated
            )
            return
        self._nominated.pop(key, None)
        assumed = Pod()
        assumed.CopyFrom(pod)
        assumed.spec.node_name = decision.node
        self.cache.assume_pod(assumed)
        state = decision.state if decision.state is not None else CycleState()
        status = self.framework.run_reserve(state, pod, decision.node)
        if status.code:
            self.cache.forget_pod(key)
            self._attempts.labels("error").inc()
            self.queue.add_backoff(info)
            message = f'running Reserve plugin "{status.plugin}": {status.message()}'
            self.recorder.event(pod, WARNING, "FailedScheduling", message)
            binds.start_soon(self._mark_unschedulable, pod, message, "SchedulerError")
            return
        binds.start_soon(self._bind, info, decision.node, state)

    def decide(self, pod: Pod, *, preempt: bool = False) -> Decision:
        """The node for `pod` now, or why none fits (no side effects). With
        `preempt`, a pod that fits nowhere gets the node preemption would
        make room on and the victims to evict for it. Never raises for a bad
        pod or node: an error comes back as a Decision with `error` set,
        naming what is wrong."""
        key = pod_key(pod)
        problems = invalid_pod_quantities(pod)
        if problems:
            log.error("pod cannot be parsed", extra={"pod": key, "error": "; ".join(problems)})
            return Decision(None, _invalid_pod_message(problems), set(), error=True)
        table = self.cache.table()
        nodes = self._with_nominated(pod, table.infos)
        state = CycleState()
        nominated: str | None = None
        victims: tuple[Pod, ...] = ()
        try:
            if nodes is table.infos:
                result = self.framework.schedule_table(pod, table, self._rng, state=state)
            else:  # nominated pods held on copies of some nodes: not the table's
                result = self.framework.schedule_pod(pod, nodes, self._rng, state=state)
            if result.node_info is None and preempt and nodes:
                post, status = self.framework.run_post_filter(
                    state, self._as_nominated(pod), result.diagnosis
                )
                if status.is_success() and post is not None:
                    nominated, victims = post.nominated_node_name, post.victims
                elif status.code is Code.ERROR:
                    raise PluginError(status)
                else:
                    result.diagnosis.post_filter_msg = status.message()
                    nominated = post.nominated_node_name if post is not None else None
        except PluginError as e:
            return Decision(None, f"running the scheduling framework: {e}", set(), error=True)
        except Exception as e:
            # A bug or an object no check foresaw: this pod waits, the others go on.
            log.exception("scheduling cycle failed", extra={"pod": key})
            return Decision(None, f"scheduling {key} failed: {e}", set(), error=True)
        if result.node_info is None:
            invalid = self.cache.invalid_nodes()
            add_invalid_nodes(result.diagnosis, invalid)
            total = len(nodes) + len(invalid)
            message = fit_error_message(total, result.diagnosis) if total else NO_NODES_AVAILABLE
            rejected = set(result.diagnosis.unschedulable_plugins)
            return Decision(None, message, rejected, nominated_node=nominated, victims=victims)
        return Decision(result.node_info.name, "", set(), state=state)

    def _as_nominated(self, pod: Pod) -> Pod:
        """`pod` with the nomination this scheduler gave it, should the
        informer not have brought the status patch back yet."""
        mine = self._nominated.get(pod_key(pod))
        if mine is None or pod.status.nominated_node_name == mine[0]:
            return pod
        copy = Pod()
        copy.CopyFrom(pod)
        copy.status.nominated_node_name = mine[0]
        return copy

    def _with_nominated(self, pod: Pod, nodes: list[NodeInfo]) -> list[NodeInfo]:
        """`nodes`, where pods of no lower priority than `pod` are nominated,
        replaced by copies holding those pods too: the room a preemption
        made is kept for its preemptor (RunFilterPluginsWithNominatedPods)."""
        if not self._nominated:
            return nodes
        key, priority = pod_key(pod), pod_priority(pod)
        extra: dict[str, list[Pod]] = {}
        for other, (node, nominated) in self._nominated.items():
            if other != key and pod_priority(nominated) >= priority:
                extra.setdefault(node, []).append(nominated)
        if not extra:
            return nodes
        out: list[NodeInfo] = []
        for node_info in nodes:
            more = extra.get(node_info.name)
            if more:
                node_info = node_info.clone()
                for nominated in more:
                    node_info.add_pod(nominated)
            out.append(node_info)
        return out

    def explain(self, pod: Pod) -> rpc.ExplainResponse:
        """Every node's verdict for `pod`: the filter that rejected it, or its
        scores. Binds and assumes nothing."""
        response = rpc.ExplainResponse()
        problems = invalid_pod_quantities(pod)
        if problems:
            response.message = _invalid_pod_message(problems)
            return response
        nodes = self.cache.node_infos()
        state = CycleState()
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
        invalid = self.cache.invalid_nodes()
        add_invalid_nodes(diagnosis, invalid)
        total = len(nodes) + len(invalid)
        for name, status in sorted(diagnosis.items()):
            response.nodes.add(node=name, plugin=status.plugin, reasons=list(status.reasons))
        if not total:
            response.message = NO_NODES_AVAILABLE
        elif not feasible:
            response.message = fit_error_message(total, diagnosis)
        else:
            response.message = f"{len(feasible)}/{total} nodes are available"
        return response

    async def _bind(self, info: QueuedPodInfo, node: str, state: CycleState) -> None:
        """PreBind, then Bind, in the background, in the cycle's own state
        (`state`); any failure unreserves and forgets the assumption."""
        pod, key = info.pod, info.key
        try:
            status = await self.framework.run_pre_bind(state, pod, node)
        except Exception as e:
            # A bug or an object no check foresaw: this pod is retried, the loop goes on.
            log.exception("pre-binding crashed", extra={"pod": key, "node": node})
            status = new_status(Code.ERROR, f"pre-binding {key} to {node} failed: {e}")
        if status.code:
            self.framework.run_unreserve(state, pod, node)
            self.cache.forget_pod(key)
            self.queue.add_backoff(info)
            self._attempts.labels("error").inc()
            message = status.message()
            if status.plugin:
                message = f'running PreBind plugin "{status.plugin}": {message}'
            log.warning("pre-binding failed", extra={"pod": key, "node": node, "error": message})
            self.recorder.event(pod, WARNING, "FailedScheduling", message)
            reason = "Unschedulable" if status.is_rejected() else "SchedulerError"
            await self._mark_unschedulable(pod, message, reason)
            return
        async with self._binds:
            try:
                status = await self.framework.run_bind(state, pod, node)
                if status.code:
                    raise errors.Internal(f"binding {key} to {node}: {status.message()}")
            except (errors.Conflict, errors.NotFound):
                # Bound by someone else, or gone: the informer says which.
                self.framework.run_unreserve(state, pod, node)
                self.cache.forget_pod(key)
                self.queue.done(key)
                self._attempts.labels("error").inc()
                return
            except errors.StatusError as e:
                log.warning("binding failed", extra={"pod": key, "node": node, "error": str(e)})
                self.framework.run_unreserve(state, pod, node)
                self.cache.forget_pod(key)
                self.queue.add_backoff(info)
                self._attempts.labels("error").inc()
                return
        self.queue.done(key)
        self._attempts.labels("scheduled").inc()
        self._latency.observe(max(0.0, self.queue.now() - info.initial_timestamp))
        self.recorder.event(pod, NORMAL, "Scheduled", f"Successfully assigned {key} to {node}")

    async def _bind_through_api(self, pod: Pod, node: str) -> None:
        await self.client.bind(pod.metadata.name, node, namespace=pod.metadata.namespace)

    async def _mark_unschedulable(
        self, pod: Pod, message: str, reason: str = "Unschedulable", nominated: str | None = None
    ) -> None:
        """PodScheduled=False with `reason` (Unschedulable, or SchedulerError
        when the pod itself is at fault), unless it already says so; and
        status.nominatedNodeName when `nominated` is given ("" clears it)."""
        current = next((c for c in pod.status.conditions if c.type == "PodScheduled"), None)
        nomination_unchanged = nominated is None or nominated == pod.status.nominated_node_name
        if (
            current is not None
            and current.status == "False"
            and current.reason == reason
            and current.message == message
            and nomination_unchanged
        ):
            return
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": _now_rfc3339(),
        }
        status: dict[str, Any] = {"conditions": [condition]}
        if not nomination_unchanged:
            status["nominatedNodeName"] = nominated or None
        patch = {"status": status}
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

    async def _preempt(self, preemptor: Pod, node: str, victims: tuple[Pod, ...]) -> None:
        """Evict the victims for `preemptor` (kube-scheduler's
        prepareCandidate): each gets a DisruptionTarget condition and a
        Preempted event, then a graceful delete. A victim gone already is
        no matter; another failure is logged and the preemptor's next
        attempt preempts again."""
        for victim in victims:
            async with self._binds:
                await self._evict(preemptor, node, victim)

    async def _evict(self, preemptor: Pod, node: str, victim: Pod) -> None:
        name, namespace = victim.metadata.name, victim.metadata.namespace
        condition = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "message": f"{self.scheduler_name}: preempting to accommodate a higher priority pod",
            "lastTransitionTime": _now_rfc3339(),
        }
        try:
            await self.client.patch(
                Pod,
                name,
                {"status": {"conditions": [condition]}},
                namespace=namespace,
                subresource="status",
            )
            self.recorder.event(
                victim,
                NORMAL,
                "Preempted",
                f"Preempted by pod {preemptor.metadata.uid} on node {node}",
            )
            await self.client.delete(Pod, name, namespace=namespace)
        except errors.NotFound:
            return
        except errors.StatusError as e:
            log.warning(
                "could not evict a preemption victim",
                extra={"pod": pod_key(victim), "preemptor": pod_key(preemptor), "error": str(e)},
            )
            return
        log.info(
            "preempted",
            extra={"pod": pod_key(victim), "preemptor": pod_key(preemptor), "node": node},
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """What the framework concluded for one pod: the node, or why none."""

    node: str | None
    message: str
    rejected_by: set[str]
    #: the pod could not be judged at all (it cannot be parsed, or a plugin failed)
    error: bool = False
    #: preemption's node for the pod ("" clears a nomination; None: no change)
    nominated_node: str | None = None
    #: the pods to evict to make room there
    victims: tuple[Pod, ...] = ()
    #: the cycle that chose `node`, as its plugins left it: Bind runs in it
    state: CycleState | None = field(default=None, compare=False, repr=False)


#: The reason a node that cannot be parsed counts under in "0/N nodes are available".
INVALID_NODE_REASON: Final = "node(s) had invalid resource quantities"


def add_invalid_nodes(diagnosis: Diagnosis, invalid: dict[str, str]) -> None:
    """Count the nodes the cache left out (they cannot be parsed) among the
    rejected ones, each with INVALID_NODE_REASON."""
    status = new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, INVALID_NODE_REASON).with_plugin(
        "SchedulerCache"
    )
    diagnosis.node_to_status.update(dict.fromkeys(invalid, status))


def _invalid_pod_message(problems: list[str]) -> str:
    return (
        f"invalid pod: {'; '.join(problems)}; the scheduler will not place it until it is "
        "deleted and created again with valid quantities"
    )


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

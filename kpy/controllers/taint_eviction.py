"""The taint eviction controller (Kubernetes' TaintEvictionController, the
former NoExecuteTaintManager of pkg/controller/tainteviction).

A pod bound to a node with NoExecute taints is deleted:

- at once when some NoExecute taint is tolerated by none of its
  tolerations;
- else after the shortest `tolerationSeconds` among the tolerations that
  match those taints, counted from when this controller first found the
  pod on the tainted node; a pod whose matching tolerations all have no
  `tolerationSeconds` tolerates them forever and stays;
- never, if the taints go (or the pod tolerates them after all) before its
  time: the pending deletion is cancelled, with an event.

Before deleting, the pod gets the `DisruptionTarget` condition
(DeletionByTaintManager) so its controller and its owner can tell why it
went, and an Event `TaintManagerEviction` "Marking for deletion Pod ns/name"
is recorded, as Kubernetes words them.

The queue's keys are pods ("namespace/name"): a pod change enqueues the pod,
a change of a node's NoExecute taints enqueues every pod on the node, and a
pod not yet due is requeued for when it will be. `sync` reads the listers
only; the time a pod was first found on a tainted node is kept per pod, and
dropped when the pod goes, the taints go, or the pod moves.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from kpy.api import errors
from kpy.api.core.v1 import Node, Pod, PodCondition, Taint, Toleration
from kpy.api.meta.v1 import Preconditions
from kpy.api.taints import TaintKey, TolerationKey, tolerates
from kpy.cache.events import NORMAL
from kpy.cache.informer import EventHandler
from kpy.cache.store import split_key
from kpy.controllers.base import Controller, key_of
from kpy.controllers.node_lifecycle import POD_NODE_INDEX, pod_node_index

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kpy.cache.events import EventRecorder
    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.tainteviction")

__all__ = [
    "TaintEvictionController",
    "matching_tolerations",
    "min_toleration_seconds",
    "new_taint_eviction_controller",
]

EVICTION_REASON: Final = "TaintManagerEviction"
FOREVER: Final = -1


def matching_tolerations(
    taints: Sequence[Taint], tolerations: Sequence[Toleration]
) -> tuple[bool, list[Toleration]]:
    """Kubernetes' GetMatchingTolerations: whether every taint is tolerated,
    and the tolerations that tolerate some taint (empty when one is not)."""
    used: list[Toleration] = []
    for taint in taints:
        tk = TaintKey(taint.key, taint.value, taint.effect)
        matched = [
            t
            for t in tolerations
            if tolerates(TolerationKey(t.key, t.operator, t.value, t.effect), tk)
        ]
        if not matched:
            return False, []
        used.extend(matched)
    return True, used


def min_toleration_seconds(tolerations: Sequence[Toleration]) -> int:
    """Kubernetes' getMinTolerationTime: the shortest `tolerationSeconds`
    (0 for a negative one), or FOREVER when none sets it."""
    shortest = FOREVER
    for t in tolerations:
        if not t.HasField("toleration_seconds"):
            continue
        seconds = max(t.toleration_seconds, 0)
        if shortest == FOREVER or seconds < shortest:
            shortest = seconds
    return shortest


def no_execute_taints(node: Node) -> list[Taint]:
    return [t for t in node.spec.taints if t.effect == "NoExecute"]


@dataclass(frozen=True, slots=True)
class _Mark:
    """A pod found on a NoExecute-tainted node: which pod, where, since when."""

    uid: str
    node: str
    since: float


class TaintEvictionController(Controller):
    """See the module docstring."""

    name = "taint-eviction-controller"

    def __init__(
        self,
        client: ClientProtocol,
        nodes: SharedInformer[Node],
        pods: SharedInformer[Pod],
        *,
        metrics: Metrics | None = None,
        recorder: EventRecorder | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """`now`: seconds, from which tolerationSeconds are counted."""
        super().__init__(metrics=metrics, recorder=recorder)
        self._client = client
        self._nodes: Lister[Node] = nodes.lister()
        self._pods: Lister[Pod] = pods.lister()
        self._pod_index = pods.indexer
        if POD_NODE_INDEX not in pods.indexer.get_indexers():
            pods.add_indexers({POD_NODE_INDEX: pod_node_index})
        self._now = now
        self.marked: dict[str, _Mark] = {}
        nodes.add_event_handler(
            EventHandler(
                on_add=lambda node, _initial: self._node_changed(node),
                on_update=self._node_updated,
                on_delete=lambda obj: self._node_changed(None, key_of(obj)),
            )
        )
        pods.add_event_handler(
            EventHandler(
                on_add=lambda pod, _initial: self._pod_changed(pod),
                on_update=lambda _old, new: self._pod_changed(new),
                on_delete=lambda obj: self._pod_gone(key_of(obj)),
            )
        )

    # -- handlers -----------------------------------------------------------------------

    def _node_updated(self, old: Node, new: Node) -> None:
        if no_execute_taints(old) != no_execute_taints(new):
            self._node_changed(new)

    def _node_changed(self, node: Node | None, name: str = "") -> None:
        name = node.metadata.name if node is not None else name
        for key in self._pod_index.index_keys(POD_NODE_INDEX, name):
            self.enqueue_key(key)

    def _pod_changed(self, pod: Pod) -> None:
        if pod.spec.node_name or key_of(pod) in self.marked:
            self.enqueue(pod)

    def _pod_gone(self, key: str) -> None:
        self.marked.pop(key, None)  # per-key state goes with the key

    # -- sync -----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        """Deletes the pod if its time on a NoExecute-tainted node is up;
        else requeues it for then, or cancels its pending deletion."""
        namespace, name = split_key(key)
        pod = self._pods.get(namespace, name)
        if pod is None or pod.metadata.HasField("deletion_timestamp"):
            self.marked.pop(key, None)
            return
        node = self._nodes.get("", pod.spec.node_name) if pod.spec.node_name else None
        taints = no_execute_taints(node) if node is not None else []
        if not taints:
            self._cancel(key, pod)
            return
        tolerated, used = matching_tolerations(taints, pod.spec.tolerations)
        if not tolerated:
            await self._evict(key, pod)
            return
        seconds = min_toleration_seconds(used)
        if seconds == FOREVER:
            self._cancel(key, pod)
            return
        now = self._now()
        mark = self.marked.get(key)
        if mark is None or mark.uid != pod.metadata.uid or mark.node != pod.spec.node_name:
            mark = self.marked[key] = _Mark(pod.metadata.uid, pod.spec.node_name, now)
        due = mark.since + seconds
        if now >= due:
            await self._evict(key, pod)
        else:
            self.enqueue_after(key, due - now)

    def _cancel(self, key: str, pod: Pod) -> None:
        if self.marked.pop(key, None) is not None:
            log.info("pod eviction cancelled", extra={"pod": key})
            self.record(pod, NORMAL, EVICTION_REASON, f"Cancelling deletion of Pod {key}")

    async def _evict(self, key: str, pod: Pod) -> None:
        """DisruptionTarget first, then the delete (Kubernetes' addConditionAndDeletePod)."""
        self.record(pod, NORMAL, EVICTION_REASON, f"Marking for deletion Pod {key}")
        log.info("evicting pod from a NoExecute-tainted node", extra={"pod": key})
        target = Pod()
        target.CopyFrom(pod)
        current = next((c for c in target.status.conditions if c.type == "DisruptionTarget"), None)
        if current is None or current.status != "True":
            if current is None:
                current = target.status.conditions.add(type="DisruptionTarget")
            current.CopyFrom(
                PodCondition(
                    type="DisruptionTarget",
                    status="True",
                    reason="DeletionByTaintManager",
                    message="Taint manager: deleting due to NoExecute taint",
                )
            )
            # whole seconds, as Kubernetes' metav1.Time
            current.last_transition_time.FromSeconds(int(self._now()))
            try:
                await self._client.update_status(target)
            except errors.NotFound:
                self.marked.pop(key, None)
                return
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await self._client.delete(
                Pod,
                pod.metadata.name,
                namespace=pod.metadata.namespace,
                # the pod seen, not another one since created under its name
                preconditions=Preconditions(uid=pod.metadata.uid),
            )
        self.marked.pop(key, None)


def new_taint_eviction_controller(ctx: ControllerContext) -> TaintEvictionController:
    return TaintEvictionController(
        ctx.client,
        ctx.cluster_informers.informer(Node),
        ctx.informers.informer(Pod),
        metrics=ctx.metrics,
        recorder=ctx.events.new_recorder("taint-eviction-controller"),
    )

"""The DaemonSet controller (Kubernetes' pkg/controller/daemon).

Keeps one pod of every DaemonSet on each node that should run it:

- Handlers: a DaemonSet change enqueues it; a pod change enqueues its
  DaemonSet (an orphan enqueues every DaemonSet whose selector matches it);
  a node that joins, or whose labels, taints or name-matching change what
  it should run, enqueues the DaemonSets concerned; a node that goes
  enqueues them all; a ControllerRevision change enqueues its owner. Pod
  creations and deletions are counted against the owner's expectations.
- `sync(key)`: claims pods and ControllerRevisions, finds the current
  revision (`History`), then, once earlier creations and deletions have
  come back through the watch: `manage` creates a pod for every node that
  should run one and has none, deletes pods on nodes that should not run
  them (or that are gone), extra pods on a node, and finished pods (a failed
  one is replaced with a per-node back-off); then the update strategy
  (RollingUpdate, `update.plan_rolling_update`; OnDelete waits for the user
  to delete pods); then old revisions beyond `revisionHistoryLimit` go.
  Finally status: desired/current/ready/updated/available/unavailable/
  misscheduled numbers and observedGeneration.
- Pods are placed through the scheduler: each is created with a required
  node affinity `metadata.name In [node]` (and the daemon tolerations), so
  the scheduler binds it and reports why when it cannot.
- A DaemonSet being deleted, or selecting everything, is left alone.

Reads come from listers only; at most `burst_replicas` (250) pods are
created or deleted per sync, as Kubernetes does.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Final

from kpy.api import errors
from kpy.api.apps.v1 import ControllerRevision, DaemonSet
from kpy.api.core.v1 import Node, Pod
from kpy.api.labels import selector_from_label_selector
from kpy.cache.events import NORMAL, WARNING
from kpy.cache.expectations import ControllerExpectations
from kpy.cache.informer import EventHandler
from kpy.cache.store import meta_namespace_key, split_key
from kpy.controllers.base import Controller, deleted_object
from kpy.controllers.daemonset.history import History
from kpy.controllers.daemonset.status import daemonset_status, pods_by_node
from kpy.controllers.daemonset.update import plan_rolling_update
from kpy.controllers.daemonset.util import (
    REVISION_HASH_LABEL,
    Placement,
    daemon_pod_template,
    node_should_run,
    rolling_counts,
    with_node_affinity,
)
from kpy.controllers.owned_pods import OwnedPods
from kpy.controllers.ownership import (
    ControllerRefManager,
    get_controller_of,
    new_controller_ref,
    pod_from_template,
)
from kpy.controllers.replicaset import POD_OWNER_INDEX, pods_informer_with_owner_index

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kpy.cache.events import EventRecorder
    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.daemonset")

__all__ = ["BURST_REPLICAS", "DaemonSetController", "new_daemonset_controller"]

BURST_REPLICAS: Final = 250
#: Kubernetes' failedPodsBackoff: 1s doubling to 15 minutes, per DaemonSet and node.
_FAILED_BACKOFF_BASE: Final = 1.0
_FAILED_BACKOFF_MAX: Final = 900.0


class DaemonSetController(Controller):
    name = "daemonset"

    def __init__(
        self,
        client: ClientProtocol,
        daemonsets: SharedInformer[DaemonSet],
        pods: SharedInformer[Pod],
        nodes: SharedInformer[Node],
        revisions: SharedInformer[ControllerRevision],
        *,
        metrics: Metrics | None = None,
        recorder: EventRecorder | None = None,
        burst_replicas: int = BURST_REPLICAS,
        now: Callable[[], float] = time.time,
    ) -> None:
        """`now`: wall-clock seconds, for availability and failed-pod back-off."""
        super().__init__(metrics=metrics, recorder=recorder)
        self._client = client
        self._daemonsets: Lister[DaemonSet] = daemonsets.lister()
        self._pods = pods
        self._nodes: Lister[Node] = nodes.lister()
        self._revisions: Lister[ControllerRevision] = revisions.lister()
        self._history = History(client, self._revisions)
        self._burst = burst_replicas
        self._now = now
        self.expectations = ControllerExpectations()
        # "<ds uid>/<node>" -> (last failure seen, current delay); dropped with the DaemonSet.
        self._failed_backoff: dict[str, tuple[float, float]] = {}
        daemonsets.add_event_handler(
            EventHandler(
                on_add=lambda ds, _initial: self.enqueue(ds),
                on_update=lambda _old, new: self.enqueue(new),
                on_delete=self._delete_daemonset,
            )
        )
        self._owned = OwnedPods(self, "DaemonSet", self._daemonsets, self.expectations)
        pods.add_event_handler(self._owned.handler())
        nodes.add_event_handler(
            EventHandler(
                on_add=self._add_node, on_update=self._update_node, on_delete=self._delete_node
            )
        )
        revisions.add_event_handler(
            EventHandler(
                on_add=lambda r, _initial: self._revision_changed(r),
                on_update=lambda _old, new: self._revision_changed(new),
                on_delete=self._revision_changed,
            )
        )

    # -- handlers -------------------------------------------------------------------------

    def _delete_daemonset(self, obj: Any) -> None:
        ds = deleted_object(obj)
        key = meta_namespace_key(ds) if ds is not None else str(obj.key)
        self.expectations.delete(key)
        if ds is not None:
            prefix = f"{ds.metadata.uid}/"
            for k in [k for k in self._failed_backoff if k.startswith(prefix)]:
                del self._failed_backoff[k]
        self.enqueue_key(key)

    def _add_node(self, node: Node, _initial: bool) -> None:
        for ds in self._daemonsets.list():
            if node_should_run(node, ds)[0]:
                self.enqueue(ds)

    def _update_node(self, old: Node, new: Node) -> None:
        if (
            old.metadata.labels == new.metadata.labels
            and old.spec.taints == new.spec.taints
            and old.spec.unschedulable == new.spec.unschedulable
        ):
            return  # a heartbeat: nothing a DaemonSet decides on changed
        for ds in self._daemonsets.list():
            placement = Placement.of(ds)
            if placement.should_run(old) != placement.should_run(new):
                self.enqueue(ds)

    def _delete_node(self, _obj: Any) -> None:
        # Pods of a node that went are deleted by their DaemonSets' syncs.
        for ds in self._daemonsets.list():
            self.enqueue(ds)

    def _revision_changed(self, obj: Any) -> None:
        revision = deleted_object(obj)
        if revision is None:
            return
        ref = get_controller_of(revision)
        if ref is None or ref.kind != "DaemonSet":
            return
        ds = self._daemonsets.get(revision.metadata.namespace, ref.name)
        if ds is not None and ds.metadata.uid == ref.uid:
            self.enqueue(ds)

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        ds = self._daemonsets.get(namespace, name)
        if ds is None:
            self.expectations.delete(key)
            return
        if selector_from_label_selector(ds.spec.selector).empty():
            self.record(
                ds,
                WARNING,
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required.",
            )
            return
        if ds.metadata.HasField("deletion_timestamp"):
            return
        nodes = self._nodes.list()
        current, old = await self._history.construct(ds)
        revision_hash = current.metadata.labels[REVISION_HASH_LABEL]
        pods = await self._claim(ds)
        if not self.expectations.satisfied(key):
            # Only the counts: this sync did not act on this generation.
            await self._update_status(ds, nodes, pods, revision_hash, observed=False)
            return
        failure: errors.StatusError | None = None
        try:
            await self._manage(key, ds, nodes, pods, revision_hash)
            if self.expectations.satisfied(key) and ds.spec.update_strategy.type != "OnDelete":
                plan = plan_rolling_update(
                    ds, nodes, pods_by_node(pods), revision_hash, self._now()
                )
                await self._sync_nodes(key, ds, plan.delete, plan.create_on, revision_hash)
            live = {p.metadata.labels.get(REVISION_HASH_LABEL, "") for p in pods}
            await self._history.cleanup(ds, old, live - {""})
        except errors.StatusError as e:
            failure = e
        await self._update_status(ds, nodes, pods, revision_hash, observed=True)
        if failure is not None:
            raise failure

    async def _claim(self, ds: DaemonSet) -> list[Pod]:
        """The DaemonSet's pods, but for finished ones already being deleted."""
        index = self._pods.indexer
        candidates = index.by_index(POD_OWNER_INDEX, ds.metadata.uid) + index.by_index(
            POD_OWNER_INDEX, f"orphan/{ds.metadata.namespace}"
        )
        selector = selector_from_label_selector(ds.spec.selector)
        ref = new_controller_ref(ds, "apps/v1", "DaemonSet")

        async def recheck() -> Any:
            return await self._client.get(
                DaemonSet, ds.metadata.name, namespace=ds.metadata.namespace
            )

        manager = ControllerRefManager(self._client, ds, selector, ref, recheck)
        return [
            p
            for p in await manager.claim(candidates)
            if not (_finished(p) and p.metadata.HasField("deletion_timestamp"))
        ]

    async def _manage(
        self, key: str, ds: DaemonSet, nodes: Sequence[Node], pods: Sequence[Pod], rev: str
    ) -> None:
        """Kubernetes' manage: a pod for every node that should have one, none elsewhere."""
        by_node = pods_by_node(pods)
        create_on: list[str] = []
        delete: list[Pod] = []
        known = set()
        placement = Placement.of(ds)
        for node in nodes:
            name = node.metadata.name
            known.add(name)
            should_run, should_continue = placement.should_run(node)
            on_node = by_node.get(name, [])
            if should_run and not on_node:
                create_on.append(name)
            elif should_continue:
                delete += self._surplus_on_node(ds, name, on_node, rev)
            elif on_node:
                delete += [p for p in on_node if not p.metadata.HasField("deletion_timestamp")]
        for name, on_node in by_node.items():
            if name not in known:  # the node is gone (or the pod names none)
                delete += [p for p in on_node if not p.metadata.HasField("deletion_timestamp")]
        await self._sync_nodes(key, ds, delete, create_on, rev)

    def _surplus_on_node(
        self, ds: DaemonSet, node: str, on_node: Sequence[Pod], rev: str
    ) -> list[Pod]:
        """Finished pods, and all running ones but the oldest (per revision, when surging)."""
        delete: list[Pod] = []
        running: list[Pod] = []
        for pod in on_node:
            if pod.metadata.HasField("deletion_timestamp"):
                continue
            if pod.status.phase == "Failed":
                if self._in_failed_backoff(ds, node):
                    continue
                self.record(
                    ds,
                    WARNING,
                    "FailedDaemonPod",
                    f"Found failed daemon pod {pod.metadata.namespace}/{pod.metadata.name} "
                    f"on node {node}, will try to kill it",
                )
                delete.append(pod)
            elif pod.status.phase == "Succeeded":
                delete.append(pod)
            else:
                running.append(pod)
        running.sort(key=_age_and_phase)
        if not _allows_surge(ds):
            return delete + running[1:]
        kept: set[bool] = set()
        for pod in running:
            updated = pod.metadata.labels.get(REVISION_HASH_LABEL) == rev
            if updated in kept:
                delete.append(pod)
            kept.add(updated)
        return delete

    def _in_failed_backoff(self, ds: DaemonSet, node: str) -> bool:
        """Whether a failed pod on `node` must wait; if not, the next wait starts now."""
        key = f"{ds.metadata.uid}/{node}"
        now = self._now()
        last, delay = self._failed_backoff.get(key, (0.0, 0.0))
        if delay and now - last < delay:
            self.enqueue_after(ds, delay - (now - last))
            return True
        delay = _FAILED_BACKOFF_BASE if not delay else min(delay * 2, _FAILED_BACKOFF_MAX)
        self._failed_backoff[key] = (now, delay)
        return False

    async def _sync_nodes(
        self,
        key: str,
        ds: DaemonSet,
        delete: Sequence[Pod],
        create_on: Sequence[str],
        rev: str,
    ) -> None:
        """Creates a pod for each node of `create_on` and deletes `delete`,
        at most `burst_replicas` of each, counted in the expectations."""
        create_on, delete = create_on[: self._burst], delete[: self._burst]
        if not create_on and not delete:
            return
        self.expectations.expect_creations(key, len(create_on))
        self.expectations.expect_deletions(key, [meta_namespace_key(p) for p in delete])
        template = daemon_pod_template(ds, rev)
        ref = new_controller_ref(ds, "apps/v1", "DaemonSet")
        failures: list[errors.StatusError] = []
        for i, node in enumerate(create_on):
            pod = pod_from_template(template, ds, ref)
            with_node_affinity(pod.spec, node)
            try:
                created = await self._client.create(pod)
            except errors.StatusError as e:
                # This pod and those not attempted will never be observed.
                self.expectations.lower_creations(key, len(create_on) - i)
                self.record(ds, WARNING, "FailedCreate", f"Error creating: {e}")
                failures.append(e)
                break
            self.record(ds, NORMAL, "SuccessfulCreate", f"Created pod: {created.metadata.name}")
        for pod in delete:
            try:
                await self._client.delete(Pod, pod.metadata.name, namespace=pod.metadata.namespace)
            except errors.NotFound:
                self.expectations.deletion_observed(key, meta_namespace_key(pod))
            except errors.StatusError as e:
                self.expectations.deletion_observed(key, meta_namespace_key(pod))
                self.record(ds, WARNING, "FailedDelete", f"Error deleting: {e}")
                failures.append(e)
            else:
                self.record(ds, NORMAL, "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")
        log.info(
            "synced nodes",
            extra={
                "controller": self.name,
                "key": key,
                "creations": len(create_on),
                "deletions": len(delete),
            },
        )
        if failures:
            raise failures[0]

    async def _update_status(
        self,
        ds: DaemonSet,
        nodes: Sequence[Node],
        pods: Sequence[Pod],
        rev: str,
        *,
        observed: bool,
    ) -> None:
        status = daemonset_status(ds, nodes, pods, rev, self._now())
        if observed:
            status.observed_generation = ds.metadata.generation
        if ds.spec.min_ready_seconds > 0 and status.number_ready != status.number_available:
            self.enqueue_after(ds, ds.spec.min_ready_seconds)
        if status == ds.status:
            return
        fresh = DaemonSet()
        fresh.CopyFrom(ds)
        fresh.status.CopyFrom(status)
        try:
            await self._client.update_status(fresh)
        except errors.Conflict:
            self.enqueue(ds)  # our copy is stale; retry on the fresh one
        except errors.NotFound:
            return


def _finished(pod: Pod) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


def _allows_surge(ds: DaemonSet) -> bool:
    """Kubernetes' AllowsSurge: a RollingUpdate whose maxSurge scales to more than 0."""
    if ds.spec.update_strategy.type != "RollingUpdate":
        return False
    return rolling_counts(ds, 1)[0] > 0


def _age_and_phase(pod: Pod) -> tuple[float, int]:
    """Oldest first; among equals, Running before Pending (podByCreationTimestampAndPhase)."""
    created = pod.metadata.creation_timestamp
    return created.seconds + created.nanos / 1e9, 0 if pod.status.phase == "Running" else 1


def new_daemonset_controller(ctx: ControllerContext) -> DaemonSetController:
    return DaemonSetController(
        ctx.client,
        ctx.informers.informer(DaemonSet),
        pods_informer_with_owner_index(ctx),
        ctx.cluster_informers.informer(Node),
        ctx.informers.informer(ControllerRevision),
        metrics=ctx.metrics,
        recorder=ctx.events.new_recorder("daemonset-controller"),
    )

"""The scheduler's cache (kube-scheduler's internal/cache): every node with
the pods that use it, including pods the scheduler has chosen a node for
but whose binding has not come back through the watch yet ("assumed").

Contract:
- Assuming a pod counts it on its node at once, so the next pod scheduled a
  millisecond later sees the resources as taken. Binding happens in the
  background; when it fails the scheduler calls `forget_pod` and the node
  gets the resources back. When the bound pod arrives from the informer
  (`add_pod` with spec.nodeName set) the assumption is confirmed: the
  pod's accounting moves to the real object, never counted twice.
- Only pods that hold resources are counted: bound, not finished
  (Succeeded / Failed pods are dropped, as they free their node).
- A node removed takes its NodeInfo away; pods still recorded on it come
  back with the node if it returns.
- A node whose status.allocatable (or capacity) cannot be parsed is kept
  out of `node_infos()` and listed by `invalid_nodes()` with what is wrong,
  logged once per distinct problem; it comes back when an update fixes it.
  A bound pod whose quantities cannot be parsed still counts on its node
  (with no requests) and is logged once. No object makes the cache raise.
- `table()` is the same nodes as columns (framework/node_table.py), in
  the order of `node_infos()`, kept up to date incrementally: every change
  the cache makes to a NodeInfo touches its row.
- Everything happens on the event loop between awaits, so a scheduling
  cycle (which does not await while filtering and scoring) sees a
  consistent picture without the snapshot copy kube-scheduler needs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kpy.scheduler.framework import NodeInfo
from kpy.scheduler.framework.node_table import NodeTable
from kpy.scheduler.resources import invalid_node_quantities, invalid_pod_quantities

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kpy.api.core.v1 import Node, Pod

__all__ = ["Cache", "holds_resources", "pod_key"]

log = logging.getLogger("kpy.scheduler")


def pod_key(pod: Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def holds_resources(pod: Pod) -> bool:
    """Bound and not finished: the pod counts on its node."""
    return bool(pod.spec.node_name) and pod.status.phase not in ("Succeeded", "Failed")


@dataclass(slots=True)
class _PodState:
    pod: Pod
    assumed: bool


class Cache:
    """See the module docstring."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._table = NodeTable()
        self._pods: dict[str, _PodState] = {}
        # Pods recorded on a node the cache does not (or no longer) know.
        self._orphans: dict[str, dict[str, Pod]] = {}
        # Nodes left out because they cannot be parsed: name -> what is wrong.
        self._invalid_nodes: dict[str, str] = {}
        # Bound pods logged for unparsable quantities, so each is logged once.
        self._invalid_pods: dict[str, str] = {}

    # -- nodes ------------------------------------------------------------------------

    def add_node(self, node: Node) -> None:
        name = node.metadata.name
        problems = invalid_node_quantities(node)
        if problems:
            self._set_invalid(name, "; ".join(problems))
            return
        if self._invalid_nodes.pop(name, None) is not None:
            log.info("node usable again", extra={"node": name})
        info = self._nodes.get(name)
        if info is not None:
            info.set_node(node)
            self._table.touch(name)
            return
        info = self._nodes[name] = NodeInfo(node)
        self._table.add(info)
        for pod in self._orphans.pop(name, {}).values():
            info.add_pod(pod)

    update_node = add_node

    def _set_invalid(self, name: str, problem: str) -> None:
        if self._invalid_nodes.get(name) != problem:
            log.error(
                "node left out of scheduling: it cannot be parsed; fix the node's status",
                extra={"node": name, "error": problem},
            )
        self._invalid_nodes[name] = problem
        self._drop_node_info(name)

    def invalid_nodes(self) -> dict[str, str]:
        """Nodes left out of `node_infos()`: name -> what cannot be parsed."""
        return dict(self._invalid_nodes)

    def remove_node(self, name: str) -> None:
        self._invalid_nodes.pop(name, None)
        self._drop_node_info(name)

    def _drop_node_info(self, name: str) -> None:
        info = self._nodes.pop(name, None)
        if info is None:
            return
        self._table.remove(name)
        kept = {pod_key(p): p for p in info.pods}
        if kept:
            self._orphans[name] = kept

    def node(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    def node_infos(self) -> list[NodeInfo]:
        return list(self._nodes.values())

    def table(self) -> NodeTable:
        """The nodes of `node_infos()` as columns, brought up to date."""
        return self._table.refresh()

    def __len__(self) -> int:
        return len(self._nodes)

    # -- pods -------------------------------------------------------------------------

    def add_pod(self, pod: Pod) -> None:
        """A bound pod seen by the informer (confirming an assumption, if any)."""
        key = pod_key(pod)
        state = self._pods.get(key)
        if state is not None:
            self._unaccount(state.pod)
        if not holds_resources(pod):
            self._pods.pop(key, None)
            self._invalid_pods.pop(key, None)
            return
        self._pods[key] = _PodState(pod, assumed=False)
        self._check_quantities(key, pod)
        self._account(pod)

    update_pod = add_pod

    def _check_quantities(self, key: str, pod: Pod) -> None:
        problems = "; ".join(invalid_pod_quantities(pod))
        if not problems:
            self._invalid_pods.pop(key, None)
        elif self._invalid_pods.get(key) != problems:
            self._invalid_pods[key] = problems
            log.error(
                "bound pod counted with no requests: its quantities cannot be parsed",
                extra={"pod": key, "node": pod.spec.node_name, "error": problems},
            )

    def remove_pod(self, pod: Pod) -> None:
        self._invalid_pods.pop(pod_key(pod), None)
        state = self._pods.pop(pod_key(pod), None)
        if state is not None:
            self._unaccount(state.pod)

    def assume_pod(self, pod: Pod) -> None:
        """`pod` (a copy with spec.nodeName set to the chosen node) counts on
        that node until confirmed or forgotten. ValueError if already known."""
        key = pod_key(pod)
        if key in self._pods:
            raise ValueError(f"pod {key} is already in the scheduler cache")
        self._pods[key] = _PodState(pod, assumed=True)
        self._account(pod)

    def forget_pod(self, key: str) -> None:
        """Drops an assumption whose binding failed; a confirmed pod stays."""
        state = self._pods.get(key)
        if state is not None and state.assumed:
            del self._pods[key]
            self._unaccount(state.pod)

    def is_assumed(self, key: str) -> bool:
        state = self._pods.get(key)
        return state is not None and state.assumed

    def __contains__(self, key: str) -> bool:
        return key in self._pods

    def pods(self) -> Iterator[Pod]:
        return (s.pod for s in self._pods.values())

    # -- internals --------------------------------------------------------------------

    def _account(self, pod: Pod) -> None:
        info = self._nodes.get(pod.spec.node_name)
        if info is not None:
            info.add_pod(pod)
            self._table.touch(info.name)
        else:
            self._orphans.setdefault(pod.spec.node_name, {})[pod_key(pod)] = pod

    def _unaccount(self, pod: Pod) -> None:
        info = self._nodes.get(pod.spec.node_name)
        if info is not None:
            info.remove_pod(pod)
            self._table.touch(info.name)
            return
        orphans = self._orphans.get(pod.spec.node_name)
        if orphans is not None:
            orphans.pop(pod_key(pod), None)
            if not orphans:
                del self._orphans[pod.spec.node_name]

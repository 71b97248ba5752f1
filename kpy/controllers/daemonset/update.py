"""A DaemonSet's RollingUpdate, planned (Kubernetes'
pkg/controller/daemon/update.go rollingUpdate): which old pods to delete and
on which nodes to surge a new one, this sync.

- maxSurge 0: an old pod is deleted (and `manage` creates its replacement
  on the next sync) while fewer than maxUnavailable of the desired nodes
  are unavailable; an old pod that is not available anyway may always go.
  A node with both an old and a new pod, or with neither, counts as
  unavailable.
- maxSurge > 0: a new pod is created beside an old one on up to maxSurge
  nodes at once (at once where the old one is not available); once the new
  pod is available the old one is deleted.
- A node with more than one old or new pod is left to `manage`, which
  deletes the extras; it counts as unavailable (or surging).

Planning is pure: the caller creates and deletes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kpy.controllers.daemonset.util import Placement, is_pod_updated, rolling_counts
from kpy.controllers.ownership import is_pod_available

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from kpy.api.apps.v1 import DaemonSet
    from kpy.api.core.v1 import Node, Pod

__all__ = ["Plan", "find_updated_pods_on_node", "plan_rolling_update"]


@dataclass(slots=True)
class Plan:
    delete: list[Pod] = field(default_factory=list)
    create_on: list[str] = field(default_factory=list)


def find_updated_pods_on_node(
    pods: Sequence[Pod], revision_hash: str
) -> tuple[Pod | None, Pod | None, bool]:
    """(new pod, old pod, ok): ok is False when the node has more than one
    of either (pods being deleted do not count)."""
    new: Pod | None = None
    old: Pod | None = None
    for pod in pods:
        if pod.metadata.HasField("deletion_timestamp"):
            continue
        if is_pod_updated(pod, revision_hash):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def plan_rolling_update(
    ds: DaemonSet,
    nodes: Sequence[Node],
    node_pods: Mapping[str, Sequence[Pod]],
    revision_hash: str,
    now: float,
) -> Plan:
    """See the module docstring. `node_pods`: the daemon pods by target node."""
    by_node: dict[str, Sequence[Pod]] = dict(node_pods)
    placement = Placement.of(ds)
    should_run = {n.metadata.name: placement.should_run(n)[0] for n in nodes}
    desired = 0
    for node in nodes:
        if should_run[node.metadata.name]:
            desired += 1
            by_node.setdefault(node.metadata.name, ())
    max_surge, max_unavailable = rolling_counts(ds, desired)
    min_ready = ds.spec.min_ready_seconds
    if max_surge == 0:
        return _replace(by_node, revision_hash, max_unavailable, min_ready, now)
    return _surge(by_node, revision_hash, max_surge, min_ready, now, should_run)


def _replace(
    by_node: Mapping[str, Sequence[Pod]],
    revision_hash: str,
    max_unavailable: int,
    min_ready: int,
    now: float,
) -> Plan:
    unavailable = 0
    always: list[Pod] = []
    candidates: list[Pod] = []
    for name in sorted(by_node):
        new, old, ok = find_updated_pods_on_node(by_node[name], revision_hash)
        if not ok or (new is None) == (old is None):
            unavailable += 1  # manage will create or delete: unavailable meanwhile
        elif new is not None:
            if not is_pod_available(new, min_ready, now):
                unavailable += 1
        elif old is not None:
            if not is_pod_available(old, min_ready, now):
                always.append(old)
            elif unavailable < max_unavailable:
                candidates.append(old)
    room = min(max(max_unavailable - unavailable, 0), len(candidates))
    return Plan(delete=always + candidates[:room])


def _surge(
    by_node: Mapping[str, Sequence[Pod]],
    revision_hash: str,
    max_surge: int,
    min_ready: int,
    now: float,
    should_run: Mapping[str, bool],
) -> Plan:
    plan = Plan()
    surging = 0
    for name in sorted(by_node):
        new, old, ok = find_updated_pods_on_node(by_node[name], revision_hash)
        if not ok:
            surging += 1
        elif old is None:
            continue
        elif new is None:
            if not is_pod_available(old, min_ready, now):
                if should_run.get(name, False):
                    plan.create_on.append(name)
            elif surging < max_surge and should_run.get(name, False):
                surging += 1
                plan.create_on.append(name)
        elif not is_pod_available(new, min_ready, now):
            surging += 1
        else:
            plan.delete.append(old)
    return plan

"""The default profile: the one place that names the in-tree plugins
(kube-scheduler's `apis/config/v1/default_plugins.go`).

The framework knows plugins only through the Profile it is given; this
module sits above both, so neither imports the other's way back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.scheduler import plugins
from kpy.scheduler.framework import DEFAULT_SCHEDULER_NAME, Profile

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from kpy.api.core.v1 import Pod
    from kpy.api.labels import Selector
    from kpy.scheduler.plugins.volume_binding import VolumeSource

__all__ = ["default_profile"]


def default_profile(
    scheduler_name: str = DEFAULT_SCHEDULER_NAME,
    *,
    bind: Callable[[Pod, str], Awaitable[object]] | None = None,
    namespace_labels: Callable[[str], Mapping[str, str] | None] | None = None,
    default_spread_selector: Callable[[Pod], Selector | None] | None = None,
    volumes: VolumeSource | None = None,
    volume_bind_timeout: float = plugins.volume_binding.DEFAULT_BIND_TIMEOUT,
    percentage_of_nodes_to_score: int = 0,
) -> Profile:
    """kube-scheduler's default plugins that kpy implements, in its order, with
    its default weights (TaintToleration 3, NodeAffinity 2, NodeResourcesFit 1,
    PodTopologySpread 2, InterPodAffinity 2, NodeResourcesBalancedAllocation
    1), DefaultPreemption as PostFilter, and DefaultBinder over `bind` when
    given (the scheduler gives the API call). `namespace_labels` answers a
    namespace's labels (for namespaceSelector); `default_spread_selector`
    the selector of a pod's Services and controller (for the default
    topology spread constraints). With `volumes` (claims, volumes and
    classes, and the writes that bind them) VolumeBinding runs too, after
    NodeResourcesFit as in kube-scheduler, waiting at most
    `volume_bind_timeout` seconds for a pod's claims to be bound.
    `percentage_of_nodes_to_score` is kube-scheduler's (0: adaptive, 50% of
    100 nodes falling to 5% at 5,625 nodes, never under 100 nodes; 100:
    every feasible node is scored)."""
    binders = (plugins.DefaultBinder(bind),) if bind is not None else ()
    volume_binding = (
        (plugins.VolumeBinding(volumes, bind_timeout=volume_bind_timeout),)
        if volumes is not None
        else ()
    )
    return Profile.of(
        plugins.NodeUnschedulable(),
        plugins.NodeName(),
        plugins.TaintToleration(),
        plugins.NodeAffinity(),
        plugins.NodePorts(),
        plugins.NodeResourcesFit(),
        *volume_binding,
        plugins.PodTopologySpread(default_spread_selector),
        plugins.InterPodAffinity(namespace_labels),
        plugins.DefaultPreemption(),
        plugins.BalancedAllocation(),
        *binders,
        weights={
            plugins.TaintToleration.name: 3,
            plugins.NodeAffinity.name: 2,
            plugins.NodeResourcesFit.name: 1,
            plugins.PodTopologySpread.name: 2,
            plugins.InterPodAffinity.name: 2,
            plugins.BalancedAllocation.name: 1,
        },
        scheduler_name=scheduler_name,
        percentage_of_nodes_to_score=percentage_of_nodes_to_score,
        # Node-local plugins' verdicts are remembered per pod class; the
        # cluster-wide ones (inter-pod affinity, topology spread) run every time.
        equivalence_cache=True,
    )

"""kpy's in-tree scheduler plugins, one per module, each a port of the
kube-scheduler plugin of the same name (files under
kubernetes/pkg/scheduler/framework/plugins/). Each module exports `NAME`
(Kubernetes' plugin name, also the class's `name`) and its reasons, worded
as Kubernetes words them, so that kube-scheduler's messages come out
unchanged.

- node_unschedulable: NodeUnschedulable; Filter.
  Mirrors nodeunschedulable/node_unschedulable.go.
- node_name: NodeName; Filter. Mirrors nodename/node_name.go.
- taint_toleration: TaintToleration; Filter, PreScore, Score, NormalizeScore.
  Mirrors tainttoleration/taint_toleration.go and v1 Toleration.ToleratesTaint.
- node_affinity: NodeAffinity; PreFilter, Filter, PreScore, Score,
  NormalizeScore. Mirrors nodeaffinity/node_affinity.go and
  component-helpers/scheduling/corev1/nodeaffinity/nodeaffinity.go.
- node_ports: NodePorts; PreFilter, Filter. Mirrors nodeports/node_ports.go
  and the HostPortInfo of framework/types.go.
- node_resources_fit: NodeResourcesFit with the LeastAllocated scoring
  strategy; PreFilter, Filter, PreScore, Score. Mirrors noderesources/fit.go,
  least_allocated.go and resource_allocation.go.
- pod_topology_spread: PodTopologySpread; PreFilter, Filter, PreScore,
  Score, NormalizeScore, with the system default constraints. Mirrors
  podtopologyspread/filtering.go, scoring.go and common.go. Cluster-wide.
- inter_pod_affinity: InterPodAffinity; PreFilter, Filter, PreScore, Score,
  NormalizeScore. Mirrors interpodaffinity/filtering.go and scoring.go.
  Cluster-wide (`cluster_wide = True`): left out of the equivalence cache.
- default_preemption: DefaultPreemption; PostFilter. Mirrors
  defaultpreemption/default_preemption.go and framework/preemption; it
  picks the node and the victims, the scheduler evicts them.
- balanced_allocation: NodeResourcesBalancedAllocation; PreScore, Score.
  Mirrors noderesources/balanced_allocation.go and resource_allocation.go.
- volume_binding: VolumeBinding; PreFilter, Filter, Reserve, PreBind.
  Mirrors volumebinding/volume_binding.go and binder.go; it reads claims,
  volumes and classes, and binds them, through a VolumeSource the
  scheduler hands it. Cluster-wide (its verdicts follow volumes, not nodes).
- default_binder: DefaultBinder; Bind. Mirrors defaultbinder/default_binder.go;
  the scheduler hands it the API call, so plugins never import the client.

The plugin classes are re-exported here. Plugins keep no per-pod state
between calls: what they derive from the pod lives in the CycleState
(written by PreFilter/PreScore, recomputed by Filter/Score if those were not
run, except where Kubernetes reports an error instead), and what they derive
from a node lives in `NodeInfo.node_cache`. The one exception is
VolumeBinding's assume cache: the volumes and claims promised to a pod
from its Reserve until the API shows them bound (or its Unreserve), so
that the next pod does not take them meanwhile. Score plugins also offer
`score_nodes` (many nodes per call, same results), which the framework
prefers. `kpy.scheduler.profiles.default_profile()` lists them in
kube-scheduler's order with its default score weights.
"""

from kpy.scheduler.plugins.balanced_allocation import BalancedAllocation
from kpy.scheduler.plugins.default_binder import DefaultBinder
from kpy.scheduler.plugins.default_preemption import DefaultPreemption
from kpy.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from kpy.scheduler.plugins.node_affinity import NodeAffinity
from kpy.scheduler.plugins.node_name import NodeName
from kpy.scheduler.plugins.node_ports import NodePorts
from kpy.scheduler.plugins.node_resources_fit import NodeResourcesFit
from kpy.scheduler.plugins.node_unschedulable import NodeUnschedulable
from kpy.scheduler.plugins.pod_topology_spread import PodTopologySpread
from kpy.scheduler.plugins.taint_toleration import TaintToleration
from kpy.scheduler.plugins.volume_binding import VolumeBinding

__all__ = [
    "BalancedAllocation",
    "DefaultBinder",
    "DefaultPreemption",
    "InterPodAffinity",
    "NodeAffinity",
    "NodeName",
    "NodePorts",
    "NodeResourcesFit",
    "NodeUnschedulable",
    "PodTopologySpread",
    "TaintToleration",
    "VolumeBinding",
]

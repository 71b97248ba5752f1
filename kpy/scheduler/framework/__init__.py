"""The scheduling framework, laid out as kube-scheduler's
`pkg/scheduler/framework`:

- `status`: Code, Status, PluginError (interface.go's status half).
- `cycle_state`: CycleState, one pod's scratch data from PreFilter to Bind.
- `types`: NodeInfo and HostPortInfo, the scheduler's record of a node.
- `interface`: the extension-point protocols and what they return.
- `profile`: Profile, which plugins run where, with which weights.
- `runtime`: Framework, which runs a Profile's plugins over the nodes.
- `node_table`: NodeTable, the nodes as numpy columns, kept up to date
  incrementally, for the vectorised `Framework.schedule_table`.
- `equivalence`: the per-pod-class cache the runtime wraps node-local
  filters and scores in when the profile asks for it.
- `fit_error`: Diagnosis and "0/N nodes are available: ...".
- `normalize_score`: the helper most Score plugins normalize with.

Plugins import from this package and the package never imports a plugin:
`kpy.scheduler.profiles` lists the in-tree ones. Contracts:

- A plugin is any object with a `name` and one or more extension-point
  methods (`pre_filter`, `filter`, `post_filter`, `pre_score`, `score`,
  optionally `score_nodes` and `normalize_score`, `reserve` with
  `unreserve`, `pre_bind`, `bind`). A Filter or Score plugin may also
  offer its table form (`filter_table`, `score_table`: every node of a
  NodeTable in one call, the same verdicts and scores), which
  `Framework.schedule_table` prefers; without it the plugin runs per node.
- Plugins return a `Status`; success is `SUCCESS` (code 0, so `if
  status.code` means "not a success"). The framework stamps the failing
  plugin's name on the status it reports.
- Pods and Nodes given to the framework are shared with informer caches
  and are never mutated. `NodeInfo` is the scheduler's own mutable record;
  it is not thread-safe.
"""

from kpy.scheduler.framework.cycle_state import CycleState
from kpy.scheduler.framework.fit_error import NO_NODES_AVAILABLE, Diagnosis, fit_error_message
from kpy.scheduler.framework.interface import (
    MAX_NODE_SCORE,
    MIN_NODE_SCORE,
    BatchScorePlugin,
    BindPlugin,
    FilterPlugin,
    FilterTablePlugin,
    NodeScore,
    NormalizeScorePlugin,
    Plugin,
    PostFilterPlugin,
    PostFilterResult,
    PreBindPlugin,
    PreFilterPlugin,
    PreFilterResult,
    PreScorePlugin,
    ReservePlugin,
    ScorePlugin,
    ScoreTablePlugin,
    is_cluster_wide,
)
from kpy.scheduler.framework.node_table import BoolArray, IntArray, NodeTable
from kpy.scheduler.framework.normalize_score import default_normalize_score, default_normalize_table
from kpy.scheduler.framework.profile import DEFAULT_SCHEDULER_NAME, Profile
from kpy.scheduler.framework.runtime import Framework, ScheduleResult, ScoredNode
from kpy.scheduler.framework.status import (
    SUCCESS,
    Code,
    PluginError,
    Status,
    as_status,
    new_status,
)
from kpy.scheduler.framework.types import (
    DEFAULT_BIND_ALL_HOST_IP,
    HostPort,
    HostPortInfo,
    NodeInfo,
    pod_host_ports,
    pod_key,
)

__all__ = [
    "DEFAULT_BIND_ALL_HOST_IP",
    "DEFAULT_SCHEDULER_NAME",
    "MAX_NODE_SCORE",
    "MIN_NODE_SCORE",
    "NO_NODES_AVAILABLE",
    "SUCCESS",
    "BatchScorePlugin",
    "BindPlugin",
    "BoolArray",
    "Code",
    "CycleState",
    "Diagnosis",
    "FilterPlugin",
    "FilterTablePlugin",
    "Framework",
    "HostPort",
    "HostPortInfo",
    "IntArray",
    "NodeInfo",
    "NodeScore",
    "NodeTable",
    "NormalizeScorePlugin",
    "Plugin",
    "PluginError",
    "PostFilterPlugin",
    "PostFilterResult",
    "PreBindPlugin",
    "PreFilterPlugin",
    "PreFilterResult",
    "PreScorePlugin",
    "Profile",
    "ReservePlugin",
    "ScheduleResult",
    "ScorePlugin",
    "ScoreTablePlugin",
    "ScoredNode",
    "Status",
    "as_status",
    "default_normalize_score",
    "default_normalize_table",
    "fit_error_message",
    "is_cluster_wide",
    "new_status",
    "pod_host_ports",
    "pod_key",
]

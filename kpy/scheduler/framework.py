"""The scheduling framework: plugin protocols, per-cycle state, node
bookkeeping, and the Framework that runs a Profile's plugins over nodes
(kube-scheduler's `framework/interface.go`, `framework/types.go` and
`framework/runtime/framework.go`).

Contract:

- A plugin is any object with a `name` and one or more extension-point
  methods (`pre_filter`, `filter`, `post_filter`, `pre_score`, `score`,
  optionally `normalize_score`). Binding is not a plugin here: the scheduler
  binds. The framework knows plugins only through the Profile that lists them;
  `default_profile()` is the one place that names the in-tree ones.
- One scheduling cycle = one pod = one `CycleState`. PreFilter and PreScore
  compute what depends only on the pod and store it in the state under a key
  of their own; Filter and Score then run once per node and must be cheap.
  A PreFilter (or PreScore) that returns Skip switches its plugin's Filter
  (or Score) off for this cycle.
- Plugins return a `Status`; success is `SUCCESS` (code 0, so `if status.code`
  means "not a success"). Statuses are values: compare them with `==`. The
  framework stamps the failing plugin's name on the status it reports.
- Filter plugins run in profile order and the first rejection decides a node
  (later filters are not run), as in Kubernetes. `CycleState.all_nodes`
  holds every node of the cycle, for plugins that count pods cluster-wide;
  such plugins set `cluster_wide = True` and the equivalence cache never
  remembers their verdicts (they run after the node-local filters there).
- PostFilter plugins (preemption) get the framework through
  `bind_framework`, to re-run filters on a node with pods removed
  (`filter_node_with`); they propose, the scheduler acts. `find_nodes_that_fit` stops
  once it has found kube-scheduler's number of feasible nodes (all of them
  below 100 nodes; about 42% of 1,000), starting each search where the last
  one stopped, unless `find_all=True`.
- Scores: each plugin's scores are normalized (when it has
  `normalize_score`) to 0..MAX_NODE_SCORE, checked to be in that range, then
  multiplied by the plugin's weight and summed per node. `select_host` picks
  the highest total, breaking ties uniformly at random (reservoir sampling).
- A plugin's Error (not a rejection) is a bug or an outage, not an answer:
  the aggregate runners (`find_nodes_that_fit`, `run_score`, `schedule_pod`)
  raise `PluginError` carrying the status.
- Pods and Nodes given to the framework are shared with informer caches and
  are never mutated. `NodeInfo` is the scheduler's own mutable record of a
  node and the pods assigned (or assumed) to it; it is not thread-safe.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol, TypeVar, runtime_checkable

from kpy.api.core.v1 import Node
from kpy.scheduler.equivalence import EquivalenceCache
from kpy.scheduler.resources import (
    PodResource,
    Resource,
    compute_pod_resource,
    node_allocatable,
)

if TYPE_CHECKING:
    import random
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

    from kpy.api.core.v1 import Pod
    from kpy.api.labels import Selector

__all__ = [
    "DEFAULT_BIND_ALL_HOST_IP",
    "DEFAULT_SCHEDULER_NAME",
    "MAX_NODE_SCORE",
    "MIN_NODE_SCORE",
    "NO_NODES_AVAILABLE",
    "SUCCESS",
    "BatchScorePlugin",
    "Code",
    "CycleState",
    "Diagnosis",
    "FilterPlugin",
    "Framework",
    "HostPortInfo",
    "NodeInfo",
    "NodeScore",
    "NormalizeScorePlugin",
    "Plugin",
    "PluginError",
    "PostFilterPlugin",
    "PostFilterResult",
    "PreFilterPlugin",
    "PreFilterResult",
    "PreScorePlugin",
    "Profile",
    "ScheduleResult",
    "ScorePlugin",
    "ScoredNode",
    "Status",
    "as_status",
    "default_normalize_score",
    "default_profile",
    "fit_error_message",
    "is_cluster_wide",
    "new_status",
    "pod_host_ports",
    "pod_key",
]

MAX_NODE_SCORE: Final = 100
MIN_NODE_SCORE: Final = 0
DEFAULT_SCHEDULER_NAME: Final = "default-scheduler"
DEFAULT_BIND_ALL_HOST_IP: Final = "0.0.0.0"
#: kube-scheduler's ErrNoNodesAvailable, for a cluster with no nodes at all.
NO_NODES_AVAILABLE: Final = "no nodes available to schedule pods"

# kube-scheduler's numFeasibleNodesToFind constants.
_MIN_FEASIBLE_NODES_TO_FIND: Final = 100
_MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: Final = 5


# --- Status ---


class Code(IntEnum):
    """A plugin's verdict (Kubernetes' framework.Code values)."""

    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    SKIP = 5


@dataclass(frozen=True, slots=True)
class Status:
    """The outcome of running a plugin: a code, the reasons shown to users,
    and the plugin that produced it (set by the framework)."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    def is_success(self) -> bool:
        return self.code is Code.SUCCESS

    def is_skip(self) -> bool:
        return self.code is Code.SKIP

    def is_rejected(self) -> bool:
        """Unschedulable or UnschedulableAndUnresolvable: a "no", not an error."""
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def message(self) -> str:
        return ", ".join(self.reasons)

    def with_plugin(self, plugin: str) -> Status:
        return self if self.plugin == plugin else replace(self, plugin=plugin)


SUCCESS: Final = Status()


def new_status(code: Code, *reasons: str) -> Status:
    """Kubernetes' NewStatus."""
    return Status(code, reasons)


def as_status(err: BaseException) -> Status:
    """An Error status carrying the exception's message (Kubernetes' AsStatus)."""
    return Status(Code.ERROR, (str(err),))


class PluginError(Exception):
    """A plugin failed with an Error status (not a rejection) while the
    framework ran it; `status` says which plugin and why."""

    def __init__(self, status: Status) -> None:
        super().__init__(status.message())
        self.status = status


# --- per-cycle state ---


class CycleState:
    """Scratch data for one scheduling cycle, keyed by plugin-chosen strings
    (by convention "PreFilter<PluginName>" and "PreScore<PluginName>"), and
    the plugins switched off for this cycle by a Skip."""

    __slots__ = ("_data", "all_nodes", "skip_filter_plugins", "skip_score_plugins")

    def __init__(self) -> None:
        self._data: dict[str, object] = {}
        self.skip_filter_plugins: set[str] = set()
        self.skip_score_plugins: set[str] = set()
        #: every node of the cycle's snapshot (set by the framework before
        #: PreFilter), for plugins that count pods cluster-wide (inter-pod
        #: affinity, topology spread) while Filter and Score see one node.
        self.all_nodes: Sequence[NodeInfo] = ()

    def read(self, key: str) -> object:
        """The value written under `key`; KeyError if none was."""
        return self._data[key]

    def get(self, key: str) -> object | None:
        return self._data.get(key)

    def write(self, key: str, value: object) -> None:
        self._data[key] = value

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def clone(self) -> CycleState:
        """A shallow copy: values are shared, as Kubernetes' do when their
        Clone() returns themselves."""
        other = CycleState()
        other._data = dict(self._data)
        other.skip_filter_plugins = set(self.skip_filter_plugins)
        other.skip_score_plugins = set(self.skip_score_plugins)
        other.all_nodes = self.all_nodes
        return other


# --- node bookkeeping ---

HostPort = tuple[str, str, int]
_K = TypeVar("_K")


def _sanitize(ip: str, protocol: str) -> tuple[str, str]:
    return ip or DEFAULT_BIND_ALL_HOST_IP, protocol or "TCP"


def pod_host_ports(pod: Pod) -> tuple[HostPort, ...]:
    """The (hostIP, protocol, hostPort) triples a pod takes on its node: ports
    with hostPort > 0 of app containers and sidecar init containers, with an
    empty IP read as 0.0.0.0 and an empty protocol as TCP."""
    ports: list[HostPort] = []
    spec = pod.spec
    containers = [
        *spec.containers,
        *(c for c in spec.init_containers if c.restart_policy == "Always"),
    ]
    for container in containers:
        for p in container.ports:
            if p.host_port > 0:
                ip, protocol = _sanitize(p.host_ip, p.protocol)
                ports.append((ip, protocol, p.host_port))
    return tuple(ports)


class HostPortInfo:
    """Host ports in use on a node, counted per pod so that removing one of
    two pods that share a port leaves it in use. 0.0.0.0 conflicts with
    every IP on the same (protocol, port), as in Kubernetes' HostPortInfo."""

    __slots__ = ("_by_ip", "_by_port")

    def __init__(self) -> None:
        self._by_ip: dict[HostPort, int] = {}
        self._by_port: dict[tuple[str, int], int] = {}

    def add(self, ip: str, protocol: str, port: int) -> None:
        if port <= 0:
            return
        ip, protocol = _sanitize(ip, protocol)
        key = (ip, protocol, port)
        self._by_ip[key] = self._by_ip.get(key, 0) + 1
        self._by_port[protocol, port] = self._by_port.get((protocol, port), 0) + 1

    def remove(self, ip: str, protocol: str, port: int) -> None:
        if port <= 0:
            return
        ip, protocol = _sanitize(ip, protocol)
        _decrement(self._by_ip, (ip, protocol, port))
        _decrement(self._by_port, (protocol, port))

    def check_conflict(self, ip: str, protocol: str, port: int) -> bool:
        """Whether (ip, protocol, port) is already taken on this node."""
        if port <= 0:
            return False
        ip, protocol = _sanitize(ip, protocol)
        if ip == DEFAULT_BIND_ALL_HOST_IP:
            return (protocol, port) in self._by_port
        by_ip = self._by_ip
        return (ip, protocol, port) in by_ip or (DEFAULT_BIND_ALL_HOST_IP, protocol, port) in by_ip

    def clone(self) -> HostPortInfo:
        other = HostPortInfo()
        other._by_ip = dict(self._by_ip)
        other._by_port = dict(self._by_port)
        return other

    def __len__(self) -> int:
        return len(self._by_ip)


def _decrement(counts: dict[_K, int], key: _K) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def pod_key(pod: Pod) -> str:
    """How NodeInfo tells pods apart: the UID, else namespace/name."""
    meta = pod.metadata
    if meta.uid:
        return meta.uid
    return f"{meta.namespace}/{meta.name}" if meta.name else ""


_generation = itertools.count(1)


def _assigned_pod_resource(pod: Pod) -> PodResource:
    # A pod already on a node whose quantities cannot be parsed (stored
    # before the API server refused them) still takes its place there, with
    # requests of nothing: the scheduler cannot know more, and must not die
    # of it. The cache logs such pods when they arrive.
    try:
        return compute_pod_resource(pod)
    except ValueError:
        return PodResource(Resource(), 0, 0)


@dataclass(frozen=True, slots=True)
class _PodEntry:
    pod: Pod
    resource: PodResource
    ports: tuple[HostPort, ...]
    # Any pod (anti-)affinity at all; required anti-affinity in particular.
    affinity: bool
    required_anti_affinity: bool


def _affinity_flags(pod: Pod) -> tuple[bool, bool]:
    if not pod.spec.HasField("affinity"):
        return False, False
    a = pod.spec.affinity
    has_affinity = a.HasField("pod_affinity") or a.HasField("pod_anti_affinity")
    required_anti = bool(a.pod_anti_affinity.required_during_scheduling_ignored_during_execution)
    return has_affinity, required_anti


class NodeInfo:
    """A node and the pods on it, with what they request cached.

    - `requested`: the sum of the pods' effective requests (what filtering
      compares with `allocatable`); `non_zero_requested`: the same cpu and
      memory with kube-scheduler's non-zero defaults (what scoring counts).
    - `allocatable`: `status.allocatable` (or capacity when empty), including
      `allowed_pod_number` from "pods".
    - `used_ports`: host ports taken by the pods.
    - `pods_with_affinity`, `pods_with_required_anti_affinity`: how many of
      the pods have pod (anti-)affinity, so inter-pod affinity visits only
      the nodes that hold such pods.
    - `name` and `labels` are copied from the node once, because reading a
      protobuf field costs more than a dict lookup and filters read them for
      every pod; `node_cache` holds what plugins derive from the node (parsed
      taints, say) and is emptied whenever the node changes.
    - `generation` changes on every mutation, so a snapshot can tell what
      moved.

    Pods are keyed by UID (else namespace/name; else the object's identity);
    adding a pod whose key is present replaces it.
    """

    __slots__ = (
        "_pods",
        "allocatable",
        "generation",
        "labels",
        "name",
        "node",
        "node_cache",
        "non_zero_requested",
        "pods_with_affinity",
        "pods_with_required_anti_affinity",
        "requested",
        "used_ports",
    )

    node: Node
    name: str
    labels: dict[str, str]
    allocatable: Resource
    node_cache: dict[str, object]

    def __init__(self, node: Node | None = None, pods: Iterable[Pod] = ()) -> None:
        self._pods: dict[str, _PodEntry] = {}
        self.pods_with_affinity = 0
        self.pods_with_required_anti_affinity = 0
        self.requested = Resource()
        self.non_zero_requested = Resource()
        self.used_ports = HostPortInfo()
        self.generation = next(_generation)
        self.set_node(node if node is not None else Node())
        for pod in pods:
            self.add_pod(pod)

    def set_node(self, node: Node) -> None:
        self.node = node
        self.name = node.metadata.name
        self.labels = dict(node.metadata.labels)
        self.allocatable = node_allocatable(node)
        self.node_cache = {}
        self.generation = next(_generation)

    @property
    def pods(self) -> list[Pod]:
        return [entry.pod for entry in self._pods.values()]

    @property
    def pod_count(self) -> int:
        return len(self._pods)

    def has_pod(self, pod: Pod) -> bool:
        return self._key(pod) in self._pods

    def add_pod(self, pod: Pod) -> None:
        key = self._key(pod)
        if key in self._pods:
            self._forget(self._pods.pop(key))
        entry = _PodEntry(
            pod, _assigned_pod_resource(pod), pod_host_ports(pod), *_affinity_flags(pod)
        )
        self._pods[key] = entry
        self.pods_with_affinity += entry.affinity
        self.pods_with_required_anti_affinity += entry.required_anti_affinity
        self.requested.add_resource(entry.resource.resource)
        self.non_zero_requested.milli_cpu += entry.resource.non_zero_milli_cpu
        self.non_zero_requested.memory += entry.resource.non_zero_memory
        for ip, protocol, port in entry.ports:
            self.used_ports.add(ip, protocol, port)
        self.generation = next(_generation)

    def remove_pod(self, pod: Pod) -> bool:
        """Take the pod off the node; False if it was not there."""
        entry = self._pods.pop(self._key(pod), None)
        if entry is None:
            return False
        self._forget(entry)
        self.generation = next(_generation)
        return True

    def clone(self) -> NodeInfo:
        """An independent copy (pods and node objects shared, not copied)."""
        other = NodeInfo.__new__(NodeInfo)
        other._pods = dict(self._pods)
        other.pods_with_affinity = self.pods_with_affinity
        other.pods_with_required_anti_affinity = self.pods_with_required_anti_affinity
        other.requested = self.requested.clone()
        other.non_zero_requested = self.non_zero_requested.clone()
        other.used_ports = self.used_ports.clone()
        other.generation = self.generation
        other.node = self.node
        other.name = self.name
        other.labels = self.labels
        other.allocatable = self.allocatable
        other.node_cache = self.node_cache
        return other

    def _forget(self, entry: _PodEntry) -> None:
        self.pods_with_affinity -= entry.affinity
        self.pods_with_required_anti_affinity -= entry.required_anti_affinity
        self.requested.add_resource(entry.resource.resource, -1)
        self.non_zero_requested.milli_cpu -= entry.resource.non_zero_milli_cpu
        self.non_zero_requested.memory -= entry.resource.non_zero_memory
        for ip, protocol, port in entry.ports:
            self.used_ports.remove(ip, protocol, port)

    @staticmethod
    def _key(pod: Pod) -> str:
        # Anonymous pods (tests build them) must not collide with each other.
        return pod_key(pod) or f"@{id(pod)}"

    def __repr__(self) -> str:
        return f"NodeInfo({self.name!r}, pods={len(self._pods)})"


# --- results ---


@dataclass(frozen=True, slots=True)
class PreFilterResult:
    """Nodes a PreFilter plugin already knows are the only candidates;
    None means every node."""

    node_names: frozenset[str] | None = None

    def all_nodes(self) -> bool:
        return self.node_names is None

    def merge(self, other: PreFilterResult | None) -> PreFilterResult | None:
        """The intersection of two results (None and all-nodes are neutral)."""
        if other is None or other.node_names is None:
            return self if self.node_names is not None else None
        if self.node_names is None:
            return other
        return PreFilterResult(self.node_names & other.node_names)


@dataclass(frozen=True, slots=True)
class PostFilterResult:
    """A PostFilter plugin's proposal: the node preemption makes room on
    ("" clears a nomination), and the pods to evict for it (the scheduler
    evicts them: plugins do not call the API)."""

    nominated_node_name: str = ""
    victims: tuple[Pod, ...] = ()


@dataclass(slots=True)
class NodeScore:
    """One node's score from one plugin; NormalizeScore rewrites `score`."""

    name: str
    score: int


class ScoredNode(NamedTuple):
    node_info: NodeInfo
    score: int


class Diagnosis(dict[str, Status]):
    """Why nodes were rejected: node name -> the status of the plugin that
    rejected it (nodes that passed are absent). Also the PreFilter message
    when PreFilter rejected the pod outright (every node then carries that
    status), a PostFilter message, and the plugins that rejected anything."""

    def __init__(self) -> None:
        super().__init__()
        self.pre_filter_msg = ""
        self.post_filter_msg = ""
        self.unschedulable_plugins: set[str] = set()


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    """The outcome of `Framework.schedule_pod`: the chosen node (None when the
    pod fits nowhere; then `fit_error_message(num_nodes, diagnosis)` says why),
    how many nodes were looked at, and how many fit."""

    node_info: NodeInfo | None
    evaluated_nodes: int
    feasible_nodes: int
    diagnosis: Diagnosis


# --- plugin protocols ---


@runtime_checkable
class Plugin(Protocol):
    @property
    def name(self) -> str:
        """Kubernetes' plugin name, e.g. "NodeAffinity"."""
        ...


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status]:
        """Compute per-pod data once per cycle. Skip turns this plugin's
        Filter off; a rejection rejects the pod on every node."""
        ...


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status:
        """Whether the pod may run on this node. Runs per node: keep it cheap."""
        ...


@runtime_checkable
class PostFilterPlugin(Plugin, Protocol):
    def post_filter(
        self, state: CycleState, pod: Pod, diagnosis: Diagnosis
    ) -> tuple[PostFilterResult | None, Status]:
        """Try to make an unschedulable pod schedulable (e.g. preemption)."""
        ...


@runtime_checkable
class PreScorePlugin(Plugin, Protocol):
    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status:
        """Compute per-pod scoring data; Skip turns this plugin's Score off."""
        ...


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status]:
        """A raw score for the node; within 0..MAX_NODE_SCORE unless the plugin
        also normalizes."""
        ...


@runtime_checkable
class BindPlugin(Plugin, Protocol):
    async def bind(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        """Bind the pod to the node; Skip lets the next bind plugin try. A
        failure is raised (the API's error), so the scheduler can tell a pod
        bound elsewhere from one to retry."""
        ...


@runtime_checkable
class BatchScorePlugin(ScorePlugin, Protocol):
    def score_nodes(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[list[int], Status]:
        """`score` for many nodes in one call, with the same results; the
        framework prefers it, sparing a call and a state lookup per node."""
        ...


@runtime_checkable
class NormalizeScorePlugin(ScorePlugin, Protocol):
    def normalize_score(self, state: CycleState, pod: Pod, scores: list[NodeScore]) -> Status:
        """Rewrite every `scores[i].score` into 0..MAX_NODE_SCORE, in place."""
        ...


def _go_div(a: int, b: int) -> int:
    # Go's integer division truncates toward zero; Python's floors.
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def default_normalize_score(max_priority: int, reverse: bool, scores: list[NodeScore]) -> Status:
    """Scale scores so the highest becomes `max_priority` (and, if `reverse`,
    flip them), as Kubernetes' helper.DefaultNormalizeScore does."""
    max_count = max((s.score for s in scores), default=0)
    if max_count <= 0:
        if reverse:
            for s in scores:
                s.score = max_priority
        return SUCCESS
    for s in scores:
        score = _go_div(max_priority * s.score, max_count)
        s.score = max_priority - score if reverse else score
    return SUCCESS


# --- profile ---


@dataclass(frozen=True, slots=True)
class Profile:
    """The plugins one scheduler name runs, in order, per extension point;
    score weights by plugin name (default 1); and kube-scheduler's
    percentageOfNodesToScore (0 = adaptive)."""

    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    pre_filter: tuple[PreFilterPlugin, ...] = ()
    filter: tuple[FilterPlugin, ...] = ()
    post_filter: tuple[PostFilterPlugin, ...] = ()
    pre_score: tuple[PreScorePlugin, ...] = ()
    score: tuple[ScorePlugin, ...] = ()
    bind: tuple[BindPlugin, ...] = ()
    score_weights: Mapping[str, int] = field(default_factory=dict)
    percentage_of_nodes_to_score: int = 0
    #: reuse node verdicts across pods of one class (kpy.scheduler.equivalence);
    #: plugins marked `cluster_wide` (they look beyond one node) are left out of it.
    equivalence_cache: bool = False

    def __post_init__(self) -> None:
        for point, plugins in (
            ("preFilter", self.pre_filter),
            ("filter", self.filter),
            ("postFilter", self.post_filter),
            ("preScore", self.pre_score),
            ("score", self.score),
            ("bind", self.bind),
        ):
            names = [p.name for p in plugins]
            if len(set(names)) != len(names):
                raise ValueError(f"profile {self.scheduler_name!r}: {point} lists a plugin twice")
        for name, weight in self.score_weights.items():
            if weight <= 0:
                raise ValueError(
                    f"profile {self.scheduler_name!r}: score weight of {name} must be positive"
                )
        if not 0 <= self.percentage_of_nodes_to_score <= 100:
            raise ValueError("percentage_of_nodes_to_score must be within 0..100")

    @classmethod
    def of(
        cls,
        *plugins: Plugin,
        weights: Mapping[str, int] | None = None,
        scheduler_name: str = DEFAULT_SCHEDULER_NAME,
        percentage_of_nodes_to_score: int = 0,
        equivalence_cache: bool = False,
    ) -> Profile:
        """Each plugin at every extension point it implements, in the order
        given (kube-scheduler's multiPoint)."""
        return cls(
            scheduler_name=scheduler_name,
            pre_filter=tuple(p for p in plugins if isinstance(p, PreFilterPlugin)),
            filter=tuple(p for p in plugins if isinstance(p, FilterPlugin)),
            post_filter=tuple(p for p in plugins if isinstance(p, PostFilterPlugin)),
            pre_score=tuple(p for p in plugins if isinstance(p, PreScorePlugin)),
            score=tuple(p for p in plugins if isinstance(p, ScorePlugin)),
            bind=tuple(p for p in plugins if isinstance(p, BindPlugin)),
            score_weights=dict(weights or {}),
            percentage_of_nodes_to_score=percentage_of_nodes_to_score,
            equivalence_cache=equivalence_cache,
        )

    def weight(self, plugin_name: str) -> int:
        return self.score_weights.get(plugin_name, 1)


def default_profile(
    scheduler_name: str = DEFAULT_SCHEDULER_NAME,
    *,
    bind: Callable[[Pod, str], Awaitable[object]] | None = None,
    namespace_labels: Callable[[str], Mapping[str, str] | None] | None = None,
    default_spread_selector: Callable[[Pod], Selector | None] | None = None,
) -> Profile:
    """kube-scheduler's default plugins that kpy implements, in its order, with
    its default weights (TaintToleration 3, NodeAffinity 2, NodeResourcesFit 1,
    PodTopologySpread 2, InterPodAffinity 2, NodeResourcesBalancedAllocation
    1), DefaultPreemption as PostFilter, and DefaultBinder over `bind` when
    given (the scheduler gives the API call). `namespace_labels` answers a
    namespace's labels (for namespaceSelector); `default_spread_selector`
    the selector of a pod's Services and controller (for the default
    topology spread constraints)."""
    # Imported here: the plugins import this module for Status and NodeInfo.
    from kpy.scheduler import plugins

    binders = (plugins.DefaultBinder(bind),) if bind is not None else ()
    return Profile.of(
        plugins.NodeUnschedulable(),
        plugins.NodeName(),
        plugins.TaintToleration(),
        plugins.NodeAffinity(),
        plugins.NodePorts(),
        plugins.NodeResourcesFit(),
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
        # Node-local plugins' verdicts are remembered per pod class; the
        # cluster-wide ones (inter-pod affinity) are run every time.
        equivalence_cache=True,
    )


# --- the framework ---


class Framework:
    """Runs one Profile's plugins. See the module docstring for the contract.

    Typical cycle (what `schedule_pod` does)::

        state = CycleState()
        feasible, diagnosis = fw.find_nodes_that_fit(pod, node_infos, state=state)
        fw.run_pre_score(state, pod, feasible)
        host = fw.select_host(fw.run_score(state, pod, feasible), rng)
    """

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._filters: list[tuple[str, Callable[[CycleState, Pod, NodeInfo], Status]]] = [
            (p.name, p.filter) for p in profile.filter
        ]
        self._cluster_wide = {p.name for p in profile.filter if is_cluster_wide(p)} | {
            p.name for p in profile.score if is_cluster_wide(p)
        }
        self._scores = [
            (
                p.name,
                p.score_nodes if isinstance(p, BatchScorePlugin) else _one_by_one(p),
                p.normalize_score if isinstance(p, NormalizeScorePlugin) else None,
                profile.weight(p.name),
            )
            for p in profile.score
        ]
        # Where the next search starts, so successive pods spread over nodes.
        self._next_start_node_index = 0
        self.equivalence = EquivalenceCache() if profile.equivalence_cache else None
        # Plugins that need the framework itself (preemption re-runs filters)
        # get it here, as kube-scheduler hands plugins a Handle.
        for plugin in profile.post_filter:
            bind_framework = getattr(plugin, "bind_framework", None)
            if bind_framework is not None:
                bind_framework(self)

    # --- PreFilter / Filter / PostFilter ---

    def run_pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo] = ()
    ) -> tuple[PreFilterResult | None, Status]:
        """Run every PreFilter plugin; record Skips in the state; merge the
        node sets they return. Stops at the first rejection or error."""
        state.all_nodes = nodes
        result, status, _ = self._pre_filter(state, pod, nodes)
        return result, status

    def _pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status, list[str]]:
        result: PreFilterResult | None = None
        narrowing: list[str] = []
        for plugin in self.profile.pre_filter:
            r, status = plugin.pre_filter(state, pod, nodes)
            if status.code is Code.SKIP:
                state.skip_filter_plugins.add(plugin.name)
                continue
            if status.code:
                if status.is_rejected():
                    return None, status.with_plugin(plugin.name), narrowing
                msg = f'running PreFilter plugin "{plugin.name}": {status.message()}'
                return None, Status(Code.ERROR, (msg,), plugin.name), narrowing
            if r is not None and not r.all_nodes():
                narrowing.append(plugin.name)
            result = r.merge(result) if r is not None else result
            if result is not None and result.node_names is not None and not result.node_names:
                if len(narrowing) == 1:
                    msg = f"node(s) didn't satisfy plugin {narrowing[0]}"
                else:
                    msg = f"node(s) didn't satisfy plugin(s) {_go_list(narrowing)} simultaneously"
                return result, new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, msg), narrowing
        return result, SUCCESS, narrowing

    def run_filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status:
        """Run the Filter plugins not skipped this cycle on one node; the first
        non-success decides, stamped with its plugin's name."""
        skipped = state.skip_filter_plugins
        for name, run in self._filters:
            if name in skipped:
                continue
            status = run(state, pod, node_info)
            if status.code:
                return _filter_failure(name, status)
        return SUCCESS

    def filter_node_with(self, pod: Pod, node_info: NodeInfo, nodes: Sequence[NodeInfo]) -> Status:
        """Whether `pod` fits `node_info` (say, a clone with pods removed) in a
        cluster of `nodes` (which holds `node_info` in place of the original):
        PreFilter over `nodes` in a fresh cycle, then Filter on the node. For
        preemption's what-ifs; nothing is remembered."""
        state = CycleState()
        state.all_nodes = nodes
        result, status, narrowing = self._pre_filter(state, pod, nodes)
        if status.code:
            return status
        names = result.node_names if result is not None else None
        if names is not None and node_info.name not in names:
            return new_status(
                Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                f"node(s) didn't satisfy plugin(s) {_go_list(sorted(narrowing))}",
            )
        return self.run_filter(state, pod, node_info)

    def find_nodes_that_fit(
        self,
        pod: Pod,
        node_infos: Sequence[NodeInfo],
        *,
        state: CycleState | None = None,
        find_all: bool = False,
    ) -> tuple[list[NodeInfo], Diagnosis]:
        """PreFilter, then Filter over the nodes: the feasible nodes found and
        why each rejected node was rejected. Raises PluginError on an Error."""
        state = state if state is not None else CycleState()
        state.all_nodes = node_infos
        diagnosis = Diagnosis()
        result, status, narrowing = self._pre_filter(state, pod, node_infos)
        diagnosis.unschedulable_plugins.update(narrowing)
        if status.code is Code.ERROR:
            raise PluginError(status)
        if status.code:
            # Rejected before any node was looked at: every node shares the verdict.
            diagnosis.pre_filter_msg = status.message()
            if status.plugin:
                diagnosis.unschedulable_plugins.add(status.plugin)
            for node_info in node_infos:
                diagnosis[node_info.name] = status
            return [], diagnosis
        nodes = node_infos
        if result is not None and result.node_names is not None:
            keep = result.node_names
            absent = new_status(
                Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                f"node(s) didn't satisfy plugin(s) {_go_list(sorted(narrowing))}",
            )
            nodes = [n for n in node_infos if n.name in keep]
            for node_info in node_infos:
                if node_info.name not in keep:
                    diagnosis[node_info.name] = absent
        to_find = len(nodes) if find_all else self.num_feasible_nodes_to_find(len(nodes))
        feasible = self._filter_nodes(state, pod, nodes, to_find, diagnosis)
        return feasible, diagnosis

    def _filter_nodes(
        self,
        state: CycleState,
        pod: Pod,
        nodes: Sequence[NodeInfo],
        to_find: int,
        diagnosis: Diagnosis,
    ) -> list[NodeInfo]:
        count = len(nodes)
        if count == 0:
            return []
        skipped = state.skip_filter_plugins
        filters = [(name, run) for name, run in self._filters if name not in skipped]
        memo = self.equivalence.for_pod(pod).filters if self.equivalence is not None else None
        # What a node's verdict for a pod class may be remembered from: the
        # node-local filters; cluster-wide ones run every time, after them.
        cluster_wide: list[tuple[str, Callable[[CycleState, Pod, NodeInfo], Status]]] = []
        if memo is not None:
            cluster_wide = [(n, run) for n, run in filters if n in self._cluster_wide]
            filters = [(n, run) for n, run in filters if n not in self._cluster_wide]
        start = self._next_start_node_index % count
        feasible: list[NodeInfo] = []
        processed = 0
        for i in range(count):
            node_info = nodes[(start + i) % count]
            processed += 1
            hit = memo.get(node_info.name) if memo is not None else None
            if hit is not None and hit[0] == node_info.generation:
                status = hit[1]
            else:
                status = SUCCESS
                for name, run in filters:
                    status = run(state, pod, node_info)
                    if status.code:
                        status = _filter_failure(name, status)
                        if status.code is Code.ERROR:
                            raise PluginError(status)
                        break
                if memo is not None:
                    memo[node_info.name] = (node_info.generation, status)
            if not status.code:
                for wide_name, wide_run in cluster_wide:
                    status = wide_run(state, pod, node_info)
                    if status.code:
                        status = _filter_failure(wide_name, status)
                        if status.code is Code.ERROR:
                            raise PluginError(status)
                        break
            if status.code:
                diagnosis[node_info.name] = status
                diagnosis.unschedulable_plugins.add(status.plugin)
                continue
            feasible.append(node_info)
            if len(feasible) >= to_find:
                break
        self._next_start_node_index = (start + processed) % count
        return feasible

    def num_feasible_nodes_to_find(self, num_all_nodes: int) -> int:
        """How many feasible nodes are enough (kube-scheduler's
        numFeasibleNodesToFind): all below 100 nodes, else an adaptive share
        (50% minus 1% per 125 nodes, at least 5%) but never under 100."""
        if num_all_nodes < _MIN_FEASIBLE_NODES_TO_FIND:
            return num_all_nodes
        percentage = self.profile.percentage_of_nodes_to_score
        if percentage == 0:
            percentage = max(50 - num_all_nodes // 125, _MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
        return max(num_all_nodes * percentage // 100, _MIN_FEASIBLE_NODES_TO_FIND)

    def run_post_filter(
        self, state: CycleState, pod: Pod, diagnosis: Diagnosis
    ) -> tuple[PostFilterResult | None, Status]:
        """Run PostFilter plugins until one succeeds or gives up for good."""
        result: PostFilterResult | None = None
        reasons: list[str] = []
        rejector = ""
        for plugin in self.profile.post_filter:
            r, status = plugin.post_filter(state, pod, diagnosis)
            if status.is_success():
                return r, status
            if status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return r, status.with_plugin(plugin.name)
            if not status.is_rejected():
                return None, Status(Code.ERROR, status.reasons, plugin.name)
            result = r if r is not None else result
            reasons.extend(status.reasons)
            rejector = rejector or plugin.name
        return result, Status(Code.UNSCHEDULABLE, tuple(reasons), rejector)

    # --- PreScore / Score ---

    def run_pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status:
        """Run every PreScore plugin, recording Skips in the state."""
        for plugin in self.profile.pre_score:
            status = plugin.pre_score(state, pod, nodes)
            if status.code is Code.SKIP:
                state.skip_score_plugins.add(plugin.name)
            elif status.code:
                msg = f'running PreScore plugin "{plugin.name}": {status.message()}'
                return Status(Code.ERROR, (msg,), plugin.name)
        return SUCCESS

    def run_score_plugins(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> dict[str, list[int]]:
        """Each active Score plugin's normalized, weighted scores, aligned with
        `nodes`. Raises PluginError on an Error or an out-of-range score."""
        out: dict[str, list[int]] = {}
        memo = self.equivalence.for_pod(pod).scores if self.equivalence is not None else None
        for name, score_nodes, normalize, weight in self._scores:
            if name in state.skip_score_plugins:
                continue
            plugin_memo = None if name in self._cluster_wide else memo
            values = self._raw_scores(state, pod, nodes, name, score_nodes, plugin_memo)
            if normalize is not None:
                scores = [NodeScore(n.name, v) for n, v in zip(nodes, values, strict=True)]
                status = normalize(state, pod, scores)
                if status.code:
                    raise PluginError(Status(Code.ERROR, status.reasons, name))
                values = [s.score for s in scores]
            for value in values:
                if not MIN_NODE_SCORE <= value <= MAX_NODE_SCORE:
                    msg = (
                        f'plugin "{name}" returns an invalid score {value}, it should in the '
                        f"range of [{MIN_NODE_SCORE}, {MAX_NODE_SCORE}] after normalizing"
                    )
                    raise PluginError(Status(Code.ERROR, (msg,), name))
            out[name] = [value * weight for value in values] if weight != 1 else values
        return out

    @staticmethod
    def _raw_scores(
        state: CycleState,
        pod: Pod,
        nodes: Sequence[NodeInfo],
        name: str,
        score_nodes: Callable[[CycleState, Pod, Sequence[NodeInfo]], tuple[list[int], Status]],
        memo: dict[str, dict[str, tuple[int, int]]] | None,
    ) -> list[int]:
        """One plugin's scores before normalising, computed only for nodes
        whose remembered score (for this pod class) is stale."""
        if memo is None:
            values, status = score_nodes(state, pod, nodes)
            if status.code:
                raise PluginError(Status(Code.ERROR, status.reasons, name))
            return values
        known = memo.setdefault(name, {})
        stale = [n for n in nodes if (h := known.get(n.name)) is None or h[0] != n.generation]
        if stale:
            values, status = score_nodes(state, pod, stale)
            if status.code:
                raise PluginError(Status(Code.ERROR, status.reasons, name))
            for node_info, value in zip(stale, values, strict=True):
                known[node_info.name] = (node_info.generation, value)
        return [known[n.name][1] for n in nodes]

    def run_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> list[ScoredNode]:
        """Every node with its total: the sum over Score plugins of
        normalized score x weight."""
        totals = [0] * len(nodes)
        for scores in self.run_score_plugins(state, pod, nodes).values():
            for i, value in enumerate(scores):
                totals[i] += value
        return [ScoredNode(n, t) for n, t in zip(nodes, totals, strict=True)]

    @staticmethod
    def select_host(scored: Sequence[ScoredNode], rng: random.Random) -> NodeInfo:
        """The highest-scoring node; ties broken uniformly at random (the
        distribution of kube-scheduler's selectHost)."""
        if not scored:
            raise ValueError("select_host: no nodes to choose from")
        # Two passes and one draw: the same uniform choice among the best as
        # kube-scheduler's reservoir sampling, without a draw per tie.
        best = max(total for _, total in scored)
        ties = [node_info for node_info, total in scored if total == best]
        return ties[rng.randrange(len(ties))] if len(ties) > 1 else ties[0]

    async def run_bind(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        """The first bind plugin that does not Skip binds the pod; errors
        propagate. Skip when no plugin took it (a profile without binder)."""
        for plugin in self.profile.bind:
            status = await plugin.bind(state, pod, node_name)
            if status.code is not Code.SKIP:
                return status.with_plugin(plugin.name) if status.code else status
        return new_status(Code.SKIP, "no bind plugin bound the pod")

    def schedule_pod(
        self,
        pod: Pod,
        node_infos: Sequence[NodeInfo],
        rng: random.Random,
        *,
        state: CycleState | None = None,
    ) -> ScheduleResult:
        """One scheduling decision, as kube-scheduler's schedulePod: filter,
        and unless a single node fits, score and select. With no nodes at all
        the pod fits nowhere and the message is NO_NODES_AVAILABLE."""
        state = state if state is not None else CycleState()
        if not node_infos:
            return ScheduleResult(None, 0, 0, Diagnosis())
        feasible, diagnosis = self.find_nodes_that_fit(pod, node_infos, state=state)
        evaluated = len(feasible) + len(diagnosis)
        if not feasible:
            return ScheduleResult(None, evaluated, 0, diagnosis)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0], evaluated, 1, diagnosis)
        status = self.run_pre_score(state, pod, feasible)
        if status.code:
            raise PluginError(status)
        host = self.select_host(self.run_score(state, pod, feasible), rng)
        return ScheduleResult(host, evaluated, len(feasible), diagnosis)


def is_cluster_wide(plugin: object) -> bool:
    """Whether a plugin's verdict on a node depends on other nodes' pods
    (it sets `cluster_wide = True`), so no equivalence cache may remember it."""
    return bool(getattr(plugin, "cluster_wide", False))


def _one_by_one(
    plugin: ScorePlugin,
) -> Callable[[CycleState, Pod, Sequence[NodeInfo]], tuple[list[int], Status]]:
    """score_nodes for a plugin that scores one node at a time."""

    def score_nodes(
        state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[list[int], Status]:
        values: list[int] = []
        for node_info in nodes:
            value, status = plugin.score(state, pod, node_info)
            if status.code:
                return values, status
            values.append(value)
        return values, SUCCESS

    return score_nodes


def _filter_failure(name: str, status: Status) -> Status:
    if status.is_rejected():
        return status.with_plugin(name)
    msg = f'running "{name}" filter plugin: {status.message()}'
    return Status(Code.ERROR, (msg,), name)


def _go_list(items: Sequence[str]) -> str:
    # How Go's %v prints a []string.
    return "[" + " ".join(items) + "]"


def fit_error_message(num_nodes: int, diagnosis: Mapping[str, Status]) -> str:
    """Kubernetes' FitError message: "0/5 nodes are available: 2 Insufficient
    cpu, 3 node(s) had untolerated taint {k1: v1}." Each reason is counted
    over the nodes and the "<count> <reason>" strings are sorted as strings,
    as kube-scheduler sorts them. A PreFilter rejection is reported once
    instead of per node; a PostFilter message follows."""
    message = f"0/{num_nodes} nodes are available:"
    pre_filter_msg = getattr(diagnosis, "pre_filter_msg", "")
    post_filter_msg = getattr(diagnosis, "post_filter_msg", "")
    if pre_filter_msg:
        message += f" {pre_filter_msg}."
    else:
        counts: dict[str, int] = {}
        for status in diagnosis.values():
            for reason in status.reasons:
                counts[reason] = counts.get(reason, 0) + 1
        if counts:
            message += " " + ", ".join(sorted(f"{n} {r}" for r, n in counts.items())) + "."
    if post_filter_msg:
        message += f" {post_filter_msg}"
    return message

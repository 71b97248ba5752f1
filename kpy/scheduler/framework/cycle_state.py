"""Per-cycle scratch data (kube-scheduler's `framework/cycle_state.go`).

One scheduling cycle = one pod = one `CycleState`, from PreFilter to Bind.
PreFilter and PreScore compute what depends only on the pod and store it
under a key of their own; Filter, Score and Bind of the same cycle read it.
A CycleState is not thread-safe and is not shared between pods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.scheduler.framework.node_table import NodeTable
    from kpy.scheduler.framework.types import NodeInfo

__all__ = ["CycleState"]


class CycleState:
    """Scratch data for one scheduling cycle, keyed by plugin-chosen strings
    (by convention "PreFilter<PluginName>" and "PreScore<PluginName>"), and
    the plugins switched off for this cycle by a Skip."""

    __slots__ = ("_data", "all_nodes", "node_table", "skip_filter_plugins", "skip_score_plugins")

    def __init__(self) -> None:
        self._data: dict[str, object] = {}
        self.skip_filter_plugins: set[str] = set()
        self.skip_score_plugins: set[str] = set()
        #: every node of the cycle's snapshot (set by the framework before
        #: PreFilter), for plugins that count pods cluster-wide (inter-pod
        #: affinity, topology spread) while Filter and Score see one node.
        self.all_nodes: Sequence[NodeInfo] = ()
        #: the same nodes as columns, when the cycle runs on a NodeTable
        #: (`Framework.schedule_table`); None otherwise. Plugins that visit
        #: every node may use it to visit only the rows that matter.
        self.node_table: NodeTable | None = None

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
        other.node_table = self.node_table
        return other

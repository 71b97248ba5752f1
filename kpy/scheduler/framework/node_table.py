"""NodeTable: the scheduler's nodes as columns, so a filter or a score runs
over every node in one numpy operation instead of one Python call per node
(the vectorised half of the framework; `runtime.Framework.schedule_table`
is its consumer).

Contract:

- Row i of every column describes `infos[i]`; `infos` is in the order the
  owner added the nodes (the scheduler Cache keeps its dict order), so a
  search over rows visits nodes in the same order as a search over the
  Cache's `node_infos()`.
- The table is updated incrementally. Its owner calls `add` / `remove`
  when a node comes or goes and `touch(name)` after any change to a
  node's NodeInfo (a pod added or removed, the node updated); `refresh()`
  (called by the framework at the start of a cycle) then rewrites only the
  touched rows, or rebuilds every column after a node came or went (rare:
  nodes join and leave, pods come and go all the time).
- Columns hold only what NodeInfo holds: allocatable, requested and
  non-zero requested cpu / memory / ephemeral storage, pod counts, and the
  pod (anti-)affinity counts. Anything else about a node that a plugin
  reads (taints, labels, unschedulable) is asked through `classes(key)`:
  nodes with an equal `key(node_info)` share a class id, and a plugin whose
  verdict depends on that key only decides once per class (`per_class`).
  Keys are computed from the Node object; they are recomputed when the
  node is touched. `label_classes(label)` is the same for one label's
  value (topology domains).
- A plugin may keep columns of its own (`column`): one integer per row,
  derived from the node alone (`of_node=True`: recomputed only for rows
  whose Node object changed) or from the NodeInfo with its pods
  (recomputed for rows whose NodeInfo changed since). They are looked up
  by a key the plugin chooses, which must name everything the value
  depends on besides the row; the least recently used are dropped beyond
  `COLUMN_LIMIT`.
- A table is not thread-safe, and its columns must not be written by
  readers: they are views the next `refresh()` rewrites.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable

    from kpy.scheduler.framework.types import NodeInfo

__all__ = ["COLUMN_LIMIT", "BoolArray", "Classes", "IntArray", "NodeTable"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Quantities above this (about 7.2e16) could overflow int64 once a score
#: multiplies them by 100: plugins fall back to Python's integers then.
SAFE_QUANTITY: Final = 1 << 56
#: How many plugin columns (`NodeTable.column`) a table keeps; 256 columns
#: of 5,000 rows hold 20 MB.
COLUMN_LIMIT: Final = 256
#: How many label keys `NodeTable.label_classes` keeps classes for.
_LABEL_LIMIT: Final = 64

_INT_COLUMNS: Final = (
    "alloc_cpu",
    "alloc_memory",
    "alloc_ephemeral",
    "alloc_pods",
    "req_cpu",
    "req_memory",
    "req_ephemeral",
    "pods",
    "nz_cpu",
    "nz_memory",
    "with_affinity",
    "with_anti_affinity",
    "generation",
)


def _row(info: NodeInfo) -> tuple[int, ...]:
    alloc, req, nz = info.allocatable, info.requested, info.non_zero_requested
    return (
        alloc.milli_cpu,
        alloc.memory,
        alloc.ephemeral_storage,
        alloc.allowed_pod_number,
        req.milli_cpu,
        req.memory,
        req.ephemeral_storage,
        info.pod_count,
        nz.milli_cpu,
        nz.memory,
        info.pods_with_affinity,
        info.pods_with_required_anti_affinity,
        info.generation,
    )


class Classes:
    """One key's class id per row (`ids`), and per class id its key
    (`keys`) and a representative node (`reps`); `index` maps a key to its
    class id. Classes of keys no row holds any more may stay."""

    __slots__ = ("_verdicts", "ids", "index", "key", "keys", "reps")

    def __init__(self, key: Callable[[NodeInfo], Hashable], infos: list[NodeInfo]) -> None:
        self.key = key
        self.index: dict[Hashable, int] = {}
        self.keys: list[Hashable] = []
        self.reps: list[NodeInfo] = []
        self._verdicts: dict[Callable[[Hashable], bool], BoolArray] = {}
        self.ids: IntArray = np.fromiter((self.class_of(i) for i in infos), np.int64, len(infos))

    def verdicts(self, predicate: Callable[[Hashable], bool]) -> BoolArray:
        """`predicate(key)` per class id, each asked once and remembered
        (pass the same function object every time; it must be pure).
        `verdicts(p)[ids]` is then `p` per row."""
        found = self._verdicts.get(predicate)
        have, want = (0 if found is None else len(found)), len(self.keys)
        if found is None or have < want:
            more = np.fromiter((predicate(k) for k in self.keys[have:]), np.bool_, want - have)
            found = self._verdicts[predicate] = (
                more if found is None else np.concatenate((found, more))
            )
        return found

    def class_of(self, info: NodeInfo) -> int:
        k = self.key(info)
        found = self.index.get(k)
        if found is None:
            found = self.index[k] = len(self.reps)
            self.keys.append(k)
            self.reps.append(info)
        return found

    def update(self, i: int, info: NodeInfo) -> bool:
        """Row i now holds `info`; False when the classes must be rebuilt
        (a representative's own key changed, so it no longer stands for
        its class)."""
        old = int(self.ids[i])
        if self.reps[old] is info and self.key(info) != self.keys[old]:
            return False
        self.ids[i] = self.class_of(info)
        return True


class NodeTable:
    """See the module docstring."""

    def __init__(self, infos: Iterable[NodeInfo] = ()) -> None:
        self.infos: list[NodeInfo] = list(infos)
        self._rows: dict[str, int] = {}
        self._touched: set[str] = set()
        self._stale = True  # a node came or went: rebuild every column
        self._classes: dict[Callable[[NodeInfo], Hashable], Classes] = {}
        self._label_keys: dict[str, Callable[[NodeInfo], Hashable]] = {}
        self._columns: OrderedDict[Hashable, _Column] = OrderedDict()
        # Per row: the Node object last seen, and the NodeInfo generation
        # at which it changed (what `column(of_node=True)` compares).
        self._nodes: list[object] = []
        self._node_stamps: IntArray = np.zeros(0, np.int64)
        self.alloc_cpu: IntArray
        self.alloc_memory: IntArray
        self.alloc_ephemeral: IntArray
        self.alloc_pods: IntArray
        self.req_cpu: IntArray
        self.req_memory: IntArray
        self.req_ephemeral: IntArray
        self.pods: IntArray
        self.nz_cpu: IntArray
        self.nz_memory: IntArray
        self.with_affinity: IntArray
        self.with_anti_affinity: IntArray
        #: NodeInfo.generation as of the last refresh
        self.generation: IntArray
        #: whether every quantity is below SAFE_QUANTITY (see there)
        self.safe = True
        #: bumped whenever the rows are laid out anew (a node came or went):
        #: a reader keeping arrays of its own by row rebuilds them then
        self.epoch = 0
        # Every column in one (column, row) array, so a row is written in
        # one call; the named columns above are views of it.
        self._data: IntArray = np.zeros((len(_INT_COLUMNS), 0), np.int64)
        self._everywhere: BoolArray = np.ones(0, np.bool_)
        self.refresh()

    def __len__(self) -> int:
        return len(self.infos)

    # -- what the owner calls ---------------------------------------------------------

    def add(self, info: NodeInfo) -> None:
        """A node joined (appended: the table keeps its owner's order)."""
        self.infos.append(info)
        self._stale = True

    def remove(self, name: str) -> None:
        """A node left; unknown names are ignored."""
        self.infos = [i for i in self.infos if i.name != name]
        self._stale = True

    def touch(self, name: str) -> None:
        """The named node's NodeInfo changed: its row is rewritten on refresh."""
        self._touched.add(name)

    # -- what readers call ------------------------------------------------------------

    def refresh(self) -> NodeTable:
        """Bring every column up to date with the NodeInfos; returns self."""
        if self._stale:
            self._rebuild()
        elif self._touched:
            rows = self._rows
            for name in self._touched:
                i = rows.get(name)
                if i is not None:
                    self._write_row(i, self.infos[i])
        self._touched.clear()
        return self

    def row_of(self, name: str) -> int | None:
        return self._rows.get(name)

    def classes(self, key: Callable[[NodeInfo], Hashable]) -> tuple[IntArray, list[NodeInfo]]:
        """Each row's class id under `key` (nodes with equal keys share one),
        and a representative node per class id. Pass the same function object
        every time: the table keeps a column per key function."""
        found = self._classes_of(key)
        return found.ids, found.reps

    def label_classes(self, label: str) -> Classes:
        """Rows classed by the value of node label `label` (the class key is
        the value, None where the node lacks the label): a topology key's
        domains."""
        key = self._label_keys.get(label)
        if key is None:
            if len(self._label_keys) >= _LABEL_LIMIT:
                for old in self._label_keys.values():
                    self._classes.pop(old, None)
                self._label_keys.clear()
            key = self._label_keys[label] = _label_value(label)
        return self._classes_of(key)

    def column(
        self,
        key: Hashable,
        value: Callable[[NodeInfo], int],
        *,
        of_node: bool = False,
        zero: Callable[[], BoolArray] | None = None,
    ) -> IntArray:
        """`value(info)` for every row, kept between calls under `key` and
        recomputed only for the rows that changed since: those whose Node
        object changed when `of_node`, else those whose NodeInfo did (a pod
        came or went). `key` must stand for `value`. `zero()`: the rows the
        caller knows `value` is 0 on, spared the call when the column is
        built. Read-only for callers."""
        stamps = self._node_stamps if of_node else self.generation
        found = self._columns.get(key)
        if found is None:
            infos = self.infos
            if zero is None:
                values = np.fromiter((value(i) for i in infos), np.int64, len(infos))
            else:
                values = np.zeros(len(infos), np.int64)
                asked = np.flatnonzero(~zero())
                values[asked] = np.fromiter(
                    (value(infos[i]) for i in asked.tolist()), np.int64, len(asked)
                )
            found = _Column(values, stamps.copy())
            if len(self._columns) >= COLUMN_LIMIT:
                self._columns.popitem(last=False)
            self._columns[key] = found
            return values
        self._columns.move_to_end(key)
        changed = np.flatnonzero(found.stamps != stamps)
        if len(changed):
            infos, values = self.infos, found.values
            for i in changed.tolist():
                values[i] = value(infos[i])
            found.stamps[changed] = stamps[changed]
        return found.values

    def _classes_of(self, key: Callable[[NodeInfo], Hashable]) -> Classes:
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = Classes(key, self.infos)
        return found

    def everywhere(self) -> BoolArray:
        """True for every row: one shared, read-only array (a filter that
        passes every node returns it, and the framework skips it)."""
        return self._everywhere

    def per_class(
        self, key: Callable[[NodeInfo], Hashable], passes: Callable[[NodeInfo], bool]
    ) -> BoolArray:
        """`passes(node)` for every row, asked once per class of `key`: exact
        when `passes` depends on nothing of a node but `key(node)`."""
        ids, reps = self.classes(key)
        verdicts = np.fromiter((passes(rep) for rep in reps), np.bool_, len(reps))
        return self._everywhere if verdicts.all() else verdicts[ids]

    def rows_where(self, mask: BoolArray) -> list[NodeInfo]:
        """The NodeInfos of the rows where `mask` holds, in row order."""
        infos = self.infos
        return [infos[i] for i in np.flatnonzero(mask).tolist()]

    # -- internals --------------------------------------------------------------------

    def _rebuild(self) -> None:
        infos = self.infos
        self._rows = {info.name: i for i, info in enumerate(infos)}
        rows = [_row(i) for i in infos]
        self.safe = all(_fits_int64(v) for row in rows for v in row)
        shape = (len(_INT_COLUMNS), len(infos))
        self._data = (
            np.array(rows, np.int64).reshape(shape[::-1]).T.copy()
            if self.safe
            else np.zeros(shape, np.int64)
        )
        for c, column in enumerate(_INT_COLUMNS):
            setattr(self, column, self._data[c])
        self._everywhere = np.ones(len(infos), np.bool_)
        self._everywhere.setflags(write=False)
        self._nodes = [i.node for i in infos]
        self._node_stamps = self.generation.copy()
        # Class keys and columns are rebuilt lazily, on first use after a rebuild.
        self._classes.clear()
        self._columns.clear()
        self.epoch += 1
        self._stale = False

    def _write_row(self, i: int, info: NodeInfo) -> None:
        values = _row(info)
        if not all(_fits_int64(v) for v in values):
            self.safe = False
            return
        self._data[:, i] = values
        if info.node is not self._nodes[i]:
            self._nodes[i] = info.node
            self._node_stamps[i] = info.generation
        for key, found in list(self._classes.items()):
            if not found.update(i, info):
                del self._classes[key]  # rebuilt on its next use


class _Column:
    __slots__ = ("stamps", "values")

    def __init__(self, values: IntArray, stamps: IntArray) -> None:
        self.values = values
        self.stamps = stamps


def _label_value(label: str) -> Callable[[NodeInfo], Hashable]:
    def value(info: NodeInfo) -> Hashable:
        return info.labels.get(label)

    return value


def _fits_int64(value: int) -> bool:
    return -SAFE_QUANTITY < value < SAFE_QUANTITY

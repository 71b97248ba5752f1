"""Stores and indexers: the informer's local copy of the cluster, after
client-go's `tools/cache` store.go, thread_safe_store.go, index.go and
listers.go.

Contract:

- Objects are keyed by `meta_namespace_key` ("namespace/name", or "name" for
  cluster-scoped objects) unless the `Indexer` is given another key function.
- Objects returned from a store (get, list, by_index, ...) are the stored
  objects themselves, shared with every other reader. Callers must not mutate
  them; copy first (`msg.__class__()` + `CopyFrom`) to change one.
- `ThreadSafeStore` keeps client-go's name but needs no lock: kpy runs on one
  asyncio event loop and no method awaits, so each call is atomic with
  respect to every other task. Do not share a store across threads.
- Indexes are updated on every add, update, delete and replace. An index
  function that raises leaves the store unchanged. Deleting a key drops every
  trace of it: the object, its remembered index values and any index entry
  that held only that key, so a store never grows with objects that are gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    import builtins

    from kpy.api.labels import Selector
    from kpy.api.meta.v1 import ObjectMeta

__all__ = [
    "NAMESPACE_INDEX",
    "IndexFunc",
    "IndexNotFoundError",
    "Indexer",
    "KeyFunc",
    "ObjectWithMeta",
    "ThreadSafeStore",
    "list_by_namespace",
    "meta_namespace_index_func",
    "meta_namespace_key",
    "split_key",
]


class ObjectWithMeta(Protocol):
    """Any API object: a message with an ObjectMeta `metadata` field."""

    @property
    def metadata(self) -> ObjectMeta: ...


T = TypeVar("T", bound=ObjectWithMeta)

KeyFunc = Callable[[T], str]
IndexFunc = Callable[[T], list[str]]

NAMESPACE_INDEX: Final = "namespace"


class IndexNotFoundError(LookupError):
    """An index was asked for by a name that no indexer was registered under."""

    def __init__(self, name: str) -> None:
        super().__init__(f"index with name {name!r} does not exist; register it in `indexers`")
        self.name = name


def meta_namespace_key(obj: ObjectWithMeta) -> str:
    """client-go's MetaNamespaceKeyFunc: "namespace/name", or "name" when the
    object has no namespace."""
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


def split_key(key: str) -> tuple[str, str]:
    """client-go's SplitMetaNamespaceKey: (namespace, name); namespace is ""
    for a cluster-scoped key."""
    parts = key.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ValueError(f"unexpected key format: {key!r} (want 'namespace/name' or 'name')")


def meta_namespace_index_func(obj: ObjectWithMeta) -> list[str]:
    """client-go's MetaNamespaceIndexFunc: indexes by namespace ("" for
    cluster-scoped objects)."""
    return [obj.metadata.namespace]


class ThreadSafeStore(Generic[T]):
    """Objects by key plus their indexes; the key is given by the caller.

    indices[index name][indexed value] is the insertion-ordered set of keys
    whose object has that value. Each key's values per index are remembered,
    so an update or delete removes exactly the entries it added even if an
    index function's answer for the old object would change (say, because a
    caller broke the contract and mutated it)."""

    def __init__(self, indexers: Mapping[str, IndexFunc[T]] | None = None) -> None:
        self._items: dict[str, T] = {}
        self._indexers: dict[str, IndexFunc[T]] = dict(indexers or {})
        self._indices: dict[str, dict[str, dict[str, None]]] = {n: {} for n in self._indexers}
        self._values: dict[str, dict[str, list[str]]] = {}

    def add(self, key: str, obj: T) -> None:
        self.update(key, obj)

    def update(self, key: str, obj: T) -> None:
        values = self._index_values(obj)  # first: a raising index func changes nothing
        self._drop_index_entries(key)
        self._items[key] = obj
        self._add_index_entries(key, values)

    def delete(self, key: str) -> None:
        if key in self._items:
            self._drop_index_entries(key)
            del self._items[key]

    def get(self, key: str) -> T | None:
        return self._items.get(key)

    def list(self) -> list[T]:
        return list(self._items.values())

    def list_keys(self) -> builtins.list[str]:
        return list(self._items)

    def replace(self, items: Mapping[str, T], resource_version: str) -> None:
        """Swap the whole content for `items` and rebuild every index.
        `resource_version` is accepted for client-go's Store interface only."""
        del resource_version
        values = {key: self._index_values(obj) for key, obj in items.items()}
        self._items = dict(items)
        self._indices = {name: {} for name in self._indexers}
        self._values = {}
        for key, key_values in values.items():
            self._add_index_entries(key, key_values)

    def index(self, name: str, obj: T) -> builtins.list[T]:
        """The objects sharing any of `obj`'s values in index `name`."""
        index = self._index(name)
        keys: dict[str, None] = {}
        for value in self._indexers[name](obj):
            keys.update(index.get(value, {}))
        return [self._items[k] for k in keys]

    def by_index(self, name: str, value: str) -> builtins.list[T]:
        return [self._items[k] for k in self.index_keys(name, value)]

    def index_keys(self, name: str, value: str) -> builtins.list[str]:
        return list(self._index(name).get(value, {}))

    def list_index_func_values(self, name: str) -> builtins.list[str]:
        return list(self._index(name))

    def get_indexers(self) -> dict[str, IndexFunc[T]]:
        return dict(self._indexers)

    def add_indexers(self, indexers: Mapping[str, IndexFunc[T]]) -> None:
        """Adds indexes (built over the objects already stored); ValueError
        if a name is taken."""
        taken = sorted(set(indexers) & set(self._indexers))
        if taken:
            raise ValueError(f"indexer {taken[0]!r} already exists")
        built = {
            key: {name: list(dict.fromkeys(fn(obj))) for name, fn in indexers.items()}
            for key, obj in self._items.items()
        }
        self._indexers.update(indexers)
        for name in indexers:
            self._indices[name] = {}
        for key, values in built.items():
            self._values[key].update(values)
            for name, index_values in values.items():
                for value in index_values:
                    self._indices[name].setdefault(value, {})[key] = None

    def _index(self, name: str) -> dict[str, dict[str, None]]:
        try:
            return self._indices[name]
        except KeyError:
            raise IndexNotFoundError(name) from None

    def _index_values(self, obj: T) -> dict[str, builtins.list[str]]:
        return {name: list(dict.fromkeys(fn(obj))) for name, fn in self._indexers.items()}

    def _add_index_entries(self, key: str, values: dict[str, builtins.list[str]]) -> None:
        self._values[key] = values
        for name, index_values in values.items():
            index = self._indices[name]
            for value in index_values:
                index.setdefault(value, {})[key] = None

    def _drop_index_entries(self, key: str) -> None:
        for name, index_values in self._values.pop(key, {}).items():
            index = self._indices[name]
            for value in index_values:
                keys = index[value]
                keys.pop(key, None)
                if not keys:
                    del index[value]


class Indexer(Generic[T]):
    """A `ThreadSafeStore` keyed by a key function (client-go's
    NewIndexer(keyFunc, indexers)). The namespace index is always present."""

    def __init__(
        self,
        *,
        key_func: KeyFunc[T] = meta_namespace_key,
        indexers: Mapping[str, IndexFunc[T]] | None = None,
    ) -> None:
        all_indexers: dict[str, IndexFunc[T]] = {NAMESPACE_INDEX: meta_namespace_index_func}
        all_indexers.update(indexers or {})
        self.key_func = key_func
        self._store: ThreadSafeStore[T] = ThreadSafeStore(all_indexers)

    def add(self, obj: T) -> None:
        self._store.add(self.key_func(obj), obj)

    def update(self, obj: T) -> None:
        self._store.update(self.key_func(obj), obj)

    def delete(self, obj: T) -> None:
        self._store.delete(self.key_func(obj))

    def get(self, obj: T) -> T | None:
        return self._store.get(self.key_func(obj))

    def get_by_key(self, key: str) -> T | None:
        return self._store.get(key)

    def list(self) -> list[T]:
        return self._store.list()

    def list_keys(self) -> builtins.list[str]:
        return self._store.list_keys()

    def replace(self, objects: Iterable[T], resource_version: str) -> None:
        self._store.replace({self.key_func(o): o for o in objects}, resource_version)

    def index(self, name: str, obj: T) -> builtins.list[T]:
        return self._store.index(name, obj)

    def by_index(self, name: str, value: str) -> builtins.list[T]:
        return self._store.by_index(name, value)

    def index_keys(self, name: str, value: str) -> builtins.list[str]:
        return self._store.index_keys(name, value)

    def list_index_func_values(self, name: str) -> builtins.list[str]:
        return self._store.list_index_func_values(name)

    def get_indexers(self) -> dict[str, IndexFunc[T]]:
        return self._store.get_indexers()

    def add_indexers(self, indexers: Mapping[str, IndexFunc[T]]) -> None:
        self._store.add_indexers(indexers)


def list_by_namespace(
    indexer: Indexer[T], namespace: str, selector: Selector | None = None
) -> list[T]:
    """client-go's ListAllByNamespace: the objects in `namespace` ("" means
    every namespace) whose labels match `selector` (None matches all)."""
    if namespace:
        objects = indexer.by_index(NAMESPACE_INDEX, namespace)
    else:
        objects = indexer.list()
    if selector is None or selector.empty():
        return objects
    return [o for o in objects if selector.matches(o.metadata.labels)]

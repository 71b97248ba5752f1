"""Stores and indexers, after client-go's store_test.go, index_test.go and
thread_safe_store_test.go."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod
from kpy.api.labels import Selector, parse_selector
from kpy.cache.store import (
    NAMESPACE_INDEX,
    Indexer,
    IndexNotFoundError,
    list_by_namespace,
    meta_namespace_key,
    split_key,
)

BY_NODE = "node"


def pod(name: str, namespace: str = "default", *, node: str = "", **labels: str) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"nodeName": node},
        },
    )


def by_node(obj: Pod) -> list[str]:
    return [obj.spec.node_name] if obj.spec.node_name else []


def new_indexer() -> Indexer[Pod]:
    return Indexer(indexers={BY_NODE: by_node})


def test_keys() -> None:
    assert meta_namespace_key(pod("a", "ns")) == "ns/a"
    assert meta_namespace_key(pod("node-1", "")) == "node-1"
    assert split_key("ns/a") == ("ns", "a")
    assert split_key("node-1") == ("", "node-1")
    with pytest.raises(ValueError, match="unexpected key format"):
        split_key("a/b/c")


@dataclass
class IndexCase:
    name: str
    ops: list[tuple[str, Pod]]
    want_by_node: dict[str, list[str]]
    want_keys: list[str] = field(default_factory=list)


INDEX_CASES = [
    IndexCase(
        "add indexes",
        [("add", pod("a", node="n1")), ("add", pod("b", node="n1")), ("add", pod("c"))],
        {"n1": ["default/a", "default/b"]},
        ["default/a", "default/b", "default/c"],
    ),
    IndexCase(
        "update moves the key to the new value and drops the empty old one",
        [("add", pod("a", node="n1")), ("update", pod("a", node="n2"))],
        {"n2": ["default/a"]},
        ["default/a"],
    ),
    IndexCase(
        "update to no value unindexes",
        [("add", pod("a", node="n1")), ("update", pod("a"))],
        {},
        ["default/a"],
    ),
    IndexCase(
        "delete drops the key from every index",
        [("add", pod("a", node="n1")), ("add", pod("b", node="n1")), ("delete", pod("a"))],
        {"n1": ["default/b"]},
        ["default/b"],
    ),
    IndexCase(
        "delete of an unknown key is a no-op",
        [("add", pod("a", node="n1")), ("delete", pod("zzz"))],
        {"n1": ["default/a"]},
        ["default/a"],
    ),
]


@pytest.mark.parametrize("case", INDEX_CASES, ids=[c.name for c in INDEX_CASES])
def test_index_updates(case: IndexCase) -> None:
    idx = new_indexer()
    for op, obj in case.ops:
        getattr(idx, op)(obj)
    got = {v: idx.index_keys(BY_NODE, v) for v in idx.list_index_func_values(BY_NODE)}
    assert got == case.want_by_node, case.name
    assert idx.list_keys() == case.want_keys, case.name
    for value, keys in case.want_by_node.items():
        assert [meta_namespace_key(o) for o in idx.by_index(BY_NODE, value)] == keys


def test_index_by_object_and_unknown_index() -> None:
    idx = new_indexer()
    idx.add(pod("a", node="n1"))
    idx.add(pod("b", node="n1"))
    idx.add(pod("c", node="n2"))
    assert [o.metadata.name for o in idx.index(BY_NODE, pod("x", node="n1"))] == ["a", "b"]
    assert idx.by_index(BY_NODE, "nowhere") == []
    with pytest.raises(IndexNotFoundError, match="'nope' does not exist"):
        idx.by_index("nope", "x")


def test_get_returns_the_stored_object() -> None:
    idx = new_indexer()
    a = pod("a")
    idx.add(a)
    assert idx.get(pod("a")) is a
    assert idx.get_by_key("default/a") is a
    assert idx.get_by_key("default/b") is None
    assert idx.list() == [a]


def test_delete_leaves_no_per_key_state() -> None:
    idx = new_indexer()
    for i in range(100):
        idx.add(pod(f"p{i}", f"ns{i}", node=f"n{i}"))
    for i in range(100):
        idx.delete(pod(f"p{i}", f"ns{i}"))
    store = idx._store
    assert store._items == {}
    assert store._values == {}
    assert store._indices == {NAMESPACE_INDEX: {}, BY_NODE: {}}


def test_failing_index_func_leaves_store_unchanged() -> None:
    def boom(obj: Pod) -> list[str]:
        if obj.metadata.name == "bad":
            raise RuntimeError("boom")
        return [obj.metadata.name]

    idx: Indexer[Pod] = Indexer(indexers={"boom": boom})
    idx.add(pod("a"))
    with pytest.raises(RuntimeError):
        idx.add(pod("bad"))
    assert idx.list_keys() == ["default/a"]
    assert idx.list_index_func_values("boom") == ["a"]


def test_replace_rebuilds_indexes() -> None:
    idx = new_indexer()
    idx.add(pod("old", "gone", node="n1"))
    idx.add(pod("a", node="n1"))
    idx.replace([pod("a", node="n2"), pod("b", "other", node="n2")], "42")
    assert idx.list_keys() == ["default/a", "other/b"]
    assert idx.list_index_func_values(BY_NODE) == ["n2"]
    assert idx.index_keys(BY_NODE, "n2") == ["default/a", "other/b"]
    assert sorted(idx.list_index_func_values(NAMESPACE_INDEX)) == ["default", "other"]
    assert idx._store._values.keys() == {"default/a", "other/b"}


@dataclass
class ListCase:
    name: str
    namespace: str
    selector: Selector | None
    want: list[str]


LIST_CASES = [
    ListCase("namespace, no selector", "default", None, ["default/a", "default/b"]),
    ListCase("all namespaces", "", None, ["default/a", "default/b", "other/c"]),
    ListCase("namespace and selector", "default", parse_selector("app=web"), ["default/a"]),
    ListCase(
        "all namespaces and selector", "", parse_selector("app=web"), ["default/a", "other/c"]
    ),
    ListCase("notin selector", "", parse_selector("app notin (web)"), ["default/b"]),
    ListCase("empty namespace", "nowhere", None, []),
]


@pytest.mark.parametrize("case", LIST_CASES, ids=[c.name for c in LIST_CASES])
def test_list_by_namespace(case: ListCase) -> None:
    idx = new_indexer()
    idx.add(pod("a", app="web"))
    idx.add(pod("b", app="db"))
    idx.add(pod("c", "other", app="web"))
    got = [meta_namespace_key(o) for o in list_by_namespace(idx, case.namespace, case.selector)]
    assert got == case.want, case.name


def test_add_indexers_indexes_what_is_stored_and_what_comes() -> None:
    idx: Indexer[Pod] = Indexer()
    idx.add(pod("a", node="n1"))
    idx.add_indexers({BY_NODE: by_node})
    idx.add(pod("b", node="n1"))
    assert idx.index_keys(BY_NODE, "n1") == ["default/a", "default/b"]
    idx.delete(pod("a"))
    assert idx.index_keys(BY_NODE, "n1") == ["default/b"]
    with pytest.raises(ValueError, match="'node' already exists"):
        idx.add_indexers({BY_NODE: by_node})

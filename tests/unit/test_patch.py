"""The three patch formats: RFC 7386 merge patch, RFC 6902 JSON patch and
Kubernetes' strategic merge patch, each table-driven."""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from google.protobuf import descriptor_pool

from kpy.api import codec, errors
from kpy.api import patch as patch_module
from kpy.api._descriptors import is_map, json_fields
from kpy.api.apiextensions.v1 import CustomResourceDefinition
from kpy.api.apps.v1 import ControllerRevision, Deployment
from kpy.api.core.v1 import Node, Pod, Service
from kpy.api.limits import nesting_depth
from kpy.api.patch import (
    PatchError,
    PatchTooLarge,
    apply_patch,
    json_patch,
    merge_patch,
    parse_body,
    read_patch,
    strategic_merge_patch,
)

if TYPE_CHECKING:
    from google.protobuf.message import Message


def _ids(value: Any) -> set[int]:
    """The ids of every dict and list inside `value`."""
    if isinstance(value, dict):
        return {id(value)}.union(*(_ids(v) for v in value.values()))
    if isinstance(value, list):
        return {id(value)}.union(*(_ids(v) for v in value))
    return set()


def _check_pure(target: Any, patch: Any, before: tuple[Any, Any], result: Any) -> None:
    """The inputs are unchanged and the result shares nothing mutable with them."""
    assert (target, patch) == before, "an input was mutated"
    assert not _ids(result) & (_ids(target) | _ids(patch)), "the result aliases an input"


# ---------------------------------------------------------------- RFC 7386


@dataclass(frozen=True)
class MergeCase:
    id: str
    target: Any
    patch: Any
    expected: Any


MERGE_CASES = [
    # RFC 7386, section 3.
    MergeCase(
        "rfc-section-3",
        {"a": "b", "c": {"d": "e", "f": "g"}},
        {"a": "z", "c": {"f": None}},
        {"a": "z", "c": {"d": "e"}},
    ),
    # RFC 7386, appendix A, row by row.
    MergeCase("A-replace-member", {"a": "b"}, {"a": "c"}, {"a": "c"}),
    MergeCase("A-add-member", {"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    MergeCase("A-null-deletes", {"a": "b"}, {"a": None}, {}),
    MergeCase("A-null-deletes-one", {"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    MergeCase("A-list-replaced-by-string", {"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    MergeCase("A-string-replaced-by-list", {"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    MergeCase("A-nested-merge", {"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    MergeCase("A-list-replaced-whole", {"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    MergeCase("A-list-patch-on-list", ["a", "b"], ["c", "d"], ["c", "d"]),
    MergeCase("A-list-patch-on-object", {"a": "b"}, ["c"], ["c"]),
    MergeCase("A-null-patch", {"a": "foo"}, None, None),
    MergeCase("A-string-patch", {"a": "foo"}, "bar", "bar"),
    MergeCase("A-target-null-kept", {"e": None}, {"a": 1}, {"e": None, "a": 1}),
    MergeCase("A-object-patch-on-list", [1, 2], {"a": "b", "c": None}, {"a": "b"}),
    MergeCase("A-nested-nulls-leave-empty", {}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    # And the ones a kubectl user meets.
    MergeCase(
        "labels-merge",
        {"metadata": {"labels": {"app": "web", "tier": "front"}}},
        {"metadata": {"labels": {"tier": None, "team": "x"}}},
        {"metadata": {"labels": {"app": "web", "team": "x"}}},
    ),
    MergeCase(
        "containers-replaced-whole",
        {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}},
        {"spec": {"containers": [{"name": "a", "image": "x"}]}},
        {"spec": {"containers": [{"name": "a", "image": "x"}]}},
    ),
]


@pytest.mark.parametrize("case", MERGE_CASES, ids=[c.id for c in MERGE_CASES])
def test_merge_patch(case: MergeCase) -> None:
    before = copy.deepcopy((case.target, case.patch))
    result = merge_patch(case.target, case.patch)
    assert result == case.expected, case.id
    _check_pure(case.target, case.patch, before, result)


# ---------------------------------------------------------------- RFC 6902


@dataclass(frozen=True)
class JSONPatchCase:
    id: str
    target: Any
    operations: Any
    expected: Any = None
    error: str = ""  # a substring of the PatchError message, if it must fail


JSON_PATCH_CASES = [
    # RFC 6902, appendix A.
    JSONPatchCase(
        "A.1-add-member",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"baz": "qux", "foo": "bar"},
    ),
    JSONPatchCase(
        "A.2-add-element",
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    JSONPatchCase(
        "A.3-remove-member",
        {"baz": "qux", "foo": "bar"},
        [{"op": "remove", "path": "/baz"}],
        {"foo": "bar"},
    ),
    JSONPatchCase(
        "A.4-remove-element",
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    JSONPatchCase(
        "A.5-replace",
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    JSONPatchCase(
        "A.6-move-member",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    JSONPatchCase(
        "A.7-move-element",
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    JSONPatchCase(
        "A.8-test-succeeds",
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2},
        ],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    JSONPatchCase(
        "A.9-test-fails",
        {"baz": "qux"},
        [{"op": "test", "path": "/baz", "value": "bar"}],
        error='operation 0 (test "/baz"): test failed: the value is "qux", not "bar"',
    ),
    JSONPatchCase(
        "A.10-add-nested-object",
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    JSONPatchCase(
        "A.11-unknown-members-ignored",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    JSONPatchCase(
        "A.12-add-to-missing-parent",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz/bat", "value": "qux"}],
        error='operation 0 (add "/baz/bat"): "/baz" does not exist',
    ),
    JSONPatchCase(
        "A.14-escapes-in-order",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": 10}],
        {"/": 9, "~1": 10},
    ),
    JSONPatchCase(
        "A.15-string-is-not-number",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": "10"}],
        error='test failed: the value is 10, not "10"',
    ),
    JSONPatchCase(
        "A.16-add-list-value",
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    # More that succeed.
    JSONPatchCase(
        "slash-escape",
        {},
        [{"op": "add", "path": "/a~1b", "value": 1}],
        {"a/b": 1},
    ),
    JSONPatchCase(
        "copy-is-deep",
        {"a": {"x": [1]}},
        [
            {"op": "copy", "from": "/a", "path": "/b"},
            {"op": "add", "path": "/b/x/-", "value": 2},
        ],
        {"a": {"x": [1]}, "b": {"x": [1, 2]}},
    ),
    JSONPatchCase(
        "replace-whole-document",
        {"a": 1},
        [{"op": "replace", "path": "", "value": [1]}],
        [1],
    ),
    JSONPatchCase(
        "test-numbers-compare-by-value",
        {"a": 1, "b": {"c": [True, None]}},
        [
            {"op": "test", "path": "/a", "value": 1.0},
            {"op": "test", "path": "/b", "value": {"c": [True, None]}},
        ],
        {"a": 1, "b": {"c": [True, None]}},
    ),
    JSONPatchCase(
        "set-image-and-replicas",
        {"spec": {"replicas": 1, "template": {"spec": {"containers": [{"image": "a"}]}}}},
        [
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "b"},
        ],
        {"spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "b"}]}}}},
    ),
    # And ones that fail.
    JSONPatchCase(
        "test-true-is-not-1",
        {"a": True},
        [{"op": "test", "path": "/a", "value": 1}],
        error="test failed: the value is true, not 1",
    ),
    JSONPatchCase(
        "later-failure-rolls-back",
        {"a": 1},
        [{"op": "remove", "path": "/a"}, {"op": "test", "path": "/a", "value": 1}],
        error='operation 1 (test "/a"): "/a" does not exist',
    ),
    JSONPatchCase(
        "pointer-without-slash",
        {"a": 1},
        [{"op": "remove", "path": "a"}],
        error='"path" "a" is not a JSON pointer: it must be empty or start with "/" '
        '(did you mean "/a"?)',
    ),
    JSONPatchCase(
        "bad-escape",
        {"a": 1},
        [{"op": "remove", "path": "/a~2"}],
        error='has a "~" that is not "~0" or "~1"',
    ),
    JSONPatchCase(
        "index-with-leading-zero",
        {"a": [1, 2]},
        [{"op": "remove", "path": "/a/01"}],
        error='"/a" is a list, so "01" must be an index',
    ),
    JSONPatchCase(
        "index-out-of-range",
        {"a": [1, 2]},
        [{"op": "replace", "path": "/a/2", "value": 0}],
        error='index 2 is out of range: "/a" has 2 element(s)',
    ),
    JSONPatchCase(
        "add-past-the-end",
        {"a": [1, 2]},
        [{"op": "add", "path": "/a/3", "value": 0}],
        error="index 3 is out of range",
    ),
    JSONPatchCase(
        "dash-only-for-add",
        {"a": [1]},
        [{"op": "remove", "path": "/a/-"}],
        error='"-" (past the end of "/a") names no element',
    ),
    JSONPatchCase(
        "walk-into-a-string",
        {"a": "text"},
        [{"op": "add", "path": "/a/b/c", "value": 0}],
        error='"/a" is a string, not an object or a list',
    ),
    JSONPatchCase(
        "remove-missing-member",
        {"a": 1},
        [{"op": "remove", "path": "/b"}],
        error='"/b" does not exist',
    ),
    JSONPatchCase(
        "replace-missing-member",
        {"a": 1},
        [{"op": "replace", "path": "/b", "value": 2}],
        error='"/b" does not exist; use add to create it',
    ),
    JSONPatchCase(
        "remove-whole-document",
        {"a": 1},
        [{"op": "remove", "path": ""}],
        error="cannot remove the whole document",
    ),
    JSONPatchCase(
        "move-into-own-child",
        {"a": {"b": {}}},
        [{"op": "move", "from": "/a", "path": "/a/b/c"}],
        error='cannot move "/a" into itself',
    ),
    JSONPatchCase(
        "move-from-missing",
        {"a": 1},
        [{"op": "move", "from": "/b", "path": "/c"}],
        error='operation 0 (move "/c"): "/b" does not exist',
    ),
    JSONPatchCase(
        "unknown-op",
        {},
        [{"op": "merge", "path": "/a"}],
        error='operation 0: "op" is "merge"; use one of add, remove, replace, move, copy, test',
    ),
    JSONPatchCase(
        "missing-op", {}, [{"path": "/a"}], error='operation 0: "op" is missing; use one of'
    ),
    JSONPatchCase(
        "missing-path", {}, [{"op": "add", "value": 1}], error='operation 0: missing "path"'
    ),
    JSONPatchCase(
        "missing-value",
        {},
        [{"op": "add", "path": "/a"}],
        error='operation 0 (add "/a"): missing "value"',
    ),
    JSONPatchCase("missing-from", {}, [{"op": "copy", "path": "/a"}], error='missing "from"'),
    JSONPatchCase("operation-not-an-object", {}, ["add"], error="operation 0: expected an object"),
    JSONPatchCase(
        "not-a-list",
        {},
        {"op": "add", "path": "/a", "value": 1},
        error="a JSON patch is a list of operations, got an object",
    ),
]


@pytest.mark.parametrize("case", JSON_PATCH_CASES, ids=[c.id for c in JSON_PATCH_CASES])
def test_json_patch(case: JSONPatchCase) -> None:
    before = copy.deepcopy((case.target, case.operations))
    if case.error:
        with pytest.raises(PatchError) as info:
            json_patch(case.target, case.operations)
        assert case.error in str(info.value), case.id
        assert (case.target, case.operations) == before, "an input was mutated"
        return
    result = json_patch(case.target, case.operations)
    assert result == case.expected, case.id
    _check_pure(case.target, case.operations, before, result)


# ---------------------------------------------------------------- strategic

APP = {
    "name": "app",
    "image": "nginx:1.25",
    "args": ["--port", "80"],
    "ports": [{"containerPort": 80, "name": "http"}],
    "env": [{"name": "A", "value": "1"}],
    "resources": {"limits": {"cpu": "500m"}},
}
SIDECAR = {"name": "sidecar", "image": "busybox:1.36", "command": ["sleep", "infinity"]}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of `base` with some members changed (None removes one)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _deployment(
    *containers: dict[str, Any],
    labels: dict[str, str] | None = None,
    finalizers: list[str] | None = None,
    **pod_spec: Any,
) -> dict[str, Any]:
    """A Deployment's JSON form with the given containers and pod spec fields."""
    metadata: dict[str, Any] = {"name": "web", "namespace": "default"}
    if labels is not None:
        metadata["labels"] = labels
    if finalizers is not None:
        metadata["finalizers"] = finalizers
    return {
        "metadata": metadata,
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": list(containers), **pod_spec},
            },
        },
    }


def _pod_spec_patch(**pod_spec: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": pod_spec}}}


@dataclass(frozen=True)
class StrategicCase:
    id: str
    target: dict[str, Any]
    patch: Any
    expected: dict[str, Any] = field(default_factory=dict)
    kind: type[Message] = Deployment
    error: str = ""  # a substring of the PatchError message, if it must fail


STRATEGIC_CASES = [
    StrategicCase(
        "set-image-keeps-the-other-container",
        _deployment(APP, SIDECAR),
        _pod_spec_patch(containers=[{"name": "app", "image": "nginx:1.27"}]),
        _deployment(_with(APP, image="nginx:1.27"), SIDECAR),
    ),
    StrategicCase(
        "new-container-is-appended",
        _deployment(APP, SIDECAR),
        _pod_spec_patch(containers=[{"name": "third", "image": "alpine"}]),
        _deployment(APP, SIDECAR, {"name": "third", "image": "alpine"}),
    ),
    StrategicCase(
        "add-env-var-by-name",
        _deployment(APP, SIDECAR),
        _pod_spec_patch(containers=[{"name": "app", "env": [{"name": "B", "value": "2"}]}]),
        _deployment(
            _with(APP, env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]), SIDECAR
        ),
    ),
    StrategicCase(
        "change-env-var-by-name",
        _deployment(APP),
        _pod_spec_patch(containers=[{"name": "app", "env": [{"name": "A", "value": "9"}]}]),
        _deployment(_with(APP, env=[{"name": "A", "value": "9"}])),
    ),
    StrategicCase(
        "add-port-by-container-port",
        _deployment(APP),
        _pod_spec_patch(containers=[{"name": "app", "ports": [{"containerPort": 443}]}]),
        _deployment(
            _with(APP, ports=[{"containerPort": 80, "name": "http"}, {"containerPort": 443}])
        ),
    ),
    StrategicCase(
        "resources-map-merges-by-key",
        _deployment(APP),
        _pod_spec_patch(
            containers=[{"name": "app", "resources": {"limits": {"memory": "1Gi", "cpu": "1"}}}]
        ),
        _deployment(_with(APP, resources={"limits": {"cpu": "1", "memory": "1Gi"}})),
    ),
    StrategicCase(
        "delete-container",
        _deployment(APP, SIDECAR),
        _pod_spec_patch(containers=[{"$patch": "delete", "name": "sidecar"}]),
        _deployment(APP),
    ),
    StrategicCase(
        "delete-env-var-and-set-another",
        _deployment(APP),
        _pod_spec_patch(
            containers=[
                {
                    "name": "app",
                    "env": [{"$patch": "delete", "name": "A"}, {"name": "C", "value": "3"}],
                }
            ]
        ),
        _deployment(_with(APP, env=[{"name": "C", "value": "3"}])),
    ),
    StrategicCase(
        "replace-containers",
        _deployment(APP, SIDECAR),
        _pod_spec_patch(containers=[{"$patch": "replace"}, {"name": "only", "image": "x"}]),
        _deployment({"name": "only", "image": "x"}),
    ),
    StrategicCase(
        "add-finalizer-keeps-existing",
        _deployment(APP, finalizers=["a.example/one"]),
        {"metadata": {"finalizers": ["b.example/two", "a.example/one"]}},
        _deployment(APP, finalizers=["a.example/one", "b.example/two"]),
    ),
    StrategicCase(
        "delete-from-finalizers",
        _deployment(APP, finalizers=["a.example/one", "b.example/two"]),
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/one"]}},
        _deployment(APP, finalizers=["b.example/two"]),
    ),
    StrategicCase(
        "delete-one-finalizer-add-another",
        _deployment(APP, finalizers=["a.example/one"]),
        {
            "metadata": {
                "$deleteFromPrimitiveList/finalizers": ["a.example/one"],
                "finalizers": ["c.example/three"],
            }
        },
        _deployment(APP, finalizers=["c.example/three"]),
    ),
    StrategicCase(
        "labels-merge-null-deletes",
        _deployment(APP, labels={"app": "web", "tier": "front"}),
        {"metadata": {"labels": {"tier": None, "team": "x"}}},
        _deployment(APP, labels={"app": "web", "team": "x"}),
    ),
    StrategicCase(
        "labels-replace-directive",
        _deployment(APP, labels={"app": "web", "tier": "front"}),
        {"metadata": {"labels": {"$patch": "replace", "only": "this"}}},
        _deployment(APP, labels={"only": "this"}),
    ),
    StrategicCase(
        "node-selector-merges",
        _deployment(APP, nodeSelector={"disk": "ssd"}),
        _pod_spec_patch(nodeSelector={"zone": "a"}),
        _deployment(APP, nodeSelector={"disk": "ssd", "zone": "a"}),
    ),
    StrategicCase(
        "args-are-replaced",
        _deployment(APP, SIDECAR),
        _pod_spec_patch(containers=[{"name": "app", "args": ["--port", "8080"]}]),
        _deployment(_with(APP, args=["--port", "8080"]), SIDECAR),
    ),
    StrategicCase(
        "command-is-replaced",
        _deployment(APP, SIDECAR),
        _pod_spec_patch(containers=[{"name": "sidecar", "command": ["true"]}]),
        _deployment(APP, _with(SIDECAR, command=["true"])),
    ),
    StrategicCase(
        "tolerations-are-replaced",
        _deployment(APP, tolerations=[{"key": "a", "operator": "Exists"}, {"key": "b"}]),
        _pod_spec_patch(tolerations=[{"key": "c", "operator": "Exists"}]),
        _deployment(APP, tolerations=[{"key": "c", "operator": "Exists"}]),
    ),
    StrategicCase(
        "set-element-order",
        _deployment(APP, SIDECAR),
        _pod_spec_patch(
            **{
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                "containers": [{"name": "app", "image": "nginx:1.27"}],
            }
        ),
        _deployment(SIDECAR, _with(APP, image="nginx:1.27")),
    ),
    StrategicCase(
        "set-element-order-unnamed-follow",
        _deployment({"name": "a"}, {"name": "b"}, {"name": "c"}),
        _pod_spec_patch(**{"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]}),
        _deployment({"name": "c"}, {"name": "a"}, {"name": "b"}),
    ),
    StrategicCase(
        "set-element-order-of-finalizers",
        _deployment(APP, finalizers=["x", "y"]),
        {"metadata": {"$setElementOrder/finalizers": ["z", "y", "x"], "finalizers": ["z"]}},
        _deployment(APP, finalizers=["z", "y", "x"]),
    ),
    StrategicCase(
        "volume-retain-keys-switches-source",
        _deployment(
            APP, volumes=[{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
        ),
        _pod_spec_patch(
            volumes=[
                {"name": "data", "$retainKeys": ["name", "configMap"], "configMap": {"name": "cfg"}}
            ]
        ),
        _deployment(
            APP,
            volumes=[
                {"name": "data", "configMap": {"name": "cfg"}},
                {"name": "tmp", "emptyDir": {}},
            ],
        ),
    ),
    StrategicCase(
        "object-delete-directive",
        _with(
            _deployment(APP), spec={**_deployment(APP)["spec"], "strategy": {"type": "Recreate"}}
        ),
        {"spec": {"strategy": {"$patch": "delete"}}},
        _deployment(APP),
    ),
    StrategicCase(
        "object-replace-directive",
        _with(
            _deployment(APP),
            spec={
                **_deployment(APP)["spec"],
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            },
        ),
        {"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}},
        _with(
            _deployment(APP), spec={**_deployment(APP)["spec"], "strategy": {"type": "Recreate"}}
        ),
    ),
    StrategicCase(
        "null-deletes-a-field",
        _deployment(APP),
        {"spec": {"replicas": None}},
        _with(_deployment(APP), spec=_with(_deployment(APP)["spec"], replicas=None)),
    ),
    StrategicCase(
        "owner-references-merge-by-uid",
        _with(
            _deployment(APP),
            metadata={"name": "web", "ownerReferences": [{"uid": "1", "name": "a"}]},
        ),
        {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}},
        _with(
            _deployment(APP),
            metadata={
                "name": "web",
                "ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}],
            },
        ),
    ),
    StrategicCase(
        "pod-conditions-merge-by-type",
        {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "False"},
                    {"type": "PodScheduled", "status": "True"},
                ]
            }
        },
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "PodScheduled", "status": "True"},
                ]
            }
        },
        kind=Pod,
    ),
    StrategicCase(
        "service-ports-merge-by-port",
        {"spec": {"ports": [{"port": 80, "name": "http"}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "name": "https"}]}},
        {
            "spec": {
                "ports": [
                    {"port": 80, "name": "http", "targetPort": 8080},
                    {"port": 443, "name": "https"},
                ]
            }
        },
        kind=Service,
    ),
    StrategicCase(
        # Kubernetes' NodeSpec.taints is atomic: `kubectl taint k-` sends the
        # remaining taints, so merging by key would keep the removed one.
        "node-taints-are-replaced",
        {
            "spec": {
                "taints": [
                    {"key": "a", "effect": "NoSchedule"},
                    {"key": "b", "effect": "NoSchedule"},
                ]
            }
        },
        {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}},
        {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}},
        kind=Node,
    ),
    StrategicCase(
        "struct-merges-as-json-without-directives",
        {"revision": 1, "data": {"a": 1, "$ref": "#/x", "b": {"c": [1]}}},
        {"data": {"a": None, "b": {"d": 2}, "$schema": "s"}},
        {"revision": 1, "data": {"$ref": "#/x", "b": {"c": [1], "d": 2}, "$schema": "s"}},
        kind=ControllerRevision,
    ),
    StrategicCase(
        # CRD versions are atomic: the patch's list, taken as it is.
        "crd-versions-are-replaced",
        {"spec": {"versions": [{"name": "v1", "served": True}, {"name": "v2"}]}},
        {"spec": {"versions": [{"name": "v2", "served": True, "storage": True}]}},
        {"spec": {"versions": [{"name": "v2", "served": True, "storage": True}]}},
        kind=CustomResourceDefinition,
    ),
    # Errors.
    StrategicCase(
        "missing-merge-key",
        _deployment(APP, SIDECAR),
        _pod_spec_patch(containers=[{"name": "app", "image": "a"}, {"image": "b"}]),
        error='spec.template.spec.containers[1]: missing merge key "name"',
    ),
    StrategicCase(
        "missing-merge-key-in-delete",
        _deployment(APP),
        _pod_spec_patch(containers=[{"name": "app", "env": [{"$patch": "delete"}]}]),
        error='spec.template.spec.containers[0].env[0]: missing merge key "name"',
    ),
    StrategicCase(
        "unknown-directive",
        _deployment(APP),
        _pod_spec_patch(**{"$merge": True}),
        error="spec.template.spec.$merge: unknown directive",
    ),
    StrategicCase(
        "unknown-map-directive",
        _deployment(APP),
        {"metadata": {"labels": {"$keep": ["a"]}}},
        error="metadata.labels.$keep: unknown directive",
    ),
    StrategicCase(
        "bad-object-patch-directive",
        _deployment(APP),
        {"spec": {"$patch": "merge"}},
        error='spec.$patch: "merge" is not a directive for an object',
    ),
    StrategicCase(
        "bad-list-element-directive",
        _deployment(APP),
        _pod_spec_patch(containers=[{"$patch": "merge", "name": "app"}]),
        error='containers[0].$patch: "merge" is not a directive for a list element',
    ),
    StrategicCase(
        "replace-marker-must-stand-alone",
        _deployment(APP),
        _pod_spec_patch(containers=[{"$patch": "replace", "name": "app"}]),
        error='spec.template.spec.containers[0]: {"$patch": "replace"} marks the whole list',
    ),
    StrategicCase(
        "delete-in-an-atomic-list",
        _deployment(APP, tolerations=[{"key": "a"}]),
        _pod_spec_patch(tolerations=[{"$patch": "delete", "key": "a"}]),
        error='spec.template.spec.tolerations[0]: "$patch" elements work only in lists merged',
    ),
    StrategicCase(
        "set-element-order-of-atomic-list",
        _deployment(APP),
        _pod_spec_patch(containers=[{"name": "app", "$setElementOrder/args": ["80", "--port"]}]),
        error="spec.template.spec.containers[0].$setElementOrder/args: args is replaced whole",
    ),
    StrategicCase(
        "set-element-order-of-unknown-list",
        _deployment(APP),
        _pod_spec_patch(**{"$setElementOrder/containerz": []}),
        error='spec.$setElementOrder/containerz: PodSpec has no list field "containerz"',
    ),
    StrategicCase(
        "set-element-order-missing-key",
        _deployment(APP),
        _pod_spec_patch(**{"$setElementOrder/containers": [{"image": "x"}]}),
        error='spec.template.spec.$setElementOrder/containers[0]: missing merge key "name"',
    ),
    StrategicCase(
        "delete-from-list-of-objects",
        _deployment(APP),
        _pod_spec_patch(**{"$deleteFromPrimitiveList/containers": ["app"]}),
        error="containers is a list of objects",
    ),
    StrategicCase(
        "keyed-list-element-not-an-object",
        _deployment(APP),
        _pod_spec_patch(containers=["app"]),
        error="spec.template.spec.containers[0]: expected an object (a Container), got a string",
    ),
    StrategicCase(
        "null-in-merged-value-list",
        _deployment(APP, finalizers=["a"]),
        {"metadata": {"finalizers": [None]}},
        error="metadata.finalizers[0]: expected a plain value, got null",
    ),
    StrategicCase(
        "retain-keys-not-a-list",
        _deployment(APP),
        {"spec": {"$retainKeys": "replicas"}},
        error='spec.$retainKeys: expected a list of field names, got "replicas"',
    ),
    StrategicCase(
        "patch-not-an-object",
        _deployment(APP),
        [{"op": "add"}],
        error="a strategic merge patch is a JSON object, got a list",
    ),
]


@pytest.mark.parametrize("case", STRATEGIC_CASES, ids=[c.id for c in STRATEGIC_CASES])
def test_strategic_merge_patch(case: StrategicCase) -> None:
    codec.from_dict(case.kind, case.target)  # the fixture itself is a valid object
    before = copy.deepcopy((case.target, case.patch))
    if case.error:
        with pytest.raises(PatchError) as info:
            strategic_merge_patch(case.target, case.patch, case.kind)
        assert case.error in str(info.value), case.id
        assert (case.target, case.patch) == before, "an input was mutated"
        return
    result = strategic_merge_patch(case.target, case.patch, case.kind)
    assert result == case.expected, case.id
    _check_pure(case.target, case.patch, before, result)
    codec.from_dict(case.kind, result)  # and the result decodes


def test_strategic_patch_round_trips_through_the_codec() -> None:
    current = codec.from_dict(Deployment, _deployment(APP, SIDECAR, labels={"app": "web"}))
    patch = {
        "metadata": {"labels": {"release": "canary"}},
        "spec": {
            "replicas": 5,
            "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}},
        },
    }
    updated = codec.from_dict(
        Deployment, strategic_merge_patch(codec.to_dict(current), patch, Deployment)
    )
    assert updated.spec.replicas == 5
    assert dict(updated.metadata.labels) == {"app": "web", "release": "canary"}
    app, sidecar = updated.spec.template.spec.containers
    assert (app.name, app.image) == ("app", "nginx:1.27")
    assert list(app.args) == ["--port", "80"]
    assert app.ports[0].container_port == 80
    assert app.resources.limits["cpu"].string == "500m"
    assert sidecar == current.spec.template.spec.containers[1]


def test_merge_key_table_names_real_fields() -> None:
    pool = descriptor_pool.Default()
    for message_name, key in patch_module._MERGE_KEYS.items():
        descriptor = pool.FindMessageTypeByName(message_name)
        assert key in json_fields(descriptor), f"{message_name} has no field {key!r}"
    for field_name in patch_module._MERGED_VALUE_LISTS:
        message_name, _, proto_name = field_name.rpartition(".")
        found = pool.FindMessageTypeByName(message_name).fields_by_name[proto_name]
        assert found.is_repeated, field_name
        assert not is_map(found), field_name
        assert found.message_type is None, f"{field_name} is not a list of plain values"


# ---------------------------------------------------------------- limits


def _nested(depth: int, leaf: Any = 1) -> Any:
    """`leaf` inside `depth` objects: {"k": {"k": ... leaf}}."""
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def _copy_bomb(copies: int) -> list[dict[str, Any]]:
    """CVE-2019-1002100's shape: one add, then copies that double the subtree."""
    operations: list[dict[str, Any]] = [
        {"op": "add", "path": "/metadata/annotations", "value": {"a": "x" * 10}}
    ]
    for i in range(copies):
        operations.append(
            {"op": "copy", "from": "/metadata/annotations", "path": f"/metadata/annotations/b{i}"}
        )
    return operations


def _apply(kind: str, target: Any, document: Any) -> Any:
    if kind == "merge":
        return merge_patch(target, document)
    if kind == "json":
        return json_patch(target, document)
    return strategic_merge_patch(target, document, Pod)


@dataclass(frozen=True)
class LimitCase:
    id: str
    kind: str  # merge, json or strategic
    target: Any
    patch: Any
    error: str  # a substring of the message
    too_large: bool = False  # PatchTooLarge (the server answers 413), else PatchError (400)


POD = {"metadata": {"name": "p"}}
LIMIT_CASES = [
    LimitCase(
        "copy-bomb-22",
        "json",
        POD,
        _copy_bomb(22),
        'operation 17 (copy "/metadata/annotations/b16"): the values this patch adds and '
        "copies come to more than 3145728 bytes",
        too_large=True,
    ),
    LimitCase(
        "one-big-add-and-copies",
        "json",
        POD,
        [
            {"op": "add", "path": "/metadata/labels", "value": {"a": "x" * (2 * 1024 * 1024)}},
            {"op": "copy", "from": "/metadata/labels", "path": "/metadata/annotations"},
        ],
        'operation 1 (copy "/metadata/annotations"): the values this patch adds',
        too_large=True,
    ),
    LimitCase(
        "too-many-operations",
        "json",
        POD,
        [{"op": "test", "path": "/metadata/name", "value": "p"}] * 10_001,
        "the allowed maximum operations in a JSON patch is 10000, got 10001",
        too_large=True,
    ),
    LimitCase("merge-patch-too-deep", "merge", POD, _nested(101), "nesting depth exceeds 100"),
    LimitCase(
        "merge-target-too-deep",
        "merge",
        _nested(101),
        {},
        "the object to patch: nesting depth exceeds 100",
    ),
    LimitCase(
        "strategic-patch-too-deep",
        "strategic",
        POD,
        {"metadata": {"annotations": _nested(100)}},
        "the patch: nesting depth exceeds 100",
    ),
    LimitCase(
        "json-patch-too-deep",
        "json",
        POD,
        [{"op": "add", "path": "/a", "value": _nested(99)}],
        "the patch: nesting depth exceeds 100",
    ),
    LimitCase(
        "json-copy-into-own-leaf",
        "json",
        {"a": _nested(60)},
        [{"op": "copy", "from": "/a", "path": "/a" + "/k" * 60}],
        'copy "/a' + "/k" * 60 + '"): the value placed here: nesting depth exceeds 100',
    ),
    LimitCase(
        "json-move-too-deep",
        "json",
        {"a": _nested(60), "b": _nested(50)},
        [{"op": "move", "from": "/b", "path": "/a" + "/k" * 59 + "/b"}],
        "the value placed here: nesting depth exceeds 100",
    ),
]


@pytest.mark.parametrize("case", LIMIT_CASES, ids=[c.id for c in LIMIT_CASES])
def test_patches_past_a_limit_are_refused_fast(case: LimitCase) -> None:
    started = time.monotonic()
    with pytest.raises(PatchError) as info:
        _apply(case.kind, case.target, case.patch)
    elapsed = time.monotonic() - started
    assert case.error in str(info.value), f"{case.id}: {info.value}"
    assert isinstance(info.value, PatchTooLarge) == case.too_large, case.id
    # The copy bomb took 26 s and 1 GB at 22 copies before the limit; generous slack.
    assert elapsed < 5, f"{case.id} took {elapsed:.1f} s"


def test_a_patch_within_the_limits_still_applies() -> None:
    depth_99 = {"metadata": {"annotations": None}, "spec": _nested(98, {})}
    assert merge_patch({}, depth_99) == {"metadata": {}, "spec": _nested(98, {})}
    operations = [{"op": "test", "path": "/metadata/name", "value": "p"}] * 10_000
    assert json_patch(POD, operations) == POD
    assert json_patch(POD, _copy_bomb(10))["metadata"]["annotations"]["b9"]["a"] == "x" * 10


@dataclass(frozen=True)
class BodyCase:
    id: str
    body: bytes
    expected: Any = None
    error: str = ""
    too_large: bool = False


BODY_CASES = [
    BodyCase("object", b'{"a": [1, 2.5, "x", true, null]}', {"a": [1, 2.5, "x", True, None]}),
    BodyCase("empty-is-null", b"", None),
    BodyCase("depth-100", b"[" * 100 + b"]" * 100, _nested(0, [])),
    BodyCase("depth-101", b"[" * 101 + b"]" * 101, error="the patch: nesting depth exceeds 100"),
    # Deeper than the C parser's own guard: RecursionError before, BadRequest now.
    BodyCase("depth-100000", b"[" * 100_000, error="the patch: nesting depth exceeds 100"),
    BodyCase("not-json", b"{nope", error="the patch is not valid JSON"),
    BodyCase("nan", b'{"a": NaN}', error="the patch is not valid JSON: NaN is not a JSON value"),
    BodyCase("not-utf8", b'{"a": "\xff"}', error="the patch is not valid JSON"),
    BodyCase(
        "over-3MiB",
        b'"' + b"x" * (3 * 1024 * 1024) + b'"',
        error="the patch is 3145730 bytes, and the limit is 3145728 bytes",
        too_large=True,
    ),
]


@pytest.mark.parametrize("case", BODY_CASES, ids=[c.id for c in BODY_CASES])
def test_patch_bodies(case: BodyCase) -> None:
    if not case.error:
        if case.id == "depth-100":
            assert nesting_depth(parse_body(case.body)) == 100
        else:
            assert parse_body(case.body) == case.expected, case.id
        return
    with pytest.raises(PatchError) as info:
        parse_body(case.body)
    assert str(info.value).startswith(case.error), f"{case.id}: {info.value}"
    assert isinstance(info.value, PatchTooLarge) == case.too_large, case.id


@pytest.mark.parametrize(
    ("case_id", "patch"),
    [
        (
            "containers-merged-by-name",
            {"spec": {"containers": [{"name": f"c{i}"} for i in range(100_000)]}},
        ),
        (
            "finalizers-union-and-order",
            {
                "metadata": {
                    "finalizers": [f"f{i}" for i in range(100_000)],
                    "$setElementOrder/finalizers": [f"f{i}" for i in range(100_000)],
                    "$deleteFromPrimitiveList/finalizers": [f"g{i}" for i in range(100_000)],
                }
            },
        ),
        (
            "containers-deleted-by-name",
            {
                "spec": {
                    "containers": [{"name": f"c{i}", "$patch": "delete"} for i in range(100_000)]
                }
            },
        ),
    ],
)
def test_strategic_lists_merge_in_linear_time(case_id: str, patch: dict[str, Any]) -> None:
    """A 2 MB patch of 100,000 list elements was quadratic (10^10 comparisons)."""
    target = {"metadata": {"finalizers": ["a"]}, "spec": {"containers": [{"name": "c1"}]}}
    started = time.monotonic()
    strategic_merge_patch(target, patch, Pod)
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"{case_id} took {elapsed:.1f} s"


# -- a request's patch, as the API answers it ---------------------------------------------


REQUEST_CASES = [
    ("merge", b'{"a": 1}', None, ""),
    ("json", b'[{"op": "add", "path": "/a", "value": 1}]', None, ""),
    ("apply", b"{}", errors.BadRequest, 'unsupported patch type "apply"'),
    ("json", b'{"a": 1}', errors.BadRequest, "a json patch must be a list of operations"),
    ("strategic", b"[]", errors.BadRequest, "a strategic patch must be a JSON object"),
    ("merge", b"{", errors.BadRequest, "the patch is not valid JSON"),
    ("merge", b'"' + b"x" * (3 * 1024 * 1024) + b'"', errors.TooLarge, "the patch is 3145730"),
]


@pytest.mark.parametrize(
    ("patch_type", "body", "error", "message"),
    REQUEST_CASES,
    ids=[f"{c[0]}-{c[3] or 'ok'}"[:60] for c in REQUEST_CASES],
)
def test_read_patch(
    patch_type: str, body: bytes, error: type[errors.StatusError] | None, message: str
) -> None:
    if error is None:
        assert read_patch(patch_type, body) == json.loads(body), patch_type
        return
    with pytest.raises(error, match=re.escape(message)):
        read_patch(patch_type, body)


APPLY_CASES = [
    ("merge", {"a": None}, None, ""),
    ("json", [{"op": "remove", "path": "/b"}], errors.BadRequest, "the patch cannot be applied"),
    ("strategic", {"$frob": 1}, errors.BadRequest, "unknown directive"),
    (
        "json",
        [{"op": "add", "path": "/a", "value": "x" * 1024}]
        + [{"op": "copy", "from": "/a", "path": f"/c{i}"} for i in range(3100)],
        errors.TooLarge,
        "the patch cannot be applied: operation",
    ),
]


@pytest.mark.parametrize(
    ("patch_type", "document", "error", "message"),
    APPLY_CASES,
    ids=[f"{c[0]}-{c[3] or 'ok'}"[:60] for c in APPLY_CASES],
)
def test_apply_patch(
    patch_type: str, document: Any, error: type[errors.StatusError] | None, message: str
) -> None:
    target = {"metadata": {"name": "p"}, "a": 1}
    if error is None:
        assert apply_patch(patch_type, target, document, Pod) == {"metadata": {"name": "p"}}
        return
    with pytest.raises(error, match=re.escape(message)):
        apply_patch(patch_type, target, document, Pod)

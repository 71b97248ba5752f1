"""The three patch formats of the Kubernetes API, as pure functions on JSON data.

The API server applies them to stored objects, and `kpy.client.fake` to the
objects of its in-memory store, so both patch alike.

Kubernetes names each format by its content type:

- `merge_patch` (application/merge-patch+json): RFC 7386. Objects merge
  recursively, `null` deletes a member, anything else (lists included)
  replaces what was there.
- `json_patch` (application/json-patch+json): RFC 6902. A list of add,
  remove, replace, move, copy and test operations on JSON Pointers; the whole
  list applies or nothing does.
- `strategic_merge_patch` (application/strategic-merge-patch+json):
  Kubernetes' merge patch that knows the schema. It walks the protobuf
  descriptor of the object's message type beside the data, so a list of
  containers merges element by element on `name` while a list of
  tolerations is replaced whole, exactly where Kubernetes' Go types say so.

Contract, for all three:
- Data is what `kpy.api.codec.to_dict` produces and a JSON parser returns:
  dicts with string keys, lists, strings, numbers, booleans and None.
- Inputs are never mutated, and the result shares no mutable part with them:
  the caller may change it freely.
- A patch that cannot be applied raises `PatchError`, whose message names the
  place (a field path, or the operation and its pointer), what is wrong, and
  what to send instead.
- The result is not checked against the schema here: the caller decodes it
  with `kpy.api.codec.from_dict`, which reports unknown fields and values of
  the wrong type with their paths.

Bounds, so that a small patch cannot make the server work or allocate
without end (Kubernetes' CVE-2019-1002100: one `add` and k `copy`s of the
growing subtree double it k times). As kube-apiserver does:
- a patch body is at most `MAX_PATCH_BYTES` (3 MiB), read by `parse_body`;
- a JSON patch has at most `MAX_JSON_PATCH_OPERATIONS` (10,000) operations;
- the values a JSON patch adds and copies may add up to `MAX_ADDED_BYTES`
  (3 MiB, measured as JSON), evanphx/json-patch's AccumulatedCopySizeLimit;
  the result is then never more than that larger than the target. A merge
  or strategic patch adds at most its own size, so its body cap bounds it;
- no input, and no value a JSON patch places, nests deeper than
  `kpy.api.limits.MAX_DEPTH` (100): the walks here are recursive.
All three refuse at once, before the work: `PatchTooLarge` for a size or a
count (the API server answers RequestEntityTooLarge), `PatchError` for depth.
Merging a list by key, ordering it and taking a set union use hash indexes,
so a patch with many elements costs linear time, not quadratic.

Why RFC 6902 is implemented here rather than taken from the `jsonpatch`
library (measured with jsonpatch 1.47): the library has no bound on copies,
and no hook to refuse one before it is made (its copy operation resolves
`from` and deep-copies inside `apply`). A 19-operation patch of about 2 KB
(one `add` of a 1 KB list, then 18 `copy`s of it into itself) made it build a
263 MB document in 1 s; six more operations would ask for 16 GB. Here the
same patch is refused at its 13th operation in 10 ms. Bounding the library
would mean resolving every pointer ourselves before handing each operation
over one at a time, which keeps all of this module but the tree edits; and
its errors name neither the operation's index nor what to send instead.
Where the two agree (true is not 1 in `test`, no leading zeros in indexes,
only "~0" and "~1" escapes, no move into a child) `tests/unit/test_patch.py`
holds the cases.
"""

from __future__ import annotations

import copy
import json
import re
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

from google.protobuf.message import Message

from kpy.api import errors
from kpy.api._descriptors import is_map, is_message, json_fields, map_value
from kpy.api.limits import MAX_DEPTH, depth_message, nesting_depth

if TYPE_CHECKING:
    from collections.abc import Mapping

    from google.protobuf.descriptor import Descriptor, FieldDescriptor

__all__ = [
    "MAX_ADDED_BYTES",
    "MAX_JSON_PATCH_OPERATIONS",
    "MAX_PATCH_BYTES",
    "PATCH_TYPES",
    "PatchError",
    "PatchTooLarge",
    "apply_patch",
    "json_patch",
    "merge_patch",
    "parse_body",
    "read_patch",
    "strategic_merge_patch",
]

PATCH_TYPES: Final = ("merge", "strategic", "json")
"""The patch types a request may name, as kpy's API spells them."""
MAX_PATCH_BYTES: Final = 3 * 1024 * 1024
"""The largest patch body accepted: kube-apiserver's request body limit."""
MAX_JSON_PATCH_OPERATIONS: Final = 10_000
"""The most operations in one JSON patch: kube-apiserver's maxJSONPatchOperations."""
MAX_ADDED_BYTES: Final = 3 * 1024 * 1024
"""How many bytes (as JSON) the values that one JSON patch adds, replaces
and copies may add up to: kube-apiserver's accumulated copy size limit."""


class PatchError(ValueError):
    """A patch that cannot be applied. `path` says where (a field path such as
    `spec.template.spec.containers[1]`, or `operation 2 (remove "/a")` for a
    JSON patch; empty for the patch as a whole), `reason` what is wrong and
    how to fix it."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


class PatchTooLarge(PatchError):
    """A patch refused for its size or its number of operations, before any
    work: too long a body, too many operations, or operations that would
    grow the object past `MAX_ADDED_BYTES`."""


# ---------------------------------------------------------------- shared


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_depth(value: Any, what: str) -> None:
    if nesting_depth(value) > MAX_DEPTH:
        raise PatchError("", f"{what}: {depth_message()}")


def _json_size(value: Any) -> int:
    """The length of `value` as compact JSON (its depth is already bounded)."""
    return len(json.dumps(value, separators=(",", ":"), default=str))


def _identity(value: Any) -> Any:
    """A hashable stand-in for a JSON value: equal for values `_json_equal`
    calls equal (1 and 1.0), different for true and 1 or "1" and 1."""
    if isinstance(value, bool):
        return (bool, value)
    if isinstance(value, int | float):
        return (float, value)  # 1 == 1.0 and hash(1) == hash(1.0)
    if isinstance(value, dict):
        return (dict, frozenset((str(k), _identity(v)) for k, v in value.items()))
    if isinstance(value, list):
        return (list, tuple(_identity(v) for v in value))
    if isinstance(value, str) or value is None:
        return (type(value), value)
    return (type(value), repr(value))


def parse_body(body: bytes, *, what: str = "the patch") -> Any:
    """A patch body parsed as JSON, within the bounds above.

    Raises `PatchTooLarge` for a body over `MAX_PATCH_BYTES`, and
    `PatchError` for a body that is not JSON (NaN and Infinity are not), or
    that nests deeper than `MAX_DEPTH`. An empty body is `null`."""
    if len(body) > MAX_PATCH_BYTES:
        raise PatchTooLarge(
            "",
            f"{what} is {len(body)} bytes, and the limit is {MAX_PATCH_BYTES} bytes; "
            "send a smaller patch (several in turn, or replace the object with update)",
        )
    try:
        document = json.loads(body or b"null", parse_constant=_no_constant)
    except RecursionError:
        # The C parser guards its own stack; past it the depth is over the limit too.
        raise PatchError("", f"{what}: {depth_message()}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise PatchError("", f"{what} is not valid JSON: {e}") from None
    _check_depth(document, what)
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (use a number, or a string)")


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: 1 == 1.0, but true != 1 and "1" != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


# ---------------------------------------------------------------- RFC 7386


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch to `target` and return the result.

    An object patch merges into the target member by member (a target that is
    not an object counts as `{}`), a `null` member deletes, and any other
    patch value, lists included, replaces the target whole. Fails only for
    an input nested deeper than `MAX_DEPTH` (`PatchError`)."""
    _check_depth(target, "the object to patch")
    _check_depth(patch, "the patch")
    return _merge_owned(copy.deepcopy(target), patch)


def _merge_owned(target: Any, patch: Any) -> Any:
    """RFC 7386 on a target this module owns (may be changed in place)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[Any, Any] = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_owned(result.get(key), value)
    return result


# ---------------------------------------------------------------- RFC 6902

_OPERATIONS: Final = ("add", "remove", "replace", "move", "copy", "test")
_ARRAY_INDEX: Final = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE: Final = re.compile(r"~(?![01])")


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch (a list of operations) and return the result.

    Operations apply in order to a copy of `target`; the first that cannot
    (a bad operation, a pointer to nothing, a failed `test`) raises
    `PatchError` naming it by index, and no partial result is returned.
    More than `MAX_JSON_PATCH_OPERATIONS` operations, or values added and
    copied past `MAX_ADDED_BYTES`, raise `PatchTooLarge` before the
    operation that would cross the limit runs."""
    if not isinstance(operations, list):
        raise PatchError(
            "",
            f"a JSON patch is a list of operations, got {_kind(operations)}; "
            'send [{"op": ..., "path": ...}, ...]',
        )
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchTooLarge(
            "",
            f"the allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
            f"got {len(operations)}; split the patch, or replace the object with update",
        )
    _check_depth(target, "the object to patch")
    _check_depth(operations, "the patch")
    document = copy.deepcopy(target)
    budget = _Budget()
    for index, operation in enumerate(operations):
        document = _apply_operation(document, operation, index, budget)
    return document


class _Budget:
    """What the operations of one JSON patch have added so far, in bytes."""

    def __init__(self) -> None:
        self.added = 0

    def place(self, tokens: list[str], value: Any, where: str) -> None:
        """Account for `value` about to be placed at `tokens`: refuse it if
        the patch would then have added more than MAX_ADDED_BYTES, or if it
        would nest deeper than MAX_DEPTH there."""
        self.added += _json_size(value)
        if self.added > MAX_ADDED_BYTES:
            raise PatchTooLarge(
                where,
                f"the values this patch adds and copies come to more than {MAX_ADDED_BYTES} "
                f"bytes (the limit on how much one patch may grow an object); "
                "send a smaller patch",
            )
        _check_room(tokens, value, where)


def _check_room(tokens: list[str], value: Any, where: str) -> None:
    """Refuse placing `value` at `tokens` if the document would then nest
    deeper than MAX_DEPTH (a scalar adds no depth)."""
    room = max(MAX_DEPTH - len(tokens), 0)
    if nesting_depth(value, stop=room) > room:
        raise PatchError(where, f"the value placed here: {depth_message()}")


def _apply_operation(document: Any, operation: Any, index: int, budget: _Budget) -> Any:
    where = f"operation {index}"
    if not isinstance(operation, dict):
        raise PatchError(where, f'expected an object with "op" and "path", got {_kind(operation)}')
    op = operation.get("op")
    if op not in _OPERATIONS:
        raise PatchError(
            where,
            f'"op" is {_shown(op) if "op" in operation else "missing"}; '
            f"use one of {', '.join(_OPERATIONS)}",
        )
    path_text = _string_member(operation, "path", where)
    where = f"operation {index} ({op} {json.dumps(path_text)})"
    path = _parse_pointer(path_text, "path", where)
    if op == "add":
        value = _value_member(operation, where)
        budget.place(path, value, where)
        return _add(document, path, copy.deepcopy(value), where)
    if op == "remove":
        document, _ = _remove(document, path, where)
        return document
    if op == "replace":
        value = _value_member(operation, where)
        budget.place(path, value, where)
        return _replace(document, path, copy.deepcopy(value), where)
    if op == "test":
        _test(document, path, _value_member(operation, where), where)
        return document
    source_text = _string_member(operation, "from", where)
    source = _parse_pointer(source_text, "from", where)
    if op == "copy":
        value = _resolve(document, source, where)
        budget.place(path, value, where)  # before the copy: it may be what is too large
        return _add(document, path, copy.deepcopy(value), where)
    # move
    if path[: len(source)] == source and len(path) > len(source):
        raise PatchError(
            where,
            f'cannot move {json.dumps(source_text)} into itself; "from" must not be '
            'a parent of "path"',
        )
    if path == source:
        _resolve(document, source, where)  # it must still exist
        return document
    _check_room(path, _resolve(document, source, where), where)
    document, value = _remove(document, source, where)
    return _add(document, path, value, where)


def _string_member(operation: dict[str, Any], name: str, where: str) -> str:
    if name not in operation:
        raise PatchError(where, f'missing "{name}"; add it as a JSON pointer such as "/spec/x"')
    value = operation[name]
    if not isinstance(value, str):
        raise PatchError(where, f'"{name}" must be a JSON pointer string, got {_kind(value)}')
    return value


def _value_member(operation: dict[str, Any], where: str) -> Any:
    if "value" not in operation:
        raise PatchError(where, f'missing "value"; {operation["op"]} needs one (null is allowed)')
    return operation["value"]


def _parse_pointer(text: str, member: str, where: str) -> list[str]:
    """RFC 6901: "" is the whole document, "/a/0" walks a member then an index;
    "~1" stands for "/" and "~0" for "~"."""
    if text == "":
        return []
    if not text.startswith("/"):
        raise PatchError(
            where,
            f'"{member}" {json.dumps(text)} is not a JSON pointer: it must be empty '
            f'or start with "/" (did you mean {json.dumps("/" + text)}?)',
        )
    tokens = text[1:].split("/")
    for token in tokens:
        if _BAD_ESCAPE.search(token):
            raise PatchError(
                where,
                f'"{member}" {json.dumps(text)} has a "~" that is not "~0" or "~1"; '
                'write "~" as "~0" and "/" as "~1"',
            )
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _pointer(tokens: list[str]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def _index(array: list[Any], token: str, parent: list[str], where: str, *, end: bool) -> int:
    """The position `token` names in `array`; `end` allows len(array) and "-"."""
    if token == "-":
        if end:
            return len(array)
        raise PatchError(
            where,
            f'"-" (past the end of {json.dumps(_pointer(parent))}) names no element; '
            "only add, and the target of move or copy, may use it",
        )
    if not _ARRAY_INDEX.fullmatch(token):
        raise PatchError(
            where,
            f"{json.dumps(_pointer(parent))} is a list, so {json.dumps(token)} must be "
            'an index such as 0 (no sign or leading zeros) or "-"',
        )
    position = int(token)
    if position > len(array) or (position == len(array) and not end):
        raise PatchError(
            where,
            f"index {position} is out of range: {json.dumps(_pointer(parent))} has "
            f"{len(array)} element(s)",
        )
    return position


def _resolve(document: Any, tokens: list[str], where: str) -> Any:
    node = document
    for depth, token in enumerate(tokens):
        parent = tokens[:depth]
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(
                    where, f"{json.dumps(_pointer(tokens[: depth + 1]))} does not exist"
                )
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, parent, where, end=False)]
        else:
            raise PatchError(
                where,
                f"{json.dumps(_pointer(parent))} is {_kind(node)}, not an object or a list, "
                f"so it has no {json.dumps(token)}",
            )
    return node


def _container(document: Any, tokens: list[str], where: str) -> dict[str, Any] | list[Any]:
    parent = _resolve(document, tokens[:-1], where)
    if not isinstance(parent, dict | list):
        raise PatchError(
            where,
            f"{json.dumps(_pointer(tokens[:-1]))} is {_kind(parent)}, not an object or a list",
        )
    return parent


def _add(document: Any, tokens: list[str], value: Any, where: str) -> Any:
    if not tokens:
        return value
    parent = _container(document, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    else:
        parent.insert(_index(parent, last, tokens[:-1], where, end=True), value)
    return document


def _remove(document: Any, tokens: list[str], where: str) -> tuple[Any, Any]:
    """Remove what `tokens` points at; returns (document, the removed value)."""
    if not tokens:
        raise PatchError(where, 'cannot remove the whole document; use replace with path ""')
    parent = _container(document, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(where, f"{json.dumps(_pointer(tokens))} does not exist")
        return document, parent.pop(last)
    return document, parent.pop(_index(parent, last, tokens[:-1], where, end=False))


def _replace(document: Any, tokens: list[str], value: Any, where: str) -> Any:
    if not tokens:
        return value
    parent = _container(document, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(
                where, f"{json.dumps(_pointer(tokens))} does not exist; use add to create it"
            )
        parent[last] = value
    else:
        parent[_index(parent, last, tokens[:-1], where, end=False)] = value
    return document


def _test(document: Any, tokens: list[str], expected: Any, where: str) -> None:
    actual = _resolve(document, tokens, where)
    if not _json_equal(actual, expected):
        raise PatchError(
            where,
            f"test failed: the value is {_shown(actual)}, not {_shown(expected)} "
            "(if the object changed since the patch was written, read it again and "
            "rebuild the patch)",
        )


# ---------------------------------------------------------------- strategic

# Lists of these messages merge element by element, matching elements on
# the field named here (its JSON name), as Kubernetes' Go types say with
# `patchStrategy:"merge" patchMergeKey:"..."`. Every other list of messages is
# atomic: a patch replaces it whole. A message is listed only where every
# list of it in the schema is a merge list in Kubernetes.
_MERGE_KEYS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # core/v1 pod spec
        "kpy.api.core.v1.Container": "name",  # containers, initContainers
        "kpy.api.core.v1.EphemeralContainer": "name",
        "kpy.api.core.v1.ContainerPort": "containerPort",
        "kpy.api.core.v1.EnvVar": "name",
        "kpy.api.core.v1.VolumeMount": "mountPath",
        "kpy.api.core.v1.VolumeDevice": "devicePath",
        "kpy.api.core.v1.Volume": "name",
        "kpy.api.core.v1.LocalObjectReference": "name",  # imagePullSecrets
        "kpy.api.core.v1.HostAlias": "ip",
        "kpy.api.core.v1.TopologySpreadConstraint": "topologyKey",
        "kpy.api.core.v1.PodSchedulingGate": "name",
        "kpy.api.core.v1.PodResourceClaim": "name",
        # core/v1 pod status
        "kpy.api.core.v1.PodCondition": "type",
        "kpy.api.core.v1.HostIP": "ip",
        "kpy.api.core.v1.PodIP": "ip",
        "kpy.api.core.v1.PodResourceClaimStatus": "name",
        "kpy.api.core.v1.VolumeMountStatus": "mountPath",  # containerStatuses[].volumeMounts
        "kpy.api.core.v1.ResourceStatus": "name",  # containerStatuses[].allocatedResourcesStatus
        # core/v1 other kinds
        "kpy.api.core.v1.NodeCondition": "type",
        "kpy.api.core.v1.NodeAddress": "type",
        "kpy.api.core.v1.ServicePort": "port",
        "kpy.api.core.v1.NamespaceCondition": "type",
        "kpy.api.core.v1.PersistentVolumeClaimCondition": "type",
        "kpy.api.core.v1.ReplicationControllerCondition": "type",
        # meta/v1
        "kpy.api.meta.v1.OwnerReference": "uid",
        "kpy.api.meta.v1.Condition": "type",  # Service status.conditions
        # apps/v1, batch/v1, autoscaling/v2
        "kpy.api.apps.v1.DeploymentCondition": "type",
        "kpy.api.apps.v1.ReplicaSetCondition": "type",
        "kpy.api.apps.v1.StatefulSetCondition": "type",
        "kpy.api.apps.v1.DaemonSetCondition": "type",
        "kpy.api.batch.v1.JobCondition": "type",
        "kpy.api.autoscaling.v2.HorizontalPodAutoscalerCondition": "type",
    }
)
# Not listed, on purpose, because Kubernetes replaces them whole (a client
# such as `kubectl taint` then sends the complete new list, so merging them
# would keep what it removed): Node spec.taints, tolerations, readinessGates,
# containerStatuses, CRD status.conditions, Endpoints subsets, matchExpressions.

# Lists of plain values that merge as an ordered set union (protobuf field
# full names, which use the proto field name).
_MERGED_VALUE_LISTS: Final = frozenset(
    {
        "kpy.api.meta.v1.ObjectMeta.finalizers",
        "kpy.api.core.v1.NodeSpec.pod_cidrs",
    }
)

# Messages whose JSON form is an arbitrary JSON value: merged as RFC 7386,
# with no directives (a JSON schema may use keys such as "$ref").
_JSON_VALUED: Final = frozenset(
    {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
)
# Messages whose JSON form is a scalar: a patch replaces them.
_SCALAR_VALUED: Final = frozenset(
    {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "kpy.api.meta.v1.Quantity",
        "kpy.api.meta.v1.IntOrString",
    }
)

_PATCH: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_SET_ORDER: Final = "$setElementOrder/"
_DELETE_FROM: Final = "$deleteFromPrimitiveList/"
_DIRECTIVES_HELP: Final = (
    '"$patch", "$retainKeys", "$setElementOrder/<list>" and "$deleteFromPrimitiveList/<list>"'
)


def strategic_merge_patch(
    target: dict[str, Any], patch: dict[str, Any], message_type: type[Message]
) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to `target`, the JSON form of
    a `message_type` object, and return the result.

    Like `merge_patch`, objects and maps merge member by member and `null`
    deletes; but the descriptor of `message_type` tells what each field is:
    - a list of messages listed in `_MERGE_KEYS` (containers by "name", ports
      by "containerPort", conditions by "type", ...) merges element by element:
      a patch element changes the element with the same key, or is appended;
      every patch element must carry the key;
    - a list of values in `_MERGED_VALUE_LISTS` (metadata.finalizers) gains
      the patch's values that it lacks, keeping its order;
    - any other list is replaced whole by the patch's list, taken as it is;
    - Quantity, IntOrString and Timestamp are replaced; Struct is merged as
      RFC 7386 with no directives; a field the schema lacks is merged as
      RFC 7386 too (decoding the result then reports it).
    Directives, as Kubernetes spells them:
    - `{"$patch": "delete", <key>: v}` in a merged list removes the element;
      `{"$patch": "replace"}` as an element makes the other elements the list;
    - `"$patch": "replace"` in an object or map makes the rest of it the new
      value; `"$patch": "delete"` removes the object or map;
    - `"$deleteFromPrimitiveList/<list>": [values]` removes values from a list
      of plain values (before the patch's own values are added);
    - `"$setElementOrder/<list>": [elements or keys]` orders the merged list
      as given; elements not named follow, in their relative order;
    - `"$retainKeys": [names]` keeps only those members after merging.
    Anything else starting with "$" raises `PatchError`, as does an input
    nested deeper than `MAX_DEPTH`."""
    if not isinstance(patch, dict):
        raise PatchError(
            "",
            f"a strategic merge patch is a JSON object, got {_kind(patch)}; "
            "send the fields to change, nested as in the object",
        )
    # The stubs type DESCRIPTOR as the union of the pure-Python and upb classes.
    descriptor: Descriptor = message_type.DESCRIPTOR  # type: ignore[assignment]
    _check_depth(target, "the object to patch")
    _check_depth(patch, "the patch")
    merged = _merge_message(copy.deepcopy(target), patch, descriptor, "")
    return {} if merged is None else merged


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _object_directive(patch: dict[str, Any], path: str) -> Literal["merge", "replace", "delete"]:
    """The `$patch` directive of an object or map patch ("merge" if none)."""
    if _PATCH not in patch:
        return "merge"
    directive = patch[_PATCH]
    if directive in ("replace", "delete"):
        return "replace" if directive == "replace" else "delete"
    raise PatchError(
        _join(path, _PATCH),
        f'{_shown(directive)} is not a directive for an object; use "replace" (the rest '
        'of this object becomes its value) or "delete" (remove it)',
    )


def _merge_message(
    original: Any, patch: dict[str, Any], descriptor: Descriptor, path: str
) -> dict[str, Any] | None:
    """Merge `patch` into `original` (owned); None means "delete the field"."""
    directive = _object_directive(patch, path)
    if directive == "delete":
        return None
    if directive == "replace":
        rest = {k: v for k, v in patch.items() if k != _PATCH}
        return _merge_fields(None, rest, descriptor, path)
    return _merge_fields(original, patch, descriptor, path)


def _merge_fields(
    original: Any, patch: dict[str, Any], descriptor: Descriptor, path: str
) -> dict[str, Any]:
    result: dict[str, Any] = original if isinstance(original, dict) else {}
    fields = json_fields(descriptor)
    retain: set[str] | None = None
    orders: list[tuple[str, Any]] = []
    for key, value in patch.items():
        if not (isinstance(key, str) and key.startswith("$")):
            continue
        where = _join(path, key)
        if key == _RETAIN_KEYS:
            retain = _retain_keys(value, where)
        elif key.startswith(_SET_ORDER):
            orders.append((key[len(_SET_ORDER) :], value))
        elif key.startswith(_DELETE_FROM):
            _delete_from_list(result, key[len(_DELETE_FROM) :], value, descriptor, where)
        else:
            raise PatchError(where, f"unknown directive; the directives are {_DIRECTIVES_HELP}")
    for key, value in patch.items():
        if isinstance(key, str) and key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
            continue
        merged = _merge_field(result.get(key), value, fields.get(key), _join(path, key))
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged
    for name, order in orders:
        _set_element_order(result, name, order, descriptor, _join(path, _SET_ORDER + name))
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_field(original: Any, value: Any, field: FieldDescriptor | None, path: str) -> Any:
    """Merge a non-null patch value into a field; None means "delete it"."""
    if field is None:
        return _merge_owned(original, value)
    if is_map(field):
        if not isinstance(value, dict):
            return copy.deepcopy(value)  # decoding will say it is not a map
        return _merge_map(original, value, map_value(field), path)
    if field.is_repeated:
        if not isinstance(value, list):
            return copy.deepcopy(value)  # decoding will say it is not a list
        return _merge_list(original, value, field, path)
    return _merge_single(original, value, field, path)


def _merge_single(original: Any, value: Any, field: FieldDescriptor, path: str) -> Any:
    """Merge one value of `field`'s type (a singular field, a map value or a
    list element); None means "delete it"."""
    descriptor = _message_type(field)
    if descriptor is None or not isinstance(value, dict):
        return copy.deepcopy(value)
    if descriptor.full_name in _JSON_VALUED:
        return _merge_owned(original, value)
    if descriptor.full_name in _SCALAR_VALUED:
        return copy.deepcopy(value)
    return _merge_message(original, value, descriptor, path)


def _merge_map(
    original: Any, patch: dict[str, Any], value_field: FieldDescriptor, path: str
) -> dict[str, Any] | None:
    directive = _object_directive(patch, path)
    if directive == "delete":
        return None
    if directive == "replace":
        original = None
    result: dict[str, Any] = original if isinstance(original, dict) else {}
    retain: set[str] | None = None
    for key, value in patch.items():
        if key == _PATCH:
            continue
        if key == _RETAIN_KEYS:
            retain = _retain_keys(value, _join(path, key))
            continue
        if isinstance(key, str) and key.startswith("$"):
            raise PatchError(
                _join(path, key),
                'unknown directive; a map takes only "$patch" and "$retainKeys" '
                "(map keys cannot start with $)",
            )
        if value is None:
            result.pop(key, None)
            continue
        merged = _merge_single(result.get(key), value, value_field, f"{path}[{key}]")
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _retain_keys(value: Any, where: str) -> set[str]:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise PatchError(where, f"expected a list of field names, got {_shown(value)}")
    return set(value)


def _message_type(field: FieldDescriptor) -> Descriptor | None:
    """The message type of a message field (None for scalars)."""
    return field.message_type if is_message(field) else None


def _merge_key(field: FieldDescriptor) -> str | None:
    descriptor = _message_type(field)
    return None if descriptor is None else _MERGE_KEYS.get(descriptor.full_name)


def _merge_list(original: Any, patch: list[Any], field: FieldDescriptor, path: str) -> list[Any]:
    current: list[Any] = original if isinstance(original, list) else []
    descriptor = _message_type(field)
    key = _merge_key(field)
    if descriptor is not None and key is not None:
        return _merge_keyed_list(current, patch, key, descriptor, path)
    if field.full_name in _MERGED_VALUE_LISTS:
        return _merge_value_list(current, patch, path)
    return _replace_list(patch, path)


def _replace_list(patch: list[Any], path: str) -> list[Any]:
    """An atomic list: the patch's list is the new value, taken as it is (its
    elements are values, not patches), as in Kubernetes."""
    result: list[Any] = []
    for index, item in enumerate(patch):
        if isinstance(item, dict) and _PATCH in item:
            if item == {_PATCH: "replace"}:
                continue  # the list is replaced anyway
            raise PatchError(
                f"{path}[{index}]",
                f'"$patch" elements work only in lists merged by key, and {path} is '
                "replaced whole; send the complete list you want instead",
            )
        result.append(copy.deepcopy(item))
    return result


def _merge_value_list(current: list[Any], patch: list[Any], path: str) -> list[Any]:
    """A merged list of plain values: an ordered set union."""
    have = {_identity(value) for value in current}
    for index, item in enumerate(patch):
        if item is None:
            raise PatchError(
                f"{path}[{index}]",
                "expected a plain value, got null; to remove values from this list use "
                f'"$deleteFromPrimitiveList/{path.rsplit(".", 1)[-1]}": [values]',
            )
        if isinstance(item, dict | list):
            raise PatchError(f"{path}[{index}]", f"expected a plain value, got {_kind(item)}")
        if _identity(item) not in have:
            have.add(_identity(item))
            current.append(item)
    return current


def _merge_keyed_list(
    current: list[Any], patch: list[Any], key: str, descriptor: Descriptor, path: str
) -> list[Any]:
    """A list merged by key: deletions first, then each element merged into
    the element with its key, or appended."""
    merges: list[tuple[str, Any, dict[str, Any]]] = []
    gone: set[Any] = set()
    replace = False
    for index, item in enumerate(patch):
        where = f"{path}[{index}]"
        if not isinstance(item, dict):
            raise PatchError(where, f"expected an object (a {descriptor.name}), got {_kind(item)}")
        directive = item.get(_PATCH)
        if directive is None:
            merges.append((where, _key_value(item, key, path, where), item))
        elif directive == "delete":
            gone.add(_identity(_key_value(item, key, path, where)))
        elif directive == "replace":
            if len(item) != 1:
                raise PatchError(
                    where,
                    '{"$patch": "replace"} marks the whole list for replacement and must '
                    "stand alone; put the other fields in an element of their own",
                )
            replace = True
        else:
            raise PatchError(
                _join(where, _PATCH),
                f'{_shown(directive)} is not a directive for a list element; use "delete" '
                f'(with "{key}") to remove an element, or a lone {{"$patch": "replace"}} '
                "element to replace the list",
            )
    if replace:
        current = []
    elif gone:
        current = [e for e in current if _key_identity(e, key) not in gone]
    positions: dict[Any, int] = {}  # each key's first element, as a linear search finds it
    for position, element in enumerate(current):
        positions.setdefault(_key_identity(element, key), position)
    for where, value, item in merges:
        found = positions.get(_identity(value))
        if found is None:
            positions[_identity(value)] = len(current)
            current.append(_merge_fields(None, item, descriptor, where))
        else:
            current[found] = _merge_fields(current[found], item, descriptor, where)
    return current


def _key_value(item: dict[str, Any], key: str, path: str, where: str) -> Any:
    value = item.get(key)
    if value is None:
        raise PatchError(
            where,
            f'missing merge key "{key}": the elements of {path} are merged by "{key}", '
            f'so each must say which it changes; add "{key}", or add an element '
            '{"$patch": "replace"} to replace the whole list',
        )
    return value


_NO_KEY: Final = object()  # the identity of an element without a merge key: matches none


def _key_identity(element: Any, key: str) -> Any:
    if not isinstance(element, dict) or element.get(key) is None:
        return _NO_KEY
    return _identity(element[key])


def _list_field(descriptor: Descriptor, name: str, where: str) -> FieldDescriptor:
    field = json_fields(descriptor).get(name)
    if field is None or not field.is_repeated or is_map(field):
        raise PatchError(where, f'{descriptor.name} has no list field "{name}"')
    return field


def _delete_from_list(
    result: dict[str, Any], name: str, values: Any, descriptor: Descriptor, where: str
) -> None:
    field = _list_field(descriptor, name, where)
    if is_message(field):
        raise PatchError(
            where,
            f"{name} is a list of objects; remove an element with "
            f'{{"$patch": "delete", ...}} in the list itself',
        )
    if not isinstance(values, list):
        raise PatchError(where, f"expected a list of values to remove, got {_kind(values)}")
    current = result.get(name)
    if isinstance(current, list):
        gone = {_identity(value) for value in values}
        result[name] = [e for e in current if _identity(e) not in gone]


def _set_element_order(
    result: dict[str, Any], name: str, order: Any, descriptor: Descriptor, where: str
) -> None:
    field = _list_field(descriptor, name, where)
    key = _merge_key(field)
    if key is None and field.full_name not in _MERGED_VALUE_LISTS:
        raise PatchError(
            where,
            f"{name} is replaced whole, so its order is the order the patch sends; "
            "drop this directive",
        )
    if not isinstance(order, list):
        raise PatchError(where, f"expected a list, got {_kind(order)}")
    wanted: list[Any] = []
    for index, item in enumerate(order):
        if key is not None and isinstance(item, dict):
            if item.get(key) is None:
                raise PatchError(
                    f"{where}[{index}]",
                    f'missing merge key "{key}"; name each element of {name} by its "{key}", '
                    f'as [{{"{key}": ...}}, ...]',
                )
            item = item[key]
        wanted.append(item)
    current = result.get(name)
    if not isinstance(current, list):
        return

    ranks: dict[Any, int] = {}
    for position, value in enumerate(wanted):
        ranks.setdefault(_identity(value), position)

    def rank(element: Any) -> int:
        value = element.get(key) if key is not None and isinstance(element, dict) else element
        return ranks.get(_identity(value), len(wanted))

    result[name] = sorted(current, key=rank)  # stable: unnamed elements keep their order


# ---------------------------------------------------------------- requests


def read_patch(patch_type: str, body: bytes) -> Any:
    """The document of a patch request of `patch_type` (one of
    `PATCH_TYPES`), as the API server reads it: `parse_body`, then the shape
    the type needs (a JSON patch is a list, the others an object). Raises
    the API's errors: TooLarge for a body over the limit, BadRequest for
    anything else wrong."""
    if patch_type not in PATCH_TYPES:
        raise errors.BadRequest(
            f'unsupported patch type "{patch_type}": use "merge", "strategic" or "json"'
        )
    try:
        document = parse_body(body)
    except PatchTooLarge as e:
        raise errors.TooLarge(str(e)) from None
    except PatchError as e:
        raise errors.BadRequest(str(e)) from None
    want = list if patch_type == "json" else dict
    if not isinstance(document, want):
        shape = "a list of operations" if patch_type == "json" else "a JSON object"
        raise errors.BadRequest(f"a {patch_type} patch must be {shape}")
    return document


def apply_patch(patch_type: str, target: Any, document: Any, message_type: type[Message]) -> Any:
    """`document` (from `read_patch`) applied to `target`, an object of
    `message_type` as JSON, by the function of `patch_type`. Raises the
    API's errors: TooLarge for a patch over the bounds, BadRequest for one
    that cannot be applied."""
    try:
        if patch_type == "merge":
            return merge_patch(target, document)
        if patch_type == "json":
            return json_patch(target, document)
        if not issubclass(message_type, Message):
            # a custom kind: no schema of merge keys, as in Kubernetes
            kind = getattr(message_type, "kind", message_type.__name__)
            raise errors.BadRequest(
                f"the body of the request was in an unknown format: strategic merge patch is "
                f"not supported by {kind}, a custom resource; use a merge patch (--type merge) "
                "or a JSON patch (--type json)"
            )
        return strategic_merge_patch(target, document, message_type)
    except PatchTooLarge as e:
        raise errors.TooLarge(f"the patch cannot be applied: {e}") from None
    except PatchError as e:
        raise errors.BadRequest(f"the patch cannot be applied: {e}") from None

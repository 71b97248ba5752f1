"""Fuzzing the three patch formats (kpy/api/patch.py) and the patch
body reader: every patch applies, or is refused with `PatchError` (or its
`PatchTooLarge`); never another exception, a RecursionError or a hang. A
patch that applies leaves its inputs untouched, and its result decodes, or
is refused by the codec with kpy's own errors, as the API server does."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import TYPE_CHECKING, Any

from fuzz_strategies import (
    DEPTHS,
    FINITE_JSON,
    FUZZ,
    JSON_VALUES,
    SEED_MANIFESTS,
    deep,
    json_patch_operations,
    mutated,
    retyped,
)
from hypothesis import given
from hypothesis import strategies as st

from kpy.api import codec, errors
from kpy.api.limits import nesting_depth
from kpy.api.patch import (
    PatchError,
    json_patch,
    merge_patch,
    parse_body,
    strategic_merge_patch,
)
from kpy.api.scheme import scheme

if TYPE_CHECKING:
    from google.protobuf.message import Message

OBJECTS = [
    (
        scheme.lookup(m["apiVersion"], m["kind"]).message,  # type: ignore[union-attr]
        codec.to_dict(codec.decode_object(m)),
    )
    for m in SEED_MANIFESTS
]
"""Each seed as the API server patches it: its message type and JSON form."""


def _snapshot(value: Any) -> Any:
    """A copy to check the inputs against afterwards; None for inputs too
    deep for the test's own (recursive) copy and comparison."""
    return copy.deepcopy(value) if nesting_depth(value, stop=300) <= 300 else None


def _unchanged(value: Any, before: Any) -> None:
    if before is not None:
        assert value == before, "an input was mutated"


def _decodes_or_is_refused(message_type: type[Message], result: Any) -> None:
    try:
        obj = codec.from_dict(message_type, result)
    except (errors.Invalid, errors.BadRequest):
        return
    assert message_type.FromString(obj.SerializeToString()) == obj


@FUZZ
@given(FINITE_JSON | DEPTHS.map(deep), JSON_VALUES | DEPTHS.map(deep))
def test_merge_patch_applies_or_refuses(target: Any, patch: Any) -> None:
    before = _snapshot((target, patch))
    with contextlib.suppress(PatchError):
        merge_patch(target, patch)
    _unchanged((target, patch), before)


@st.composite
def _json_patch_case(draw: st.DrawFn) -> tuple[Any, list[Any]]:
    target = draw(st.sampled_from([o for _, o in OBJECTS]) | FINITE_JSON)
    return target, draw(json_patch_operations(target))


@FUZZ
@given(_json_patch_case())
def test_json_patch_applies_or_refuses(case: tuple[Any, list[Any]]) -> None:
    target, operations = case
    before = _snapshot(case)
    with contextlib.suppress(PatchError):
        json_patch(target, operations)
    _unchanged(case, before)


@st.composite
def _strategic_case(draw: st.DrawFn) -> tuple[type[Message], Any, Any]:
    message_type, target = draw(st.sampled_from(OBJECTS))
    # A patch shaped like the object (a mutated copy of it) or like nothing.
    patch = draw(
        mutated(target)
        | retyped(target)
        | st.dictionaries(st.text(max_size=4), JSON_VALUES, max_size=3)
    )
    return message_type, target, patch


@FUZZ
@given(_strategic_case())
def test_strategic_merge_patch_applies_or_refuses(case: tuple[type[Message], Any, Any]) -> None:
    message_type, target, patch = case
    before = _snapshot((target, patch))
    try:
        result = strategic_merge_patch(target, patch, message_type)
    except PatchError:
        return
    finally:
        _unchanged((target, patch), before)
    _decodes_or_is_refused(message_type, result)


@FUZZ
@given(st.sampled_from(OBJECTS), JSON_VALUES)
def test_merge_patch_results_decode_or_are_refused(
    obj: tuple[type[Message], Any], patch: Any
) -> None:
    message_type, target = obj
    try:
        result = merge_patch(target, patch)
    except PatchError:
        return
    _decodes_or_is_refused(message_type, result)


BODY_TEXT = st.text(alphabet='{}[]:,"0123456789.eE+-truefalsnNaIiy \\u', max_size=40)


@FUZZ
@given(
    BODY_TEXT.map(str.encode)
    | FINITE_JSON.map(lambda v: json.dumps(v).encode())
    | DEPTHS.map(lambda d: b"[" * d + b"]" * d)
    | st.binary(max_size=20)
)
def test_patch_bodies_parse_or_are_refused(body: bytes) -> None:
    with contextlib.suppress(PatchError):
        parse_body(body)

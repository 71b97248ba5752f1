"""Fuzzing the codec: manifests of several kinds, mutated, as values, YAML and
JSON. Every input decodes, or is refused with kpy's own errors (Invalid or
BadRequest from `from_dict`, ManifestError from `load_manifest`); never
another exception, a RecursionError or a hang. What decodes encodes back to
the same message, and serializes to bytes that protobuf reads again (the
store must be able to read what it wrote)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import yaml
from fuzz_strategies import (
    DEPTHS,
    FUZZ,
    JSON_VALUES,
    NEAR_VALID_MANIFESTS,
    RETYPED_MANIFESTS,
    deep,
)
from hypothesis import given
from hypothesis import strategies as st

from kpy.api import codec, errors
from kpy.api.apiextensions.v1 import CustomResourceDefinition
from kpy.api.apps.v1 import ControllerRevision
from kpy.api.core.v1 import ConfigMap, Pod

if TYPE_CHECKING:
    from collections.abc import Callable

    from google.protobuf.message import Message

# The characters YAML's syntax is made of, and a little text between them.
YAML_TEXT = st.text(alphabet="{}[]:,-?&*!|>'\"#%@` \n\t.abc019~=$<", max_size=60)


def _check_decoded(obj: Any) -> None:
    """What decodes encodes back to itself, and its bytes parse again."""
    data = codec.to_dict(obj)
    assert codec.from_dict(type(obj), data) == obj
    assert type(obj).FromString(obj.SerializeToString()) == obj


@FUZZ
@given(NEAR_VALID_MANIFESTS | RETYPED_MANIFESTS)
def test_decode_object_accepts_or_refuses_cleanly(manifest: Any) -> None:
    try:
        obj = codec.decode_object(manifest)
    except (errors.Invalid, errors.BadRequest):
        return
    _check_decoded(obj)
    assert codec.decode_object(codec.encode_object(obj)) == obj


@FUZZ
@given(NEAR_VALID_MANIFESTS | RETYPED_MANIFESTS, st.sampled_from(["yaml", "json"]))
def test_load_manifest_accepts_or_refuses_cleanly(manifest: Any, form: str) -> None:
    try:
        text = (
            json.dumps(manifest)
            if form == "json"
            else yaml.safe_dump(manifest, allow_unicode=True, sort_keys=False)
        )
    except (ValueError, RecursionError):
        return  # the test's own dumpers cannot write it: nothing to load
    refused = _refusal(text, source="fuzz.yaml")
    if refused is not None:
        assert refused.problems, "a ManifestError lists its problems"
        assert all(str(p).startswith("fuzz.yaml") for p in refused.problems)
        return
    objects = codec.load_manifest(text, source="fuzz.yaml")
    for obj in objects:
        _check_decoded(obj)
    assert codec.load_manifest(codec.dump_yaml(objects)) == objects


def _refusal(text: str, *, source: str = "") -> codec.ManifestError | None:
    """The ManifestError that loading `text` raises, if any (any other exception fails)."""
    try:
        codec.load_manifest(text, source=source)
    except codec.ManifestError as e:
        return e
    return None


@FUZZ
@given(YAML_TEXT)
def test_arbitrary_yaml_text_is_loaded_or_refused(text: str) -> None:
    _refusal(text)


def _deep_text(depth: int, style: str) -> str:
    if style == "block":
        return "".join(" " * (2 * i) + "-\n" for i in range(depth)) + " " * (2 * depth) + "1\n"
    if style == "anchors":  # every level anchored, the innermost an alias of the outermost
        return "".join(f"&a{i} [" for i in range(depth)) + "*a0" + "]" * depth
    opener, closer = {"flow-list": ("[", "]"), "flow-map": ("{a: ", "}")}[style]
    return opener * depth + "1" + closer * depth


@FUZZ
@given(DEPTHS, st.sampled_from(["flow-list", "flow-map", "block", "anchors"]))
def test_deep_yaml_is_refused_by_depth(depth: int, style: str) -> None:
    refused = _refusal(_deep_text(depth, style))
    if depth > 100 or style == "anchors":
        assert refused is not None, f"{style} {depth}"
        assert "nesting depth exceeds 100" in str(refused), str(refused)


# Where a value lands: the whole object, a map of strings, free-form JSON.
PLACES: list[tuple[type[Message], Callable[[Any], Any]]] = [
    (Pod, lambda v: v),
    (Pod, lambda v: {"spec": {"containers": [v]}}),
    (ConfigMap, lambda v: {"data": v}),
    (ControllerRevision, lambda v: {"data": v}),
    (
        CustomResourceDefinition,
        lambda v: {"spec": {"versions": [{"schema": {"openAPIV3Schema": v}}]}},
    ),
]


@FUZZ
@given(st.sampled_from(PLACES), JSON_VALUES | DEPTHS.map(deep))
def test_from_dict_takes_any_value(
    place: tuple[type[Message], Callable[[Any], Any]], value: Any
) -> None:
    message_type, wrap = place
    try:
        obj = codec.from_dict(message_type, wrap(value))
    except (errors.Invalid, errors.BadRequest):
        return
    _check_decoded(obj)

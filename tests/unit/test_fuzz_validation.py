"""Fuzzing defaulting and validation: every manifest that decodes, however
mutated, is defaulted and validated without an exception; problems come
back as a list of FieldErrors with a path, as `kpy.api.validation` promises
("never raise for bad input")."""

from __future__ import annotations

from typing import Any

from fuzz_strategies import FUZZ, NEAR_VALID_MANIFESTS, RETYPED_MANIFESTS, SEED_MANIFESTS
from hypothesis import assume, given
from hypothesis import strategies as st

from kpy.api import codec, errors
from kpy.api.defaults import set_defaults
from kpy.api.validation import validate, validate_update


def _decoded(manifest: Any) -> Any:
    try:
        return codec.decode_object(manifest)
    except (errors.Invalid, errors.BadRequest):
        return None


MANIFESTS = RETYPED_MANIFESTS | NEAR_VALID_MANIFESTS


@FUZZ
@given(MANIFESTS)
def test_validate_returns_field_errors(manifest: Any) -> None:
    obj = _decoded(manifest)
    assume(obj is not None)
    for problem in validate(set_defaults(obj)):
        assert isinstance(problem, errors.FieldError), problem
        assert problem.detail, problem


@FUZZ
@given(MANIFESTS, st.sampled_from(SEED_MANIFESTS))
def test_validate_update_returns_field_errors(manifest: Any, seed: Any) -> None:
    new, old = _decoded(manifest), set_defaults(codec.decode_object(seed))
    if new is None or type(new) is not type(old):
        return
    for problem in validate_update(set_defaults(new), old) + validate_update(old, new):
        assert isinstance(problem, errors.FieldError), problem

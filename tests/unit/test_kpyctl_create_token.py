"""`kpyctl create token`, offline: its --duration (Go durations) and the
TokenRequest its flags build, with kubectl's errors."""

from __future__ import annotations

import argparse

import pytest

from kpy.cli._create_token import parse_duration, token_request
from kpy.cli._manifests import UsageError

DURATIONS: list[tuple[str, int | str]] = [
    ("0", 0),
    ("600s", 600),
    ("10m", 600),
    ("1h", 3600),
    ("1h30m", 5400),
    ("1.5h", 5400),
    ("48h", 172800),
    ("1500ms", "whole number of seconds"),
    ("3600", "invalid duration"),
    ("1d", "invalid duration"),
    ("-1h", "invalid duration"),
    ("h", "invalid duration"),
]


def test_parse_duration() -> None:
    for text, want in DURATIONS:
        if isinstance(want, int):
            assert parse_duration(text) == want, text
            continue
        with pytest.raises(UsageError) as failed:
            parse_duration(text)
        assert want in str(failed.value), text


def _args(**flags: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "audience": [],
        "duration": "0s",
        "bound_object_kind": "",
        "bound_object_name": "",
        "bound_object_uid": "",
    }
    values.update(flags)
    return argparse.Namespace(**values)


def test_token_request_from_flags() -> None:
    request = token_request(_args())
    assert not request.spec.HasField("expiration_seconds")
    assert not request.spec.HasField("bound_object_ref")
    assert list(request.spec.audiences) == []
    request = token_request(
        _args(
            audience=["vault", "api"],
            duration="2h",
            bound_object_kind="Pod",
            bound_object_name="web",
            bound_object_uid="u1",
        )
    )
    assert list(request.spec.audiences) == ["vault", "api"]
    assert request.spec.expiration_seconds == 7200
    ref = request.spec.bound_object_ref
    assert (ref.kind, ref.api_version, ref.name, ref.uid) == ("Pod", "v1", "web", "u1")


REFUSED: list[tuple[str, dict[str, object], str]] = [
    (
        "a name without a kind",
        {"bound_object_name": "web"},
        "--bound-object-name can only be set if --bound-object-kind is provided",
    ),
    (
        "a uid without a kind",
        {"bound_object_uid": "u"},
        "--bound-object-uid can only be set if --bound-object-kind is provided",
    ),
    (
        "a kind that cannot be bound",
        {"bound_object_kind": "Node", "bound_object_name": "n"},
        "supported --bound-object-kind values are Pod, Secret, got 'Node'",
    ),
    (
        "a kind without a name",
        {"bound_object_kind": "Pod"},
        "--bound-object-name is required if --bound-object-kind is provided",
    ),
]


def test_token_request_refusals() -> None:
    for case, flags, message in REFUSED:
        with pytest.raises(UsageError) as failed:
            token_request(_args(**flags))
        assert str(failed.value) == message, case

"""kpyctl's parsing of label changes and taints (kubectl's forms)."""

from __future__ import annotations

import pytest

from kpy.cli._manifests import UsageError
from kpy.cli._metadata import parse_changes
from kpy.cli.taint import parse_taint


@pytest.mark.parametrize(
    ("words", "want"),
    [
        (["app=web"], {"app": "web"}),
        (["app=web", "tier-"], {"app": "web", "tier": None}),
        (["empty="], {"empty": ""}),
        (["url=a=b"], {"url": "a=b"}),
    ],
    ids=["set", "set and remove", "empty value", "value with ="],
)
def test_parse_changes(words: list[str], want: dict[str, str | None]) -> None:
    assert parse_changes(words) == want


@pytest.mark.parametrize(
    ("word", "want"),
    [
        ("gpu=yes:NoSchedule", ("gpu", "yes", "NoSchedule", False)),
        ("dedicated:NoExecute", ("dedicated", "", "NoExecute", False)),
        ("gpu-", ("gpu", "", "", True)),
        ("gpu:NoSchedule-", ("gpu", "", "NoSchedule", True)),
    ],
    ids=["key=value:effect", "key:effect", "remove all effects", "remove one effect"],
)
def test_parse_taint(word: str, want: tuple[str, str, str, bool]) -> None:
    assert parse_taint(word) == want


@pytest.mark.parametrize(
    ("word", "error"),
    [
        ("gpu=yes", "give KEY[=VALUE]:EFFECT"),
        ("=yes:NoSchedule", "the key is empty"),
        ("gpu=yes:Never", "invalid taint effect 'Never'"),
    ],
    ids=["no effect", "no key", "unknown effect"],
)
def test_bad_taints_are_refused(word: str, error: str) -> None:
    with pytest.raises(UsageError, match=error.replace("[", r"\[").replace("]", r"\]")):
        parse_taint(word)


def test_bad_change_is_refused() -> None:
    with pytest.raises(UsageError, match="use KEY=VALUE to set, KEY- to remove"):
        parse_changes(["oops"])

"""Fuzzing label and field selectors with strings from their own alphabet:
each parses, or is refused with ValueError (BadRequest through
`parse_predicate`); never another exception. A selector that parses prints
as text that parses to the same selector, and matching never raises."""

from __future__ import annotations

from fuzz_strategies import FUZZ
from hypothesis import given
from hypothesis import strategies as st

from kpy.api import errors, fields, labels
from kpy.api.selection import parse_predicate

# Pieces of a label selector: keys, values, operators, separators, blanks.
LABEL_PIECES = st.sampled_from(
    [
        "app",
        "tier",
        "example.com/x",
        "a/b/c",
        "-x",
        "x-",
        "1",
        "99999999999999999999",
        "-5",
        "web",
        "",
        "=",
        "==",
        "!=",
        "!",
        ">",
        "<",
        " in ",
        " notin ",
        "in",
        "(",
        ")",
        ",",
        " ",
        "\t",
        "\n",
        "é",
        "\\",
        "a" * 64,
    ]
)
LABEL_SELECTORS = st.lists(LABEL_PIECES, max_size=12).map("".join) | st.text(
    alphabet="abc.-_/=!<>(), \t\\01", max_size=30
)

FIELD_PIECES = st.sampled_from(
    [
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "status.phase",
        "spec.unknown",
        "web",
        "",
        "=",
        "==",
        "!=",
        ",",
        "\\",
        "\\,",
        "\\=",
        "\\x",
        " ",
    ]
)
FIELD_SELECTORS = st.lists(FIELD_PIECES, max_size=10).map("".join) | st.text(
    alphabet="abmetdaspc.=!,\\ ", max_size=30
)
LABEL_SETS = st.dictionaries(
    st.sampled_from(["app", "tier", "example.com/x", "1"]),
    st.sampled_from(["web", "", "1", "-5", "99999999999999999999", "x"]),
    max_size=4,
)


@FUZZ
@given(LABEL_SELECTORS, LABEL_SETS)
def test_label_selectors_parse_or_raise_value_error(text: str, label_set: dict[str, str]) -> None:
    try:
        selector = labels.parse_selector(text)
    except ValueError:
        return
    assert labels.parse_selector(str(selector)) == selector, str(selector)
    assert isinstance(selector.matches(label_set), bool)


@FUZZ
@given(FIELD_SELECTORS, st.sampled_from(["web", "", "a,b", "x=y", "\\"]))
def test_field_selectors_parse_or_raise_value_error(text: str, value: str) -> None:
    try:
        selector = fields.parse_field_selector(text)
    except ValueError:
        return
    assert fields.parse_field_selector(str(selector)) == selector, str(selector)
    values = {term.field: value for term in selector.terms}
    assert isinstance(selector.matches(values), bool)


@FUZZ
@given(st.sampled_from(["Pod", "Node", "ConfigMap"]), LABEL_SELECTORS, FIELD_SELECTORS)
def test_predicates_parse_or_are_bad_requests(kind: str, label: str, field: str) -> None:
    try:
        parse_predicate(kind, label, field)
    except errors.BadRequest as e:
        assert "unable to parse" in str(e) or "not supported" in str(e), str(e)  # noqa: PT017

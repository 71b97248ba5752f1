"""Field selectors, after Kubernetes' fields/selector_test.go and fields_test.go."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kpy.api.fields import (
    EQUALS,
    NOT_EQUALS,
    FieldSelector,
    Term,
    and_selectors,
    escape_value,
    everything,
    one_term_equal,
    parse_field_selector,
    selector_from_set,
    unescape_value,
)


@dataclass(frozen=True)
class RoundTripCase:
    name: str
    text: str
    printed: str


ROUND_TRIP_CASES = [
    RoundTripCase("three terms", "x=a,y=b,z=c", "x=a,y=b,z=c"),
    RoundTripCase("empty", "", ""),
    RoundTripCase("not equal", "x!=a,y=b", "x!=a,y=b"),
    RoundTripCase("escaped equals keeps bars literal", r"x=a||y\=b", r"x=a||y\=b"),
    RoundTripCase("two escaped equals", r"x=a\=\=b", r"x=a\=\=b"),
    RoundTripCase("sorted as written", "x=a,a=x", "a=x,x=a"),
    RoundTripCase("double equals prints single", "a==b", "a=b"),
    RoundTripCase("empty terms dropped", "a=a,", "a=a"),
    RoundTripCase("leading empty term dropped", ",a=a", "a=a"),
    RoundTripCase("bare equals selects everything", "=", ""),
    RoundTripCase("bare equals dropped among others", "=,x=y", "x=y"),
    RoundTripCase("empty value", "x=", "x="),
    RoundTripCase("escaped comma", r"k=\,,k2=v2", r"k2=v2,k=\,"),
    RoundTripCase("escaped backslash", r"k=\\,k2=v2", r"k2=v2,k=\\"),
    RoundTripCase("field with dots", "spec.nodeName=node-1", "spec.nodeName=node-1"),
    RoundTripCase("multi-byte", "함=수,목=록", "목=록,함=수"),
    RoundTripCase("bang inside field", "a!b=c", "a!b=c"),
]


@pytest.mark.parametrize("case", ROUND_TRIP_CASES, ids=lambda c: c.name)
def test_parse_and_print(case: RoundTripCase) -> None:
    selector = parse_field_selector(case.text)
    assert str(selector) == case.printed, f"{case.name}: printed {selector}"
    assert parse_field_selector(str(selector)) == selector, f"{case.name}: does not reparse"


@dataclass(frozen=True)
class StructureCase:
    name: str
    text: str
    terms: list[tuple[str, str, str]]


STRUCTURE_CASES = [
    StructureCase("equals", "a=value", [("a", EQUALS, "value")]),
    StructureCase("double equals", "b==value", [("b", EQUALS, "value")]),
    StructureCase("not equals", "c!=value", [("c", NOT_EQUALS, "value")]),
    StructureCase("escaped comma", r"k=\,", [("k", EQUALS, ",")]),
    StructureCase("escaped equals", r"k=\=", [("k", EQUALS, "=")]),
    StructureCase("escaped backslash", r"k=\\", [("k", EQUALS, "\\")]),
    StructureCase("multi-byte", "함=수", [("함", EQUALS, "수")]),
    StructureCase("empty field", "=a", [("", EQUALS, "a")]),
    StructureCase("empty value", "a!=", [("a", NOT_EQUALS, "")]),
    StructureCase(
        "three terms",
        "a=avalue,b==bvalue,c!=cvalue",
        [("a", EQUALS, "avalue"), ("b", EQUALS, "bvalue"), ("c", NOT_EQUALS, "cvalue")],
    ),
    StructureCase(
        "complex value",
        r"complex=\=value\\\,\\",
        [("complex", EQUALS, "=value\\,\\")],
    ),
]


@pytest.mark.parametrize("case", STRUCTURE_CASES, ids=lambda c: c.name)
def test_parse_structure(case: StructureCase) -> None:
    got = [(t.field, t.operator, t.value) for t in parse_field_selector(case.text).terms]
    assert got == case.terms, f"{case.name}: parsed {got}"


@dataclass(frozen=True)
class BadCase:
    name: str
    text: str
    error: str


BAD_CASES = [
    BadCase("or", "x=a||y=b", "invalid field selector: unescaped character in value: 61"),
    BadCase("chained equals", "x==a==b", "unescaped character in value: 61"),
    BadCase(
        "value with comma-separated word",
        "x=a,b",
        "invalid selector: 'x=a,b'; can't understand 'b'",
    ),
    BadCase("set syntax", "x in (a)", "can't understand 'x in (a)'"),
    BadCase("set syntax with commas", "x in (a,b,c)", "can't understand"),
    BadCase("bare field", "x", "invalid selector: 'x'; can't understand 'x'"),
    BadCase("unknown escape", r"x=\a", r"invalid field selector: invalid escape sequence: \a"),
    BadCase("orphan backslash", "x=\\", "invalid field selector: invalid escape sequence: \\"),
    BadCase("greater than", "x>1", "can't understand 'x>1'"),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=lambda c: c.name)
def test_parse_rejects(case: BadCase) -> None:
    with pytest.raises(ValueError) as info:
        parse_field_selector(case.text)
    assert case.error in str(info.value), f"{case.name}: error was {info.value}"


@dataclass(frozen=True)
class EscapeCase:
    name: str
    raw: str
    escaped: str


ESCAPE_CASES = [
    EscapeCase("empty", "", ""),
    EscapeCase("plain", "a", "a"),
    EscapeCase("equals", "=", r"\="),
    EscapeCase("comma", ",", r"\,"),
    EscapeCase("backslash", "\\", "\\\\"),
    EscapeCase("all three", r"\=\,\ "[:-1], r"\\\=\\\,\\"),
]


@pytest.mark.parametrize("case", ESCAPE_CASES, ids=lambda c: c.name)
def test_escape_round_trip(case: EscapeCase) -> None:
    assert escape_value(case.raw) == case.escaped, f"{case.name}: escape"
    assert unescape_value(case.escaped) == case.raw, f"{case.name}: unescape"


@dataclass(frozen=True)
class UnescapeErrorCase:
    name: str
    escaped: str
    error: str


UNESCAPE_ERROR_CASES = [
    UnescapeErrorCase("orphan slash", "\\", "invalid escape sequence"),
    UnescapeErrorCase("escaped slash then orphan", "\\\\\\", "invalid escape sequence"),
    UnescapeErrorCase("unknown sequence", r"\a", "invalid escape sequence"),
    UnescapeErrorCase("unescaped comma", "a,b", "unescaped character in value: 44"),
    UnescapeErrorCase("unescaped equals", "a=b", "unescaped character in value: 61"),
]


@pytest.mark.parametrize("case", UNESCAPE_ERROR_CASES, ids=lambda c: c.name)
def test_unescape_rejects(case: UnescapeErrorCase) -> None:
    with pytest.raises(ValueError) as info:
        unescape_value(case.escaped)
    assert case.error in str(info.value), f"{case.name}: error was {info.value}"


@dataclass(frozen=True)
class MatchCase:
    name: str
    selector: str
    fields: dict[str, str]
    matches: bool


FIELDSET = {"foo": "bar", "baz": "blah", "complex": "=value\\,\\"}
MATCH_CASES = [
    MatchCase("empty selector", "", {"x": "y"}, True),
    MatchCase("equality", "x=y", {"x": "y"}, True),
    MatchCase("two equalities", "x=y,z=w", {"x": "y", "z": "w"}, True),
    MatchCase("two inequalities", "x!=y,z!=w", {"x": "z", "z": "a"}, True),
    MatchCase("keywords are plain words", "notin=in", {"notin": "in"}, True),
    MatchCase("other value", "x=y", {"x": "z"}, False),
    MatchCase("second equality fails", "x=y,z=w", {"x": "w", "z": "w"}, False),
    MatchCase("second inequality fails", "x!=y,z!=w", {"x": "z", "z": "w"}, False),
    MatchCase("foo=bar", "foo=bar", FIELDSET, True),
    MatchCase("baz=blah", "baz=blah", FIELDSET, True),
    MatchCase("both", "foo=bar,baz=blah", FIELDSET, True),
    MatchCase("escaped complex value", r"foo=bar,baz=blah,complex=\=value\\\,\\", FIELDSET, True),
    MatchCase("wrong value", "foo=blah", FIELDSET, False),
    MatchCase("other wrong value", "baz=bar", FIELDSET, False),
    MatchCase("missing field", "foo=bar,foobar=bar,baz=blah", FIELDSET, False),
    MatchCase("missing field reads as empty", "x=", {}, True),
    MatchCase("not equal on missing field", "x!=y", {}, True),
    MatchCase("node name", "spec.nodeName=n1", {"spec.nodeName": "n1"}, True),
]


@pytest.mark.parametrize("case", MATCH_CASES, ids=lambda c: c.name)
def test_matches(case: MatchCase) -> None:
    got = parse_field_selector(case.selector).matches(case.fields)
    assert got is case.matches, f"{case.name}: {case.selector!r} on {case.fields}"


@dataclass(frozen=True)
class DirectCase:
    name: str
    selector: FieldSelector
    fields: dict[str, str]
    matches: bool
    empty: bool


LABELSET = {"foo": "bar", "baz": "blah"}
DIRECT_CASES = [
    DirectCase("one term", one_term_equal("x", "y"), {"x": "y"}, True, False),
    DirectCase("one term mismatch", one_term_equal("x", "y"), {"x": "z"}, False, False),
    DirectCase("from empty set", selector_from_set({}), LABELSET, True, True),
    DirectCase("from no set", selector_from_set(None), LABELSET, True, True),
    DirectCase("from one pair", selector_from_set({"foo": "bar"}), LABELSET, True, False),
    DirectCase("from other pair", selector_from_set({"baz": "blah"}), LABELSET, True, False),
    DirectCase(
        "from both", selector_from_set({"foo": "bar", "baz": "blah"}), LABELSET, True, False
    ),
    DirectCase("value with equals", selector_from_set({"foo": "=blah"}), LABELSET, False, False),
    DirectCase("value with equals 2", selector_from_set({"baz": "=bar"}), LABELSET, False, False),
    DirectCase(
        "several with a bad value",
        selector_from_set({"foo": "=bar", "foobar": "bar", "baz": "blah"}),
        LABELSET,
        False,
        False,
    ),
    DirectCase("everything", everything(), LABELSET, True, True),
    DirectCase("empty one-term", one_term_equal("", ""), {}, True, False),
    DirectCase("and of nothing", and_selectors(), {}, True, True),
    DirectCase("and of empties", and_selectors(everything(), everything()), {}, True, True),
    DirectCase(
        "and of terms",
        and_selectors(one_term_equal("a", "b"), one_term_equal("c", "d")),
        {"a": "b", "c": "d"},
        True,
        False,
    ),
]


@pytest.mark.parametrize("case", DIRECT_CASES, ids=lambda c: c.name)
def test_constructed_selectors(case: DirectCase) -> None:
    assert case.selector.matches(case.fields) is case.matches, f"{case.name}: matches"
    assert case.selector.empty() is case.empty, f"{case.name}: empty"


@dataclass(frozen=True)
class ExactCase:
    name: str
    selector: FieldSelector
    field: str
    expected: str | None


EXACT_CASES = [
    ExactCase("empty set", selector_from_set({}), "test", None),
    ExactCase("empty term", one_term_equal("", ""), "test", None),
    ExactCase("other field", one_term_equal("a", "b"), "test", None),
    ExactCase("the field", one_term_equal("test", "b"), "test", "b"),
    ExactCase("the field with empty value", one_term_equal("test", ""), "test", ""),
    ExactCase("not equal", FieldSelector((Term("test", NOT_EQUALS, "b"),)), "test", None),
    ExactCase("not equal empty", FieldSelector((Term("test", NOT_EQUALS, ""),)), "test", None),
    ExactCase("empty and", and_selectors(), "test", None),
    ExactCase("nested empty and", and_selectors(everything()), "test", None),
    ExactCase("nested match", and_selectors(one_term_equal("test", "b")), "test", "b"),
    ExactCase(
        "after a non-match",
        and_selectors(one_term_equal("", ""), one_term_equal("test", "b")),
        "test",
        "b",
    ),
    ExactCase(
        "parsed node name",
        parse_field_selector("status.phase!=Failed,spec.nodeName=node-1"),
        "spec.nodeName",
        "node-1",
    ),
]


@pytest.mark.parametrize("case", EXACT_CASES, ids=lambda c: c.name)
def test_requires_exact_match(case: ExactCase) -> None:
    got = case.selector.requires_exact_match(case.field)
    assert got == case.expected, f"{case.name}: got {got!r}"


@dataclass(frozen=True)
class TransformCase:
    name: str
    selector: str
    printed: str


def _rename(field: str, value: str) -> tuple[str, str]:
    if field == "drop":
        return "", ""
    return field.replace("spec.host", "spec.nodeName"), value.upper()


TRANSFORM_CASES = [
    TransformCase("renames field and changes value", "spec.host=a", "spec.nodeName=A"),
    TransformCase("drops emptied terms", "drop=x,b!=c", "b!=C"),
    TransformCase("everything stays everything", "", ""),
]


@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=lambda c: c.name)
def test_transform(case: TransformCase) -> None:
    got = parse_field_selector(case.selector).transform(_rename)
    assert str(got) == case.printed, f"{case.name}: got {got}"


def test_set_string_escapes_and_sorts() -> None:
    assert str(selector_from_set({"foo": "bar", "baz": "qup"})) == "baz=qup,foo=bar"
    assert str(one_term_equal("x", "a,b=c")) == r"x=a\,b\=c"
    assert parse_field_selector(str(one_term_equal("x", "a,b=c"))).matches({"x": "a,b=c"})

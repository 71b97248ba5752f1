"""Label selectors, after Kubernetes' labels/selector_test.go and labels_test.go."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from kpy.api.labels import (
    Operator,
    Requirement,
    Selector,
    conflicts,
    convert_selector_to_labels_map,
    everything,
    format_labels,
    labels_to_string,
    merge,
    new_requirement,
    nothing,
    parse_selector,
    selector_from_label_selector,
    selector_from_set,
    validated_selector_from_set,
)
from kpy.api.meta.v1 import LabelSelector, LabelSelectorRequirement


def req(key: str, op: str, *values: str) -> Requirement:
    return new_requirement(key, op, list(values))


# --- parsing ---


@dataclass(frozen=True)
class RoundTripCase:
    name: str
    text: str
    printed: str


ROUND_TRIP_CASES = [
    RoundTripCase("three equalities", "x=a,y=b,z=c", "x=a,y=b,z=c"),
    RoundTripCase("empty", "", ""),
    RoundTripCase("not equal", "x!=a,y=b", "x!=a,y=b"),
    RoundTripCase("empty value", "x=", "x="),
    RoundTripCase("empty value then blank", "x= ", "x="),
    RoundTripCase("two empty values", "x=,z= ", "x=,z="),
    RoundTripCase("two empty values with blanks", "x= ,z= ", "x=,z="),
    RoundTripCase("does not exist", "!x", "!x"),
    RoundTripCase("greater than", "x>1", "x>1"),
    RoundTripCase("greater and less", "x>1,z<5", "x>1,z<5"),
    RoundTripCase("double equals kept", "y==jkl", "y==jkl"),
    RoundTripCase("sorted by key", "x=a,a=x", "a=x,x=a"),
    RoundTripCase("set values sorted", "x in (b,a)", "x in (a,b)"),
    RoundTripCase("set with blanks", "x  notin\t\t(abc, def)", "x notin (abc,def)"),
    RoundTripCase("empty set member first", "x in (abc,)", "x in (,abc)"),
    RoundTripCase("duplicate values collapse", "x in (a,a,b)", "x in (a,b)"),
    RoundTripCase("mixed", "z,y!=b,!w,x in (j,h)", "!w,x in (h,j),y!=b,z"),
    RoundTripCase("keyword as value", "notin=in", "notin=in"),
    RoundTripCase("keyword as key", "in", "in"),
    RoundTripCase("prefixed key", "example.com/app=web", "example.com/app=web"),
]


@pytest.mark.parametrize("case", ROUND_TRIP_CASES, ids=lambda c: c.name)
def test_parse_and_print(case: RoundTripCase) -> None:
    selector = parse_selector(case.text)
    assert str(selector) == case.printed, f"{case.name}: printed {selector}"
    assert parse_selector(str(selector)) == selector, (
        f"{case.name}: printed form reparses differently"
    )


@dataclass(frozen=True)
class StructureCase:
    name: str
    text: str
    requirements: list[tuple[str, str, tuple[str, ...]]]


STRUCTURE_CASES = [
    StructureCase("empty", "", []),
    StructureCase("carriage return before key", "\rx", [("x", Operator.EXISTS, ())]),
    StructureCase(
        "key with dns prefix",
        "this-is-a-dns.domain.com/key-with-dash",
        [("this-is-a-dns.domain.com/key-with-dash", Operator.EXISTS, ())],
    ),
    StructureCase(
        "prefixed key in set",
        "this-is-another-dns.domain.com/key-with-dash in (so,what)",
        [("this-is-another-dns.domain.com/key-with-dash", Operator.IN, ("so", "what"))],
    ),
    StructureCase(
        "numeric prefix and name",
        "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
        [("0.1.2.domain/99", Operator.NOT_IN, ("10.10.100.1", "tick.tack.clock"))],
    ),
    StructureCase("tab before set", "foo  in\t (abc)", [("foo", Operator.IN, ("abc",))]),
    StructureCase("newline before set", "x notin\n (abc)", [("x", Operator.NOT_IN, ("abc",))]),
    StructureCase(
        "tabs around notin", "x  notin\t\t\t(abc,def)", [("x", Operator.NOT_IN, ("abc", "def"))]
    ),
    StructureCase("in", "x in (abc,def)", [("x", Operator.IN, ("abc", "def"))]),
    StructureCase(
        "trailing comma is empty value", "x in (abc,)", [("x", Operator.IN, ("", "abc"))]
    ),
    StructureCase("empty set is the empty value", "x in ()", [("x", Operator.IN, ("",))]),
    StructureCase(
        "several, sorted by key",
        "x notin (abc,,def),bar,z in (),w",
        [
            ("bar", Operator.EXISTS, ()),
            ("w", Operator.EXISTS, ()),
            ("x", Operator.NOT_IN, ("", "abc", "def")),
            ("z", Operator.IN, ("",)),
        ],
    ),
    StructureCase(
        "exists then set", "x,y in (a)", [("x", Operator.EXISTS, ()), ("y", Operator.IN, ("a",))]
    ),
    StructureCase("equals", "x=a", [("x", Operator.EQUALS, ("a",))]),
    StructureCase("greater than", "x>1", [("x", Operator.GREATER_THAN, ("1",))]),
    StructureCase("less than", "x<7", [("x", Operator.LESS_THAN, ("7",))]),
    StructureCase(
        "equals and not equals",
        "x=a,y!=b",
        [("x", Operator.EQUALS, ("a",)), ("y", Operator.NOT_EQUALS, ("b",))],
    ),
    StructureCase(
        "three kinds",
        "x=a,y!=b,z in (h,i,j)",
        [
            ("x", Operator.EQUALS, ("a",)),
            ("y", Operator.NOT_EQUALS, ("b",)),
            ("z", Operator.IN, ("h", "i", "j")),
        ],
    ),
    StructureCase("blank set", "x notin ( )", [("x", Operator.NOT_IN, ("",))]),
    StructureCase("leading empty member", "x notin (, a)", [("x", Operator.NOT_IN, ("", "a"))]),
    StructureCase("trailing blank", "a ", [("a", Operator.EXISTS, ())]),
    StructureCase(
        "keywords inside a set",
        "a in (x,y,notin, z,in)",
        [("a", Operator.IN, ("in", "notin", "x", "y", "z"))],
    ),
    StructureCase("double equals", "x==a", [("x", Operator.DOUBLE_EQUALS, ("a",))]),
    StructureCase("not exists", "!x", [("x", Operator.DOES_NOT_EXIST, ())]),
    StructureCase("NUL ends the input", "x=a\x00", [("x", Operator.EQUALS, ("a",))]),
]


@pytest.mark.parametrize("case", STRUCTURE_CASES, ids=lambda c: c.name)
def test_parse_structure(case: StructureCase) -> None:
    got = [(r.key, r.operator, r.values) for r in parse_selector(case.text).requirements]
    assert got == case.requirements, f"{case.name}: parsed {got}"


@dataclass(frozen=True)
class BadCase:
    name: str
    text: str
    error: str


BAD_CASES = [
    BadCase("or operator", "x=a||y=b", "unable to parse requirement: values[0][x]: Invalid value"),
    BadCase("chained equals", "x==a==b", "found '==', expected: ',' or 'end of string'"),
    BadCase("not exists with value", "!x=a", "found '=', expected: ',' or 'end of string'"),
    BadCase("non-integer bound", "x<a", "the value must be an integer"),
    BadCase("double comma", "x,,y", "found ',', expected: identifier after ','"),
    BadCase("leading comma", ",x,y", "found ',', expected: !, identifier, or 'end of string'"),
    BadCase(
        "misspelt operator",
        "x nott in (y)",
        "found 'nott', expected: in, notin, =, ==, !=, gt, lt",
    ),
    BadCase("trailing comma", "a in (xyz),", "found '', expected: identifier after ','"),
    BadCase("missing comma after set", "a in (xyz)b notin ()", "found 'b', expected: ','"),
    BadCase("no comma in set", "a in (xyz abc)", "found 'abc', expected: ',' or ')'"),
    BadCase("unclosed set", "a notin(", "found '', expected: ',', ')' or identifier"),
    BadCase("parenthesis without operator", "a (", "found '(', expected: in, notin"),
    BadCase("parenthesis alone", "(", "found '(', expected: !, identifier, or 'end of string'"),
    BadCase("invalid key", "-x", 'Invalid value: "-x": name part must consist of'),
    BadCase("empty key name", "x/", "name part must be non-empty"),
    BadCase("two slashes", "a/b/c", "a valid label key must consist of"),
    BadCase("upper-case prefix", "Example.com/abc", "prefix part a lowercase RFC 1123 subdomain"),
    BadCase("invalid value", "x=-a", "a valid label must be an empty string"),
    BadCase("long value", "x=" + "a" * 64, "must be no more than 63 characters"),
    BadCase("space inside value", "x=a b", "found 'b', expected: ',' or 'end of string'"),
    BadCase("set after equals", "x=(a)", "found '(', expected: identifier"),
    BadCase("set without parenthesis", "x in a", "found 'a' expected: '('"),
    BadCase("only a bang", "!", "found '', expected: identifier"),
    BadCase("greater than without value", "x>", "the value must be an integer"),
    BadCase("greater than a huge number", "x>99999999999999999999", "must be an integer"),
    BadCase("negative bound is not a label value", "x>-1", "a valid label must be"),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=lambda c: c.name)
def test_parse_rejects(case: BadCase) -> None:
    with pytest.raises(ValueError) as info:
        parse_selector(case.text)
    assert case.error in str(info.value), f"{case.name}: error was {info.value}"


# --- matching ---


@dataclass(frozen=True)
class MatchCase:
    name: str
    selector: str
    labels: dict[str, str]
    matches: bool


LABELSET = {"foo": "bar", "baz": "blah"}
MATCH_CASES = [
    MatchCase("empty selector matches", "", {"x": "y"}, True),
    MatchCase("equality", "x=y", {"x": "y"}, True),
    MatchCase("two equalities", "x=y,z=w", {"x": "y", "z": "w"}, True),
    MatchCase("two inequalities", "x!=y,z!=w", {"x": "z", "z": "a"}, True),
    MatchCase("keywords as key and value", "notin=in", {"notin": "in"}, True),
    MatchCase("exists", "x", {"x": "z"}, True),
    MatchCase("does not exist", "!x", {"y": "z"}, True),
    MatchCase("greater than", "x>1", {"x": "2"}, True),
    MatchCase("less than", "x<1", {"x": "0"}, True),
    MatchCase("equality on missing key", "x=z", {}, False),
    MatchCase("equality on other value", "x=y", {"x": "z"}, False),
    MatchCase("second equality fails", "x=y,z=w", {"x": "w", "z": "w"}, False),
    MatchCase("second inequality fails", "x!=y,z!=w", {"x": "z", "z": "w"}, False),
    MatchCase("exists on missing key", "x", {"y": "z"}, False),
    MatchCase("does not exist on present key", "!x", {"x": "z"}, False),
    MatchCase("greater than fails", "x>1", {"x": "0"}, False),
    MatchCase("less than fails", "x<1", {"x": "2"}, False),
    MatchCase("foo=bar", "foo=bar", LABELSET, True),
    MatchCase("baz=blah", "baz=blah", LABELSET, True),
    MatchCase("both", "foo=bar,baz=blah", LABELSET, True),
    MatchCase("wrong value", "foo=blah", LABELSET, False),
    MatchCase("other wrong value", "baz=bar", LABELSET, False),
    MatchCase("extra key", "foo=bar,foobar=bar,baz=blah", LABELSET, False),
    MatchCase("in and notin", "x in (foo),y notin (alpha)", {"x": "foo", "y": "baz"}, True),
    MatchCase("in fails", "x in (foo),y in (alpha)", {"x": "foo", "y": "baz"}, False),
    MatchCase("notin empty on missing key", "x notin (),y", {"y": ""}, True),
    MatchCase("does not exist and exists", "!x,y", {"y": ""}, True),
    MatchCase("notin and does not exist", "x notin (),!y", {"y": ""}, False),
    MatchCase("in empty value on missing key", "x in ()", {"y": "baz"}, False),
    MatchCase("in empty value on empty label", "x in ()", {"x": ""}, True),
    MatchCase("greater than two", "z>1", {"z": "2"}, True),
    MatchCase("greater than on non-integer", "z>1", {"z": "v2"}, False),
    MatchCase("greater than on missing key", "z>1", {}, False),
    MatchCase("not equal on missing key", "x!=y", {}, True),
    MatchCase("notin on missing key", "x notin (a)", {}, True),
    MatchCase("less than negative", "x<0", {"x": "-3"}, True),
    MatchCase("empty value equality", "x=", {"x": ""}, True),
]


@pytest.mark.parametrize("case", MATCH_CASES, ids=lambda c: c.name)
def test_matches(case: MatchCase) -> None:
    got = parse_selector(case.selector).matches(case.labels)
    assert got is case.matches, f"{case.name}: {case.selector!r} on {case.labels}"


@dataclass(frozen=True)
class RequirementMatchCase:
    name: str
    requirement: Requirement
    labels: dict[str, str]
    matches: bool


REQUIREMENT_MATCH_CASES = [
    RequirementMatchCase(
        "zero requirement matches nothing", Requirement("", "", ()), {"x": "y"}, False
    ),
    RequirementMatchCase("unknown operator", Requirement("x", "like", ("y",)), {"x": "y"}, False),
    RequirementMatchCase(
        "gt with two values", Requirement("x", "gt", ("1", "2")), {"x": "5"}, False
    ),
    RequirementMatchCase("gt with bad bound", Requirement("x", "gt", ("a",)), {"x": "5"}, False),
    RequirementMatchCase("double equals", Requirement("x", "==", ("y",)), {"x": "y"}, True),
]


@pytest.mark.parametrize("case", REQUIREMENT_MATCH_CASES, ids=lambda c: c.name)
def test_requirement_matches(case: RequirementMatchCase) -> None:
    got = case.requirement.matches(case.labels)
    assert got is case.matches, f"{case.name}: got {got}"


# --- printing requirements built directly ---


@dataclass(frozen=True)
class ToStringCase:
    name: str
    requirements: list[Requirement]
    printed: str


TO_STRING_CASES = [
    ToStringCase(
        "in, notin, exists",
        [req("x", "in", "abc", "def"), req("y", "notin", "jkl"), req("z", "exists")],
        "x in (abc,def),y notin (jkl),z",
    ),
    ToStringCase(
        "notin, not equals, does not exist",
        [req("x", "notin", "abc", "def"), req("y", "!=", "jkl"), req("z", "!")],
        "x notin (abc,def),y!=jkl,!z",
    ),
    ToStringCase(
        "zero requirement prints empty",
        [req("x", "in", "abc", "def"), Requirement("", "", ())],
        ",x in (abc,def)",
    ),
    ToStringCase(
        "empty value in set",
        [req("x", "notin", "abc"), req("y", "in", "jkl", "mno"), req("z", "notin", "")],
        "x notin (abc),y in (jkl,mno),z notin ()",
    ),
    ToStringCase(
        "equality family",
        [req("x", "=", "abc"), req("y", "==", "jkl"), req("z", "!=", "a"), req("z", "exists")],
        "x=abc,y==jkl,z!=a,z",
    ),
    ToStringCase(
        "bounds", [req("x", "gt", "2"), req("y", "lt", "8"), req("z", "exists")], "x>2,y<8,z"
    ),
    ToStringCase(
        "values sorted on output", [Requirement("x", "in", ("foo", "bar"))], "x in (bar,foo)"
    ),
    ToStringCase(
        "duplicates kept", [Requirement("x", "in", ("foo", "bar", "foo"))], "x in (bar,foo,foo)"
    ),
    ToStringCase("sorted by key", [req("b", "exists"), req("a", "exists")], "a,b"),
]


@pytest.mark.parametrize("case", TO_STRING_CASES, ids=lambda c: c.name)
def test_to_string(case: ToStringCase) -> None:
    printed = str(Selector(tuple(case.requirements)))
    assert printed == case.printed, f"{case.name}: printed {printed!r}"


# --- requirement construction ---


@dataclass(frozen=True)
class NewRequirementCase:
    name: str
    key: str
    op: str
    values: list[str] | None
    error: str = ""


NEW_REQUIREMENT_CASES = [
    NewRequirementCase(
        "in without values",
        "x",
        "in",
        None,
        "values: Invalid value: []string(nil): "
        "for 'in', 'notin' operators, values set can't be empty",
    ),
    NewRequirementCase(
        "notin with empty values",
        "x",
        "notin",
        [],
        "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty",
    ),
    NewRequirementCase("in", "x", "in", ["foo"]),
    NewRequirementCase("notin", "x", "notin", ["foo"]),
    NewRequirementCase("exists", "x", "exists", None),
    NewRequirementCase("does not exist", "x", "!", None),
    NewRequirementCase("key starting with a digit", "1foo", "in", ["bar"]),
    NewRequirementCase("numeric key", "1234", "in", ["bar"]),
    NewRequirementCase("greater than", "y", "gt", ["1"]),
    NewRequirementCase("less than", "z", "lt", ["6"]),
    NewRequirementCase(
        "greater than a word",
        "foo",
        "gt",
        ["bar"],
        "values[0]: Invalid value: \"bar\": for 'Gt', 'Lt' operators, the value must be an integer",
    ),
    NewRequirementCase(
        "less than a word",
        "barz",
        "lt",
        ["blah"],
        'values[0]: Invalid value: "blah": '
        "for 'Gt', 'Lt' operators, the value must be an integer",
    ),
    NewRequirementCase(
        "greater than two values",
        "x",
        "gt",
        ["1", "2"],
        "values: Invalid value: []string{\"1\", \"2\"}: for 'Gt', 'Lt' operators, "
        "exactly one value is required",
    ),
    NewRequirementCase(
        "key longer than a subdomain",
        "a" * 254,
        "exists",
        None,
        'key: Invalid value: "' + "a" * 254 + '": name part must be no more than 63 characters',
    ),
    NewRequirementCase(
        "equals needs one value",
        "x",
        "=",
        ["a", "b"],
        "exact-match compatibility requires one single value",
    ),
    NewRequirementCase(
        "exists takes no values",
        "x",
        "exists",
        ["a"],
        'values: Invalid value: []string{"a"}: '
        "values set must be empty for exists and does not exist",
    ),
    NewRequirementCase(
        "unknown operator",
        "x",
        "xyz",
        ["a"],
        'operator: Unsupported value: "xyz": supported values: "in", "notin", "=", "==", "!=", '
        '"gt", "lt", "exists", "!"',
    ),
    NewRequirementCase(
        "invalid value names its key",
        "app",
        "in",
        ["ok", "not ok"],
        'values[1][app]: Invalid value: "not ok": a valid label must be an empty string',
    ),
    NewRequirementCase(
        "several problems are listed together",
        "-x",
        "in",
        [],
        '[key: Invalid value: "-x": name part must consist of',
    ),
    NewRequirementCase("empty value is valid", "x", "=", [""]),
]


@pytest.mark.parametrize("case", NEW_REQUIREMENT_CASES, ids=lambda c: c.name)
def test_new_requirement(case: NewRequirementCase) -> None:
    if not case.error:
        r = new_requirement(case.key, case.op, case.values)
        assert (r.key, r.operator, r.values) == (case.key, case.op, tuple(case.values or ()))
        return
    with pytest.raises(ValueError) as info:
        new_requirement(case.key, case.op, case.values)
    assert case.error in str(info.value), f"{case.name}: error was {info.value}"


# --- selector operations ---


@dataclass(frozen=True)
class ExactMatchCase:
    name: str
    selector: Selector
    label: str
    expected: str | None


EXACT_MATCH_CASES = [
    ExactMatchCase(
        "in one value", Selector((Requirement("key", "in", ("value",)),)), "key", "value"
    ),
    ExactMatchCase(
        "in two values", Selector((Requirement("key", "in", ("value", "value2")),)), "key", None
    ),
    ExactMatchCase(
        "second key",
        Selector(
            (Requirement("key", "in", ("value", "value1")), Requirement("key2", "in", ("value2",)))
        ),
        "key2",
        "value2",
    ),
    ExactMatchCase("equals", Selector((Requirement("key", "=", ("value",)),)), "key", "value"),
    ExactMatchCase(
        "double equals", Selector((Requirement("key", "==", ("value",)),)), "key", "value"
    ),
    ExactMatchCase("not equals", Selector((Requirement("key", "!=", ("value",)),)), "key", None),
    ExactMatchCase(
        "first of two keys",
        Selector((Requirement("key", "in", ("value",)), Requirement("key2", "in", ("value2",)))),
        "key",
        "value",
    ),
    ExactMatchCase("absent key", parse_selector("a=b"), "c", None),
    ExactMatchCase("nothing", nothing(), "a", None),
    ExactMatchCase("everything", everything(), "a", None),
]


@pytest.mark.parametrize("case", EXACT_MATCH_CASES, ids=lambda c: c.name)
def test_requires_exact_match(case: ExactMatchCase) -> None:
    got = case.selector.requires_exact_match(case.label)
    assert got == case.expected, f"{case.name}: got {got!r}"


@dataclass(frozen=True)
class AddCase:
    name: str
    start: Selector
    added: Requirement
    printed: str


ADD_CASES = [
    AddCase("to empty", everything(), req("key", "in", "value"), "key in (value)"),
    AddCase(
        "keeps key order",
        Selector((req("key", "in", "value"),)),
        req("key2", "=", "value2"),
        "key in (value),key2=value2",
    ),
    AddCase("sorts the new key in", parse_selector("b=1"), req("a", "=", "2"), "a=2,b=1"),
    AddCase("nothing stays nothing", nothing(), req("a", "=", "2"), ""),
]


@pytest.mark.parametrize("case", ADD_CASES, ids=lambda c: c.name)
def test_add(case: AddCase) -> None:
    added = case.start.add(case.added)
    assert str(added) == case.printed, f"{case.name}: printed {added}"
    assert added.selectable == case.start.selectable, f"{case.name}: selectable changed"


@dataclass(frozen=True)
class SpecialSelectorCase:
    name: str
    selector: Selector
    empty: bool
    matches_anything: bool


SPECIAL_SELECTOR_CASES = [
    SpecialSelectorCase("everything", everything(), True, True),
    SpecialSelectorCase("nothing", nothing(), False, False),
    SpecialSelectorCase("parsed empty", parse_selector(""), True, True),
    SpecialSelectorCase("from no labels", selector_from_set(None), True, True),
    SpecialSelectorCase("from empty labels", selector_from_set({}), True, True),
    SpecialSelectorCase("from labels", selector_from_set({"x": "y"}), False, True),
]


@pytest.mark.parametrize("case", SPECIAL_SELECTOR_CASES, ids=lambda c: c.name)
def test_special_selectors(case: SpecialSelectorCase) -> None:
    assert case.selector.empty() is case.empty, f"{case.name}: empty()"
    assert case.selector.matches({"x": "y"}) is case.matches_anything, f"{case.name}: matches"


@dataclass(frozen=True)
class SetSelectorCase:
    name: str
    selector_labels: dict[str, str]
    labels: dict[str, str]
    matches: bool


SET_SELECTOR_CASES = [
    SetSelectorCase("empty set", {}, LABELSET, True),
    SetSelectorCase("one pair", {"foo": "bar"}, LABELSET, True),
    SetSelectorCase("other pair", {"baz": "blah"}, LABELSET, True),
    SetSelectorCase("both pairs", {"foo": "bar", "baz": "blah"}, LABELSET, True),
    SetSelectorCase("value with equals sign", {"foo": "=blah"}, LABELSET, False),
    SetSelectorCase("extra key", {"foo": "bar", "foobar": "bar"}, LABELSET, False),
]


@pytest.mark.parametrize("case", SET_SELECTOR_CASES, ids=lambda c: c.name)
def test_selector_from_set(case: SetSelectorCase) -> None:
    got = selector_from_set(case.selector_labels).matches(case.labels)
    assert got is case.matches, f"{case.name}: got {got}"


def test_selector_from_set_is_sorted_and_validated_variant_checks() -> None:
    assert str(selector_from_set({"b": "2", "a": "1"})) == "a=1,b=2"
    assert validated_selector_from_set({"key": "val"}) == Selector(
        (Requirement("key", "=", ("val",)),)
    )
    long_value = "axahm2EJ8Phiephe2eixohbee9eGeiyees1thuozi1xoh0GiuH3diewi8iem7Nui"
    with pytest.raises(ValueError, match="must be no more than 63 characters"):
        validated_selector_from_set({"Key": long_value})


# --- meta/v1 LabelSelector ---


@dataclass(frozen=True)
class LabelSelectorCase:
    name: str
    selector: LabelSelector | None
    printed: str = ""
    nothing: bool = False
    error: str = ""
    matching: list[dict[str, str]] = field(default_factory=list)
    not_matching: list[dict[str, str]] = field(default_factory=list)


def _expr(key: str, operator: str, *values: str) -> LabelSelectorRequirement:
    return LabelSelectorRequirement(key=key, operator=operator, values=list(values))


LABEL_SELECTOR_CASES = [
    LabelSelectorCase("nil selects nothing", None, nothing=True, not_matching=[{}, {"a": "b"}]),
    LabelSelectorCase("empty selects everything", LabelSelector(), "", matching=[{}, {"a": "b"}]),
    LabelSelectorCase(
        "match labels",
        LabelSelector(match_labels={"foo": "bar"}),
        "foo=bar",
        matching=[{"foo": "bar", "x": "y"}],
        not_matching=[{"foo": "baz"}, {}],
    ),
    LabelSelectorCase(
        "match labels sorted",
        LabelSelector(match_labels={"b": "2", "a": "1"}),
        "a=1,b=2",
    ),
    LabelSelectorCase(
        "in",
        LabelSelector(match_expressions=[_expr("foo", "In", "baz", "bar")]),
        "foo in (bar,baz)",
        matching=[{"foo": "bar"}],
        not_matching=[{"foo": "qux"}, {}],
    ),
    LabelSelectorCase(
        "notin",
        LabelSelector(match_expressions=[_expr("foo", "NotIn", "bar")]),
        "foo notin (bar)",
        matching=[{}, {"foo": "baz"}],
        not_matching=[{"foo": "bar"}],
    ),
    LabelSelectorCase(
        "exists",
        LabelSelector(match_expressions=[_expr("foo", "Exists")]),
        "foo",
        matching=[{"foo": ""}],
        not_matching=[{}],
    ),
    LabelSelectorCase(
        "does not exist",
        LabelSelector(match_expressions=[_expr("foo", "DoesNotExist")]),
        "!foo",
        matching=[{}],
        not_matching=[{"foo": "bar"}],
    ),
    LabelSelectorCase(
        "labels and expressions together",
        LabelSelector(
            match_labels={"foo": "bar"},
            match_expressions=[_expr("baz", "In", "norf", "qux"), _expr("zot", "Exists")],
        ),
        "baz in (norf,qux),foo=bar,zot",
        matching=[{"foo": "bar", "baz": "qux", "zot": "1"}],
        not_matching=[{"foo": "bar", "baz": "qux"}],
    ),
    LabelSelectorCase(
        "unknown operator",
        LabelSelector(match_expressions=[_expr("foo", "Equals", "bar")]),
        error='"Equals" is not a valid label selector operator',
    ),
    LabelSelectorCase(
        "operator is case sensitive",
        LabelSelector(match_expressions=[_expr("foo", "in", "bar")]),
        error='"in" is not a valid label selector operator',
    ),
    LabelSelectorCase(
        "in needs values",
        LabelSelector(match_expressions=[_expr("foo", "In")]),
        error="values set can't be empty",
    ),
    LabelSelectorCase(
        "exists takes no values",
        LabelSelector(match_expressions=[_expr("foo", "Exists", "bar")]),
        error="values set must be empty for exists and does not exist",
    ),
    LabelSelectorCase(
        "invalid match label value",
        LabelSelector(match_labels={"foo": "bar baz"}),
        error='values[0][foo]: Invalid value: "bar baz"',
    ),
    LabelSelectorCase(
        "invalid key",
        LabelSelector(match_expressions=[_expr("foo bar", "Exists")]),
        error='key: Invalid value: "foo bar"',
    ),
]


@pytest.mark.parametrize("case", LABEL_SELECTOR_CASES, ids=lambda c: c.name)
def test_selector_from_label_selector(case: LabelSelectorCase) -> None:
    if case.error:
        with pytest.raises(ValueError) as info:
            selector_from_label_selector(case.selector)
        assert case.error in str(info.value), f"{case.name}: error was {info.value}"
        return
    selector = selector_from_label_selector(case.selector)
    assert str(selector) == case.printed, f"{case.name}: printed {selector}"
    assert (selector == nothing()) is case.nothing, f"{case.name}: nothing()"
    for labels in case.matching:
        assert selector.matches(labels), f"{case.name}: should match {labels}"
    for labels in case.not_matching:
        assert not selector.matches(labels), f"{case.name}: should not match {labels}"


# --- label sets ---


@dataclass(frozen=True)
class SetStringCase:
    name: str
    labels: dict[str, str]
    printed: str
    formatted: str


SET_STRING_CASES = [
    SetStringCase("one", {"x": "y"}, "x=y", "x=y"),
    SetStringCase("another", {"foo": "bar"}, "foo=bar", "foo=bar"),
    SetStringCase("sorted", {"foo": "bar", "baz": "qup"}, "baz=qup,foo=bar", "baz=qup,foo=bar"),
    SetStringCase("none", {}, "", "<none>"),
]


@pytest.mark.parametrize("case", SET_STRING_CASES, ids=lambda c: c.name)
def test_labels_to_string(case: SetStringCase) -> None:
    assert labels_to_string(case.labels) == case.printed, f"{case.name}: labels_to_string"
    assert format_labels(case.labels) == case.formatted, f"{case.name}: format_labels"


@dataclass(frozen=True)
class ConflictCase:
    name: str
    labels1: dict[str, str]
    labels2: dict[str, str]
    conflict: bool
    merged: dict[str, str]


CONFLICT_CASES = [
    ConflictCase("both empty", {}, {}, False, {}),
    ConflictCase("first only", {"infra": "true"}, {}, False, {"infra": "true"}),
    ConflictCase(
        "disjoint",
        {"env": "test"},
        {"infra": "true"},
        False,
        {"env": "test", "infra": "true"},
    ),
    ConflictCase(
        "same value",
        {"env": "test"},
        {"infra": "true", "env": "test"},
        False,
        {"env": "test", "infra": "true"},
    ),
    ConflictCase("different value", {"env": "test"}, {"env": "dev"}, True, {"env": "dev"}),
    ConflictCase(
        "one of several differs",
        {"env": "test", "infra": "false"},
        {"infra": "true", "color": "blue"},
        True,
        {"env": "test", "infra": "true", "color": "blue"},
    ),
]


@pytest.mark.parametrize("case", CONFLICT_CASES, ids=lambda c: c.name)
def test_conflicts_and_merge(case: ConflictCase) -> None:
    assert conflicts(case.labels1, case.labels2) is case.conflict, f"{case.name}: conflicts"
    assert conflicts(case.labels2, case.labels1) is case.conflict, f"{case.name}: symmetric"
    assert merge(case.labels1, case.labels2) == case.merged, f"{case.name}: merge"


@dataclass(frozen=True)
class ConvertCase:
    name: str
    selector: str
    labels: dict[str, str] | None  # None: invalid


CONVERT_CASES = [
    ConvertCase("empty", "", {}),
    ConvertCase("one", "x=a", {"x": "a"}),
    ConvertCase("three", "x=a,y=b,z=c", {"x": "a", "y": "b", "z": "c"}),
    ConvertCase("blanks trimmed", " x = a , y = b , z = c ", {"x": "a", "y": "b", "z": "c"}),
    ConvertCase(
        "words",
        "color=green,env=test,service=front",
        {"color": "green", "env": "test", "service": "front"},
    ),
    ConvertCase(
        "blank after comma",
        "color=green, env=test, service=front",
        {"color": "green", "env": "test", "service": "front"},
    ),
    ConvertCase("comma alone", ",", None),
    ConvertCase("key alone", "x", None),
    ConvertCase("two keys", "x,y", None),
    ConvertCase("invalid value", "x=$y", None),
    ConvertCase("not equals", "x!=y", None),
    ConvertCase("double equals", "x==y", None),
    ConvertCase("or", "x=a||y=b", None),
    ConvertCase("in", "x in (y)", None),
    ConvertCase("notin", "x notin (y)", None),
    ConvertCase("two words", "x y", None),
]


@pytest.mark.parametrize("case", CONVERT_CASES, ids=lambda c: c.name)
def test_convert_selector_to_labels_map(case: ConvertCase) -> None:
    if case.labels is None:
        with pytest.raises(ValueError, match="invalid"):
            convert_selector_to_labels_map(case.selector)
        return
    got = convert_selector_to_labels_map(case.selector)
    assert got == case.labels, f"{case.name}: got {got}"


def test_requirement_and_selector_are_frozen_values() -> None:
    r = Requirement("x", Operator.IN, ("b", "a"))
    assert r.values == ("a", "b")
    assert r == Requirement("x", "in", ("a", "b"))
    with pytest.raises(AttributeError):
        r.key = "y"  # type: ignore[misc]
    assert hash(parse_selector("x in (a,b)")) == hash(parse_selector("x in (b,a)"))

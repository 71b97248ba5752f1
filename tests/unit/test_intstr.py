"""IntOrString helpers, after Kubernetes' util/intstr/intstr_test.go."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kpy.api import intstr
from kpy.api.meta.v1 import IntOrString


@dataclass(frozen=True)
class ConvertCase:
    name: str
    value: int | str
    field: str
    text: str
    int_value: int


CONVERT_CASES = [
    ConvertCase("int", 93, "int_val", "93", 93),
    ConvertCase("numeric string stays a string", "76", "str_val", "76", 76),
    ConvertCase("percentage", "25%", "str_val", "25%", 0),
    ConvertCase("zero", 0, "int_val", "0", 0),
    ConvertCase("empty string", "", "str_val", "", 0),
    ConvertCase("negative int", -5, "int_val", "-5", -5),
    ConvertCase("int32 max", 2**31 - 1, "int_val", "2147483647", 2**31 - 1),
    ConvertCase("int32 min", -(2**31), "int_val", "-2147483648", -(2**31)),
    ConvertCase("name", "http", "str_val", "http", 0),
]


@pytest.mark.parametrize("case", CONVERT_CASES, ids=lambda c: c.name)
def test_from_value_round_trip(case: ConvertCase) -> None:
    msg = intstr.from_value(case.value)
    assert msg.WhichOneof("value") == case.field, (
        f"{case.name}: stored in {msg.WhichOneof('value')}"
    )
    assert intstr.to_python(msg) == case.value, f"{case.name}: to_python"
    assert type(intstr.to_python(msg)) is type(case.value), f"{case.name}: type changed"
    assert intstr.to_str(msg) == case.text, f"{case.name}: to_str"
    assert intstr.int_value(msg) == case.int_value, f"{case.name}: int_value"
    restored = IntOrString.FromString(msg.SerializeToString())
    assert intstr.to_python(restored) == case.value, f"{case.name}: lost on the wire"


def test_unset_message_is_int_zero() -> None:
    assert intstr.to_python(IntOrString()) == 0
    assert intstr.get_scaled_value_from_int_or_percent(IntOrString(), 100, True) == 0


@dataclass(frozen=True)
class RejectCase:
    name: str
    value: object
    error: type[Exception]


REJECT_CASES = [
    RejectCase("int32 overflow", 2**31, ValueError),
    RejectCase("int32 underflow", -(2**31) - 1, ValueError),
    RejectCase("bool", True, TypeError),
    RejectCase("float", 1.5, TypeError),
]


@pytest.mark.parametrize("case", REJECT_CASES, ids=lambda c: c.name)
def test_from_value_rejects(case: RejectCase) -> None:
    with pytest.raises(case.error):
        intstr.from_value(case.value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ParseCase:
    name: str
    text: str
    expected: int | str


PARSE_CASES = [
    ParseCase("digits become an int", "123", 123),
    ParseCase("negative digits", "-7", -7),
    ParseCase("plus sign", "+7", 7),
    ParseCase("percentage stays a string", "50%", "50%"),
    ParseCase("name stays a string", "http", "http"),
    ParseCase("spaces stay a string", " 1", " 1"),
    ParseCase("beyond int32 stays a string", "4294967296", "4294967296"),
]


@pytest.mark.parametrize("case", PARSE_CASES, ids=lambda c: c.name)
def test_parse(case: ParseCase) -> None:
    got = intstr.to_python(intstr.parse(case.text))
    assert got == case.expected, f"{case.name}: got {got!r}"
    assert type(got) is type(case.expected), f"{case.name}: type {type(got).__name__}"


@dataclass(frozen=True)
class IntOrPercentCase:
    name: str
    value: int | str
    number: int
    is_percent: bool
    error: str = ""


INT_OR_PERCENT_CASES = [
    IntOrPercentCase("int", 200, 200, False),
    IntOrPercentCase("number as string", "200", 0, False, "string is not a percentage"),
    IntOrPercentCase("percent in the middle", "30%0", 0, False, "string is not a percentage"),
    IntOrPercentCase("percentage", "40%", 40, True),
    IntOrPercentCase("percent sign alone", "%", 0, False, 'invalid value "%"'),
    IntOrPercentCase("letter percentage", "a%", 0, False, 'invalid value "a%"'),
    IntOrPercentCase("letter", "a", 0, False, "string is not a percentage"),
    IntOrPercentCase("hash", "40#", 0, False, "string is not a percentage"),
    IntOrPercentCase("two percent signs", "40%%", 0, False, 'invalid value "40%%"'),
    IntOrPercentCase("negative percentage", "-10%", -10, True),
    IntOrPercentCase("over a hundred percent", "150%", 150, True),
]


@pytest.mark.parametrize("case", INT_OR_PERCENT_CASES, ids=lambda c: c.name)
def test_get_int_or_percent_value(case: IntOrPercentCase) -> None:
    if case.error:
        with pytest.raises(ValueError, match=case.error):
            intstr.get_int_or_percent_value(case.value)
        return
    got = intstr.get_int_or_percent_value(intstr.from_value(case.value))
    assert got == (case.number, case.is_percent), f"{case.name}: got {got}"


@dataclass(frozen=True)
class ScaledCase:
    name: str
    value: int | str | None
    total: int
    round_up: bool
    expected: int = 0
    error: str = ""


SCALED_CASES = [
    ScaledCase("int ignores total", 123, 0, False, 123),
    ScaledCase("ninety percent of a hundred", "90%", 100, True, 90),
    ScaledCase("rounds up", "90%", 95, True, 86),
    ScaledCase("rounds down", "90%", 95, False, 85),
    ScaledCase("max surge default", "25%", 10, True, 3),
    ScaledCase("max unavailable default", "25%", 10, False, 2),
    ScaledCase("zero percent", "0%", 10, True, 0),
    ScaledCase("negative rounds toward ceiling", "-1%", 50, True, 0),
    ScaledCase("negative rounds toward floor", "-1%", 50, False, -1),
    ScaledCase(
        "percent sign alone",
        "%",
        0,
        False,
        error='invalid value for IntOrString: invalid value "%": '
        'strconv.Atoi: parsing "": invalid syntax',
    ),
    ScaledCase(
        "not a percentage",
        "90#",
        0,
        False,
        error="invalid value for IntOrString: invalid type: string is not a percentage",
    ),
    ScaledCase(
        "hash percentage",
        "#%",
        0,
        False,
        error='invalid value for IntOrString: invalid value "#%": '
        'strconv.Atoi: parsing "#": invalid syntax',
    ),
    ScaledCase(
        "number string is not a percentage",
        "90",
        0,
        False,
        error="invalid value for IntOrString: invalid type: string is not a percentage",
    ),
    ScaledCase(
        "out of range",
        "99999999999999999999%",
        1,
        True,
        error="value out of range",
    ),
    ScaledCase("nil", None, 0, False, error="nil value for IntOrString"),
]


@pytest.mark.parametrize("case", SCALED_CASES, ids=lambda c: c.name)
def test_get_scaled_value_from_int_or_percent(case: ScaledCase) -> None:
    value = None if case.value is None else intstr.from_value(case.value)
    if case.error:
        with pytest.raises(ValueError) as info:
            intstr.get_scaled_value_from_int_or_percent(value, case.total, case.round_up)
        assert case.error in str(info.value), f"{case.name}: error was {info.value}"
        return
    got = intstr.get_scaled_value_from_int_or_percent(value, case.total, case.round_up)
    assert got == case.expected, f"{case.name}: got {got}"
    plain = intstr.get_scaled_value_from_int_or_percent(case.value, case.total, case.round_up)
    assert plain == case.expected, f"{case.name}: plain int/str gave {plain}"


LEGACY_CASES = [
    ScaledCase("int", 123, 0, False, 123),
    ScaledCase("percentage rounds up", "90%", 95, True, 86),
    ScaledCase("percentage rounds down", "90%", 95, False, 85),
    ScaledCase("string without percent is a percentage", "90", 100, True, 90),
    ScaledCase("every percent sign is dropped", "40%%", 100, True, 40),
    ScaledCase("percent sign alone", "%", 0, False, error='invalid value "%"'),
    ScaledCase("hash", "90#", 0, False, error='invalid value "90#"'),
    ScaledCase("hash percentage", "#%", 0, False, error='invalid value "#%"'),
    ScaledCase("nil", None, 0, False, error="nil value for IntOrString"),
]


@pytest.mark.parametrize("case", LEGACY_CASES, ids=lambda c: c.name)
def test_get_value_from_int_or_percent(case: ScaledCase) -> None:
    if case.error:
        with pytest.raises(ValueError) as info:
            intstr.get_value_from_int_or_percent(case.value, case.total, case.round_up)
        assert case.error in str(info.value), f"{case.name}: error was {info.value}"
        return
    got = intstr.get_value_from_int_or_percent(case.value, case.total, case.round_up)
    assert got == case.expected, f"{case.name}: got {got}"


def test_value_or_default() -> None:
    default = intstr.from_value("25%")
    assert intstr.value_or_default(None, default) is default
    assert intstr.value_or_default(3, default) == 3

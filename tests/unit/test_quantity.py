"""Quantity: parsing, canonical form, rounding, arithmetic and comparison.

Cases follow the tables of Kubernetes' apimachinery resource/quantity_test.go
and quantity_golden_test.go, restated for kpy's API."""

from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass
from fractions import Fraction

import pytest

from kpy.api.quantity import (
    BINARY_SI,
    DECIMAL_EXPONENT,
    DECIMAL_SI,
    ERR_FORMAT_WRONG,
    ERR_NUMERIC,
    ERR_SUFFIX,
    Quantity,
    parse_quantity,
)

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)


# --- parsing: value and format ---


@dataclass(frozen=True)
class ParseCase:
    name: str
    text: str
    value: str  # the exact value, as a decimal Fraction() accepts
    format: str


_PARSE_BASE = [
    ParseCase("zero", "0", "0", DECIMAL_SI),
    ParseCase("zero nano", "0n", "0", DECIMAL_SI),
    ParseCase("zero micro", "0u", "0", DECIMAL_SI),
    ParseCase("zero milli", "0m", "0", DECIMAL_SI),
    ParseCase("zero Ki keeps binary", "0Ki", "0", BINARY_SI),
    ParseCase("zero k", "0k", "0", DECIMAL_SI),
    ParseCase("zero Mi", "0Mi", "0", BINARY_SI),
    ParseCase("zero M", "0M", "0", DECIMAL_SI),
    ParseCase("zero Gi", "0Gi", "0", BINARY_SI),
    ParseCase("zero G", "0G", "0", DECIMAL_SI),
    ParseCase("zero Ti", "0Ti", "0", BINARY_SI),
    ParseCase("zero T", "0T", "0", DECIMAL_SI),
    ParseCase("bare number", "1", "1", DECIMAL_SI),
    ParseCase("Ki", "1Ki", "1024", BINARY_SI),
    ParseCase("8Ki", "8Ki", str(8 * 1024), BINARY_SI),
    ParseCase("Mi", "7Mi", str(7 * 1024**2), BINARY_SI),
    ParseCase("Gi", "6Gi", str(6 * 1024**3), BINARY_SI),
    ParseCase("Ti", "5Ti", str(5 * 1024**4), BINARY_SI),
    ParseCase("Pi", "4Pi", str(4 * 1024**5), BINARY_SI),
    ParseCase("Ei", "3Ei", str(3 * 1024**6), BINARY_SI),
    ParseCase("10Ti", "10Ti", str(10 * 1024**4), BINARY_SI),
    ParseCase("100Ti", "100Ti", str(100 * 1024**4), BINARY_SI),
    ParseCase("nano", "5n", "5e-9", DECIMAL_SI),
    ParseCase("micro", "4u", "4e-6", DECIMAL_SI),
    ParseCase("milli", "3m", "3e-3", DECIMAL_SI),
    ParseCase("units", "9", "9", DECIMAL_SI),
    ParseCase("kilo", "8k", "8e3", DECIMAL_SI),
    ParseCase("50 kilo", "50k", "5e4", DECIMAL_SI),
    ParseCase("mega", "7M", "7e6", DECIMAL_SI),
    ParseCase("giga", "6G", "6e9", DECIMAL_SI),
    ParseCase("tera", "5T", "5e12", DECIMAL_SI),
    ParseCase("40 tera", "40T", "4e13", DECIMAL_SI),
    ParseCase("300 tera", "300T", "3e14", DECIMAL_SI),
    ParseCase("peta", "2P", "2e15", DECIMAL_SI),
    ParseCase("exa", "1E", "1e18", DECIMAL_SI),
    ParseCase("exponent E-3", "1E-3", "1e-3", DECIMAL_EXPONENT),
    ParseCase("exponent e3", "1e3", "1e3", DECIMAL_EXPONENT),
    ParseCase("exponent E6", "1E6", "1e6", DECIMAL_EXPONENT),
    ParseCase("exponent e9", "1e9", "1e9", DECIMAL_EXPONENT),
    ParseCase("exponent E12", "1E12", "1e12", DECIMAL_EXPONENT),
    ParseCase("exponent e15", "1e15", "1e15", DECIMAL_EXPONENT),
    ParseCase("exponent E18", "1E18", "1e18", DECIMAL_EXPONENT),
    ParseCase("exponent not a multiple of three", "1e14", "1e14", DECIMAL_EXPONENT),
    ParseCase("exponent e13", "1e13", "1e13", DECIMAL_EXPONENT),
    ParseCase("fractional kilo", "100.035k", "100035", DECIMAL_SI),
    ParseCase("float-like milli", "0.001", "0.001", DECIMAL_SI),
    ParseCase("float-like kilo", "0.0005k", "0.5", DECIMAL_SI),
    ParseCase("float-like 0.005", "0.005", "0.005", DECIMAL_SI),
    ParseCase("float-like 0.05", "0.05", "0.05", DECIMAL_SI),
    ParseCase("float-like 0.5", "0.5", "0.5", DECIMAL_SI),
    ParseCase("trailing zeros kilo", "0.00050k", "0.5", DECIMAL_SI),
    ParseCase("trailing zeros 0.00500", "0.00500", "0.005", DECIMAL_SI),
    ParseCase("trailing zeros 0.05000", "0.05000", "0.05", DECIMAL_SI),
    ParseCase("trailing zeros 0.50000", "0.50000", "0.5", DECIMAL_SI),
    ParseCase("fraction with e0", "0.5e0", "0.5", DECIMAL_EXPONENT),
    ParseCase("fraction with e-1", "0.5e-1", "0.05", DECIMAL_EXPONENT),
    ParseCase("fraction with e-2", "0.5e-2", "0.005", DECIMAL_EXPONENT),
    ParseCase("fractional mega", "10.035M", "10035e3", DECIMAL_SI),
    ParseCase("1.2e3", "1.2e3", "1200", DECIMAL_EXPONENT),
    ParseCase("explicit plus in exponent", "1.3E+6", "1.3e6", DECIMAL_EXPONENT),
    ParseCase("1.40e9", "1.40e9", "1.4e9", DECIMAL_EXPONENT),
    ParseCase("1.53E12", "1.53E12", "1.53e12", DECIMAL_EXPONENT),
    ParseCase("1.6e15", "1.6e15", "1.6e15", DECIMAL_EXPONENT),
    ParseCase("1.7E18", "1.7E18", "1.7e18", DECIMAL_EXPONENT),
    ParseCase("9.01", "9.01", "9.01", DECIMAL_SI),
    ParseCase("8.1k", "8.1k", "8100", DECIMAL_SI),
    ParseCase("7.123456M", "7.123456M", "7123456", DECIMAL_SI),
    ParseCase("6.987654321G", "6.987654321G", "6987654321", DECIMAL_SI),
    ParseCase("5.444T", "5.444T", "5.444e12", DECIMAL_SI),
    ParseCase("40.1T", "40.1T", "4.01e13", DECIMAL_SI),
    ParseCase("300.2T", "300.2T", "3.002e14", DECIMAL_SI),
    ParseCase("2.5P", "2.5P", "2.5e15", DECIMAL_SI),
    ParseCase("1.01E", "1.01E", "1.01e18", DECIMAL_SI),
    ParseCase("rounds up below nano", "3.001n", "4e-9", DECIMAL_SI),
    ParseCase("rounds up exponent form", "1.1E-9", "2e-9", DECIMAL_EXPONENT),
    ParseCase("tenth of a nano rounds up to one", "0.0000000001", "1e-9", DECIMAL_SI),
    ParseCase("half a nano rounds up to one", "0.0000000005", "1e-9", DECIMAL_SI),
    ParseCase("half a nano with trailing zero", "0.00000000050", "1e-9", DECIMAL_SI),
    ParseCase("half a nano in exponent form", "0.5e-9", "1e-9", DECIMAL_EXPONENT),
    ParseCase("0.9n", "0.9n", "1e-9", DECIMAL_SI),
    ParseCase("rounds up not half up", "0.00000012345", "124e-9", DECIMAL_SI),
    ParseCase("rounds up 0.00000012354", "0.00000012354", "124e-9", DECIMAL_SI),
    ParseCase("binary capped at int64", "9Ei", str(INT64_MAX), BINARY_SI),
    ParseCase("binary Ki capped at int64", "9223372036854775807Ki", str(INT64_MAX), BINARY_SI),
    ParseCase("decimal not capped", "12E", "12e18", DECIMAL_SI),
    ParseCase("fractional Ki", "100.035Ki", "102435.84", BINARY_SI),
    ParseCase("half a Mi", "0.5Mi", str(512 * 1024), BINARY_SI),
    ParseCase("fractional Gi", "0.05Gi", "53687091.2", BINARY_SI),
    ParseCase("fractional Ti", "0.025Ti", "27487790694.4", BINARY_SI),
    ParseCase("tiny binary becomes decimal", "0.000000000001Ki", "2e-9", DECIMAL_SI),
    ParseCase("no leading digit", ".001", "0.001", DECIMAL_SI),
    ParseCase("no leading digit kilo", ".0001k", "0.1", DECIMAL_SI),
    ParseCase("trailing point", "1.", "1", DECIMAL_SI),
    ParseCase("trailing point with suffix", "1.G", "1e9", DECIMAL_SI),
]


def _signed(case: ParseCase, sign: str) -> ParseCase:
    value = case.value if sign == "+" or case.value == "0" else "-" + case.value
    return ParseCase(f"{case.name} ({sign})", sign + case.text, value, case.format)


PARSE_CASES = [
    *_PARSE_BASE,
    *(_signed(c, "-") for c in _PARSE_BASE),
    *(_signed(c, "+") for c in _PARSE_BASE),
]


@pytest.mark.parametrize("case", PARSE_CASES, ids=lambda c: c.name)
def test_parse_value_and_format(case: ParseCase) -> None:
    q = Quantity(case.text)
    assert q.as_fraction() == Fraction(case.value), f"{case.name}: value of {case.text!r}"
    assert q.format == case.format, f"{case.name}: format of {case.text!r}"
    assert Quantity(str(q)) == q, f"{case.name}: {str(q)!r} does not parse back to the same value"


@dataclass(frozen=True)
class BadCase:
    name: str
    text: str
    error: str


BAD_CASES = [
    BadCase("empty", "", ERR_FORMAT_WRONG),
    BadCase("two points", "1.1.M", ERR_FORMAT_WRONG),
    BadCase("sign inside", "1+1.0M", ERR_FORMAT_WRONG),
    BadCase("lower-case binary suffix", "0.1mi", ERR_SUFFIX),
    BadCase("unknown letters", "0.1am", ERR_FORMAT_WRONG),
    BadCase("not a number", "aoeu", ERR_FORMAT_WRONG),
    BadCase("bare i", ".5i", ERR_SUFFIX),
    BadCase("i suffix", "1i", ERR_SUFFIX),
    BadCase("negative i suffix", "-3.01i", ERR_SUFFIX),
    BadCase("exponent without digits", "-3.01e-", ERR_SUFFIX),
    BadCase("exponent beyond int32", "1e4294967297", ERR_SUFFIX),
    BadCase("exponent just beyond int32", "1E2147483648", ERR_SUFFIX),
    BadCase("exponent at int32 minimum", "1E-2147483648", ERR_SUFFIX),
    BadCase("leading space", " 1", ERR_FORMAT_WRONG),
    BadCase("trailing space", "1 ", ERR_FORMAT_WRONG),
    BadCase("bare e", "1e", ERR_SUFFIX),
    BadCase("suffix then digits", "1Mi5", ERR_SUFFIX),
    BadCase("Kilo upper case", "1K", ERR_SUFFIX),
    BadCase("no digits on the slow path", ".e-10", ERR_NUMERIC),
    BadCase("no digits with Ei", "Ei", ERR_NUMERIC),
    BadCase("unicode digit", "\u0661", ERR_FORMAT_WRONG),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=lambda c: c.name)
def test_parse_rejects(case: BadCase) -> None:
    with pytest.raises(ValueError) as info:
        Quantity(case.text)
    assert str(info.value) == case.error, f"{case.name}: {case.text!r} gave {info.value}"


def test_format_error_names_the_regular_expression() -> None:
    expected = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
    with pytest.raises(ValueError, match="quantities must match the regular expression"):
        parse_quantity("abc")
    assert expected in ERR_FORMAT_WRONG


# --- printing ---


@dataclass(frozen=True)
class StringCase:
    name: str
    value: int
    exp: int
    format: str
    expect: str
    alternate: str = ""  # another spelling that must print as `expect`


STRING_CASES = [
    StringCase("one Gi", 1024**3, 0, BINARY_SI, "1Gi", "1024Mi"),
    StringCase("300 Mi", 300 * 1024**2, 0, BINARY_SI, "300Mi", "307200Ki"),
    StringCase("6 Ki", 6 * 1024, 0, BINARY_SI, "6Ki"),
    StringCase("1001 Gi", 1001 * 1024**3, 0, BINARY_SI, "1001Gi", "1025024Mi"),
    StringCase("one Ti", 1024**4, 0, BINARY_SI, "1Ti", "1024Gi"),
    StringCase("small binary prints decimal", 5, 0, BINARY_SI, "5", "5000m"),
    StringCase("binary fraction prints decimal", 500, -3, BINARY_SI, "500m", "0.5"),
    StringCase("one G", 1, 9, DECIMAL_SI, "1G", "1000M"),
    StringCase("1000 M is 1 G", 1000, 6, DECIMAL_SI, "1G", "0.001T"),
    StringCase("million k is 1 G", 1000000, 3, DECIMAL_SI, "1G"),
    StringCase("billion is 1 G", 1000000000, 0, DECIMAL_SI, "1G"),
    StringCase("one milli", 1, -3, DECIMAL_SI, "1m", "1000u"),
    StringCase("80 milli", 80, -3, DECIMAL_SI, "80m"),
    StringCase("1080 milli", 1080, -3, DECIMAL_SI, "1080m", "1.08"),
    StringCase("108 centi", 108, -2, DECIMAL_SI, "1080m", "1080000000n"),
    StringCase("10800e-4", 10800, -4, DECIMAL_SI, "1080m"),
    StringCase("300 M", 300, 6, DECIMAL_SI, "300M"),
    StringCase("one T", 1, 12, DECIMAL_SI, "1T"),
    StringCase("one E", 1, 18, DECIMAL_SI, "1E"),
    StringCase("beyond E uses exponent", 1, 21, DECIMAL_SI, "1e21", "1000E"),
    StringCase("5e21 decimal", 5, 21, DECIMAL_SI, "5e21", "5000E"),
    StringCase("1e24 decimal", 1, 24, DECIMAL_SI, "1e24", "1000000E"),
    StringCase("beyond Ei prints decimal exponent", 1, 70, BINARY_SI, "10e69"),
    StringCase("2e70 binary", 2, 70, BINARY_SI, "20e69"),
    StringCase("1e72 binary", 1, 72, BINARY_SI, "1e72"),
    StringCase("1234567 M", 1234567, 6, DECIMAL_SI, "1234567M"),
    StringCase("binary not a whole number", 1234567, -3, BINARY_SI, "1234567m"),
    StringCase("3 k", 3, 3, DECIMAL_SI, "3k"),
    StringCase("1025 binary", 1025, 0, BINARY_SI, "1025"),
    StringCase("zero decimal", 0, 0, DECIMAL_SI, "0"),
    StringCase("zero binary", 0, 0, BINARY_SI, "0"),
    StringCase("exponent 1e9", 1, 9, DECIMAL_EXPONENT, "1e9", ".001e12"),
    StringCase("exponent 1e-3", 1, -3, DECIMAL_EXPONENT, "1e-3", "0.001e0"),
    StringCase("exponent 1e-9", 1, -9, DECIMAL_EXPONENT, "1e-9", "1000e-12"),
    StringCase("exponent 80e-3", 80, -3, DECIMAL_EXPONENT, "80e-3"),
    StringCase("exponent 300e6", 300, 6, DECIMAL_EXPONENT, "300e6"),
    StringCase("exponent 1e12", 1, 12, DECIMAL_EXPONENT, "1e12"),
    StringCase("exponent 1e3", 1, 3, DECIMAL_EXPONENT, "1e3"),
    StringCase("exponent 3e3", 3, 3, DECIMAL_EXPONENT, "3e3"),
    StringCase("zero exponent", 0, 0, DECIMAL_EXPONENT, "0", "00"),
    StringCase("one nano", 1, -9, DECIMAL_SI, "1n"),
    StringCase("80 nano", 80, -9, DECIMAL_SI, "80n"),
    StringCase("1080 nano", 1080, -9, DECIMAL_SI, "1080n"),
    StringCase("108e-8", 108, -8, DECIMAL_SI, "1080n"),
    StringCase("10800e-10", 10800, -10, DECIMAL_SI, "1080n"),
    StringCase("one micro", 1, -6, DECIMAL_SI, "1u"),
    StringCase("80 micro", 80, -6, DECIMAL_SI, "80u"),
    StringCase("1080 micro", 1080, -6, DECIMAL_SI, "1080u"),
]


@pytest.mark.parametrize("case", STRING_CASES, ids=lambda c: c.name)
def test_canonical_string(case: StringCase) -> None:
    q = Quantity.from_scaled(case.value, case.exp, case.format)
    assert str(q) == case.expect, f"{case.name}: printed {q}"
    assert str(Quantity(case.expect)) == case.expect, f"{case.name}: canonical text not kept"
    if case.value:
        assert str(-q) == "-" + case.expect, f"{case.name}: negated printed {-q}"
    if case.alternate:
        alternate = Quantity(case.alternate)
        assert str(alternate) == case.expect, f"{case.name}: {case.alternate!r} printed {alternate}"


@dataclass(frozen=True)
class EmitCase:
    name: str
    text: str
    printed: str  # str(): what Kubernetes' String() returns for this input
    canonical: str = ""  # canonical(), when it differs from printed


EMIT_CASES = [
    EmitCase("1Ki", "1Ki", "1Ki"),
    EmitCase("1Mi", "1Mi", "1Mi"),
    EmitCase("1Gi", "1Gi", "1Gi"),
    EmitCase("1024Mi is 1Gi", "1024Mi", "1Gi"),
    EmitCase("1000M is 1G", "1000M", "1G"),
    EmitCase("binary thousandth", ".001Ki", "1024m"),
    EmitCase("binary millionth", ".000001Ki", "1024u"),
    EmitCase("binary billionth", ".000000001Ki", "1024n"),
    EmitCase("binary below nano rounds up", ".000000000001Ki", "2n"),
    EmitCase("1.5Gi", "1.5Gi", "1536Mi"),
    EmitCase("half", "0.5", "500m"),
    EmitCase("1000m is one", "1000m", "1"),
    EmitCase("exponent kept", "1e3", "1e3"),
    EmitCase("100Mi", "100Mi", "100Mi"),
    EmitCase("tenth", "0.1", "100m"),
    EmitCase("milli constructed spelling", "1441m", "1441m"),
    EmitCase("sub-milli", "0.000000000000001", "1n"),
    EmitCase("one and a half", "1.5", "1500m"),
    EmitCase("three fraction digits kept verbatim", "1.441", "1.441", "1441m"),
    EmitCase("six fraction digits kept verbatim", "1.000001", "1.000001", "1000001u"),
    EmitCase("nine fraction digits kept verbatim", "1.000000001", "1.000000001", "1000000001n"),
    EmitCase("kilo fraction kept verbatim", "1.441k", "1.441k", "1441"),
    EmitCase("negative fraction kept verbatim", "-1.441", "-1.441", "-1441m"),
    EmitCase("explicit plus kept verbatim", "+1", "+1", "1"),
    EmitCase("leading zero kept verbatim", "01", "01", "1"),
    EmitCase("upper-case exponent kept verbatim", "1E3", "1E3", "1e3"),
    EmitCase("int64 max", "9223372036854775807", "9223372036854775807"),
    EmitCase("two to the 63", "9223372036854775808", "9223372036854775808"),
    EmitCase("two to the 64", "18446744073709551616", "18446744073709551616"),
    EmitCase("100E keeps its suffix", "100E", "100E"),
    EmitCase("1000E falls back to exponent", "1000E", "1e21"),
    EmitCase("1e100", "1e100", "10e99"),
    EmitCase("8Ei caps at int64 max", "8Ei", "9223372036854775807"),
    EmitCase("-20Ei caps at minus int64 max", "-20Ei", "-9223372036854775807"),
    EmitCase("negative 9.5Gi", "-9.5Gi", "-9728Mi"),
    EmitCase("negative binary fraction", "-9.5000000001Gi", "-10200547328107374183n"),
    EmitCase("18 digits plus a tenth", "999999999999999999.1", "999999999999999999100m"),
    EmitCase("18 digits point zero", "999999999999999999.0", "999999999999999999"),
    EmitCase("19 digits", "9999999999999999999", "9999999999999999999"),
    EmitCase("10^18 is 1E", "1000000000000000000", "1E"),
    EmitCase("-10^18 is -1E", "-1000000000000000000", "-1E"),
    EmitCase("1.0E is 1E", "1.0E", "1E"),
    EmitCase("19 digits in milli", "9999999999999999999000m", "9999999999999999999"),
    EmitCase("E with a tenth", "1.0000000000000000001E", "1000000000000000000100m"),
    EmitCase("E plus one", "1.000000000000000001E", "1000000000000000001"),
    EmitCase("10E", "10E", "10E"),
    EmitCase("10^19 is 10E", "10000000000000000000", "10E"),
    EmitCase("10^19 in milli", "10000000000000000000000m", "10E"),
    EmitCase("10E with a tenth", "10.0000000000000000001E", "10000000000000000000100m"),
    EmitCase("int64 min minus one", "-9223372036854775809", "-9223372036854775809"),
    EmitCase("int64 max plus a tenth", "9223372036854775807.1", "9223372036854775807100m"),
    EmitCase("point alone is zero", ".", "0"),
    EmitCase("sign alone is zero", "-", "0"),
    EmitCase("suffix alone is zero", "Ki", "0"),
]


@pytest.mark.parametrize("case", EMIT_CASES, ids=lambda c: c.name)
def test_printed_form(case: EmitCase) -> None:
    q = Quantity(case.text)
    assert str(q) == case.printed, f"{case.name}: str({case.text!r}) = {q}"
    expected_canonical = case.canonical or case.printed
    assert q.canonical() == expected_canonical, f"{case.name}: canonical {q.canonical()}"
    # Arithmetic drops the verbatim text, as Kubernetes' Add does.
    assert str(q + Quantity(0)) == expected_canonical, f"{case.name}: after adding zero"


# --- rounding accessors ---


@dataclass(frozen=True)
class RoundingCase:
    name: str
    text: str
    value: int
    milli: int


ROUNDING_CASES = [
    RoundingCase("tiny negative rounds away from zero", "-.484785E-7466", -1, -1),
    RoundingCase("tiny positive", ".484785E-7466", 1, 1),
    RoundingCase("negative hundredths", "-.484785E-1", -1, -49),
    RoundingCase("positive hundredths", ".484785E-1", 1, 49),
    RoundingCase("negative half milli", "-0.0005", -1, -1),
    RoundingCase("positive half milli", "0.0005", 1, 1),
    RoundingCase("negative 1500m", "-1500m", -2, -1500),
    RoundingCase("positive 1500m", "1500m", 2, 1500),
    RoundingCase("negative binary fraction", "-9.5000000001Gi", -10200547329, -10200547328108),
    RoundingCase("positive binary fraction", "9.5000000001Gi", 10200547329, 10200547328108),
    RoundingCase("minus one", "-1", -1, -1000),
    RoundingCase("one", "1", 1, 1000),
    RoundingCase("zero", "0", 0, 0),
    RoundingCase("1Mi", "1Mi", 1024 * 1024, 1024 * 1024 * 1000),
    RoundingCase("saturates at int64 max", "1e2147483647", INT64_MAX, INT64_MAX),
    RoundingCase("saturates at int64 min", "-1e30", INT64_MIN, INT64_MIN),
    RoundingCase("milli saturates first", "10E", INT64_MAX, INT64_MAX),
    RoundingCase("9E fits, its milli does not", "9E", 9 * 10**18, INT64_MAX),
]


@pytest.mark.parametrize("case", ROUNDING_CASES, ids=lambda c: c.name)
def test_value_and_milli_value(case: RoundingCase) -> None:
    q = Quantity(case.text)
    assert q.value() == case.value, f"{case.name}: value() of {case.text!r}"
    assert q.milli_value() == case.milli, f"{case.name}: milli_value() of {case.text!r}"


@dataclass(frozen=True)
class ScaledCase:
    name: str
    from_scale: int
    to_scale: int
    expected: int


SCALED_CASES = [
    ScaledCase("nano to nano", -9, -9, 1),
    ScaledCase("nano to micro rounds up", -9, -6, 1),
    ScaledCase("nano to milli rounds up", -9, -3, 1),
    ScaledCase("nano to unit rounds up", -9, 0, 1),
    ScaledCase("micro to nano", -6, -9, 1000),
    ScaledCase("micro to micro", -6, -6, 1),
    ScaledCase("micro to milli", -6, -3, 1),
    ScaledCase("micro to unit", -6, 0, 1),
    ScaledCase("milli to nano", -3, -9, 1000 * 1000),
    ScaledCase("milli to micro", -3, -6, 1000),
    ScaledCase("milli to milli", -3, -3, 1),
    ScaledCase("milli to unit", -3, 0, 1),
    ScaledCase("unit to nano", 0, -9, 1000 * 1000 * 1000),
    ScaledCase("unit to micro", 0, -6, 1000 * 1000),
    ScaledCase("unit to milli", 0, -3, 1000),
    ScaledCase("unit to unit", 0, 0, 1),
    ScaledCase("hundred to centi", 2, -2, 100 * 100),
]


@pytest.mark.parametrize("case", SCALED_CASES, ids=lambda c: c.name)
def test_scaled_value(case: ScaledCase) -> None:
    got = Quantity.from_scaled(1, case.from_scale).scaled_value(case.to_scale)
    assert got == case.expected, f"{case.name}: got {got}"


@dataclass(frozen=True)
class RoundUpCase:
    name: str
    text: str
    scale: int
    expected: str
    exact: bool


ROUND_UP_CASES = [
    RoundUpCase("finer scale keeps value", "9.01", -3, "9.01", True),
    RoundUpCase("same scale keeps value", "9.01", -2, "9.01", True),
    RoundUpCase("tenths", "9.01", -1, "9.1", False),
    RoundUpCase("units", "9.01", 0, "10", False),
    RoundUpCase("tens", "9.01", 1, "10", False),
    RoundUpCase("hundreds", "9.01", 2, "100", False),
    RoundUpCase("negative finer scale", "-9.01", -3, "-9.01", True),
    RoundUpCase("negative same scale", "-9.01", -2, "-9.01", True),
    RoundUpCase("negative tenths away from zero", "-9.01", -1, "-9.1", False),
    RoundUpCase("negative units away from zero", "-9.01", 0, "-10", False),
    RoundUpCase("negative tens", "-9.01", 1, "-10", False),
    RoundUpCase("negative hundreds", "-9.01", 2, "-100", False),
]


@pytest.mark.parametrize("case", ROUND_UP_CASES, ids=lambda c: c.name)
def test_round_up(case: RoundUpCase) -> None:
    rounded, exact = Quantity(case.text).round_up(case.scale)
    assert rounded.as_fraction() == Fraction(case.expected), f"{case.name}: got {rounded}"
    assert exact is case.exact, f"{case.name}: exact was {exact}"


# --- construction from numbers ---


@dataclass(frozen=True)
class NewCase:
    name: str
    build: str  # "int", "milli" or "scaled"
    value: int
    format: str
    expect: str
    scale: int = 0


NEW_CASES = [
    NewCase("int one", "int", 1, DECIMAL_SI, "1"),
    NewCase("int thousand", "int", 1000, DECIMAL_SI, "1k"),
    NewCase("int 1234000", "int", 1234000, DECIMAL_SI, "1234k"),
    NewCase("int 1024 binary", "int", 1024, BINARY_SI, "1Ki"),
    NewCase("int unknown format prints exponent", "int", 1000000, "invalidFormat", "1e6"),
    NewCase("int Mi", "int", 1024 * 1024, BINARY_SI, "1Mi"),
    NewCase("int64 min", "int", INT64_MIN, DECIMAL_SI, "-9223372036854775808"),
    NewCase("int 2000 binary", "int", 2000, BINARY_SI, "2000"),
    NewCase("int -2000 binary", "int", -2000, BINARY_SI, "-2000"),
    NewCase("milli one", "milli", 1, DECIMAL_SI, "1m"),
    NewCase("milli thousand", "milli", 1000, DECIMAL_SI, "1"),
    NewCase("milli 1234000", "milli", 1234000, DECIMAL_SI, "1234"),
    NewCase("milli 1024 binary prints decimal", "milli", 1024, BINARY_SI, "1024m"),
    NewCase("milli unknown format", "milli", 1000000, "invalidFormat", "1e3"),
    NewCase("milli Mi binary prints decimal", "milli", 1024 * 1024, BINARY_SI, "1048576m"),
    NewCase("milli 1441", "milli", 1441, DECIMAL_SI, "1441m"),
    NewCase("scaled nano", "scaled", 1, DECIMAL_SI, "1n", -9),
    NewCase("scaled thousand nano", "scaled", 1000, DECIMAL_SI, "1u", -9),
    NewCase("scaled micro", "scaled", 1, DECIMAL_SI, "1u", -6),
    NewCase("scaled thousand micro", "scaled", 1000, DECIMAL_SI, "1m", -6),
    NewCase("scaled milli", "scaled", 1, DECIMAL_SI, "1m", -3),
    NewCase("scaled thousand milli", "scaled", 1000, DECIMAL_SI, "1", -3),
    NewCase("scaled unit", "scaled", 1, DECIMAL_SI, "1", 0),
    NewCase("scaled zero nano", "scaled", 0, DECIMAL_SI, "0", -9),
    NewCase("scaled zero milli", "scaled", 0, DECIMAL_SI, "0", -3),
    NewCase("scaled below nano", "scaled", 1, DECIMAL_SI, "1e-12", -12),
    NewCase("scaled tenth of a nano", "scaled", 1, DECIMAL_SI, "100e-12", -10),
    NewCase("scaled 1e21", "scaled", 1, DECIMAL_SI, "1e21", 21),
    NewCase("scaled max times ten", "scaled", INT64_MAX, DECIMAL_SI, "92233720368547758070", 1),
]


def _build(case: NewCase) -> Quantity:
    if case.build == "int":
        return Quantity.from_int(case.value, case.format)
    if case.build == "milli":
        return Quantity.from_milli(case.value, case.format)
    return Quantity.from_scaled(case.value, case.scale, case.format)


@pytest.mark.parametrize("case", NEW_CASES, ids=lambda c: c.name)
def test_construct_from_numbers(case: NewCase) -> None:
    q = _build(case)
    assert str(q) == case.expect, f"{case.name}: printed {q}"
    assert q.format == case.format, f"{case.name}: format {q.format}"
    if case.build == "int":
        assert Quantity(str(q)).value() == case.value, f"{case.name}: value did not round-trip"
    if case.build == "milli" and case.format == DECIMAL_SI:
        assert Quantity(str(q)).milli_value() == case.value, f"{case.name}: milli round-trip"


@dataclass(frozen=True)
class NumberInputCase:
    name: str
    value: int | float
    printed: str
    format: str


NUMBER_INPUT_CASES = [
    NumberInputCase("int", 3, "3", DECIMAL_SI),
    NumberInputCase("big int", 1000, "1k", DECIMAL_SI),
    NumberInputCase("float half", 0.5, "500m", DECIMAL_SI),
    NumberInputCase("whole float", 1000.0, "1k", DECIMAL_SI),
    NumberInputCase("float written in exponent form", 1e21, "1e+21", DECIMAL_EXPONENT),
    NumberInputCase("tiny float", 1.5e-7, "150e-9", DECIMAL_EXPONENT),
    NumberInputCase("negative zero", -0.0, "0", DECIMAL_SI),
    NumberInputCase("negative float", -2.25, "-2250m", DECIMAL_SI),
]


@pytest.mark.parametrize("case", NUMBER_INPUT_CASES, ids=lambda c: c.name)
def test_number_input(case: NumberInputCase) -> None:
    q = Quantity(case.value)
    assert str(q) == case.printed, f"{case.name}: printed {q}"
    assert q.format == case.format, f"{case.name}: format {q.format}"


@pytest.mark.parametrize(
    "value", [True, float("nan"), float("inf")], ids=["bool", "nan", "infinity"]
)
def test_number_input_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="quantity"):
        Quantity(value)  # type: ignore[arg-type]


# --- comparison ---


@dataclass(frozen=True)
class CmpCase:
    name: str
    a: Quantity
    b: Quantity
    expected: int


def _s(value: int, exp: int) -> Quantity:
    return Quantity.from_scaled(value, exp)


CMP_CASES = [
    CmpCase("zeros", Quantity("0"), Quantity("0"), 0),
    CmpCase("100m vs 50m", Quantity("100m"), Quantity("50m"), 1),
    CmpCase("50m vs 100m", Quantity("50m"), Quantity("100m"), -1),
    CmpCase("10000T vs 100Gi", Quantity("10000T"), Quantity("100Gi"), 1),
    CmpCase("1Gi vs 1024Mi", Quantity("1Gi"), Quantity("1024Mi"), 0),
    CmpCase("1Gi vs its bytes", Quantity("1Gi"), Quantity(1073741824), 0),
    CmpCase("same scaled", _s(901, -2), _s(901, -2), 0),
    CmpCase("9.0 vs 9.01", _s(90, -1), _s(901, -2), -1),
    CmpCase("9.01 vs 9.00", _s(901, -2), _s(900, -2), 1),
    CmpCase("zero at different scales", _s(0, 1), _s(0, -1), 0),
    CmpCase("800m vs 1", _s(800, -3), _s(1, 0), -1),
    CmpCase("800m vs 790m", _s(800, -3), _s(79, -2), 1),
    CmpCase("int64 max vs a tenth", _s(INT64_MAX, 0), _s(1, -1), 1),
    CmpCase("int64 max tens vs one", _s(INT64_MAX, 1), _s(1, 0), 1),
    CmpCase("int64 max tens vs ten", _s(INT64_MAX, 1), _s(1, 1), 1),
    CmpCase("int64 max tens vs zero", _s(INT64_MAX, 1), _s(0, 1), 1),
    CmpCase("int64 max e-16 vs 1000", _s(INT64_MAX, -16), _s(1, 3), -1),
    CmpCase("int64 min vs zero", _s(INT64_MIN, 0), _s(0, 0), -1),
    CmpCase("int64 min e-18 vs -1", _s(INT64_MIN, -18), _s(-1, 0), -1),
    CmpCase("int64 min e-19 vs -1", _s(INT64_MIN, -19), _s(-1, 0), 1),
    CmpCase("10^18 e-17 vs ten", _s(10**18, -17), _s(1, 1), 0),
    CmpCase("10^18 e-17 vs minus ten", _s(10**18, -17), _s(-10, 0), 1),
    CmpCase("-10^18 e-17 vs minus ten", _s(-(10**18), -17), _s(-10, 0), 0),
    CmpCase("10^18 e-17 vs one", _s(10**18, -17), _s(1, 0), 1),
    CmpCase("just above ten", _s(10**18 + 1, -17), _s(1, 1), 1),
    CmpCase("just below ten", _s(10**18 - 1, -17), _s(1, 1), -1),
    CmpCase("huge exponents", Quantity("1e2147483647"), Quantity("1e2147483646"), 1),
    CmpCase("huge negative exponents", Quantity("-1e2147483647"), Quantity("-1e2147483646"), -1),
]


@pytest.mark.parametrize("case", CMP_CASES, ids=lambda c: c.name)
def test_compare(case: CmpCase) -> None:
    assert case.a.cmp(case.b) == case.expected, f"{case.name}: {case.a} vs {case.b}"
    assert case.b.cmp(case.a) == -case.expected, f"{case.name}: inverted"
    assert (case.a == case.b) == (case.expected == 0), f"{case.name}: =="
    assert (case.a < case.b) == (case.expected < 0), f"{case.name}: <"
    assert (case.a >= case.b) == (case.expected >= 0), f"{case.name}: >="
    if case.expected == 0:
        assert hash(case.a) == hash(case.b), f"{case.name}: equal values hash differently"


# --- arithmetic ---


@dataclass(frozen=True)
class ArithCase:
    name: str
    op: str  # "+", "-" or "neg"
    a: Quantity
    b: Quantity
    expected: str  # printed result
    format: str


ZERO = Quantity.from_int(0)
ARITH_CASES = [
    ArithCase("add same format", "+", _s(10, 0), _s(1, 1), "20", DECIMAL_SI),
    ArithCase(
        "add keeps left format", "+", _s(10, 0), Quantity.from_int(1, BINARY_SI), "11", DECIMAL_SI
    ),
    ArithCase(
        "add keeps left binary", "+", Quantity.from_int(10, BINARY_SI), _s(1, 0), "11", BINARY_SI
    ),
    ArithCase("zero plus takes right format", "+", ZERO, _s(50, 0), "50", DECIMAL_SI),
    ArithCase("plus zero", "+", _s(50, 0), ZERO, "50", DECIMAL_SI),
    ArithCase("zero plus zero", "+", ZERO, ZERO, "0", DECIMAL_SI),
    ArithCase(
        "zero plus 100m keeps suffix", "+", Quantity("0"), Quantity("100m"), "100m", DECIMAL_SI
    ),
    ArithCase("zero plus 1Gi keeps suffix", "+", Quantity("0"), Quantity("1Gi"), "1Gi", BINARY_SI),
    ArithCase("1Gi plus zero", "+", Quantity("1Gi"), Quantity("0"), "1Gi", BINARY_SI),
    ArithCase("sub to zero", "-", _s(10, 0), _s(1, 1), "0", DECIMAL_SI),
    ArithCase(
        "sub keeps left format", "-", _s(10, 0), Quantity.from_int(1, BINARY_SI), "9", DECIMAL_SI
    ),
    ArithCase(
        "sub keeps left binary", "-", Quantity.from_int(10, BINARY_SI), _s(1, 0), "9", BINARY_SI
    ),
    ArithCase("zero minus takes right format", "-", ZERO, _s(50, 0), "-50", DECIMAL_SI),
    ArithCase("minus zero", "-", _s(50, 0), ZERO, "50", DECIMAL_SI),
    ArithCase("zero minus 1Gi", "-", Quantity("0"), Quantity("1Gi"), "-1Gi", BINARY_SI),
    ArithCase("100m minus zero", "-", Quantity("100m"), Quantity("0"), "100m", DECIMAL_SI),
    ArithCase(
        "zero minus int64 min",
        "-",
        ZERO,
        Quantity.from_int(INT64_MIN),
        "9223372036854775808",
        DECIMAL_SI,
    ),
    ArithCase(
        "zero minus int64 min binary",
        "-",
        ZERO,
        Quantity.from_int(INT64_MIN, BINARY_SI),
        "8Ei",
        BINARY_SI,
    ),
    ArithCase(
        "one minus int64 min", "-", _s(1, 0), _s(INT64_MIN, 0), "9223372036854775809", DECIMAL_SI
    ),
    ArithCase(
        "ten minus int64 min", "-", _s(1, 1), _s(INT64_MIN, 0), "9223372036854775818", DECIMAL_SI
    ),
    ArithCase("negate 9.01", "neg", _s(901, -2), ZERO, "-9010m", DECIMAL_SI),
    ArithCase("negate binary", "neg", Quantity.from_int(10, BINARY_SI), ZERO, "-10", BINARY_SI),
    ArithCase(
        "negate int64 min milli", "neg", _s(INT64_MIN, -3), ZERO, "9223372036854775808m", DECIMAL_SI
    ),
    ArithCase("negate zero", "neg", ZERO, ZERO, "0", DECIMAL_SI),
]


@pytest.mark.parametrize("case", ARITH_CASES, ids=lambda c: c.name)
def test_arithmetic(case: ArithCase) -> None:
    if case.op == "+":
        got = case.a + case.b
    elif case.op == "-":
        got = case.a - case.b
    else:
        got = -case.a
    assert str(got) == case.expected, f"{case.name}: got {got}"
    assert got.format == case.format, f"{case.name}: format {got.format}"


@dataclass(frozen=True)
class MulCase:
    name: str
    a: Quantity
    factor: int
    expected: Quantity


MUL_CASES = [
    MulCase("times ten", _s(10, 0), 10, _s(100, 0)),
    MulCase("times one", _s(10, 0), 1, _s(10, 0)),
    MulCase("zero times", ZERO, 50, ZERO),
    MulCase("times zero", _s(50, 0), 0, ZERO),
    MulCase("times minus ten", _s(10, 0), -10, _s(-100, 0)),
    MulCase("negative times negative", _s(-50, 0), -50, _s(2500, 0)),
    MulCase("int64 max doubled", _s(INT64_MAX, 0), 2, _s(INT64_MAX * 2, 0)),
    MulCase("int64 min negated", _s(INT64_MIN, 0), -1, _s(INT64_MAX + 1, 0)),
    MulCase("1Ei times 1024", Quantity("1Ei"), 1024, _s(2**70, 0)),
]


@pytest.mark.parametrize("case", MUL_CASES, ids=lambda c: c.name)
def test_multiply(case: MulCase) -> None:
    got = case.a * case.factor
    assert got == case.expected, f"{case.name}: got {got}"
    assert case.factor * case.a == got, f"{case.name}: int * Quantity differs"


def test_binary_past_ei_round_trips() -> None:
    q = Quantity("1Ei") * 1024
    assert str(q) == "1180591620717411303424"
    assert Quantity(str(q)) == q


def test_add_sub_round_trip_across_scales() -> None:
    total = ZERO
    terms = [Quantity.from_scaled(7**i * 1234567, i % 20 - 10) for i in range(100)]
    for term in terms:
        total += term
    for term in terms:
        total -= term
    assert total.is_zero()


# --- value object behaviour ---


@dataclass(frozen=True)
class AccessorCase:
    name: str
    text: str
    sign: int
    fraction: Fraction


ACCESSOR_CASES = [
    AccessorCase("zero", "0", 0, Fraction(0)),
    AccessorCase("positive milli", "1500m", 1, Fraction(3, 2)),
    AccessorCase("negative binary", "-1Ki", -1, Fraction(-1024)),
    AccessorCase("nano", "1n", 1, Fraction(1, 10**9)),
]


@pytest.mark.parametrize("case", ACCESSOR_CASES, ids=lambda c: c.name)
def test_accessors(case: AccessorCase) -> None:
    q = Quantity(case.text)
    assert q.sign() == case.sign, f"{case.name}: sign"
    assert q.is_zero() == (case.sign == 0), f"{case.name}: is_zero"
    assert bool(q) == (case.sign != 0), f"{case.name}: bool"
    assert q.as_fraction() == case.fraction, f"{case.name}: as_fraction"
    assert q.as_approximate_float() == float(case.fraction), f"{case.name}: float"


def test_immutable_hashable_and_copyable() -> None:
    q = Quantity("1.441")
    with pytest.raises(AttributeError):
        q._coef = 5
    assert {Quantity("1Gi"): "a"}[Quantity("1024Mi")] == "a"
    assert hash(Quantity("1Gi")) == hash(1073741824)
    assert hash(Quantity("1500m")) == hash(Fraction(3, 2))
    assert copy.copy(q) is q
    assert copy.deepcopy(q) is q
    restored = pickle.loads(pickle.dumps(q))
    assert restored == q
    assert str(restored) == "1.441"
    assert repr(Quantity("1.5Gi")) == "Quantity('1536Mi')"
    assert Quantity(Quantity("2")) == 2
    assert Quantity() == 0
    assert str(Quantity()) == "0"
    assert parse_quantity("3k") == Quantity(3000)

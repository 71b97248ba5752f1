"""Name and value syntax checks, after Kubernetes' util/validation/validation_test.go."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kpy.api import names

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True)
class ValidityCase:
    name: str
    check: Callable[[str], list[str]]
    value: str
    valid: bool


def _cases(
    label: str, check: Callable[[str], list[str]], good: list[str], bad: list[str]
) -> list[ValidityCase]:
    return [
        *(ValidityCase(f"{label} accepts {v!r}", check, v, True) for v in good),
        *(ValidityCase(f"{label} rejects {v!r}", check, v, False) for v in bad),
    ]


# fmt: off
_CASE_AND_SEPARATORS = [
    "", "A", "ABC", "aBc", "A1", "A-1", "1-A", "-", "a-", "-a", "1-", "-1",
    "_", "a_", "_a", "a_b", "1_", "_1", "1_2",
]
_BLANKS = [" ", "a ", " a", "a b", "1 ", " 1", "1 2"]

VALIDITY_CASES = [
    *_cases(
        "dns1123 label",
        names.is_dns1123_label,
        ["a", "ab", "abc", "a1", "a-1", "a--1--2--b", "0", "01", "012", "1a", "1-a", "1--a--b--2",
         "a" * 63],
        [*_CASE_AND_SEPARATORS, ".", "a.", ".a", "a.b", "1.", ".1", "1.2", *_BLANKS, "a" * 64,
         "a\n"],
    ),
    *_cases(
        "dns1123 subdomain",
        names.is_dns1123_subdomain,
        ["a", "ab", "abc", "a1", "a-1", "a--1--2--b", "0", "01", "012", "1a", "1-a", "1--a--b--2",
         "a.a", "ab.a", "abc.a", "a1.a", "a-1.a", "a--1--2--b.a", "a.1", "ab.1", "abc.1",
         "a1.1", "a-1.1", "a--1--2--b.1", "0.a", "01.a", "012.a", "1a.a", "1-a.a", "0.1",
         "01.1", "012.1", "1a.1", "1-a.1", "1--a--b--2.1", "a.b.c.d.e", "aa.bb.cc.dd.ee",
         "1.2.3.4.5", "11.22.33.44.55", "a" * 253],
        [*_CASE_AND_SEPARATORS, ".", "a.", ".a", "a..b", "1.", ".1", "1..2", *_BLANKS,
         "A.a", "aB.a", "ab.A", "A1.a", "a1.A", "A.1", "aB.1", "A1.1", "1A.1", "0.A", "01.A",
         "012.A", "1A.a", "1a.A", "A.B.C.D.E", "AA.BB.CC.DD.EE", "a.B.c.d.e", "aa.bB.cc.dd.ee",
         "a@b", "a,b", "a;b", "a:b", "a%b", "a?b", "a$b", "a" * 254],
    ),
    *_cases(
        "dns1035 label",
        names.is_dns1035_label,
        ["a", "ab", "abc", "a1", "a-1", "a--1--2--b", "a" * 63],
        ["0", "01", "012", "1a", "1-a", "1--a--b--2", *_CASE_AND_SEPARATORS,
         ".", "a.", ".a", "a.b", "1.", ".1", "1.2", *_BLANKS, "a" * 64],
    ),
    *_cases(
        "port name",
        names.is_valid_port_name,
        ["telnet", "re-mail-ck", "pop3", "a", "a-1", "1-a", "a-1-b-2-c", "1-a-2-b-3"],
        ["longerthan15characters", "", "a" * 16, "12345", "1-2-3-4", "-begin", "end-",
         "two--hyphens", "whois++", "UPPER"],
    ),
    *_cases(
        "qualified name",
        names.is_qualified_name,
        ["simple", "now-with-dashes", "1-starts-with-num", "1234", "simple/simple",
         "now-with-dashes/simple", "now-with-dashes/now-with-dashes", "now.with.dots/simple",
         "now-with.dashes-and.dots/simple", "1-num.2-num/3-num", "1234/5678", "1.2.3.4/5678",
         "Uppercase_Is_OK_123", "example.com/Uppercase_Is_OK_123", "requests.storage-foo",
         "a" * 63, "a" * 253 + "/" + "b" * 63],
        ["nospecialchars%^=@", "cantendwithadash-", "-cantstartwithadash-", "only/one/slash",
         "Example.com/abc", "example_com/abc", "example.com/", "/simple", "a" * 64,
         "a" * 254 + "/abc", "", "name\n"],
    ),
    *_cases(
        "label value",
        names.is_valid_label_value,
        ["simple", "now-with-dashes", "1-starts-with-num", "end-with-num-1", "1234", "a" * 63, "",
         "Under_Score.dot"],
        ["nospecialchars%^=@", "Tama-nui-te-rā.is.Māori.sun", "\\backslashes\\are\\bad",
         "-starts-with-dash", "ends-with-dash-", ".starts.with.dot", "ends.with.dot.", "a" * 64],
    ),
    *_cases(
        "http header name",
        names.is_http_header_name,
        ["Accept-Encoding", "Host", "If-Modified-Since", "X-Forwarded-For", "a", "ab", "abc",
         "a1", "-a", "a-", "a-b", "a-1", "a--1--2--b", "--abc-123", "A", "AB", "AbC", "A1",
         "-A", "A-", "A-B", "A-1", "A--1--2--B", "--123-ABC"],
        ["Host:", "X-Forwarded-For:", "X-@Home", "", "_", "a_", "_a", "1_", "1_2", ".", "a.",
         ".a", "a.b", "1.", ".1", "1.2", *_BLANKS, "#a#", "^", ",", ";", "=", "<", "?", "@", "{"],
    ),
    *_cases(
        "percent",
        names.is_percent,
        ["0%", "00000%", "1%", "01%", "99%", "100%", "101%"],
        ["", "0", "100", "0.0%", "99.9%", "hundred", " 1%", "1% ", "-0%", "-1%", "+1%"],
    ),
    *_cases(
        "config map key",
        names.is_config_map_key,
        ["a", "good", "good-good", "still.good", "this.is.also.good", ".so.is.this",
         "THIS_IS_GOOD", "so_is_this_17", "a" * 253],
        [".", "..", "..bad", "b*d", "bad!&bad", "", "a" * 254, "with/slash"],
    ),
    *_cases(
        "wildcard subdomain",
        names.is_wildcard_dns1123_subdomain,
        ["*.example.com", "*.bar.com", "*.foo.bar.com"],
        ["*.*.bar.com", "*.foo.*.com", "*bar.com", "f*.bar.com", "*"],
    ),
    *_cases(
        "c identifier",
        names.is_c_identifier,
        ["a", "ab", "abc", "a1", "_a", "a_", "a_b", "a_1", "a__1__2__b", "__123_abc", "_", "A",
         "AB", "AbC", "A1", "_A", "A_", "A_B", "A_1", "A__1__2__B", "__123_ABC"],
        ["", "1", "123", "1a", "-", "a-", "-a", "a-b", "a.b", " ", "a ", " a", "a b", "#a#", "^",
         ",", ";", "=", "?", "@", "{", "é"],
    ),
    *_cases(
        "env var name",
        names.is_env_var_name,
        ["a", "ab", "abc", "a1", "_a", "a_", "a_b", "a_1", "a__1__2__b", "__123_abc", "_", "A",
         "AB", "AbC", "A1", "_A", "A_", "A_B", "A_1", "A__1__2__B", "__123_ABC", "-", "a-",
         "-a", "a-b", "a.", "a.b", "my.env-name", "MY_ENV.NAME", ".env", "a..b"],
        ["", "1", "123", "1a", " ", "a ", " a", "a b", "#a#", "^", ",", ";", "=", "?", "@", "{",
         ".", "..", "..env", "a\n"],
    ),
    *_cases(
        "relaxed env var name",
        names.is_relaxed_env_var_name,
        ["-", ":", "_", "+a", ">a", "<a", "a.", "a..", "*a", "%a", "?a", "a:a", "a_a", "aAz",
         "~a", "|a", "a0a", "a9", "/a", "a ", "#a", "0a", "0 a", "'a", "(a", "@a", ".", ".."],
        ["", "=", "a=", "1=a", "a=b", "#%=&&", chr(1) + "abc", chr(130) + "abc", "Ç ç", "Ä ä",
         "Ñ ñ", "Ø ø", "a\tb", "a\x7f"],
    ),
    *_cases(
        "subdomain with underscore",
        names.is_dns1123_subdomain_with_underscore,
        ["example.com", "_example.com", "sub._example.com", "sub-domain.example.com",
         "sub_domain.example.com"],
        ["", "Example.com", "-example.com", "example.com-", "example@.com", "example..com", "_"],
    ),
]
# fmt: on


@pytest.mark.parametrize("case", VALIDITY_CASES, ids=lambda c: c.name)
def test_validity(case: ValidityCase) -> None:
    errs = case.check(case.value)
    if case.valid:
        assert errs == [], f"{case.name}: unexpected errors {errs}"
    else:
        assert errs, f"{case.name}: expected errors"


@dataclass(frozen=True)
class MessageCase:
    name: str
    check: Callable[[str], list[str]]
    value: str
    messages: list[str]


_LABEL_KEY_REGEX = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_SUBDOMAIN_REGEX = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_SUBDOMAIN_UNDERSCORE_REGEX = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is "
    "'_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*')"
)

MESSAGE_CASES = [
    MessageCase(
        "label with dots is a subdomain",
        names.is_dns1123_label,
        "a.b",
        ["must not contain dots"],
    ),
    MessageCase(
        "label with upper case",
        names.is_dns1123_label,
        "A",
        [
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
            "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        ],
    ),
    MessageCase(
        "label too long",
        names.is_dns1123_label,
        "a" * 64,
        ["must be no more than 63 characters"],
    ),
    MessageCase("subdomain", names.is_dns1123_subdomain, "Example.com", [_SUBDOMAIN_REGEX]),
    MessageCase(
        "subdomain too long and invalid",
        names.is_dns1123_subdomain,
        "a" * 253 + "_",
        ["must be no more than 253 characters", _SUBDOMAIN_REGEX],
    ),
    MessageCase(
        "dns1035 label starting with a digit",
        names.is_dns1035_label,
        "1a",
        [
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character (e.g. "
            "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        ],
    ),
    MessageCase(
        "qualified name with two slashes",
        names.is_qualified_name,
        "example/foo/bar",
        [
            "a valid label key "
            + _LABEL_KEY_REGEX
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ],
    ),
    MessageCase(
        "qualified name with a bad name part",
        names.is_qualified_name,
        "example.com/_e",
        ["name part " + _LABEL_KEY_REGEX],
    ),
    MessageCase(
        "qualified name with an empty name",
        names.is_qualified_name,
        "example.com/",
        ["name part must be non-empty", "name part " + _LABEL_KEY_REGEX],
    ),
    MessageCase(
        "qualified name with an empty prefix",
        names.is_qualified_name,
        "/simple",
        ["prefix part must be non-empty"],
    ),
    MessageCase(
        "qualified name with a bad prefix",
        names.is_qualified_name,
        "Example.com/abc",
        ["prefix part " + _SUBDOMAIN_REGEX],
    ),
    MessageCase(
        "qualified name too long",
        names.is_qualified_name,
        "a" * 64,
        ["name part must be no more than 63 characters"],
    ),
    MessageCase(
        "label value",
        names.is_valid_label_value,
        "-a",
        [
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
            "or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ],
    ),
    MessageCase(
        "label value counts bytes",
        names.is_valid_label_value,
        "é" * 32,
        [
            "must be no more than 63 characters",
            names.is_valid_label_value("é")[0],
        ],
    ),
    MessageCase(
        "port name",
        names.is_valid_port_name,
        "-12345678901234--",
        [
            "must be no more than 15 characters",
            "must contain at least one letter (a-z)",
            "must not contain consecutive hyphens",
            "must not begin or end with a hyphen",
        ],
    ),
    MessageCase(
        "port name charset",
        names.is_valid_port_name,
        "Http",
        ["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"],
    ),
    MessageCase(
        "percent",
        names.is_percent,
        "1.5%",
        [
            "a valid percent string must be a numeric string followed by an ending '%' (e.g. "
            "'1%',  or '93%', regex used for validation is '[0-9]+%')"
        ],
    ),
    MessageCase(
        "config map key dot dot",
        names.is_config_map_key,
        "..",
        ["must not be '..'"],
    ),
    MessageCase(
        "config map key starting with dot dot",
        names.is_config_map_key,
        "..a",
        ["must not start with '..'"],
    ),
    MessageCase(
        "config map key dot",
        names.is_config_map_key,
        ".",
        ["must not be '.'"],
    ),
    MessageCase(
        "config map key charset",
        names.is_config_map_key,
        "b*d",
        [
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
            "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
            "'[-._a-zA-Z0-9]+')"
        ],
    ),
    MessageCase(
        "c identifier",
        names.is_c_identifier,
        "1a",
        [
            "a valid C identifier must start with alphabetic character or '_', followed by a "
            "string of alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',  or "
            "'MyName', regex used for validation is '[A-Za-z_][A-Za-z0-9_]*')"
        ],
    ),
    MessageCase(
        "env var name",
        names.is_env_var_name,
        "1a",
        [
            "a valid environment variable name must consist of alphabetic characters, digits, "
            "'_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or "
            "'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is "
            "'[-._a-zA-Z][-._a-zA-Z0-9]*')"
        ],
    ),
    MessageCase("env var name dot dot", names.is_env_var_name, "..", ["must not be '..'"]),
    MessageCase(
        "relaxed env var name empty",
        names.is_relaxed_env_var_name,
        "",
        ["environment variable name must be non-empty"],
    ),
    MessageCase(
        "relaxed env var name with equals",
        names.is_relaxed_env_var_name,
        "a=b",
        [
            "a valid environment variable name must consist only of printable ASCII characters "
            "other than '='"
        ],
    ),
    MessageCase(
        "subdomain with underscore",
        names.is_dns1123_subdomain_with_underscore,
        "example..com",
        [_SUBDOMAIN_UNDERSCORE_REGEX],
    ),
    MessageCase(
        "prefixed label key without prefix",
        names.is_prefixed_label_key,
        "key",
        ["must include a prefix (e.g. 'example.com/key')"],
    ),
    MessageCase("prefixed label key", names.is_prefixed_label_key, "example.com/key", []),
]


@pytest.mark.parametrize("case", MESSAGE_CASES, ids=lambda c: c.name)
def test_messages(case: MessageCase) -> None:
    got = case.check(case.value)
    assert got == case.messages, f"{case.name}: got {got}"


@dataclass(frozen=True)
class NumberCase:
    name: str
    check: Callable[[int], list[str]]
    value: int
    messages: list[str]


PORT_RANGE = "must be between 1 and 65535, inclusive"
ID_RANGE = "must be between 0 and 4294967295, inclusive"
NUMBER_CASES = [
    *(NumberCase(f"port {p}", names.is_valid_port_num, p, []) for p in (1, 2, 1000, 16384, 65535)),
    *(
        NumberCase(f"port {p}", names.is_valid_port_num, p, [PORT_RANGE])
        for p in (0, -1, 65536, 100000)
    ),
    *(
        NumberCase(f"group id {g}", names.is_valid_group_id, g, [])
        for g in (0, 1, 1000, 65535, 2147483647, 2147483648, 3000000000, 0xFFFFFFFF)
    ),
    *(
        NumberCase(f"group id {g}", names.is_valid_group_id, g, [ID_RANGE])
        for g in (-1, -1003, 0x100000000)
    ),
    *(
        NumberCase(f"user id {u}", names.is_valid_user_id, u, [])
        for u in (0, 1, 1000, 65535, 2147483647, 2147483648, 3000000000, 0xFFFFFFFF)
    ),
    *(
        NumberCase(f"user id {u}", names.is_valid_user_id, u, [ID_RANGE])
        for u in (-1, -1003, 0x100000000)
    ),
]


@pytest.mark.parametrize("case", NUMBER_CASES, ids=lambda c: c.name)
def test_numbers(case: NumberCase) -> None:
    got = case.check(case.value)
    assert got == case.messages, f"{case.name}: got {got}"


@dataclass(frozen=True)
class RangeCase:
    name: str
    value: int
    lo: int
    hi: int
    valid: bool


RANGE_CASES = [
    RangeCase("inside", 1, 0, 10, True),
    RangeCase("at the low end", 5, 5, 20, True),
    RangeCase("at the high end", 25, 10, 25, True),
    RangeCase("below", 1, 2, 10, False),
    RangeCase("above", 5, -4, 2, False),
    RangeCase("far below", 25, 100, 120, False),
]


@pytest.mark.parametrize("case", RANGE_CASES, ids=lambda c: c.name)
def test_in_range(case: RangeCase) -> None:
    errs = names.is_in_range(case.value, case.lo, case.hi)
    assert (errs == []) is case.valid, f"{case.name}: got {errs}"
    if not case.valid:
        assert errs == [f"must be between {case.lo} and {case.hi}, inclusive"], case.name


_DOMAIN_54 = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 54 + ".k8s.io"
_DOMAIN_55 = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 55 + ".k8s.io"

# fmt: off
DOMAIN_CASES = [
    *_cases(
        "fqdn",
        names.is_fully_qualified_domain_name,
        ["a.com", "k8s.io", "dev.k8s.io", "dev.k8s.io.", "foo.example.com",
         "this.is.a.really.long.fqdn", "bbc.co.uk", "10.0.0.1", "hyphens-are-good.k8s.io",
         "a" * 63 + ".k8s.io", _DOMAIN_54],
        [".", "...", ".io", "com", ".com", "Dev.k8s.io", ".foo.example.com", "*.example.com",
         "*.bar.com", "*.foo.bar.com", "underscores_are_bad.k8s.io", "foo@bar.example.com",
         "http://foo.example.com", "a" * 64 + ".k8s.io", _DOMAIN_55],
    ),
    *_cases(
        "fully qualified name",
        names.is_fully_qualified_name,
        ["dev.k8s.io", "foo.example.com", "this.is.a.really.long.fqdn", "bbc.co.uk", "10.0.0.1",
         "hyphens-are-good.k8s.io", "a" * 246 + ".k8s.io"],
        ["...", "dev.k8s.io.", ".io", "Dev.k8s.io", "k8s.io", "*.example.com", "*.bar.com",
         "*.foo.bar.com", "underscores_are_bad.k8s.io", "foo@bar.example.com",
         "http://foo.example.com", "a" * 247 + ".k8s.io", ""],
    ),
    *_cases(
        "domain prefixed path",
        names.is_domain_prefixed_path,
        ["a/b", "a/b/c/d", "a.com/foo", "a.b.c.d/foo", "k8s.io/foo/bar", "k8s.io/FOO/BAR",
         "dev.k8s.io/more/path", "this.is.a.really.long.fqdn/even/longer/path/just/because",
         "bbc.co.uk/path/goes/here", "10.0.0.1/foo", "hyphens-are-good.k8s.io/and-in-paths-too",
         "a" * 240 + ".k8s.io/a", "k8s.io/" + "a" * 240],
        [".", "...", "/b", "com", ".com", "a.b.c.d/foo?a=b", "a.b.c.d/foo#a", "Dev.k8s.io",
         ".foo.example.com", "*.example.com", "example.com/foo{}[]@^`",
         "underscores_are_bad.k8s.io", "underscores_are_bad.k8s.io/foo", "foo@bar.example.com",
         "foo@bar.example.com/foo", "a" * 247 + ".k8s.io", ""],
    ),
]
# fmt: on


@pytest.mark.parametrize("case", DOMAIN_CASES, ids=lambda c: c.name)
def test_domains(case: ValidityCase) -> None:
    errs = case.check(case.value)
    assert (errs == []) is case.valid, f"{case.name}: got {errs}"


@dataclass(frozen=True)
class DomainMessageCase:
    name: str
    value: str
    fragment: str


DOMAIN_MESSAGE_CASES = [
    DomainMessageCase("two segments", "k8s.io", "should be a domain with at least three segments"),
    DomainMessageCase(
        "scheme", "http://foo.k8s.io", "a lowercase RFC 1123 subdomain must consist of lower case"
    ),
    DomainMessageCase(
        "email", "example@foo.k8s.io", "a lowercase RFC 1123 subdomain must consist of lower case"
    ),
    DomainMessageCase("empty", "", "Required value"),
    DomainMessageCase(
        "upper case", "A.B.C", "a lowercase RFC 1123 subdomain must consist of lower case"
    ),
]


@pytest.mark.parametrize("case", DOMAIN_MESSAGE_CASES, ids=lambda c: c.name)
def test_fully_qualified_name_messages(case: DomainMessageCase) -> None:
    errs = names.is_fully_qualified_name(case.value)
    assert any(case.fragment in e for e in errs), f"{case.name}: got {errs}"


@dataclass(frozen=True)
class QuoteCase:
    name: str
    value: str
    quoted: str


QUOTE_CASES = [
    QuoteCase("plain", "abc", '"abc"'),
    QuoteCase("quote and backslash", 'a"b\\c', '"a\\"b\\\\c"'),
    QuoteCase("newline and tab", "a\nb\tc", '"a\\nb\\tc"'),
    QuoteCase("control character", "\x01", '"\\x01"'),
    QuoteCase("non-ASCII letter kept", "é", '"é"'),
    QuoteCase("delete", "\x7f", '"\\x7f"'),
]


@pytest.mark.parametrize("case", QUOTE_CASES, ids=lambda c: c.name)
def test_go_quote(case: QuoteCase) -> None:
    assert names.go_quote(case.value) == case.quoted, f"{case.name}: {names.go_quote(case.value)}"


def test_length_constants() -> None:
    assert names.DNS1123_LABEL_MAX_LENGTH == 63
    assert names.DNS1123_SUBDOMAIN_MAX_LENGTH == 253
    assert names.DNS1035_LABEL_MAX_LENGTH == 63
    assert names.QUALIFIED_NAME_MAX_LENGTH == 63
    assert names.LABEL_VALUE_MAX_LENGTH == 63
    assert names.PORT_NAME_MAX_LENGTH == 15
    assert names.is_label_key is names.is_qualified_name
    assert names.is_valid_percent is names.is_percent

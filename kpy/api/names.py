"""Kubernetes' syntax checks for names, label keys and values, ports and keys.

Each `is_*` function takes one value and returns the list of problems with it,
worded as Kubernetes' apimachinery `util/validation` package words them (so
messages read the same as the ones a Kubernetes API server returns). An empty
list means the value is valid. Callers prefix the messages with the field path
and the bad value (`metadata.name: Invalid value: "Foo": <message>`); these
functions never raise and never know where the value came from.

Lengths are counted in UTF-8 bytes, as Go's `len` counts them, so a value with
non-ASCII characters is judged exactly as Kubernetes judges it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "CONFIG_MAP_KEY_MAX_LENGTH",
    "DNS1035_LABEL_MAX_LENGTH",
    "DNS1123_LABEL_MAX_LENGTH",
    "DNS1123_SUBDOMAIN_MAX_LENGTH",
    "LABEL_VALUE_MAX_LENGTH",
    "PORT_NAME_MAX_LENGTH",
    "QUALIFIED_NAME_MAX_LENGTH",
    "empty_error",
    "go_quote",
    "inclusive_range_error",
    "is_c_identifier",
    "is_config_map_key",
    "is_dns1035_label",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_dns1123_subdomain_with_underscore",
    "is_domain_prefixed_path",
    "is_env_var_name",
    "is_fully_qualified_domain_name",
    "is_fully_qualified_name",
    "is_http_header_name",
    "is_in_range",
    "is_label_key",
    "is_percent",
    "is_prefixed_label_key",
    "is_qualified_name",
    "is_relaxed_env_var_name",
    "is_valid_group_id",
    "is_valid_label_value",
    "is_valid_percent",
    "is_valid_port_name",
    "is_valid_port_num",
    "is_valid_user_id",
    "is_wildcard_dns1123_subdomain",
    "max_len_error",
    "regex_error",
]

DNS1123_LABEL_MAX_LENGTH: Final = 63
DNS1123_SUBDOMAIN_MAX_LENGTH: Final = 253
DNS1035_LABEL_MAX_LENGTH: Final = 63
# The name part of a qualified name (label or annotation key), after the prefix.
QUALIFIED_NAME_MAX_LENGTH: Final = 63
LABEL_VALUE_MAX_LENGTH: Final = 63
# IANA_SVC_NAME (RFC 6335): a named container or service port.
PORT_NAME_MAX_LENGTH: Final = 15
CONFIG_MAP_KEY_MAX_LENGTH: Final = DNS1123_SUBDOMAIN_MAX_LENGTH

_PORT_MIN: Final = 1
_PORT_MAX: Final = 65535
_ID_MIN: Final = 0
_ID_MAX: Final = 0xFFFFFFFF  # uint32, as libcontainer allows


# --- message builders, worded as Kubernetes words them ---


def max_len_error(length: int) -> str:
    """The message for a value longer than `length` bytes."""
    return f"must be no more than {length} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """The message for a value that does not match the regular expression `fmt`.

    Kubernetes joins the examples as `'a',  or 'b', ` (two spaces before
    "or"); this keeps that spelling so messages compare equal."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    parts = [f"'{example}', " for example in examples]
    return f"{msg} (e.g. {' or '.join(parts)}regex used for validation is '{fmt}')"


def empty_error() -> str:
    """The message for a value that must not be empty."""
    return "must be non-empty"


def inclusive_range_error(lo: int, hi: int) -> str:
    """The message for a number outside [lo, hi]."""
    return f"must be between {lo} and {hi}, inclusive"


def _byte_len(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def _matches(pattern: re.Pattern[str], value: str) -> bool:
    # fullmatch, not match with "$": Python's "$" also matches before a final
    # newline, Go's does not.
    return pattern.fullmatch(value) is not None


# --- qualified names (label and annotation keys) and label values ---

_QNAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_ERR: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_QNAME_RE: Final = re.compile(_QNAME_FMT)


def _qualified_name_regex_error() -> str:
    return regex_error(_QNAME_ERR, _QNAME_FMT, "MyName", "my.name", "123-abc")


def is_qualified_name(value: str) -> list[str]:
    """A label or annotation key: an optional DNS-1123 subdomain prefix and
    "/", then a name of at most 63 alphanumerics, '-', '_' or '.', starting and
    ending with an alphanumeric (`example.com/MyName`, `app`)."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + empty_error())
        else:
            errs.extend("prefix part " + msg for msg in is_dns1123_subdomain(prefix))
    else:
        return [
            "a valid label key "
            + _qualified_name_regex_error()
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + empty_error())
    elif _byte_len(name) > QUALIFIED_NAME_MAX_LENGTH:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX_LENGTH))
    if not _matches(_QNAME_RE, name):
        errs.append("name part " + _qualified_name_regex_error())
    return errs


# Kubernetes' newer name for the same check.
is_label_key = is_qualified_name


def is_prefixed_label_key(value: str) -> list[str]:
    """A label key that must carry a domain prefix (`example.com/key`)."""
    errs = is_qualified_name(value)
    if errs:
        return errs
    if len(value.split("/")) != 2:
        return ["must include a prefix (e.g. 'example.com/key')"]
    return []


_LABEL_VALUE_FMT: Final = "(" + _QNAME_FMT + ")?"
_LABEL_VALUE_ERR: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)
_LABEL_VALUE_RE: Final = re.compile(_LABEL_VALUE_FMT)


def is_valid_label_value(value: str) -> list[str]:
    """A label value: empty, or up to 63 alphanumerics, '-', '_' or '.',
    starting and ending with an alphanumeric."""
    errs: list[str] = []
    if _byte_len(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(max_len_error(LABEL_VALUE_MAX_LENGTH))
    if not _matches(_LABEL_VALUE_RE, value):
        errs.append(regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


# --- DNS names ---

_DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_ERR: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
    "or '-', and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_RE: Final = re.compile(_DNS1123_LABEL_FMT)

_DNS1123_SUBDOMAIN_FMT: Final = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_ERR: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_RE: Final = re.compile(_DNS1123_SUBDOMAIN_FMT)

_DNS1123_LABEL_US_FMT: Final = "_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_US_FMT: Final = _DNS1123_LABEL_US_FMT + "(\\." + _DNS1123_LABEL_US_FMT + ")*"
_DNS1123_SUBDOMAIN_US_ERR: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'_', '-' or '.', and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_US_RE: Final = re.compile(_DNS1123_SUBDOMAIN_US_FMT)

_DNS1035_LABEL_FMT: Final = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_ERR: Final = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)
_DNS1035_LABEL_RE: Final = re.compile(_DNS1035_LABEL_FMT)

_WILDCARD_FMT: Final = "\\*\\." + _DNS1123_SUBDOMAIN_FMT
_WILDCARD_ERR: Final = (
    "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS "
    "subdomain, which must consist of lower case alphanumeric characters, '-' or '.' "
    "and end with an alphanumeric character"
)
_WILDCARD_RE: Final = re.compile(_WILDCARD_FMT)


def is_dns1123_label(value: str) -> list[str]:
    """An RFC 1123 label (most object names that become host names): at most
    63 lower-case alphanumerics or '-', starting and ending alphanumeric."""
    errs: list[str] = []
    if _byte_len(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _matches(_DNS1123_LABEL_RE, value):
        if _matches(_DNS1123_SUBDOMAIN_RE, value):
            # A valid subdomain but not a label: the only difference is dots.
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_ERR, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    """An RFC 1123 subdomain (most object names): at most 253 characters of
    dot-separated RFC 1123 labels."""
    errs: list[str] = []
    if _byte_len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _matches(_DNS1123_SUBDOMAIN_RE, value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1123_subdomain_with_underscore(value: str) -> list[str]:
    """An RFC 1123 subdomain whose labels may also hold '_' (and start with one)."""
    errs: list[str] = []
    if _byte_len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _matches(_DNS1123_SUBDOMAIN_US_RE, value):
        errs.append(
            regex_error(_DNS1123_SUBDOMAIN_US_ERR, _DNS1123_SUBDOMAIN_US_FMT, "example.com")
        )
    return errs


def is_dns1035_label(value: str) -> list[str]:
    """An RFC 1035 label (Service names): like an RFC 1123 label but starting
    with a letter."""
    errs: list[str] = []
    if _byte_len(value) > DNS1035_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1035_LABEL_MAX_LENGTH))
    if not _matches(_DNS1035_LABEL_RE, value):
        errs.append(regex_error(_DNS1035_LABEL_ERR, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_wildcard_dns1123_subdomain(value: str) -> list[str]:
    """`*.` followed by an RFC 1123 subdomain (RFC 1034 section 4.3.3)."""
    errs: list[str] = []
    if _byte_len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _matches(_WILDCARD_RE, value):
        errs.append(regex_error(_WILDCARD_ERR, _WILDCARD_FMT, "*.example.com"))
    return errs


def is_fully_qualified_name(name: str) -> list[str]:
    """An RFC 1123 subdomain of at least three dot-separated segments, without
    a trailing dot (Kubernetes' older, stricter FQDN check)."""
    if not name:
        return ["Required value"]
    if errs := is_dns1123_subdomain(name):
        return [f"Invalid value: {go_quote(name)}: {','.join(errs)}"]
    if len(name.split(".")) < 3:
        return [
            f"Invalid value: {go_quote(name)}: "
            "should be a domain with at least three segments separated by dots"
        ]
    return []


def is_fully_qualified_domain_name(name: str) -> list[str]:
    """An RFC 1123 subdomain of at least two segments; one trailing dot is allowed."""
    if not name:
        return ["Required value"]
    name = name.removesuffix(".")
    if errs := is_dns1123_subdomain(name):
        return [f"Invalid value: {go_quote(name)}: {','.join(errs)}"]
    segments = name.split(".")
    if len(segments) < 2:
        return [
            f"Invalid value: {go_quote(name)}: "
            "should be a domain with at least two segments separated by dots"
        ]
    for label in segments:
        if errs := is_dns1123_label(label):
            return [f"Invalid value: {go_quote(label)}: {','.join(errs)}"]
    return []


_HTTP_PATH_FMT: Final = r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+"
_HTTP_PATH_RE: Final = re.compile(_HTTP_PATH_FMT)


def is_domain_prefixed_path(value: str) -> list[str]:
    """`<RFC 1123 subdomain>/<RFC 3986 path>`, such as `acme.io/foo`."""
    if not value:
        return ["Required value"]
    segments = value.split("/", 1)
    if len(segments) != 2 or not segments[0] or not segments[1]:
        detail = 'must be a domain-prefixed path (such as "acme.io/foo")'
        return [f"Invalid value: {go_quote(value)}: {detail}"]
    host, path = segments
    errs = [f"Invalid value: {go_quote(host)}: {msg}" for msg in is_dns1123_subdomain(host)]
    if not _matches(_HTTP_PATH_RE, path):
        errs.append(
            f"Invalid value: {go_quote(path)}: {regex_error('Invalid path', _HTTP_PATH_FMT)}"
        )
    return errs


# --- identifiers, environment variables, keys ---

_C_IDENTIFIER_FMT: Final = "[A-Za-z_][A-Za-z0-9_]*"
_C_IDENTIFIER_ERR: Final = (
    "a valid C identifier must start with alphabetic character or '_', "
    "followed by a string of alphanumeric characters or '_'"
)
_C_IDENTIFIER_RE: Final = re.compile(_C_IDENTIFIER_FMT)

_ENV_VAR_FMT: Final = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_VAR_ERR: Final = (
    "a valid environment variable name must consist of alphabetic characters, "
    "digits, '_', '-', or '.', and must not start with a digit"
)
_RELAXED_ENV_VAR_ERR: Final = (
    "a valid environment variable name must consist only of printable ASCII characters "
    "other than '='"
)
_ENV_VAR_RE: Final = re.compile(_ENV_VAR_FMT)

_CONFIG_MAP_KEY_FMT: Final = "[-._a-zA-Z0-9]+"
_CONFIG_MAP_KEY_ERR: Final = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
)
_CONFIG_MAP_KEY_RE: Final = re.compile(_CONFIG_MAP_KEY_FMT)

_HTTP_HEADER_FMT: Final = "[-A-Za-z0-9]+"
_HTTP_HEADER_ERR: Final = "a valid HTTP header must consist of alphanumeric characters or '-'"
_HTTP_HEADER_RE: Final = re.compile(_HTTP_HEADER_FMT)


def is_c_identifier(value: str) -> list[str]:
    """A C identifier: a letter or '_', then letters, digits or '_'. No length limit."""
    if not _matches(_C_IDENTIFIER_RE, value):
        return [regex_error(_C_IDENTIFIER_ERR, _C_IDENTIFIER_FMT, "my_name", "MY_NAME", "MyName")]
    return []


def _chdir_prefix_errors(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_env_var_name(value: str) -> list[str]:
    """An environment variable name under Kubernetes' strict rule: letters,
    digits, '_', '-' or '.', not starting with a digit, and not '.', '..' or
    starting with '..'."""
    errs: list[str] = []
    if not _matches(_ENV_VAR_RE, value):
        examples = ("my.env-name", "MY_ENV.NAME", "MyEnvName1")
        errs.append(regex_error(_ENV_VAR_ERR, _ENV_VAR_FMT, *examples))
    errs.extend(_chdir_prefix_errors(value))
    return errs


def is_relaxed_env_var_name(value: str) -> list[str]:
    """An environment variable name under Kubernetes' relaxed rule
    (RelaxedEnvironmentVariableValidation): non-empty printable ASCII, no '='."""
    errs: list[str] = []
    if not value:
        errs.append("environment variable name " + empty_error())
    if any(not (" " <= ch <= "~") or ch == "=" for ch in value):
        errs.append(_RELAXED_ENV_VAR_ERR)
    return errs


def is_config_map_key(value: str) -> list[str]:
    """A ConfigMap or Secret key (also a file name in a volume): up to 253 of
    alphanumerics, '-', '_' or '.', and not '.', '..' or starting with '..'."""
    errs: list[str] = []
    if _byte_len(value) > CONFIG_MAP_KEY_MAX_LENGTH:
        errs.append(max_len_error(CONFIG_MAP_KEY_MAX_LENGTH))
    if not _matches(_CONFIG_MAP_KEY_RE, value):
        examples = ("key.name", "KEY_NAME", "key-name")
        errs.append(regex_error(_CONFIG_MAP_KEY_ERR, _CONFIG_MAP_KEY_FMT, *examples))
    errs.extend(_chdir_prefix_errors(value))
    return errs


def is_http_header_name(value: str) -> list[str]:
    """An HTTP header name as Go's HTTP library accepts it: alphanumerics and '-'."""
    if not _matches(_HTTP_HEADER_RE, value):
        return [regex_error(_HTTP_HEADER_ERR, _HTTP_HEADER_FMT, "X-Header-Name")]
    return []


# --- ports, percentages, numbers ---

_PORT_NAME_CHARSET_RE: Final = re.compile("[-a-z0-9]+")
_PORT_NAME_LETTER_RE: Final = re.compile("[a-z]")


def is_valid_port_num(port: int) -> list[str]:
    """A port number in 1..65535."""
    if _PORT_MIN <= port <= _PORT_MAX:
        return []
    return [inclusive_range_error(_PORT_MIN, _PORT_MAX)]


def is_valid_port_name(port: str) -> list[str]:
    """An IANA_SVC_NAME (RFC 6335): 1-15 of lower-case letters, digits and '-',
    at least one letter, no leading, trailing or doubled '-'."""
    errs: list[str] = []
    if _byte_len(port) > PORT_NAME_MAX_LENGTH:
        errs.append(max_len_error(PORT_NAME_MAX_LENGTH))
    if not _matches(_PORT_NAME_CHARSET_RE, port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if _PORT_NAME_LETTER_RE.search(port) is None:
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


_PERCENT_FMT: Final = "[0-9]+%"
_PERCENT_ERR: Final = "a valid percent string must be a numeric string followed by an ending '%'"
_PERCENT_RE: Final = re.compile(_PERCENT_FMT)


def is_percent(value: str) -> list[str]:
    """Digits followed by '%' (`25%`); no sign, no fraction."""
    if not _matches(_PERCENT_RE, value):
        return [regex_error(_PERCENT_ERR, _PERCENT_FMT, "1%", "93%")]
    return []


# Kubernetes' name for the same check.
is_valid_percent = is_percent


def is_in_range(value: int, lo: int, hi: int) -> list[str]:
    """`value` in the inclusive range [lo, hi]."""
    if lo <= value <= hi:
        return []
    return [inclusive_range_error(lo, hi)]


def is_valid_group_id(gid: int) -> list[str]:
    """A Unix group ID (0..2^32-1)."""
    return is_in_range(gid, _ID_MIN, _ID_MAX)


def is_valid_user_id(uid: int) -> list[str]:
    """A Unix user ID (0..2^32-1)."""
    return is_in_range(uid, _ID_MIN, _ID_MAX)


_GO_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def go_quote(value: str) -> str:
    """Quote `value` as Go's %q does, the way Kubernetes shows a bad value in a
    message (`Invalid value: "a b": ...`)."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)

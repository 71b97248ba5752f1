"""The string formats Kubernetes checks in custom resources (kube-openapi's
strfmt registry), each as a predicate. A format not listed here is not
checked, as in Kubernetes (int32, int64, float and double only hint the
type, and no range is enforced for them)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from datetime import date, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable

_HOSTNAME = re.compile(
    r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$"
)
_EMAIL = re.compile(r"^(?:[^@\s<>]+|\"[^\"]*\")@[^@\s<>]+$")
_UUID = r"^[0-9a-f]{8}-?[0-9a-f]{4}-?%s[0-9a-f]{3}-?%s[0-9a-f]{3}-?[0-9a-f]{12}$"
_UUIDS = {
    "uuid": re.compile(_UUID % ("[0-9a-f]", "[0-9a-f]"), re.IGNORECASE),
    "uuid3": re.compile(_UUID % ("3", "[0-9a-f]"), re.IGNORECASE),
    "uuid4": re.compile(_UUID % ("4", "[89ab]"), re.IGNORECASE),
    "uuid5": re.compile(_UUID % ("5", "[89ab]"), re.IGNORECASE),
}
_MAC = re.compile(
    r"^(?:[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}|[0-9a-f]{2}(?:[:-][0-9a-f]{2}){7}"
    r"|[0-9a-f]{2}(?:[:-][0-9a-f]{2}){19}|[0-9a-f]{4}(?:\.[0-9a-f]{4}){2,9})$",
    re.IGNORECASE,
)
_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$"
)
# Go durations (1h30m, 250ms) and strfmt's spelled-out ones (3 days, 2 weeks).
_DURATION = re.compile(
    r"^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h|d|w))+$"
    r"|^\d+\s*(?:ns|us|µs|ms|s|m|h|d|w|nanoseconds?|microseconds?|milliseconds?|seconds?"
    r"|minutes?|hours?|days?|weeks?|mins?|secs?|hrs?)$"
)
_HEX_COLOR = re.compile(r"^#?(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_RGB_COLOR = re.compile(
    r"^rgb\(\s*(?:0|[1-9]\d?|1\d\d|2[0-4]\d|25[0-5])\s*,\s*(?:0|[1-9]\d?|1\d\d|2[0-4]\d|25[0-5])"
    r"\s*,\s*(?:0|[1-9]\d?|1\d\d|2[0-4]\d|25[0-5])\s*\)$"
)
_BSON_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
_SSN = re.compile(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$")
_ISBN10 = re.compile(r"^(?:\d[- ]?){9}[\dXx]$")
_ISBN13 = re.compile(r"^(?:\d[- ]?){12}\d$")
_CREDIT_CARD = re.compile(r"^(?:\d[- ]?){12,18}\d$")


def _date(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _date_time(value: str) -> bool:
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def _ip(version: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            return ipaddress.ip_address(value).version == version
        except ValueError:
            return False

    return check


def _cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return "/" in value


def _uri(value: str) -> bool:
    # Go's url.ParseRequestURI: an absolute URI, or an absolute path.
    if value.startswith("/"):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme) and re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]*", parts.scheme) is not None


def _byte(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _matches(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda value: pattern.match(value) is not None


FORMATS: dict[str, Callable[[str], bool]] = {
    "bsonobjectid": _matches(_BSON_OBJECT_ID),
    "uri": _uri,
    "email": _matches(_EMAIL),
    "hostname": _matches(_HOSTNAME),
    "ipv4": _ip(4),
    "ipv6": _ip(6),
    "cidr": _cidr,
    "mac": _matches(_MAC),
    **{name: _matches(pattern) for name, pattern in _UUIDS.items()},
    "isbn": lambda v: _ISBN10.match(v) is not None or _ISBN13.match(v) is not None,
    "isbn10": _matches(_ISBN10),
    "isbn13": _matches(_ISBN13),
    "creditcard": _matches(_CREDIT_CARD),
    "ssn": _matches(_SSN),
    "hexcolor": _matches(_HEX_COLOR),
    "rgbcolor": _matches(_RGB_COLOR),
    "byte": _byte,
    "date": _date,
    "date-time": _date_time,
    "datetime": _date_time,
    "duration": _matches(_DURATION),
}


def format_ok(name: str, value: str) -> bool:
    """Whether `value` is in format `name`; true for formats Kubernetes does not check."""
    check = FORMATS.get(name)
    return check is None or check(value)

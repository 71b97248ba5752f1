"""IntOrString helpers: values such as `maxSurge: 25%` or `port: 8080`.

Contract (Kubernetes' apimachinery `util/intstr`):

- Every function accepts either a `kpy.api.meta.v1.IntOrString` message or a
  plain `int | str`. A message with neither field set is the int 0, as
  Kubernetes' zero IntOrString is.
- `get_scaled_value_from_int_or_percent` is the one to use for new code: an int
  is taken as is, a string must be a percentage (`"25%"`) and is scaled by
  `total`, rounded up or down as asked. Any other string is an error.
- `get_value_from_int_or_percent` is Kubernetes' deprecated variant that reads
  every string as a percentage, with or without the '%'.
- Errors are `ValueError`s worded as Kubernetes words them
  (`invalid value for IntOrString: invalid type: string is not a percentage`).
- Percentages are scaled with exact integer arithmetic.
"""

from __future__ import annotations

from typing import Final

from kpy.api.meta.v1 import IntOrString
from kpy.api.names import go_quote

__all__ = [
    "IntOrStringLike",
    "from_value",
    "get_int_or_percent_value",
    "get_scaled_value_from_int_or_percent",
    "get_value_from_int_or_percent",
    "int_value",
    "parse",
    "to_python",
    "to_str",
    "value_or_default",
]

IntOrStringLike = IntOrString | int | str

_INT32_MIN: Final = -(1 << 31)
_INT32_MAX: Final = (1 << 31) - 1
# Go's strconv.Atoi works on the platform int, 64 bits wide.
_INT_MIN: Final = -(1 << 63)
_INT_MAX: Final = (1 << 63) - 1


def from_value(value: int | str) -> IntOrString:
    """An IntOrString message holding `value` (Kubernetes' FromInt / FromString)."""
    if isinstance(value, bool):
        raise TypeError(f"an IntOrString holds an int or a string, not {value!r}")
    if isinstance(value, int):
        if not _INT32_MIN <= value <= _INT32_MAX:
            raise ValueError(f"value {value} overflows the int32 of an IntOrString")
        return IntOrString(int_val=value)
    if isinstance(value, str):
        return IntOrString(str_val=value)
    raise TypeError(f"an IntOrString holds an int or a string, not {type(value).__name__}")


def parse(value: str) -> IntOrString:
    """An int message when `value` reads as a decimal integer, else a string
    message (Kubernetes' intstr.Parse)."""
    try:
        number = _atoi(value)
    except ValueError:
        return IntOrString(str_val=value)
    if not _INT32_MIN <= number <= _INT32_MAX:
        # Kubernetes wraps such a number into an int32; keep the text instead.
        return IntOrString(str_val=value)
    return IntOrString(int_val=number)


def to_python(value: IntOrStringLike) -> int | str:
    """The int or str an IntOrString holds."""
    if isinstance(value, IntOrString):
        if value.WhichOneof("value") == "str_val":
            return value.str_val
        return value.int_val
    if isinstance(value, bool):
        raise TypeError(f"an IntOrString holds an int or a string, not {value!r}")
    if isinstance(value, int | str):
        return value
    raise TypeError(f"an IntOrString holds an int or a string, not {type(value).__name__}")


def to_str(value: IntOrStringLike) -> str:
    """The string, or the int in decimal (Kubernetes' String())."""
    held = to_python(value)
    return held if isinstance(held, str) else str(held)


def int_value(value: IntOrStringLike) -> int:
    """The int, or the string read as an int with 0 when it is not one
    (Kubernetes' IntValue())."""
    held = to_python(value)
    if isinstance(held, int):
        return held
    try:
        return _atoi(held)
    except ValueError:
        return 0


def value_or_default(value: IntOrStringLike | None, default: IntOrStringLike) -> IntOrStringLike:
    """`value`, or `default` when it is None."""
    return default if value is None else value


def get_int_or_percent_value(value: IntOrStringLike) -> tuple[int, bool]:
    """(number, is_percent) for an int or a `"<n>%"` string; a string without
    a trailing '%' or with a non-integer number is a ValueError."""
    held = to_python(value)
    if isinstance(held, int):
        return held, False
    if not held.endswith("%"):
        raise ValueError("invalid type: string is not a percentage")
    return _atoi_or_error(held[:-1], held), True


def get_scaled_value_from_int_or_percent(
    value: IntOrStringLike | None, total: int, round_up: bool
) -> int:
    """An int as is, or a percentage of `total` rounded up or down (Kubernetes'
    GetScaledValueFromIntOrPercent): `("25%", 10, True) -> 3`."""
    if value is None:
        raise ValueError("nil value for IntOrString")
    try:
        number, is_percent = get_int_or_percent_value(value)
    except ValueError as err:
        raise ValueError(f"invalid value for IntOrString: {err}") from None
    return _scale(number, total, round_up) if is_percent else number


def get_value_from_int_or_percent(value: IntOrStringLike | None, total: int, round_up: bool) -> int:
    """Kubernetes' deprecated GetValueFromIntOrPercent: an int as is, and any
    string, with its '%' signs removed, as a percentage of `total`."""
    if value is None:
        raise ValueError("nil value for IntOrString")
    held = to_python(value)
    if isinstance(held, int):
        return held
    try:
        number = _atoi_or_error(held.replace("%", ""), held)
    except ValueError as err:
        raise ValueError(f"invalid value for IntOrString: {err}") from None
    return _scale(number, total, round_up)


def _scale(percent: int, total: int, round_up: bool) -> int:
    product = percent * total
    return -(-product // 100) if round_up else product // 100


def _atoi_or_error(digits: str, original: str) -> int:
    try:
        return _atoi(digits)
    except ValueError as err:
        raise ValueError(f"invalid value {go_quote(original)}: {err}") from None


def _atoi(text: str) -> int:
    """Go's strconv.Atoi: an optional sign and ASCII digits, within int64."""
    unsigned = text[1:] if text[:1] in ("+", "-") else text
    if not unsigned or not all("0" <= ch <= "9" for ch in unsigned):
        raise ValueError(f"strconv.Atoi: parsing {go_quote(text)}: invalid syntax")
    number = int(text)
    if not _INT_MIN <= number <= _INT_MAX:
        raise ValueError(f"strconv.Atoi: parsing {go_quote(text)}: value out of range")
    return number

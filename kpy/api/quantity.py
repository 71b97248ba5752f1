"""Quantity: an exact fixed-point number such as `500m`, `1.5Gi` or `2e3`.

Contract (Kubernetes' resource.Quantity, apimachinery `api/resource`):

- A Quantity is immutable and hashable; equality, ordering and hashing are by
  value, so `Quantity("1Gi") == Quantity("1024Mi") == Quantity(1073741824)`.
  It also compares with plain ints.
- Arithmetic is exact (integers scaled by a power of ten, never floats).
- Parsing accepts `<sign><digits>[.<digits>]<suffix>` where the suffix is
  decimal SI (`n u m "" k M G T P E`), binary SI (`Ki Mi Gi Ti Pi Ei`) or a
  decimal exponent (`e3`, `E-2`). Values finer than a nano-unit are rounded up
  (away from zero) to the next nano-unit, and binary-SI values are capped at
  2^63-1 in magnitude, as Kubernetes does. Bad input raises `ValueError` with
  Kubernetes' message (`quantities must match the regular expression ...`).
- A Quantity remembers the suffix family it was written in (`format`) and
  prints in that family, in canonical form: no fraction digits, the largest
  suffix that loses nothing (`1.5Gi` -> `1536Mi`, `0.5` -> `500m`,
  `1000m` -> `1`). Binary values that are not whole numbers of bytes, or below
  1024, print in decimal SI. Zero prints as `0`.
- Like Kubernetes, `str(q)` of a freshly parsed quantity returns the input
  verbatim when Kubernetes' parser judges it already canonical (this is what a
  Kubernetes API server stores and serves back, including its known quirk that
  `1.500` stays `1.500`); `canonical()` always recomputes the canonical form.
  Any arithmetic result prints canonically.
- `value()` and `milli_value()` round up, away from zero, and saturate at the
  int64 bounds as Kubernetes' int64 accessors do.
"""

from __future__ import annotations

import functools
import math
import sys
from decimal import Decimal
from fractions import Fraction
from typing import Final, Literal

__all__ = [
    "BINARY_SI",
    "DECIMAL_EXPONENT",
    "DECIMAL_SI",
    "ERR_FORMAT_WRONG",
    "ERR_NUMERIC",
    "ERR_SUFFIX",
    "Format",
    "Quantity",
    "parse_quantity",
]

Format = Literal["DecimalSI", "BinarySI", "DecimalExponent"]

DECIMAL_SI: Final = "DecimalSI"
BINARY_SI: Final = "BinarySI"
DECIMAL_EXPONENT: Final = "DecimalExponent"

_SPLIT_RE_STRING: Final = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT_WRONG: Final = f"quantities must match the regular expression '{_SPLIT_RE_STRING}'"
ERR_NUMERIC: Final = "unable to parse numeric part of quantity"
ERR_SUFFIX: Final = "unable to parse quantity's suffix"

_DIGITS: Final = frozenset("0123456789")
_SUFFIX_CHARS: Final = frozenset("eEinumkKMGTP")

# suffix -> (base, exponent, format)
_SUFFIXES: Final[dict[str, tuple[int, int, Format]]] = {
    "n": (10, -9, DECIMAL_SI),
    "u": (10, -6, DECIMAL_SI),
    "m": (10, -3, DECIMAL_SI),
    "": (10, 0, DECIMAL_SI),
    "k": (10, 3, DECIMAL_SI),
    "M": (10, 6, DECIMAL_SI),
    "G": (10, 9, DECIMAL_SI),
    "T": (10, 12, DECIMAL_SI),
    "P": (10, 15, DECIMAL_SI),
    "E": (10, 18, DECIMAL_SI),
    "Ki": (2, 10, BINARY_SI),
    "Mi": (2, 20, BINARY_SI),
    "Gi": (2, 30, BINARY_SI),
    "Ti": (2, 40, BINARY_SI),
    "Pi": (2, 50, BINARY_SI),
    "Ei": (2, 60, BINARY_SI),
}
_DECIMAL_SUFFIX_BY_EXP: Final = {
    exp: suffix for suffix, (base, exp, _) in _SUFFIXES.items() if base == 10
}
_BINARY_SUFFIX_BY_POWER: Final = {1: "Ki", 2: "Mi", 3: "Gi", 4: "Ti", 5: "Pi", 6: "Ei"}

_NANO: Final = -9
_INT64_MAX: Final = (1 << 63) - 1
_INT64_MIN: Final = -(1 << 63)
_INT32_MAX: Final = (1 << 31) - 1
# Kubernetes' parser keeps values of up to 18 digits on its int64 fast path.
_MAX_INT64_FACTORS: Final = 18
_HASH_MODULUS: Final = sys.hash_info.modulus


class Quantity:
    """An exact, immutable quantity; see the module docstring for the contract."""

    __slots__ = ("_coef", "_exp", "_format", "_text")

    _coef: int  # value = _coef * 10**_exp; _coef has no trailing zeros (0 -> exp 0)
    _exp: int
    _format: str
    _text: str | None  # the input string when Kubernetes would keep it verbatim

    def __init__(self, value: str | int | float | Quantity = 0) -> None:
        parsed = value if isinstance(value, Quantity) else Quantity.parse(value)
        _init(self, parsed._coef, parsed._exp, parsed._format, parsed._text)

    # --- construction ---

    @classmethod
    def parse(cls, value: str | int | float) -> Quantity:
        """Parse Kubernetes' quantity syntax. Ints and floats are read as the
        JSON number a manifest would carry (`0.5`, `1000`, `1e+21`)."""
        if isinstance(value, bool):
            raise ValueError(f"a quantity must be a string or a number, not {value!r}")
        if isinstance(value, int):
            return _parse(str(value))
        if isinstance(value, float):
            return _parse(_go_json_float(value))
        if isinstance(value, str):
            return _parse(value)
        raise TypeError(f"a quantity must be a string or a number, not {type(value).__name__}")

    @classmethod
    def from_int(cls, value: int, format: str = DECIMAL_SI) -> Quantity:
        """`value` units in `format` (Kubernetes' NewQuantity)."""
        return _make(value, 0, format)

    @classmethod
    def from_milli(cls, value: int, format: str = DECIMAL_SI) -> Quantity:
        """`value` thousandths of a unit (Kubernetes' NewMilliQuantity)."""
        return _make(value, -3, format)

    @classmethod
    def from_scaled(cls, value: int, scale: int, format: str = DECIMAL_SI) -> Quantity:
        """`value * 10**scale` (Kubernetes' NewScaledQuantity). Unlike parsing,
        this does not round below a nano-unit."""
        return _make(value, scale, format)

    # --- accessors ---

    @property
    def format(self) -> str:
        """The suffix family it prints in: DecimalSI, BinarySI or DecimalExponent."""
        return self._format

    def is_zero(self) -> bool:
        return self._coef == 0

    def sign(self) -> int:
        """-1, 0 or 1."""
        return (self._coef > 0) - (self._coef < 0)

    def as_fraction(self) -> Fraction:
        """The exact value."""
        if self._exp >= 0:
            return Fraction(self._coef * 10**self._exp)
        return Fraction(self._coef, 10**-self._exp)

    def as_approximate_float(self) -> float:
        """The value as the nearest float; for display and ratios only."""
        return float(self.as_fraction())

    def scaled_value(self, scale: int) -> int:
        """ceil(value / 10**scale), rounded away from zero, saturated to int64
        (Kubernetes' ScaledValue)."""
        if self._coef == 0:
            return 0
        negative = self._coef < 0
        magnitude = abs(self._coef)
        shift = self._exp - scale
        if shift >= 0:
            # Past 19 digits the result cannot fit an int64 anyway.
            if _num_digits(magnitude) + shift > 19:
                result = _INT64_MAX + 1
            else:
                result = magnitude * 10**shift
        else:
            result = _ceil_shift(magnitude, -shift)
        if negative:
            return max(-result, _INT64_MIN)
        return min(result, _INT64_MAX)

    def value(self) -> int:
        """The value in whole units, rounded up away from zero (Value())."""
        return self.scaled_value(0)

    def milli_value(self) -> int:
        """The value in thousandths, rounded up away from zero (MilliValue())."""
        return self.scaled_value(-3)

    def round_up(self, scale: int) -> tuple[Quantity, bool]:
        """This value rounded away from zero to a multiple of 10**scale, and
        whether nothing was lost (Kubernetes' RoundUp)."""
        if self._coef == 0 or self._exp >= scale:
            return self, True
        # coef has no trailing zeros, so a finer exponent always loses digits.
        magnitude = _ceil_shift(abs(self._coef), scale - self._exp)
        return _make(magnitude if self._coef > 0 else -magnitude, scale, self._format), False

    # --- formatting ---

    def canonical(self) -> str:
        """Kubernetes' canonical form, recomputed from the value and format."""
        return _canonical(self._coef, self._exp, self._format)

    def __str__(self) -> str:
        return self._text if self._text is not None else self.canonical()

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r})"

    # --- arithmetic (new objects; the format follows Kubernetes' Add/Sub) ---

    def __add__(self, other: Quantity) -> Quantity:
        if not isinstance(other, Quantity):
            return NotImplemented
        coef, exp = _add(self._coef, self._exp, other._coef, other._exp)
        return _make(coef, exp, other._format if self._coef == 0 else self._format)

    def __sub__(self, other: Quantity) -> Quantity:
        if not isinstance(other, Quantity):
            return NotImplemented
        coef, exp = _add(self._coef, self._exp, -other._coef, other._exp)
        return _make(coef, exp, other._format if self._coef == 0 else self._format)

    def __neg__(self) -> Quantity:
        return _make(-self._coef, self._exp, self._format)

    def __pos__(self) -> Quantity:
        return self

    def __abs__(self) -> Quantity:
        return self if self._coef >= 0 else -self

    def __mul__(self, factor: int) -> Quantity:
        if isinstance(factor, bool) or not isinstance(factor, int):
            return NotImplemented
        return _make(self._coef * factor, self._exp, self._format)

    __rmul__ = __mul__

    # --- comparison, by value ---

    def cmp(self, other: Quantity | int) -> int:
        """-1, 0 or 1 as self is less than, equal to or greater than other."""
        coef, exp = _operand(other)
        return _cmp(self._coef, self._exp, coef, exp)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, bool) or not isinstance(other, Quantity | int):
            return NotImplemented
        return self.cmp(other) == 0

    def __lt__(self, other: Quantity | int) -> bool:
        if isinstance(other, bool) or not isinstance(other, Quantity | int):
            return NotImplemented
        return self.cmp(other) < 0

    def __le__(self, other: Quantity | int) -> bool:
        if isinstance(other, bool) or not isinstance(other, Quantity | int):
            return NotImplemented
        return self.cmp(other) <= 0

    def __gt__(self, other: Quantity | int) -> bool:
        if isinstance(other, bool) or not isinstance(other, Quantity | int):
            return NotImplemented
        return self.cmp(other) > 0

    def __ge__(self, other: Quantity | int) -> bool:
        if isinstance(other, bool) or not isinstance(other, Quantity | int):
            return NotImplemented
        return self.cmp(other) >= 0

    def __hash__(self) -> int:
        # Python's numeric hash of coef * 10**exp, computed modulo the hash
        # prime so that a huge exponent costs nothing; equal to hash(int) and
        # hash(Fraction) of the same value.
        if self._coef == 0:
            return 0
        scale = pow(10, self._exp, _HASH_MODULUS)
        h = (abs(self._coef) % _HASH_MODULUS) * scale % _HASH_MODULUS
        h = h if self._coef > 0 else -h
        return -2 if h == -1 else h

    def __bool__(self) -> bool:
        return self._coef != 0

    # --- immutability ---

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Quantity is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Quantity is immutable; cannot delete {name!r}")

    def __copy__(self) -> Quantity:
        return self

    def __deepcopy__(self, memo: object) -> Quantity:
        return self

    def __reduce__(self) -> tuple[object, tuple[int, int, str, str | None]]:
        return (_restore, (self._coef, self._exp, self._format, self._text))


def parse_quantity(value: str | int | float) -> Quantity:
    """Parse Kubernetes' quantity syntax; raises ValueError on bad input."""
    return Quantity.parse(value)


# --- construction helpers ---


def _init(q: Quantity, coef: int, exp: int, fmt: str, text: str | None) -> None:
    object.__setattr__(q, "_coef", coef)
    object.__setattr__(q, "_exp", exp)
    object.__setattr__(q, "_format", fmt)
    object.__setattr__(q, "_text", text)


def _make(coef: int, exp: int, fmt: str, text: str | None = None) -> Quantity:
    coef, exp = _normalize(coef, exp)
    q = object.__new__(Quantity)
    _init(q, coef, exp, fmt, text)
    return q


def _restore(coef: int, exp: int, fmt: str, text: str | None) -> Quantity:
    return _make(coef, exp, fmt, text)


def _normalize(coef: int, exp: int) -> tuple[int, int]:
    if coef == 0:
        return 0, 0
    while coef % 10 == 0:
        coef //= 10
        exp += 1
    return coef, exp


def _operand(other: Quantity | int) -> tuple[int, int]:
    if isinstance(other, Quantity):
        return other._coef, other._exp
    return _normalize(other, 0)


def _num_digits(n: int) -> int:
    """Decimal digits of n > 0, without converting n to a string."""
    d = int((n.bit_length() - 1) * 0.30102999566398120)
    if d > 0 and 10**d > n:
        d -= 1
    while 10 ** (d + 1) <= n:
        d += 1
    return d + 1


def _ceil_shift(magnitude: int, k: int) -> int:
    """ceil(magnitude / 10**k) for magnitude > 0 and k > 0."""
    if _num_digits(magnitude) <= k:
        return 1  # 0 < magnitude < 10**k
    divisor: int = 10**k
    return -(-magnitude // divisor)


def _add(c1: int, e1: int, c2: int, e2: int) -> tuple[int, int]:
    if c1 == 0:
        return c2, e2
    if c2 == 0:
        return c1, e1
    if e1 <= e2:
        return c1 + c2 * 10 ** (e2 - e1), e1
    return c1 * 10 ** (e1 - e2) + c2, e2


def _cmp(c1: int, e1: int, c2: int, e2: int) -> int:
    s1 = (c1 > 0) - (c1 < 0)
    s2 = (c2 > 0) - (c2 < 0)
    if s1 != s2:
        return 1 if s1 > s2 else -1
    if s1 == 0:
        return 0
    # Same sign: compare magnitudes by their decimal order of size first, so
    # that very different exponents never build huge integers.
    m1, m2 = abs(c1), abs(c2)
    size1, size2 = _num_digits(m1) + e1, _num_digits(m2) + e2
    if size1 != size2:
        bigger = size1 > size2
    else:
        if e1 >= e2:
            m1 *= 10 ** (e1 - e2)
        else:
            m2 *= 10 ** (e2 - e1)
        if m1 == m2:
            return 0
        bigger = m1 > m2
    return s1 if bigger else -s1


# --- parsing ---


def _scan(s: str) -> tuple[bool, str, str, str, str]:
    """Kubernetes' parseQuantityString: (positive, value, num, denom, suffix).

    `value` is the signed numeric part as written; `num` has its leading zeros
    stripped ("0" when nothing is left)."""
    positive = True
    pos = 0
    end = len(s)
    if pos < end and s[0] in "+-":
        positive = s[0] == "+"
        pos += 1
    while pos < end and s[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "0", "", ""
    start = pos
    while pos < end and s[pos] in _DIGITS:
        pos += 1
    num = s[start:pos] or "0"
    if pos >= end:
        return positive, s, num, "", ""
    denom = ""
    if s[pos] == ".":
        pos += 1
        start = pos
        while pos < end and s[pos] in _DIGITS:
            pos += 1
        denom = s[start:pos]
        if pos >= end:
            return positive, s, num, denom, ""
    value = s[:pos]
    suffix_start = pos
    while pos < end and s[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and s[pos] in "+-":
        pos += 1
    while pos < end and s[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise ValueError(ERR_FORMAT_WRONG)
    return positive, value, num, denom, s[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, Format]:
    """(base, exponent, format) of a suffix, or ValueError(ERR_SUFFIX)."""
    known = _SUFFIXES.get(suffix)
    if known is not None:
        return known
    if len(suffix) > 1 and suffix[0] in "eE":
        digits = suffix[1:]
        unsigned = digits[1:] if digits[0] in "+-" else digits
        if unsigned and all(ch in _DIGITS for ch in unsigned):
            exponent = int(digits)
            # Kubernetes keeps the exponent in an int32 that it also negates.
            if -_INT32_MAX <= exponent <= _INT32_MAX:
                return 10, exponent, DECIMAL_EXPONENT
    raise ValueError(ERR_SUFFIX)


@functools.lru_cache(maxsize=4096)  # quantities are immutable; manifests repeat a few
def _parse(s: str) -> Quantity:
    if not s:
        raise ValueError(ERR_FORMAT_WRONG)
    if s == "0":
        return _make(0, 0, DECIMAL_SI, "0")
    positive, value, num, denom, suffix = _scan(s)
    base, exponent, fmt = _interpret(suffix)
    fast, keep_text = _fast_path(num, denom, exponent, fmt)
    if not fast and not any(ch in _DIGITS for ch in value):
        # Kubernetes' slow path cannot read a number without digits ("-.e-10").
        raise ValueError(ERR_NUMERIC)
    try:
        coef = int(num + denom)
    except ValueError:  # more digits than Python converts by default
        raise ValueError(ERR_NUMERIC) from None
    exp = -len(denom)
    if base == 10:
        exp += exponent
    else:
        coef <<= exponent
    if coef != 0 and exp < _NANO:
        # Round up to the nearest nano-unit: asking for a sliver of a resource
        # should get some of it, never none.
        coef, exp = _ceil_shift(coef, _NANO - exp), _NANO
    if fmt == BINARY_SI and coef != 0:
        if _cmp(coef, exp, _INT64_MAX, 0) > 0:
            coef, exp = _INT64_MAX, 0
        elif _cmp(coef, exp, 1, 0) < 0:
            fmt = DECIMAL_SI  # a fraction of one: binary suffixes would round it
    if not positive:
        coef = -coef
    return _make(coef, exp, fmt, s if keep_text else None)


def _fast_path(num: str, denom: str, exponent: int, fmt: str) -> tuple[bool, bool]:
    """Whether Kubernetes parses this on its int64 fast path, and whether it
    then keeps the input string as the quantity's printed form."""
    if fmt == BINARY_SI:
        if denom:
            return False, False
        mantissa = 1 << exponent
        precision = 15 - len(num) - exponent * 3 // 10 - 1
        scale = 0
    else:
        mantissa = 1
        precision = _MAX_INT64_FACTORS - len(num) - len(denom)
        scale = exponent
    if precision < 0:
        return False, False
    scale -= len(denom)
    if scale < _NANO:
        return False, False
    shifted = num + denom
    digits = int(shifted)
    if digits * mantissa > _INT64_MAX:
        return False, False
    if fmt == BINARY_SI:
        return True, digits & 0x07 != 0
    return True, scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"


def _go_json_float(value: float) -> str:
    """The number text Go's encoding/json writes for a float64, which is what
    Kubernetes' quantity unmarshalling then parses."""
    if not math.isfinite(value):
        raise ValueError(f"a quantity cannot be {value!r}")
    d = Decimal(repr(value)).normalize()
    magnitude = abs(value)
    if magnitude == 0 or 1e-6 <= magnitude < 1e21:
        return format(d, "f")
    sign, digits, dexp = d.as_tuple()
    exp10 = int(dexp) + len(digits) - 1
    mantissa = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if len(digits) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}e{'+' if exp10 >= 0 else '-'}{abs(exp10):02d}".replace(
        "e-0", "e-"
    )


# --- formatting ---


def _canonical(coef: int, exp: int, fmt: str) -> str:
    if coef == 0:
        return "0"
    if fmt == BINARY_SI:
        small = _cmp(coef, exp, -1024, 0) > 0 and _cmp(coef, exp, 1024, 0) < 0
        if not small and exp >= 0:  # exp >= 0: a whole number, exactly binary
            return _binary(coef, exp)
        fmt = DECIMAL_SI
    elif fmt != DECIMAL_SI:
        fmt = DECIMAL_EXPONENT
    return _decimal(coef, exp, fmt)


def _decimal(coef: int, exp: int, fmt: str) -> str:
    # The exponent goes down to a multiple of three so that it names an SI
    # suffix; coef has no trailing zeros, so this is the largest such suffix.
    rem = exp % 3
    coef *= 10**rem
    exp -= rem
    if fmt == DECIMAL_SI and exp in _DECIMAL_SUFFIX_BY_EXP:
        return f"{coef}{_DECIMAL_SUFFIX_BY_EXP[exp]}"
    # No SI suffix that far out (beyond E or below n): exponent notation.
    return f"{coef}e{exp}" if exp != 0 else str(coef)


def _binary(coef: int, exp: int) -> str:
    value = coef * 10**exp
    power = 0
    while value % 1024 == 0:
        value //= 1024
        power += 1
    if power == 0:
        return str(value)
    suffix = _BINARY_SUFFIX_BY_POWER.get(power)
    if suffix is None:
        # Beyond Ei there is no binary suffix: print the exact decimal value.
        return _decimal(coef, exp, DECIMAL_EXPONENT)
    return f"{value}{suffix}"

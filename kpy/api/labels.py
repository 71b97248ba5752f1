"""Label selectors: `app=web,tier in (front,back),!canary`.

Contract (Kubernetes' apimachinery `labels` package):

- `parse_selector` reads Kubernetes' full grammar: `k=v`, `k==v`, `k!=v`,
  `k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k` (does not exist), `k>1` and
  `k<1` (integers), requirements separated by commas, blanks (space, tab, CR,
  LF) allowed around tokens. Keys must be qualified names and values valid
  label values. Errors are `ValueError`s worded as Kubernetes words them
  (`unable to parse requirement: found ',', expected: identifier`).
- A `Selector` is an immutable AND of `Requirement`s, kept sorted by key;
  `str()` is Kubernetes' canonical text (values sorted, `x in (a,b),y!=c,!z`),
  which parses back to an equal selector.
- `everything()` (the empty selector) matches every label set; `nothing()`
  matches none; `selector_from_label_selector` turns a meta/v1 LabelSelector
  message into a Selector as metav1.LabelSelectorAsSelector does (None ->
  nothing, empty -> everything).
- Matching never raises: a `Gt`/`Lt` requirement simply does not match a label
  whose value is not an integer.
- Construct requirements with `new_requirement` to have them validated;
  `Requirement(...)` itself only normalizes (values sorted) and trusts its input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Final

from kpy.api.names import go_quote, is_qualified_name, is_valid_label_value

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from kpy.api.meta.v1 import LabelSelector

__all__ = [
    "Operator",
    "Requirement",
    "Selector",
    "conflicts",
    "convert_selector_to_labels_map",
    "everything",
    "format_labels",
    "labels_to_string",
    "merge",
    "new_requirement",
    "nothing",
    "parse_selector",
    "selector_from_label_selector",
    "selector_from_set",
    "validated_selector_from_set",
]


class Operator(StrEnum):
    """Kubernetes' selection.Operator values."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    GREATER_THAN = "gt"
    LESS_THAN = "lt"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


_BINARY_OPERATORS: Final = (
    Operator.IN,
    Operator.NOT_IN,
    Operator.EQUALS,
    Operator.DOUBLE_EQUALS,
    Operator.NOT_EQUALS,
    Operator.GREATER_THAN,
    Operator.LESS_THAN,
)
_VALID_OPERATORS: Final = (*_BINARY_OPERATORS, Operator.EXISTS, Operator.DOES_NOT_EXIST)

# meta/v1 LabelSelectorRequirement operators -> selection operators.
_LABEL_SELECTOR_OPERATORS: Final = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}

# How each operator is written between key and values.
_SYMBOLS: Final[dict[str, str]] = {
    Operator.EQUALS: "=",
    Operator.DOUBLE_EQUALS: "==",
    Operator.NOT_EQUALS: "!=",
    Operator.IN: " in ",
    Operator.NOT_IN: " notin ",
    Operator.GREATER_THAN: ">",
    Operator.LESS_THAN: "<",
}

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Requirement:
    """One condition on one label key. `values` is kept sorted."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(sorted(self.values)))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this requirement (Kubernetes' rules:
        NotIn, != and ! match when the key is absent; Gt and Lt need an
        integer label value)."""
        op = self.operator
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == Operator.EXISTS:
            return self.key in labels
        if op == Operator.DOES_NOT_EXIST:
            return self.key not in labels
        if op in (Operator.GREATER_THAN, Operator.LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have = _parse_int64(labels[self.key])
            want = _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == Operator.GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        prefix = "!" if op == Operator.DOES_NOT_EXIST else ""
        if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
            return prefix + self.key
        symbol = _SYMBOLS.get(op, "")
        joined = ",".join(self.values)
        if op in (Operator.IN, Operator.NOT_IN):
            joined = f"({joined})"
        return f"{self.key}{symbol}{joined}"


@dataclass(frozen=True, slots=True)
class Selector:
    """An AND of requirements, sorted by key (stable for equal keys).

    `selectable` is False only for `nothing()`, the selector that matches no
    label set at all."""

    requirements: tuple[Requirement, ...] = ()
    selectable: bool = field(default=True, kw_only=True)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.requirements, key=lambda r: r.key))
        object.__setattr__(self, "requirements", ordered)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every requirement matches the label set."""
        if not self.selectable:
            return False
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        """Whether the selector restricts nothing (it is `everything()`)."""
        return self.selectable and not self.requirements

    def add(self, *requirements: Requirement) -> Selector:
        """A new selector with more requirements (nothing() stays nothing())."""
        if not self.selectable:
            return self
        return Selector((*self.requirements, *requirements))

    def requires_exact_match(self, label: str) -> str | None:
        """The single value the selector requires for `label`, if it does
        (`=`, `==` or a one-value `in` on the first requirement for that key);
        lets a lister turn `spec.nodeName=x`-style selectors into index lookups."""
        for r in self.requirements:
            if r.key == label:
                exact = (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN)
                if r.operator in exact and len(r.values) == 1:
                    return r.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def everything() -> Selector:
    """The selector that matches every label set."""
    return Selector()


def nothing() -> Selector:
    """The selector that matches no label set."""
    return Selector(selectable=False)


def new_requirement(key: str, operator: str, values: Iterable[str] | None = None) -> Requirement:
    """A validated requirement (Kubernetes' NewRequirement). In/NotIn need at
    least one value, =/==/!= exactly one, Exists/DoesNotExist none, Gt/Lt one
    integer; the key must be a qualified name and the values label values.
    Raises ValueError listing every problem."""
    vals = None if values is None else list(values)
    given = vals or []
    errs: list[str] = []
    if key_errs := is_qualified_name(key):
        errs.append(_invalid("key", go_quote(key), "; ".join(key_errs)))
    op = operator
    count_problem = ""
    if op in (Operator.IN, Operator.NOT_IN):
        if not given:
            count_problem = "for 'in', 'notin' operators, values set can't be empty"
    elif op in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS):
        if len(given) != 1:
            count_problem = "exact-match compatibility requires one single value"
    elif op in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
        if given:
            count_problem = "values set must be empty for exists and does not exist"
    elif op in (Operator.GREATER_THAN, Operator.LESS_THAN):
        if len(given) != 1:
            count_problem = "for 'Gt', 'Lt' operators, exactly one value is required"
    else:
        supported = ", ".join(go_quote(o) for o in _VALID_OPERATORS)
        errs.append(f"operator: Unsupported value: {go_quote(op)}: supported values: {supported}")
    if count_problem:
        errs.append(_invalid("values", _go_list(vals), count_problem))
    if op in (Operator.GREATER_THAN, Operator.LESS_THAN):
        for i, v in enumerate(given):
            if _parse_int64(v) is None:
                errs.append(
                    _invalid(
                        f"values[{i}]",
                        go_quote(v),
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    )
                )
    for i, v in enumerate(given):
        if value_errs := is_valid_label_value(v):
            errs.append(_invalid(f"values[{i}][{key}]", go_quote(v), "; ".join(value_errs)))
    if errs:
        raise ValueError(_aggregate(errs))
    return Requirement(key, _as_operator(op), tuple(given))


def selector_from_set(labels: Mapping[str, str] | None) -> Selector:
    """A selector matching exactly these labels (`k=v` for each); no
    validation. None or an empty mapping gives everything()."""
    if not labels:
        return everything()
    return Selector(tuple(Requirement(k, Operator.EQUALS, (v,)) for k, v in labels.items()))


def validated_selector_from_set(labels: Mapping[str, str] | None) -> Selector:
    """Like selector_from_set, but keys and values are validated first."""
    if not labels:
        return everything()
    return Selector(tuple(new_requirement(k, Operator.EQUALS, [v]) for k, v in labels.items()))


def selector_from_label_selector(selector: LabelSelector | None) -> Selector:
    """A meta/v1 LabelSelector as a Selector (metav1.LabelSelectorAsSelector):
    None selects nothing, an empty one everything; matchLabels become `=`
    requirements and matchExpressions In/NotIn/Exists/DoesNotExist ones."""
    if selector is None:
        return nothing()
    if not selector.match_labels and not selector.match_expressions:
        return everything()
    requirements = [
        new_requirement(k, Operator.EQUALS, [v]) for k, v in sorted(selector.match_labels.items())
    ]
    for expr in selector.match_expressions:
        op = _LABEL_SELECTOR_OPERATORS.get(expr.operator)
        if op is None:
            raise ValueError(f"{go_quote(expr.operator)} is not a valid label selector operator")
        requirements.append(new_requirement(expr.key, op, list(expr.values) or None))
    return Selector(tuple(requirements))


def parse_selector(selector: str) -> Selector:
    """Parse Kubernetes' label selector syntax; raises ValueError when invalid."""
    return Selector(tuple(_Parser(selector).parse()))


# --- label set helpers (Kubernetes' labels.Set) ---


def labels_to_string(labels: Mapping[str, str]) -> str:
    """`k=v` pairs sorted and joined by commas (Kubernetes' Set.String())."""
    return ",".join(sorted(f"{k}={v}" for k, v in labels.items()))


def format_labels(labels: Mapping[str, str] | None) -> str:
    """labels_to_string, or `<none>` for no labels (as kubectl shows them)."""
    return labels_to_string(labels or {}) or "<none>"


def conflicts(labels1: Mapping[str, str], labels2: Mapping[str, str]) -> bool:
    """Whether some key is in both with different values."""
    return any(k in labels2 and labels2[k] != v for k, v in labels1.items())


def merge(labels1: Mapping[str, str], labels2: Mapping[str, str]) -> dict[str, str]:
    """Both label sets in one; labels2 wins on conflicts."""
    return {**labels1, **labels2}


def convert_selector_to_labels_map(selector: str) -> dict[str, str]:
    """Read `k=v,k2=v2` (equality only, blanks trimmed) into a label map,
    validating keys and values (Kubernetes' ConvertSelectorToLabelsMap)."""
    result: dict[str, str] = {}
    if not selector:
        return result
    for term in selector.split(","):
        parts = term.split("=")
        if len(parts) != 2:
            raise ValueError(f"invalid selector: [{' '.join(parts)}]")
        key = parts[0].strip()
        if errs := is_qualified_name(key):
            raise ValueError(f"invalid label key {go_quote(key)}: {'; '.join(errs)}")
        value = parts[1].strip()
        if errs := is_valid_label_value(value):
            at = f"{go_quote(value)}: at key: {go_quote(key)}"
            raise ValueError(f"invalid label value: {at}: {'; '.join(errs)}")
        result[key] = value
    return result


# --- error wording ---


def _invalid(path: str, bad_value: str, detail: str) -> str:
    prefix = f"{path}: " if path else ""
    return f"{prefix}Invalid value: {bad_value}: {detail}"


def _go_list(values: list[str] | None) -> str:
    """A string list as Go's %#v prints it."""
    if values is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(go_quote(v) for v in values) + "}"


def _aggregate(errs: list[str]) -> str:
    """Several messages as Kubernetes' error aggregate prints them."""
    unique = list(dict.fromkeys(errs))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"


def _as_operator(op: str) -> str:
    try:
        return Operator(op)
    except ValueError:
        return op


def _parse_int64(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 10, 64), or None when it fails."""
    unsigned = text[1:] if text[:1] in ("+", "-") else text
    if not unsigned or not all("0" <= ch <= "9" for ch in unsigned):
        return None
    number = int(text)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


# --- the lexer and parser, token for token as Kubernetes' ---


class _Token(IntEnum):
    ERROR = 0
    END = 1
    CLOSE_PAR = 2
    COMMA = 3
    DOES_NOT_EXIST = 4
    DOUBLE_EQUALS = 5
    EQUALS = 6
    GREATER_THAN = 7
    IDENTIFIER = 8
    IN = 9
    LESS_THAN = 10
    NOT_EQUALS = 11
    NOT_IN = 12
    OPEN_PAR = 13


_LITERAL_TOKENS: Final = {
    ")": _Token.CLOSE_PAR,
    ",": _Token.COMMA,
    "!": _Token.DOES_NOT_EXIST,
    "==": _Token.DOUBLE_EQUALS,
    "=": _Token.EQUALS,
    ">": _Token.GREATER_THAN,
    "in": _Token.IN,
    "<": _Token.LESS_THAN,
    "!=": _Token.NOT_EQUALS,
    "notin": _Token.NOT_IN,
    "(": _Token.OPEN_PAR,
}
_WHITESPACE: Final = frozenset(" \t\r\n")
_SPECIAL: Final = frozenset("=!(),><")
_EOF: Final = "\x00"  # like Kubernetes' lexer, a NUL reads as the end of input


class _Lexer:
    def __init__(self, text: str) -> None:
        self._s = text
        self._pos = 0

    def _read(self) -> str:
        if self._pos < len(self._s):
            ch = self._s[self._pos]
            self._pos += 1
            return ch
        return _EOF

    def _unread(self) -> None:
        self._pos -= 1

    def lex(self) -> tuple[_Token, str]:
        ch = self._read()
        while ch in _WHITESPACE:
            ch = self._read()
        if ch == _EOF:
            return _Token.END, ""
        self._unread()
        if ch in _SPECIAL:
            return self._special()
        return self._identifier()

    def _identifier(self) -> tuple[_Token, str]:
        buf: list[str] = []
        while True:
            ch = self._read()
            if ch == _EOF:
                break
            if ch in _SPECIAL or ch in _WHITESPACE:
                self._unread()
                break
            buf.append(ch)
        text = "".join(buf)
        return _LITERAL_TOKENS.get(text, _Token.IDENTIFIER), text

    def _special(self) -> tuple[_Token, str]:
        # The longest run of special characters that is an operator.
        buf = ""
        last: tuple[_Token, str] | None = None
        while True:
            ch = self._read()
            if ch == _EOF:
                break
            if ch not in _SPECIAL:
                self._unread()
                break
            buf += ch
            token = _LITERAL_TOKENS.get(buf)
            if token is not None:
                last = (token, buf)
            elif last is not None:
                self._unread()
                break
        if last is None:
            return _Token.ERROR, f"error expected: keyword found '{buf}'"
        return last


_VALUES_CONTEXT: Final = True
_OPERATOR_CONTEXT: Final = False


class _Parser:
    def __init__(self, text: str) -> None:
        lexer = _Lexer(text)
        self._items: list[tuple[_Token, str]] = []
        while True:
            item = lexer.lex()
            self._items.append(item)
            if item[0] == _Token.END:
                break
        self._pos = 0

    def _lookahead(self, values: bool) -> tuple[_Token, str]:
        tok, lit = self._items[self._pos]
        # In a value position, the keywords 'in' and 'notin' are plain words.
        if values and tok in (_Token.IN, _Token.NOT_IN):
            tok = _Token.IDENTIFIER
        return tok, lit

    def _consume(self, values: bool) -> tuple[_Token, str]:
        item = self._lookahead(values)
        self._pos += 1
        return item

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, lit = self._lookahead(_VALUES_CONTEXT)
            if tok == _Token.END:
                return requirements
            if tok not in (_Token.IDENTIFIER, _Token.DOES_NOT_EXIST):
                raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self._requirement())
            except ValueError as err:
                raise ValueError(f"unable to parse requirement: {err}") from None
            tok, lit = self._consume(_VALUES_CONTEXT)
            if tok == _Token.END:
                return requirements
            if tok != _Token.COMMA:
                raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")
            tok, lit = self._lookahead(_VALUES_CONTEXT)
            if tok not in (_Token.IDENTIFIER, _Token.DOES_NOT_EXIST):
                raise ValueError(f"found '{lit}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        key, op = self._key_and_inferred_operator()
        if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
            return new_requirement(key, op, [])
        op = self._operator()
        if op in (Operator.IN, Operator.NOT_IN):
            values = self._values()
        else:
            values = self._exact_value()
        return new_requirement(key, op, sorted(values))

    def _key_and_inferred_operator(self) -> tuple[str, str]:
        op = ""
        tok, lit = self._consume(_VALUES_CONTEXT)
        if tok == _Token.DOES_NOT_EXIST:
            op = Operator.DOES_NOT_EXIST
            tok, lit = self._consume(_VALUES_CONTEXT)
        if tok != _Token.IDENTIFIER:
            raise ValueError(f"found '{lit}', expected: identifier")
        if errs := is_qualified_name(lit):
            raise ValueError(_invalid("", go_quote(lit), "; ".join(errs)))
        following, _ = self._lookahead(_VALUES_CONTEXT)
        if following in (_Token.END, _Token.COMMA) and op != Operator.DOES_NOT_EXIST:
            op = Operator.EXISTS
        return lit, op

    def _operator(self) -> str:
        tok, lit = self._consume(_OPERATOR_CONTEXT)
        op = {
            _Token.IN: Operator.IN,
            _Token.EQUALS: Operator.EQUALS,
            _Token.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS,
            _Token.GREATER_THAN: Operator.GREATER_THAN,
            _Token.LESS_THAN: Operator.LESS_THAN,
            _Token.NOT_IN: Operator.NOT_IN,
            _Token.NOT_EQUALS: Operator.NOT_EQUALS,
        }.get(tok)
        if op is None:
            expected = ", ".join(_BINARY_OPERATORS)
            raise ValueError(f"found '{lit}', expected: {expected}")
        return op

    def _values(self) -> set[str]:
        tok, lit = self._consume(_VALUES_CONTEXT)
        if tok != _Token.OPEN_PAR:
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self._lookahead(_VALUES_CONTEXT)
        if tok in (_Token.IDENTIFIER, _Token.COMMA):
            values = self._identifier_list()
            if self._consume(_VALUES_CONTEXT)[0] != _Token.CLOSE_PAR:
                raise ValueError(f"found '{lit}', expected: ')'")
            return values
        if tok == _Token.CLOSE_PAR:  # "()" is the one empty value
            self._consume(_VALUES_CONTEXT)
            return {""}
        raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")

    def _identifier_list(self) -> set[str]:
        # Empty entries ("(,a)", "(a,,b)", "(a,)") are the empty value.
        values: set[str] = set()
        while True:
            tok, lit = self._consume(_VALUES_CONTEXT)
            if tok == _Token.IDENTIFIER:
                values.add(lit)
                following, following_lit = self._lookahead(_VALUES_CONTEXT)
                if following == _Token.CLOSE_PAR:
                    return values
                if following != _Token.COMMA:
                    raise ValueError(f"found '{following_lit}', expected: ',' or ')'")
            elif tok == _Token.COMMA:
                if not values:
                    values.add("")
                following, _ = self._lookahead(_VALUES_CONTEXT)
                if following == _Token.CLOSE_PAR:
                    values.add("")
                    return values
                if following == _Token.COMMA:
                    values.add("")
            else:
                raise ValueError(f"found '{lit}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        tok, _ = self._lookahead(_VALUES_CONTEXT)
        if tok in (_Token.END, _Token.COMMA):
            return {""}
        tok, lit = self._consume(_VALUES_CONTEXT)
        if tok == _Token.IDENTIFIER:
            return {lit}
        raise ValueError(f"found '{lit}', expected: identifier")

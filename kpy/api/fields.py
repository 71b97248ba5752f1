"""Field selectors: `spec.nodeName=node-1,status.phase!=Running`.

Contract (Kubernetes' apimachinery `fields` package):

- A field selector is an AND of terms `field=value`, `field==value` (the same)
  or `field!=value`, separated by commas. The field part is taken verbatim up
  to the first operator; in the value, `\\,`, `\\=` and `\\\\` stand for a
  literal comma, equals sign and backslash, and any other backslash sequence or
  an unescaped `,`/`=` is an error. Errors are `ValueError`s worded as
  Kubernetes words them.
- Terms are kept in the order Kubernetes keeps them (sorted as written), and
  `str()` prints them that way with values re-escaped, so parsing `str(s)`
  gives back an equal selector. An empty term, and a term whose field and value
  are both empty (`=`), selects everything and is dropped.
- Matching reads a missing field as the empty string, as Kubernetes does:
  `x=` matches objects without `x`, and `x!=y` matches them too.
- `requires_exact_match(field)` returns the value an `=` term pins the field
  to, so a caller can turn `spec.nodeName=X` into an index lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "EQUALS",
    "NOT_EQUALS",
    "FieldSelector",
    "Term",
    "and_selectors",
    "escape_value",
    "everything",
    "one_term_equal",
    "parse_field_selector",
    "selector_from_set",
    "unescape_value",
]

EQUALS: Final = "="
NOT_EQUALS: Final = "!="

# Tried in this order at each position: "==" before "=" so that the value of
# `a==b` does not start with "=".
_OPERATORS: Final = ("!=", "==", "=")

TransformFunc = Callable[[str, str], tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Term:
    """One `field=value` or `field!=value` condition."""

    field: str
    operator: str  # EQUALS or NOT_EQUALS
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        have = fields.get(self.field, "")
        return have == self.value if self.operator == EQUALS else have != self.value

    def __str__(self) -> str:
        op = "!=" if self.operator == NOT_EQUALS else "="
        return f"{self.field}{op}{escape_value(self.value)}"


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """An AND of terms. The empty selector matches everything."""

    terms: tuple[Term, ...] = ()

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether every term holds for the object's fields."""
        return all(t.matches(fields) for t in self.terms)

    def empty(self) -> bool:
        """Whether the selector restricts nothing."""
        return not self.terms

    def requires_exact_match(self, field: str) -> str | None:
        """The value the first `field=value` term requires, or None."""
        for t in self.terms:
            if t.field == field and t.operator == EQUALS:
                return t.value
        return None

    def transform(self, fn: TransformFunc) -> FieldSelector:
        """A new selector with `fn(field, value)` applied to every term; a term
        mapped to ("", "") is dropped (Kubernetes' Transform). `fn` may raise."""
        terms: list[Term] = []
        for t in self.terms:
            field, value = fn(t.field, t.value)
            if field or value:
                terms.append(Term(field, t.operator, value))
        return FieldSelector(tuple(terms))

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)


def everything() -> FieldSelector:
    """The selector that matches every object."""
    return FieldSelector()


def one_term_equal(field: str, value: str) -> FieldSelector:
    """`field=value`."""
    return FieldSelector((Term(field, EQUALS, value),))


def selector_from_set(fields: Mapping[str, str] | None) -> FieldSelector:
    """`field=value` for every entry, sorted by field; empty -> everything()."""
    if not fields:
        return everything()
    return FieldSelector(tuple(Term(f, EQUALS, v) for f, v in sorted(fields.items())))


def and_selectors(*selectors: FieldSelector) -> FieldSelector:
    """All the terms of all the selectors."""
    return FieldSelector(tuple(t for s in selectors for t in s.terms))


def escape_value(value: str) -> str:
    """Escape `\\`, `,` and `=` so a literal value can sit in a selector."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_value(value: str) -> str:
    """The literal value of an escaped selector value; ValueError on a bad
    escape sequence or an unescaped `,` or `=`."""
    if not any(ch in value for ch in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for ch in value:
        if in_slash:
            if ch not in "\\,=":
                raise ValueError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch in ",=":
            # Kubernetes prints the rune with %v, that is as its number.
            raise ValueError(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if in_slash:
        raise ValueError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(selector: str) -> FieldSelector:
    """Parse `f=v,f2!=v2`; raises ValueError when invalid."""
    terms: list[Term] = []
    for part in sorted(_split_terms(selector)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise ValueError(f"invalid selector: '{selector}'; can't understand '{part}'")
        field, op, raw_value = split
        value = unescape_value(raw_value)
        if field or value:  # "=" alone selects everything
            terms.append(Term(field, NOT_EQUALS if op == "!=" else EQUALS, value))
    return FieldSelector(tuple(terms))


def _split_terms(selector: str) -> list[str]:
    """The comma-separated terms; an escaped comma stays inside its term, with
    its backslash."""
    if not selector:
        return []
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, ch in enumerate(selector):
        if in_slash:
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """(field, operator, raw value) split at the first operator, or None."""
    for i in range(len(term)):
        for op in _OPERATORS:
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None

"""The columns `kpyctl get` adds to or puts in place of a kind's own, and
the order of its rows: `-L` label columns and `--show-labels`,
`-o custom-columns` (and its file form), and `--sort-by`.

Contracts:
- Pure functions over the JSON form of objects (`codec.encode_object`),
  since custom columns and --sort-by are JSONPaths into that form, as in
  kubectl.
- A custom column prints what kubectl's does: several values joined by
  `,`, maps and lists as Go prints them (`map[k:v]`, `[a b]`), `<none>`
  when the path finds nothing.
- `sort_by` is stable and orders as kubectl's sorter: numbers numerically,
  strings in natural order, items without the field first.
- `crd_printer(columns)`: the table of a custom kind, from its CRD
  version's `additionalPrinterColumns`, as the API server's table
  convertor builds it and kubectl prints it: NAME, then each column
  (priority 0 by default, the others with `-o wide`), headers upper-cased;
  AGE (`.metadata.creationTimestamp`) only when the CRD defines no column.
  A cell is the first value the column's JSONPath finds, typed as the
  column says (`integer`, `number`, `boolean`, `string`; `date` prints as
  an age); a missing value, or one not of the column's type, is `<none>`.
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kpy.cli import _jsonpath
from kpy.cli._printers import NONE, Printer, human_duration

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "Column",
    "PrinterColumn",
    "crd_printer",
    "custom_column_cell",
    "format_labels",
    "go_sprint",
    "label_headers",
    "natural_key",
    "parse_custom_columns",
    "parse_custom_columns_file",
    "printer_cell",
    "sort_by",
]


# ------------------------------------------------------------------ label columns


def format_labels(labels: dict[str, str]) -> str:
    """`a=b,c=d` sorted by key, as --show-labels prints them; `<none>` if empty."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or NONE


def label_headers(keys: Sequence[str]) -> list[str]:
    """The headers `-L` adds: each key's last path segment, upper-cased."""
    return [key.rsplit("/", 1)[-1].upper() for key in keys]


# ------------------------------------------------------------------ custom columns


@dataclass(frozen=True, slots=True)
class Column:
    """One column of `-o custom-columns`: its header and its JSONPath."""

    header: str
    template: _jsonpath.Template


def parse_custom_columns(spec: str) -> list[Column]:
    """`NAME:.metadata.name,IP:.status.podIP`; ValueError in kubectl's words."""
    columns = []
    for part in spec.split(","):
        header, sep, path = part.partition(":")
        if not sep or not header or not path:
            raise ValueError(
                f"unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>"
            )
        columns.append(Column(header, _jsonpath.parse(_jsonpath.relaxed(path))))
    return columns


def parse_custom_columns_file(text: str) -> list[Column]:
    """The file form: a line of headers, then a line of paths, split on spaces."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 2:
        raise ValueError(
            f"unexpected custom-columns file: {len(lines)} lines, expected 2 "
            "(a line of headers, then a line of JSONPath expressions)"
        )
    headers, paths = lines[0].split(), lines[1].split()
    if len(headers) != len(paths):
        raise ValueError(
            f"expected {len(headers)} JSONPath expressions for the {len(headers)} headers, "
            f"found {len(paths)}"
        )
    return [
        Column(h, _jsonpath.parse(_jsonpath.relaxed(p)))
        for h, p in zip(headers, paths, strict=True)
    ]


def custom_column_cell(column: Column, data: Any) -> str:
    """A value as kubectl's custom-columns prints it: several joined by `,`,
    maps and lists in Go's `map[k:v]` / `[a b]` form, `<none>` if missing."""
    values = [v for result in column.template.results(data) for v in result]
    return ",".join(go_sprint(v) for v in values) or NONE


def go_sprint(value: Any) -> str:
    """A JSON value as Go's fmt.Sprint prints the decoded value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_sprint(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_sprint(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ------------------------------------------------------------------ --sort-by


def sort_by(
    items: Sequence[Any], template: _jsonpath.Template, data_of: Callable[[Any], Any]
) -> list[Any]:
    """The items ordered by the value at `template` (kubectl's --sort-by):
    numbers numerically, strings in natural order (`web-2` before
    `web-10`); items without the field first. ValueError when no item has it."""
    keyed = []
    for item in items:
        values = [v for result in template.results(data_of(item)) for v in result]
        keyed.append((values[0] if values else None, item))
    if keyed and all(value is None for value, _ in keyed):
        raise ValueError(
            f"couldn't find any field with path {template.source!r} in the list of objects"
        )
    ordered = sorted(keyed, key=lambda pair: _sort_key(pair[0]))
    return [item for _, item in ordered]


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, ())
    if isinstance(value, bool):
        return (1, (int(value),))
    if isinstance(value, int | float):
        return (2, (value,))
    if isinstance(value, str):
        return (3, natural_key(value))
    return (4, (go_sprint(value),))


def natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """A key sorting runs of digits by their number: `a2` before `a10`."""
    parts = re.findall(r"\d+|\D+", text)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


# ------------------------------------------------------------------ CRD printer columns


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    """One of a CRD version's `additionalPrinterColumns`."""

    name: str
    type: str  # integer, number, string, boolean or date
    json_path: str  # `.spec.replicas`
    priority: int = 0


_AGE_COLUMN = PrinterColumn("Age", "date", ".metadata.creationTimestamp")


def crd_printer(columns: Iterable[PrinterColumn], data_of: Callable[[Any], Any]) -> Printer:
    """The `kpyctl get` table of a custom kind whose CRD version has these
    printer columns (see the module docstring); `data_of(obj)` is the
    object's JSON form."""
    chosen = list(columns) or [_AGE_COLUMN]
    default = [c for c in chosen if c.priority == 0]
    wide = [c for c in chosen if c.priority != 0]
    templates = [_column_template(c.json_path) for c in default + wide]

    def row(obj: Any, now: float) -> list[str]:
        data = data_of(obj)
        cells = [str(obj.metadata.name)]
        for column, template in zip(default + wide, templates, strict=True):
            cells.append(printer_cell(column.type, _first(template, data), now))
        return cells

    return Printer(
        ("NAME", *(c.name.upper() for c in default)),
        tuple(c.name.upper() for c in wide),
        row,
        # -o wide shows every column where the CRD puts it
        wide_order=("NAME", *(c.name.upper() for c in chosen)) if wide else (),
    )


_MISSING: Any = object()


def _column_template(path: str) -> _jsonpath.Template | None:
    try:
        return _jsonpath.parse("{" + path + "}")
    except _jsonpath.JSONPathError:
        return None  # the API server checks CRDs' paths; an odd one prints <none>


def _first(template: _jsonpath.Template | None, data: Any) -> Any:
    if template is None:
        return _MISSING
    try:
        results = template.results(data)
    except _jsonpath.JSONPathError:
        return _MISSING
    for result in results:
        for value in result:
            return value
    return _MISSING


def printer_cell(column_type: str, value: Any, now: float) -> str:
    """A printer column's cell for `value` (`_MISSING`-like sentinels and
    None print as `<none>`), as the API server types it and kubectl prints
    it: integers truncated, numbers as Go prints a float64, a `date` as the
    age of the timestamp, a value of another type than the column's `<none>`."""
    if value is _MISSING or value is None:
        return NONE
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if column_type == "integer" and is_number:
        return str(int(value))
    if column_type == "number" and is_number:
        return _go_float(float(value))
    if column_type == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if column_type == "string":
        return go_sprint(value)
    if column_type == "date" and isinstance(value, str):
        at = _rfc3339(value)
        return "<invalid>" if at is None else human_duration(now - at)
    return NONE


def _go_float(value: float) -> str:
    """A float64 as Go's %v prints it: `2`, `2.5`, `1e+21`."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if not e:
        return text
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}e{sign}{exponent.lstrip('+-').rjust(2, '0')}"


def _rfc3339(text: str) -> float | None:
    try:
        at = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.UTC)
    return at.timestamp()

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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kpy.cli import _jsonpath
from kpy.cli._printers import NONE

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "Column",
    "custom_column_cell",
    "format_labels",
    "go_sprint",
    "label_headers",
    "natural_key",
    "parse_custom_columns",
    "parse_custom_columns_file",
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

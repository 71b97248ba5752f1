"""kubectl's JSONPath (k8s.io/client-go/util/jsonpath) over plain JSON data.

A template is text with actions in braces:
`kind is {.kind}`, `{.items[*].metadata.name}`,
`{range .items[*]}{.metadata.name}{"\\t"}{.status.podIP}{"\\n"}{end}`.

Contracts:
- `parse(template)` returns a `Template` or raises `JSONPathError` with
  kubectl's wording (`unclosed action`, `not in range, nothing to end`, ...).
  Parsing is separate from evaluation, so one template prints many objects.
- `Template.execute(data)` renders the template against the data (dicts,
  lists, str, int, float, bool, None as `json.loads` gives them); the data
  is never mutated. Missing keys produce nothing, as `kubectl get -o
  jsonpath` (which allows missing keys) prints them.
- `Template.results(data)` is the list of values of each action, for
  `custom-columns` and `--sort-by`.
- Paths: `$` is the root, `@` (or a leading `.`) the current object
  (the item inside `range`); `.name` and `['name']` children (`\\.` escapes a
  dot inside a name); `..name` recursive descent; `*` and `[*]` wildcards;
  `[i]`, `[-1]`, `[start:end:step]` subscripts; `[0,2]` and `['a','b']`
  unions; `[?(@.type=="Ready")]` filters with `==`, `!=`, `<`, `<=`, `>`,
  `>=` or a bare path (it exists); quoted strings `{"\\n"}` and `{'\\t'}`
  with Go's escapes.
- Several values of one action are separated by one space; maps and lists
  print as compact JSON with sorted keys, as kubectl does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["JSONPathError", "Template", "format_value", "parse", "relaxed"]


class JSONPathError(ValueError):
    """A template that cannot be parsed, or a filter that cannot be evaluated."""


# ------------------------------------------------------------------ the syntax tree


@dataclass(frozen=True, slots=True)
class _Field:
    name: str


@dataclass(frozen=True, slots=True)
class _Recursive:
    """`..`: this value and every value below it."""


@dataclass(frozen=True, slots=True)
class _Wildcard:
    pass


@dataclass(frozen=True, slots=True)
class _Slice:
    start: int | None
    end: int | None
    step: int | None
    single: bool  # `[i]` rather than `[i:j]`


@dataclass(frozen=True, slots=True)
class _Union:
    """`[0,2]`, `['metadata.name','status.capacity']`: each part is a path of
    its own, evaluated over every current value, results part after part."""

    parts: tuple[tuple[Step, ...], ...]


@dataclass(frozen=True, slots=True)
class _Filter:
    left: _Path
    op: str  # "" when the filter only asks that the path exists
    right: _Path | None
    literal: Any


Step = _Field | _Recursive | _Wildcard | _Slice | _Union | _Filter


@dataclass(frozen=True, slots=True)
class _Path:
    root: bool  # `$`: from the template's data, not the current object
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class _Text:
    text: str


@dataclass(frozen=True, slots=True)
class _Action:
    path: _Path


@dataclass(slots=True)
class _Range:
    path: _Path
    body: list[_Node] = field(default_factory=list)


_Node = _Text | _Action | _Range


# ------------------------------------------------------------------ parsing


def parse(template: str) -> Template:
    """The template compiled; JSONPathError names what is wrong."""
    nodes: list[_Node] = []
    stack: list[list[_Node]] = [nodes]
    for kind, text in _split(template):
        if kind == "text":
            stack[-1].append(_Text(text))
            continue
        inner = text.strip()
        if inner == "end":
            if len(stack) == 1:
                raise JSONPathError(
                    f"error parsing jsonpath {template}, not in range, nothing to end"
                )
            stack.pop()
        elif inner.startswith("range ") or inner == "range":
            rng = _Range(_parse_path(inner[len("range") :].strip(), template))
            stack[-1].append(rng)
            stack.append(rng.body)
        elif inner[:1] in ("'", '"'):
            stack[-1].append(_Text(_unquote(inner, template)))
        else:
            stack[-1].append(_Action(_parse_path(inner, template)))
    if len(stack) > 1:
        raise JSONPathError(f"error parsing jsonpath {template}, unclosed range")
    return Template(template, nodes)


def relaxed(expression: str) -> str:
    """kubectl's RelaxedJSONPathExpression: `.a.b`, `a.b` and `{.a.b}` all
    mean `{.a.b}` (for custom-columns and --sort-by)."""
    if not expression:
        return expression
    match = re.fullmatch(r"\{?\.?([^{}]+)\}?", expression)
    if match is None:
        raise JSONPathError(
            f"unexpected path string, expected a 'name1.name2' or '.name1.name2' "
            f"or '{{name1.name2}}' or '{{.name1.name2}}': {expression}"
        )
    body = match.group(1)
    if body.startswith(("[", "$", "@")):
        return "{" + body + "}"
    return "{." + body + "}"


def _split(template: str) -> Iterator[tuple[str, str]]:
    """("text", literal) and ("action", inside of braces) in order."""
    i = 0
    while i < len(template):
        start = template.find("{", i)
        if start < 0:
            yield "text", template[i:]
            return
        if start > i:
            yield "text", template[i:start]
        end = _closing_brace(template, start + 1)
        if end < 0:
            raise JSONPathError(f"error parsing jsonpath {template}, unclosed action")
        yield "action", template[start + 1 : end]
        i = end + 1


def _closing_brace(text: str, i: int) -> int:
    quote = ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "}":
            return i
        i += 1
    return -1


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def _unquote(text: str, template: str) -> str:
    quote = text[0]
    if len(text) < 2 or text[-1] != quote:
        raise JSONPathError(f"error parsing jsonpath {template}, unterminated quoted string")
    out: list[str] = []
    body = text[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class _PathParser:
    """A cursor over one path expression."""

    def __init__(self, text: str, template: str) -> None:
        self.text = text
        self.template = template
        self.i = 0

    def error(self, what: str) -> JSONPathError:
        return JSONPathError(f"error parsing jsonpath {self.template}, {what}")

    def peek(self, n: int = 1) -> str:
        return self.text[self.i : self.i + n]

    def path(self, stop: str = "") -> _Path:
        root = False
        if self.peek() == "$":
            root = True
            self.i += 1
        elif self.peek() == "@":
            self.i += 1
        steps: list[Step] = []
        if self.i < len(self.text) and self.text[self.i] not in ".[" + stop:
            steps.append(_Field(self.name()))  # a bare `{kind}`
        while self.i < len(self.text) and self.text[self.i] not in stop:
            ch = self.text[self.i]
            if self.peek(2) == "..":
                self.i += 2
                steps.append(_Recursive())
                if self.peek() == "*":
                    self.i += 1
                    steps.append(_Wildcard())
                elif self.peek() != "[":
                    steps.append(_Field(self.name()))
            elif ch == ".":
                self.i += 1
                if self.peek() == "*":
                    self.i += 1
                    steps.append(_Wildcard())
                elif self.i < len(self.text) and self.text[self.i] not in ".[" + stop:
                    steps.append(_Field(self.name()))
            elif ch == "[":
                steps.append(self.bracket())
            elif ch.isspace():
                self.i += 1
            else:
                raise self.error(f"unrecognized character in action: {ch!r}")
        return _Path(root, tuple(steps))

    def name(self) -> str:
        out: list[str] = []
        while self.i < len(self.text):
            ch = self.text[self.i]
            if ch == "\\" and self.i + 1 < len(self.text):
                out.append(self.text[self.i + 1])
                self.i += 2
                continue
            if ch in ".[]()=!<>, \t" or ch in "'\"":
                break
            out.append(ch)
            self.i += 1
        if not out:
            raise self.error("a field name is expected")
        return "".join(out)

    def bracket(self) -> Step:
        end = self._closing_bracket()
        inner = self.text[self.i + 1 : end].strip()
        self.i = end + 1
        if inner == "*":
            return _Wildcard()
        if inner.startswith("?"):
            return self.filter(inner[1:].strip())
        parts = [p.strip() for p in _split_top(inner, ",")]
        parsed: list[tuple[Step, ...]] = []
        for part in parts:
            if part[:1] in ("'", '"'):
                if len(part) < 2 or part[-1] != part[0]:
                    raise self.error(f"unterminated quoted key {part}")
                # kubectl reads ['a.b'] as {.a.b}: dots split, `\.` does not
                parsed.append(_PathParser("." + part[1:-1], self.template).path().steps)
            else:
                parsed.append((self.subscript(part),))
        return _Union(tuple(parsed))

    def _closing_bracket(self) -> int:
        depth, quote, i = 0, "", self.i
        while i < len(self.text):
            ch = self.text[i]
            if quote:
                if ch == "\\":
                    i += 1
                elif ch == quote:
                    quote = ""
            elif ch in ("'", '"'):
                quote = ch
            elif ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
                if depth == 0:
                    return i
            i += 1
        raise self.error("unclosed array expect ]")

    def subscript(self, text: str) -> _Slice:
        pieces = text.split(":")
        if len(pieces) > 3:
            raise self.error(f"invalid array index {text}")
        try:
            numbers = [int(p) if p.strip() else None for p in pieces]
        except ValueError:
            raise self.error(f"invalid array index {text}") from None
        if len(numbers) == 1:
            if numbers[0] is None:
                raise self.error("invalid array index []")
            return _Slice(numbers[0], None, None, single=True)
        step = numbers[2] if len(numbers) == 3 else None
        if step == 0:
            raise self.error(f"invalid array index {text}: step must not be 0")
        return _Slice(numbers[0], numbers[1], step, single=False)

    def filter(self, text: str) -> _Filter:
        if not (text.startswith("(") and text.endswith(")")):
            raise self.error(f"invalid filter {text}, expected ?(...)")
        body = text[1:-1].strip()
        match = None
        quote = ""
        for i, ch in enumerate(body):
            if quote:
                if ch == quote:
                    quote = ""
                continue
            if ch in ("'", '"'):
                quote = ch
                continue
            for op in ("==", "!=", "<=", ">=", "<", ">"):
                if body.startswith(op, i):
                    match = (i, op)
                    break
            if match:
                break
        if match is None:
            return _Filter(_PathParser(body, self.template).path(), "", None, None)
        at, op = match
        left = _PathParser(body[:at].strip(), self.template).path()
        right_text = body[at + len(op) :].strip()
        if right_text[:1] in ("@", "$"):
            return _Filter(left, op, _PathParser(right_text, self.template).path(), None)
        return _Filter(left, op, None, self.literal(right_text))

    def literal(self, text: str) -> Any:
        if text[:1] in ("'", '"'):
            return _unquote(text, self.template)
        if text in ("true", "false"):
            return text == "true"
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            raise self.error(f"invalid filter value {text}") from None


def _split_top(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
        elif ch == sep:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _parse_path(text: str, template: str) -> _Path:
    if not text:
        return _Path(False, ())
    return _PathParser(text, template).path()


# ------------------------------------------------------------------ evaluation


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template (see the module docstring)."""

    source: str
    nodes: list[_Node]

    def execute(self, data: Any) -> str:
        out: list[str] = []
        _render(self.nodes, data, data, out)
        return "".join(out)

    def results(self, data: Any) -> list[list[Any]]:
        """The values of each action at the top level, in order."""
        return [_eval(n.path, data, data) for n in self.nodes if isinstance(n, _Action)]


def _render(nodes: list[_Node], root: Any, current: Any, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Action):
            out.append(" ".join(format_value(v) for v in _eval(node.path, root, current)))
        else:
            for item in _eval(node.path, root, current):
                _render(node.body, root, item, out)


def _eval(path: _Path, root: Any, current: Any) -> list[Any]:
    return _eval_steps(path.steps, [root if path.root else current], root)


def _eval_steps(steps: tuple[Step, ...], values: list[Any], root: Any) -> list[Any]:
    for step in steps:
        if isinstance(step, _Union):
            values = [v for part in step.parts for v in _eval_steps(part, values, root)]
        else:
            values = [v for value in values for v in _apply(step, value, root)]
    return values


def _apply(
    step: _Field | _Recursive | _Wildcard | _Slice | _Filter, value: Any, root: Any
) -> list[Any]:
    if isinstance(step, _Field):
        return [value[step.name]] if isinstance(value, dict) and step.name in value else []
    if isinstance(step, _Wildcard):
        if isinstance(value, dict):
            return list(value.values())
        return list(value) if isinstance(value, list) else []
    if isinstance(step, _Recursive):
        return list(_descend(value))
    if isinstance(step, _Slice):
        return _subscript(step, value)
    return _filter(step, value, root)


def _descend(value: Any) -> Iterator[Any]:
    yield value
    children = value.values() if isinstance(value, dict) else value
    if isinstance(value, dict | list):
        for child in children:
            yield from _descend(child)


def _subscript(step: _Slice, value: Any) -> list[Any]:
    if not isinstance(value, list):
        return []
    if step.single:
        index = step.start or 0
        if index < 0:
            index += len(value)
        return [value[index]] if 0 <= index < len(value) else []
    return value[step.start : step.end : step.step]


def _filter(step: _Filter, value: Any, root: Any) -> list[Any]:
    items = (
        value
        if isinstance(value, list)
        else list(value.values())
        if isinstance(value, dict)
        else []
    )
    kept = []
    for item in items:
        lefts = _eval(step.left, root, item)
        if not step.op:
            if lefts:
                kept.append(item)
            continue
        rights = _eval(step.right, root, item) if step.right is not None else [step.literal]
        if lefts and rights and _compare(lefts[0], step.op, rights[0]):
            kept.append(item)
    return kept


def _compare(left: Any, op: str, right: Any) -> bool:
    numbers = (int, float)
    both_numbers = (
        isinstance(left, numbers)
        and isinstance(right, numbers)
        and not isinstance(left, bool)
        and not isinstance(right, bool)
    )
    if op == "==":
        return bool(left == right) if both_numbers or type(left) is type(right) else False
    if op == "!=":
        return not (bool(left == right) if both_numbers or type(left) is type(right) else False)
    if not (both_numbers or (isinstance(left, str) and isinstance(right, str))):
        return False
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def format_value(value: Any) -> str:
    """One value as kubectl's JSONPath prints it: strings raw, booleans
    `true`/`false`, maps and lists as compact JSON with sorted keys."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        # Go's encoding/json escapes these for HTML safety; kubectl's output has them so.
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return str(value)

"""CEL validation rules (`x-kubernetes-validations`) of a structural schema.

Each rule is compiled once, when the schema's `Structural` is built, with
the `common-expression-language` package (CEL in Rust: a compiled program
evaluates in microseconds). At validation `self` is the value at the rule's
node and, on update, `oldSelf` the old value at the same place; a rule that
names `oldSelf` is a transition rule and runs only where an old value
exists (unless `optionalOldSelf`, when `oldSelf` is an optional).

Numbers reach CEL as the schema types them: a `number` field is a double
even when written `3`, an `integer` field is an int even when written `3.0`,
so `self.replicas + 1` stays an int.

Bounds: the library cannot be interrupted, so a rule is not run when its
nested comprehensions (`all`, `exists`, `map`, ...) over the largest list or
map in its value would cost more than Kubernetes' per-call limit; and any
failure of a rule (a missing key, an overflow, a panic) is an Invalid error
naming the rule, never a crash.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from typing import TYPE_CHECKING, Any

from kpy.api import errors
from kpy.api.crd._cellib import lib
from kpy.api.crd._errors import duplicate, forbidden, invalid, invalid_raw, not_supported, required
from kpy.api.crd._model import META_FIELDS, Rule, child_path, index_path, json_type
from kpy.api.errors import FieldError

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.api.crd._model import Node

# Kubernetes' celconfig.PerCallLimit: the most one rule may cost.
PER_CALL_LIMIT = 1_000_000
REASONS = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired")
_RULE_KEYS = frozenset(
    {"rule", "message", "messageExpression", "reason", "fieldPath", "optionalOldSelf"}
)
_MACRO_CALL = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*$")
_FIELD_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['((?:[^'\\]|\\.)*)'\]")
# CEL's reserved words: a property with such a name is `__name__` in a rule.
_RESERVED = frozenset(
    {
        *("true", "false", "null", "in", "as", "break", "const", "continue", "else", "for"),
        *("function", "if", "import", "let", "loop", "package", "namespace", "return", "var"),
        *("void", "while"),
    }
)
_ESCAPABLE = re.compile(r"^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$")
_ESCAPE = re.compile(r"__|[.\-/]")
_ESCAPES = {"__": "__underscores__", ".": "__dot__", "-": "__dash__", "/": "__slash__"}
_BLOCKED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


def compile_expression(source: str) -> Any:
    """Compile one CEL expression (the single place rules are compiled: tests count it)."""
    return lib().compile(source)


def compile_rules(raw: list[Any]) -> tuple[Rule, ...]:
    """The rules of one schema node (already checked by `rule_errors`)."""
    rules = []
    for entry in raw:
        source = entry["rule"].strip()
        program = compile_expression(source)
        expression = (entry.get("messageExpression") or "").strip()
        rules.append(
            Rule(
                source=source,
                program=program,
                message=(entry.get("message") or "").strip(),
                message_program=compile_expression(expression) if expression else None,
                reason=entry.get("reason") or "FieldValueInvalid",
                field_path=_normal_field_path(entry.get("fieldPath") or ""),
                uses_old_self="oldSelf" in program.variables(),
                optional_old_self=bool(entry.get("optionalOldSelf")),
                nesting=_nesting(source),
            )
        )
    return tuple(rules)


# ------------------------------------------------------------------ checking a CRD's rules


def rule_errors(
    raw: Any, schema: dict[str, Any], path: str, *, uncorrelatable: str | None
) -> list[FieldError]:
    """Every problem with the `x-kubernetes-validations` list `raw` of the
    node `schema` at `path`: missing or malformed fields, rules or message
    expressions that do not compile, `oldSelf` where no old value can be
    found (under the list or atomic map at `uncorrelatable`)."""
    if not isinstance(raw, list):
        return [invalid(path, json_type(raw), "must be an array")]
    errs: list[FieldError] = []
    for i, entry in enumerate(raw):
        at = index_path(path, i)
        if not isinstance(entry, dict):
            errs.append(invalid(at, json_type(entry), "must be an object"))
            continue
        errs += [
            FieldError(child_path(at, k), errors.UNKNOWN_FIELD, f'unknown field "{k}"')
            for k in entry
            if k not in _RULE_KEYS
        ]
        errs += _entry_errors(entry, schema, at, uncorrelatable)
    return errs


def _entry_errors(
    entry: dict[str, Any], schema: dict[str, Any], at: str, uncorrelatable: str | None
) -> list[FieldError]:
    errs: list[FieldError] = []
    texts = {k: entry.get(k, "") for k in ("rule", "message", "messageExpression", "fieldPath")}
    for key, value in texts.items():
        if not isinstance(value, str):
            errs.append(invalid(child_path(at, key), json_type(value), "must be a string"))
            texts[key] = ""
    rule, message = texts["rule"].strip(), texts["message"].strip()
    if not rule:
        errs.append(required(child_path(at, "rule"), "rule is not specified"))
    elif texts["message"] and not message:
        errs.append(
            invalid(
                child_path(at, "message"),
                texts["message"],
                "message must be non-empty if specified",
            )
        )
    elif "\n" in message or "\r" in message:
        errs.append(
            invalid(
                child_path(at, "message"), texts["message"], "message must not contain line breaks"
            )
        )
    elif "\n" in rule and not message:
        errs.append(
            required(
                child_path(at, "message"), "message must be specified if rule contains line breaks"
            )
        )
    if texts["messageExpression"] and not texts["messageExpression"].strip():
        detail = "messageExpression must be non-empty if specified"
        errs.append(required(child_path(at, "messageExpression"), detail))
    reason = entry.get("reason")
    if reason is not None and reason not in REASONS:
        errs.append(not_supported(child_path(at, "reason"), reason, REASONS))
    errs += _field_path_errors(texts["fieldPath"], schema, child_path(at, "fieldPath"))
    optional = entry.get("optionalOldSelf")
    if optional is not None and not isinstance(optional, bool):
        errs.append(
            invalid(child_path(at, "optionalOldSelf"), json_type(optional), "must be a boolean")
        )
    if rule:
        errs += _compile_errors(rule, entry, at, uncorrelatable)
    expression = texts["messageExpression"].strip()
    if expression:
        try:
            compile_expression(expression)
        except Exception as exc:
            detail = f"messageExpression compilation failed: {_compile_message(exc)}"
            errs.append(invalid(child_path(at, "messageExpression"), expression, detail))
    return errs


def _compile_errors(
    rule: str, entry: dict[str, Any], at: str, uncorrelatable: str | None
) -> list[FieldError]:
    try:
        program = compile_expression(rule)
    except Exception as exc:
        detail = f"compilation failed: {_compile_message(exc)}"
        return [invalid(child_path(at, "rule"), rule, detail)]
    uses_old_self = "oldSelf" in program.variables()
    if uses_old_self and uncorrelatable is not None:
        detail = (
            "oldSelf cannot be used on the uncorrelatable portion of the schema "
            f"within {uncorrelatable}"
        )
        return [invalid(child_path(at, "rule"), rule, detail)]
    if not uses_old_self and entry.get("optionalOldSelf") is not None:
        detail = "may not be set if oldSelf is not used in rule"
        return [invalid(child_path(at, "optionalOldSelf"), entry["optionalOldSelf"], detail)]
    return []


def _compile_message(exc: Exception) -> str:
    text = str(exc)
    start = text.find("ERROR:")
    return text[start:].split("\n", 1)[0] if start >= 0 else text


def _field_path_errors(field_path: str, schema: dict[str, Any], at: str) -> list[FieldError]:
    if not field_path:
        return []
    if not field_path.strip():
        return [invalid(at, field_path, "fieldPath must be non-empty if specified")]
    if "\n" in field_path or "\r" in field_path:
        return [invalid(at, field_path, "fieldPath must not contain line breaks")]
    if not _field_path_valid(field_path, schema):
        return [invalid(at, field_path, "fieldPath must be a valid path")]
    return []


def _field_steps(field_path: str) -> list[str] | None:
    steps, pos = [], 0
    for match in _FIELD_STEP.finditer(field_path):
        if match.start() != pos:
            return None
        steps.append(match.group(1) if match.group(1) is not None else match.group(2))
        pos = match.end()
    return steps if pos == len(field_path) and steps else None


def _field_path_valid(field_path: str, schema: dict[str, Any]) -> bool:
    steps = _field_steps(field_path)
    if steps is None:
        return False
    node: Any = schema
    for step in steps:
        props = node.get("properties") if isinstance(node, dict) else None
        if isinstance(props, dict) and step in props:
            node = props[step]
        elif isinstance(node, dict) and isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return False
    return True


def _normal_field_path(field_path: str) -> str:
    path = ""
    for step in _field_steps(field_path.strip()) or []:
        path = child_path(path, step)
    return path


def _nesting(source: str) -> int:
    """How deeply the rule nests comprehension macros (string literals skipped)."""
    opened: list[bool] = []
    depth = deepest = 0
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char in "'\"":
            i += 1
            while i < n and source[i] != char:
                i += 2 if source[i] == "\\" else 1
        elif char == "(":
            macro = _MACRO_CALL.search(source, max(0, i - 16), i) is not None
            opened.append(macro)
            depth += macro
            deepest = max(deepest, depth)
        elif char == ")" and opened:
            depth -= opened.pop()
        i += 1
    return deepest


# ------------------------------------------------------------------ evaluating


class _OutOfBudget(Exception):
    """A rule would cost more than the per-call limit: no further rules run."""


def check_rules(node: Node, value: Any, old: Any, path: str = "") -> list[FieldError]:
    """The failures of every rule in the tree of `node` over the object
    `value` (`old` on update, else None)."""
    if not node.rules_below:
        return []
    errs: list[FieldError] = []
    with contextlib.suppress(_OutOfBudget):
        _walk(node, to_cel(node, value), to_cel(node, old), path, errs, root=True)
    return errs


def blocked_error() -> FieldError:
    """Why the rules did not run: the object has type or enum errors."""
    return invalid_raw("", _BLOCKED)


def to_cel(node: Node | None, value: Any) -> Any:
    """`value` as a rule sees it: numbers as the schema types them (see the
    module docstring), and property names escaped as Kubernetes escapes them
    (`foo-bar` is `self.foo__dash__bar`); map keys stay as they are."""
    if node is None or value is None:
        return value
    if isinstance(value, dict):
        if node.additional is not None or node.open_map:
            return {k: to_cel(node.additional, v) for k, v in value.items()}
        return {
            name: to_cel(node.properties.get(k), v)
            for k, v in value.items()
            if (name := cel_name(k)) is not None
        }
    if isinstance(value, list):
        return [to_cel(node.items, v) for v in value]
    if node.type == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if node.type == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def cel_name(name: str) -> str | None:
    """The CEL identifier of property `name`, or None when it has none."""
    if name in _RESERVED:
        return f"__{name}__"
    if not _ESCAPABLE.match(name):
        return None
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], name)


def _walk(
    node: Node, value: Any, old: Any, path: str, errs: list[FieldError], *, root: bool = False
) -> None:
    if value is None or not node.rules_below:
        return
    for rule in node.rules:
        _evaluate(rule, value, old, path, errs)
    if isinstance(value, dict):
        old_map = old if isinstance(old, dict) and node.map_type != "atomic" else {}
        if node.additional is not None:
            for key, item in value.items():
                _walk(node.additional, item, old_map.get(key), index_path(path, key), errs)
        skip = META_FIELDS if root or node.embedded else frozenset()
        for key, sub in node.properties.items():
            name = cel_name(key)
            if key not in skip and name is not None and name in value:
                _walk(sub, value[name], old_map.get(name), child_path(path, key), errs)
    elif isinstance(value, list) and node.items is not None:
        old_items = _old_items_by_key(node, old)
        for i, item in enumerate(value):
            _walk(node.items, item, old_items.get(_map_key(node, item)), index_path(path, i), errs)


def _map_key(node: Node, item: Any) -> tuple[Any, ...] | None:
    if not isinstance(item, dict):
        return None
    return tuple(repr(item.get(cel_name(k) or k)) for k in node.list_map_keys)


def _old_items_by_key(node: Node, old: Any) -> dict[Any, Any]:
    """Old items of a `map` list by their keys; other lists do not correlate."""
    if node.list_type != "map" or not isinstance(old, list):
        return {}
    return {_map_key(node, item): item for item in old if isinstance(item, dict)}


def _evaluate(rule: Rule, value: Any, old: Any, path: str, errs: list[FieldError]) -> None:
    if rule.uses_old_self and old is None and not rule.optional_old_self:
        return  # a transition rule runs only where there is an old value
    variables = {"self": value}
    if rule.uses_old_self:
        if rule.optional_old_self:
            old = lib().OptionalValue.none() if old is None else lib().OptionalValue.of(old)
        variables["oldSelf"] = old
    shown = json_type(value) if isinstance(value, (dict, list)) else value
    if rule.nesting > 1 and max(_widest(value), _widest(old)) ** rule.nesting > PER_CALL_LIMIT:
        detail = (
            "'operation cancelled: actual cost limit exceeded': no further validation rules "
            f"will be run due to call cost exceeds limit for rule: {rule.name}"
        )
        errs.append(invalid(path, shown, detail))
        raise _OutOfBudget
    outcome, failure = _run(rule.program, variables)
    if failure:
        errs.append(invalid(path, shown, f"{failure} evaluating rule: {rule.name}"))
    elif outcome is not True:
        where = child_path(path, rule.field_path) if rule.field_path else path
        message = _message(rule, variables)
        if isinstance(message, str):
            errs.append(_rule_failed(rule, where, shown, message))
        else:
            errs.append(invalid(where, shown, message[0]))


def _run(program: Any, variables: dict[str, Any]) -> tuple[Any, str]:
    """The program's result, or "" and why it failed."""
    try:
        return program.execute(lib().Context(variables, functions=LIBRARY)), ""
    except KeyError as exc:
        return None, f"no such key: {exc.args[0] if exc.args else ''}"
    except TypeError as exc:
        if str(exc).startswith("No such overload"):
            return (
                None,
                "'no such overload': call arguments did not match a supported operator, "
                "function or macro signature",
            )
        return None, str(exc)
    except Exception as exc:
        return None, str(exc) or type(exc).__name__
    except BaseException as exc:  # a panic inside the library (pyo3's PanicException)
        if type(exc).__name__ != "PanicException":
            raise
        return None, f"internal error: {exc}"


def _message(rule: Rule, variables: dict[str, Any]) -> str | tuple[str]:
    """The detail of a failed rule: its messageExpression's result, else its
    message, else the rule; or, as a 1-tuple, why the messageExpression's
    result cannot be a message (an error of its own, as in Kubernetes)."""
    if rule.message_program is not None:
        text, failure = _run(rule.message_program, variables)
        if not failure and isinstance(text, str):
            text = text.strip()
            if not text:
                return ("messageExpression should evaluate to a non-empty string",)
            if "\n" in text:
                return ("messageExpression should not contain line breaks",)
            return text
    return rule.message or f"failed rule: {rule.source}"


def _rule_failed(rule: Rule, where: str, shown: Any, detail: str) -> FieldError:
    if rule.reason == "FieldValueForbidden":
        return forbidden(where, detail)
    if rule.reason == "FieldValueRequired":
        return required(where, detail)
    if rule.reason == "FieldValueDuplicate":
        return duplicate(where, shown)
    return invalid(where, shown, detail)


def _widest(value: Any) -> int:
    """The length of the longest list or map in `value` (at least 1)."""
    if isinstance(value, dict):
        return max([len(value), *(_widest(v) for v in value.values())])
    if isinstance(value, list):
        return max([len(value), *(_widest(v) for v in value)])
    return 1


# ------------------------------------------------------------------ Kubernetes' CEL library


def _index_of(target: Any, item: Any, *start: int) -> int:
    if isinstance(target, str):
        return target.find(item, *start)
    return target.index(item) if item in target else -1


def _last_index_of(target: Any, item: Any) -> int:
    if isinstance(target, str):
        return target.rfind(item)
    return len(target) - 1 - target[::-1].index(item) if item in target else -1


def _substring(text: str, start: int, end: int | None = None) -> str:
    if not 0 <= start <= len(text) or (end is not None and not start <= end <= len(text)):
        raise IndexError(f"index out of range: {start if end is None else end}")
    return text[start:end]


def _replace(text: str, old: str, new: str, count: int = -1) -> str:
    return text.replace(old, new, count)


def _split(text: str, sep: str, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    return text.split(sep, limit - 1 if limit > 0 else -1)


def _join(items: list[str], sep: str = "") -> str:
    return sep.join(items)


# The extension functions Kubernetes adds to CEL (strings, lists) that the library lacks.
# Not its regex `find`/`findAll`: Python's re could backtrack for ever on a user's pattern.
LIBRARY: dict[str, Callable[..., Any]] = {
    "lowerAscii": lambda s: s.lower(),
    "upperAscii": lambda s: s.upper(),
    "trim": lambda s: s.strip(),
    "charAt": lambda s, i: s[i] if 0 <= i < len(s) else "",
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "substring": _substring,
    "replace": _replace,
    "split": _split,
    "join": _join,
    "isSorted": lambda items: all(a <= b for a, b in itertools.pairwise(items)),
    "sum": lambda items: sum(items),
    "min": lambda items: min(items),
    "max": lambda items: max(items),
}

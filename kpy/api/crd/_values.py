"""Validation of a custom object's values against its structural schema, as
Kubernetes' OpenAPI validator words it (`spec.replicas in body must be of
type integer: "string"`), plus list types and embedded resources.

One walk reports every error at once. `Report.blocking` is set by the errors
(wrong type, unsupported value) after which Kubernetes does not run the CEL
rules, because a rule would see values of the wrong shape.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kpy.api.crd._errors import (
    duplicate,
    invalid,
    invalid_raw,
    not_supported,
    required,
    too_long,
    too_many,
)
from kpy.api.crd._formats import format_ok
from kpy.api.crd._model import (
    META_FIELDS,
    child_path,
    index_path,
    is_integer,
    is_number,
    json_type,
    show_number,
)
from kpy.api.crd._regex import search

if TYPE_CHECKING:
    from kpy.api.crd._model import Node
    from kpy.api.errors import FieldError


@dataclass(slots=True)
class Report:
    errors: list[FieldError] = field(default_factory=list)
    blocking: bool = False

    def add(self, error: FieldError, *, blocking: bool = False) -> None:
        self.errors.append(error)
        self.blocking = self.blocking or blocking


def validate_values(node: Node, value: Any, path: str, *, root: bool) -> Report:
    """Every schema error of `value` (the whole object when `root`)."""
    report = Report()
    _value(node, value, path, report, root=root)
    return report


def _type_error(path: str, expected: str, value: Any) -> FieldError:
    actual = json_type(value)
    return invalid(path, actual, f"{path} in body must be of type {expected}: {json.dumps(actual)}")


def _type_ok(node: Node, value: Any) -> bool:
    if node.int_or_string:
        return is_integer(value) or isinstance(value, str)
    kind = node.type
    if kind == "integer":
        return is_integer(value)
    if kind == "number":
        return is_number(value)
    return not kind or json_type(value) == kind


def _value(node: Node, value: Any, path: str, report: Report, *, root: bool = False) -> None:
    if value is None:
        if not node.nullable and (node.type or node.int_or_string):
            report.add(_type_error(path, node.type or "integer,string", value), blocking=True)
        return
    if not _type_ok(node, value):
        report.add(_type_error(path, node.type or "integer,string", value), blocking=True)
        return
    _scalar(node, value, path, report)
    if isinstance(value, dict):
        _object(node, value, path, report, root=root)
    elif isinstance(value, list):
        _array(node, value, path, report)
    _junctions(node, value, path, report, root=root)


def _scalar(node: Node, value: Any, path: str, report: Report) -> None:
    if node.enum is not None and not any(_same(value, v) for v in node.enum):
        shown = [v if isinstance(v, str) else json.dumps(v) for v in node.enum]
        report.add(not_supported(path, value, shown), blocking=True)
    if isinstance(value, str):
        _string(node, value, path, report)
    elif is_number(value):
        _number(node, value, path, report)


def _string(node: Node, value: str, path: str, report: Report) -> None:
    if node.max_length is not None and len(value) > node.max_length:
        report.add(too_long(path, node.max_length))
    if node.min_length is not None and len(value) < node.min_length:
        detail = f"{path} in body should be at least {node.min_length} chars long"
        report.add(invalid(path, value, detail))
    if node.pattern and not search(node.pattern, value):
        report.add(invalid(path, value, f"{path} in body should match '{node.pattern}'"))
    if node.format and not format_ok(node.format, value):
        detail = f"{path} in body must be of type {node.format}: {json.dumps(value)}"
        report.add(invalid(path, value, detail))


def _number(node: Node, value: float, path: str, report: Report) -> None:
    low, high = node.minimum, node.maximum
    if low is not None and (value <= low if node.exclusive_minimum else value < low):
        report.add(_bound_error(path, value, "greater than", low, node.exclusive_minimum))
    if high is not None and (value >= high if node.exclusive_maximum else value > high):
        report.add(_bound_error(path, value, "less than", high, node.exclusive_maximum))
    factor = node.multiple_of
    if factor is not None and factor > 0 and not _multiple(value, factor):
        detail = f"{path} in body should be a multiple of {show_number(factor)}"
        report.add(invalid(path, value, detail))


def _bound_error(path: str, value: float, words: str, limit: float, exclusive: bool) -> FieldError:
    relation = words if exclusive else f"{words} or equal to"
    return invalid(path, value, f"{path} in body should be {relation} {show_number(limit)}")


def _multiple(value: float, factor: float) -> bool:
    if isinstance(value, int) and isinstance(factor, int):
        return value % factor == 0
    quotient = value / factor
    return math.isclose(quotient, round(quotient), rel_tol=0, abs_tol=1e-9)


def _object(node: Node, value: dict[str, Any], path: str, report: Report, *, root: bool) -> None:
    for name in node.required:
        if name not in value:
            report.add(required(child_path(path, name)))
    count = len(value)
    if node.max_properties is not None and count > node.max_properties:
        report.add(too_many(path, count, node.max_properties))
    if node.min_properties is not None and count < node.min_properties:
        detail = f"{path} in body should have at least {node.min_properties} properties"
        report.add(invalid(path, count, detail))
    if node.embedded:
        _embedded(value, path, report)
    if root:
        _root_metadata(node, value.get("metadata"), report)
    skip = META_FIELDS if root or node.embedded else frozenset()
    for key, item in value.items():
        if key in skip:
            continue
        prop = node.properties.get(key)
        if prop is not None:
            _value(prop, item, child_path(path, key), report)
        elif node.additional is not None:
            _value(node.additional, item, index_path(path, key), report)


def _array(node: Node, value: list[Any], path: str, report: Report) -> None:
    count = len(value)
    if node.max_items is not None and count > node.max_items:
        report.add(too_many(path, count, node.max_items))
    if node.min_items is not None and count < node.min_items:
        detail = f"{path} in body should have at least {node.min_items} items"
        report.add(invalid(path, count, detail))
    if node.items is not None:
        for i, item in enumerate(value):
            _value(node.items, item, index_path(path, i), report)
    _list_type(node, value, path, report)


def _junctions(node: Node, value: Any, path: str, report: Report, *, root: bool) -> None:
    """allOf, anyOf, oneOf and not: value validations on the same value."""
    for branch in node.all_of:
        _value(branch, value, path, report, root=root)

    def passes(branch: Node) -> bool:
        return not validate_values(branch, value, path, root=root).errors

    if node.any_of and not any(passes(b) for b in node.any_of):
        report.add(invalid_raw(path, f'"{path}" must validate at least one schema (anyOf)'))
    if node.one_of:
        valid = sum(1 for b in node.one_of if passes(b))
        if valid != 1:
            found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            detail = f'"{path}" must validate one and only one schema (oneOf). {found}'
            report.add(invalid_raw(path, detail))
    if node.not_ is not None and passes(node.not_):
        report.add(invalid_raw(path, f'"{path}" must not validate the schema (not)'))


def _root_metadata(node: Node, metadata: Any, report: Report) -> None:
    """The only part of root metadata a schema may restrict: name and generateName."""
    schema = node.properties.get("metadata")
    if schema is None or not isinstance(metadata, dict):
        return
    for name in ("name", "generateName"):
        sub = schema.properties.get(name)
        if sub is not None and name in metadata:
            _value(sub, metadata[name], f"metadata.{name}", report)


# ------------------------------------------------------------------ list types


def canonical(value: Any) -> str:
    """A key equal for equal JSON values (3 and 3.0 alike)."""

    def normal(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {k: normal(x) for k, x in v.items()}
        if isinstance(v, list):
            return [normal(x) for x in v]
        return v

    return json.dumps(normal(value), sort_keys=True)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b if is_number(a) and is_number(b) else canonical(a) == canonical(b)


def _list_type(node: Node, value: list[Any], path: str, report: Report) -> None:
    """`set` items are unique; `map` items are unique by their map keys."""
    if node.list_type not in ("set", "map"):
        return
    seen: set[str] = set()
    for i, item in enumerate(value):
        if node.list_type == "set":
            shown: Any = item
        elif isinstance(item, dict):
            shown = {k: item[k] for k in node.list_map_keys if k in item}
        else:
            continue  # a wrong item type is reported by the item's own schema
        key = canonical(shown)
        if key in seen:
            report.add(duplicate(index_path(path, i), shown))
        seen.add(key)


# ------------------------------------------------------------------ embedded resources


def _embedded(value: dict[str, Any], path: str, report: Report) -> None:
    """An embedded object carries its own apiVersion and kind (metadata is optional)."""
    for name in ("apiVersion", "kind"):
        where = child_path(path, name)
        item = value.get(name)
        if item is None or item == "":
            report.add(required(where))
        elif not isinstance(item, str):
            report.add(invalid(where, json_type(item), "must be a string"))
    api_version = value.get("apiVersion")
    if isinstance(api_version, str) and api_version.count("/") > 1:
        detail = f"unexpected GroupVersion string: {api_version}"
        report.add(invalid(child_path(path, "apiVersion"), api_version, detail))
    metadata = value.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        report.add(invalid(child_path(path, "metadata"), json_type(metadata), "must be an object"))
    elif isinstance(metadata, dict):
        given = metadata.get("name")
        if isinstance(given, str) and (given in (".", "..") or "/" in given or "%" in given):
            detail = "may not be '.' or '..' and may not contain '/' or '%'"
            report.add(invalid(child_path(path, "metadata.name"), given, detail))

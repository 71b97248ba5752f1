"""Quantities: the one place that decides whether a quantity may be stored.

Every `kpy.api.meta.v1.Quantity` field of every kind (resource lists, pod
overhead, emptyDir size limits, downward API divisors, node capacity, PV and
PVC sizes, HPA targets, and whatever a new kind adds) is found by walking the
message descriptors, so no field is missed because nobody listed it.

Contract:
- `syntax_errors(obj)` names every Quantity in `obj` whose text Kubernetes'
  parser refuses, by its field path (`spec.overhead[cpu]`, map keys in
  brackets as Kubernetes' field paths write them), with the parser's own
  message (`quantities must match the regular expression ...`). A Quantity
  that is present but empty is refused as well: every reader parses it.
- `syntax_errors(new, old)` (an update) does not report a bad value that the
  stored object already had at the same path: objects stored before this
  check existed can still have their status written and their finalizers
  removed. Any new or changed bad value is refused.
- `value_of(msg)` is the parsed value, or None when the text does not parse:
  the kinds' own checks (non-negative, requests within limits, ...) use it,
  so a bad quantity is reported once, by `syntax_errors`, and never raises.
- `resource_value(name, msg, path)` is Kubernetes' ValidateResourceQuantityValue:
  non-negative, and a whole number for resources counted in units (pods and
  extended resources such as `example.com/gpu`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Final

from kpy.api import names
from kpy.api._descriptors import is_map, is_message, map_value
from kpy.api.quantity import Quantity
from kpy.api.validation._field import Errors, invalid

if TYPE_CHECKING:
    from collections.abc import Iterator

    from google.protobuf.descriptor import Descriptor, FieldDescriptor
    from google.protobuf.message import Message

__all__ = ["resource_value", "syntax_errors", "value_of"]

QUANTITY: Final = "kpy.api.meta.v1.Quantity"
IS_NEGATIVE: Final = "must be greater than or equal to 0"
IS_NOT_INTEGER: Final = "must be an integer"
# Resources that count whole things (Kubernetes' integerResources that can
# appear in a pod or a node).
_INTEGER_RESOURCES: Final = frozenset({"pods"})
_NATIVE_PREFIX: Final = "kubernetes.io/"
_REQUESTS_PREFIX: Final = "requests."


def value_of(msg: Any) -> Quantity | None:
    """The value of a Quantity message; None when its text does not parse."""
    try:
        return Quantity.parse(msg.string)
    except ValueError:
        return None


def syntax_errors(obj: Message, old: Message | None = None) -> Errors:
    """Every Quantity in `obj` that does not parse; see the module docstring."""
    bad = list(_bad_quantities(obj, ""))
    if old is not None and bad:
        before = {(path, text) for path, text, _ in _bad_quantities(old, "")}
        bad = [b for b in bad if (b[0], b[1]) not in before]
    return [invalid(path, text, reason) for path, text, reason in bad]


def resource_value(name: str, msg: Any, path: str) -> Errors:
    """Kubernetes' ValidateResourceQuantityValue for resource `name`."""
    value = value_of(msg)
    if value is None:
        return []  # reported by syntax_errors
    errs: Errors = []
    if value.sign() < 0:
        errs.append(invalid(path, str(value), IS_NEGATIVE))
    if is_integer_resource(name) and value.milli_value() % 1000 != 0:
        errs.append(invalid(path, str(value), IS_NOT_INTEGER))
    return errs


def is_integer_resource(name: str) -> bool:
    """Kubernetes' IsIntegerResourceName: pods and extended resources."""
    return name in _INTEGER_RESOURCES or _is_extended_resource(name)


def _is_extended_resource(name: str) -> bool:
    native = "/" not in name or _NATIVE_PREFIX in name
    if native or name.startswith(_REQUESTS_PREFIX):
        return False
    return not names.is_qualified_name(_REQUESTS_PREFIX + name)


# -- the walk ------------------------------------------------------------------------------


def _bad_quantities(msg: Message, prefix: str) -> Iterator[tuple[str, str, str]]:
    """(path, text, reason) of every Quantity under `msg` that does not parse."""
    for field, value in msg.ListFields():
        if not is_message(field):
            continue
        if is_map(field):
            item_field = map_value(field)
            if not is_message(item_field) or not _reaches_quantity(item_field.message_type):
                continue
            for key in sorted(value):
                yield from _check(value[key], f"{_join(prefix, field)}[{key}]")
        elif not _reaches_quantity(field.message_type):
            continue
        elif field.is_repeated:
            for i, item in enumerate(value):
                yield from _check(item, f"{_join(prefix, field)}[{i}]")
        else:
            yield from _check(value, _join(prefix, field))


def _check(msg: Message, path: str) -> Iterator[tuple[str, str, str]]:
    if msg.DESCRIPTOR.full_name != QUANTITY:
        yield from _bad_quantities(msg, path)
        return
    text: str = msg.string  # type: ignore[attr-defined]
    try:
        Quantity.parse(text)
    except ValueError as e:
        yield path, text, str(e)


def _join(prefix: str, field: FieldDescriptor) -> str:
    return f"{prefix}.{field.json_name}" if prefix else field.json_name


@functools.cache
def _reaches_quantity(descriptor: Descriptor) -> bool:
    """Whether a message of this type is, or can contain, a Quantity; the walk
    skips every subtree that cannot (most of an object)."""
    seen = {descriptor}
    todo = [descriptor]
    while todo:
        current = todo.pop()
        if current.full_name == QUANTITY:
            return True
        for field in current.fields:
            child = field.message_type
            if child is not None and child not in seen:
                seen.add(child)
                todo.append(child)
    return False

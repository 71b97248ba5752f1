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

    from google.protobuf.descriptor import Descriptor
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
    parsed = _parse(msg.string)
    return parsed if isinstance(parsed, Quantity) else None


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Quantity | str:
    """`text` as a Quantity, or why it does not parse. Cached: objects repeat
    the same few texts ("250m", "512Mi"), parsing one costs more than the
    rest of a check, and a Quantity is immutable."""
    try:
        return Quantity.parse(text)
    except ValueError as e:
        return str(e)


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


_SINGLE, _REPEATED, _MAP = range(3)

_PLANS: dict[str, tuple[tuple[str, str, int], ...]] = {}


def _plan(descriptor: Any) -> tuple[tuple[str, str, int], ...]:  # a Descriptor (upb or Python)
    """The fields of a message type that can hold a Quantity, as (attribute
    name, JSON name, single / repeated / map), worked out once per type:
    the walk enters only those (most of an object holds none)."""
    plan = _PLANS.get(descriptor.full_name)
    if plan is None:
        found: list[tuple[str, str, int]] = []
        for field in descriptor.fields:
            if not is_message(field):
                continue
            if is_map(field):
                item = map_value(field)
                if is_message(item) and _reaches_quantity(item.message_type):
                    found.append((field.name, field.json_name, _MAP))
            elif _reaches_quantity(field.message_type):
                shape = _REPEATED if field.is_repeated else _SINGLE
                found.append((field.name, field.json_name, shape))
        plan = _PLANS[descriptor.full_name] = tuple(found)
    return plan


def _bad_quantities(msg: Message, prefix: str) -> Iterator[tuple[str, str, str]]:
    """(path, text, reason) of every Quantity under `msg` that does not parse."""
    for name, json_name, shape in _plan(msg.DESCRIPTOR):
        where = f"{prefix}.{json_name}" if prefix else json_name
        if shape == _SINGLE:
            if msg.HasField(name):
                yield from _check(getattr(msg, name), where)
        elif shape == _REPEATED:
            for i, item in enumerate(getattr(msg, name)):
                yield from _check(item, f"{where}[{i}]")
        else:
            value = getattr(msg, name)
            for key in sorted(value):
                yield from _check(value[key], f"{where}[{key}]")


def _check(msg: Message, path: str) -> Iterator[tuple[str, str, str]]:
    if msg.DESCRIPTOR.full_name != QUANTITY:
        yield from _bad_quantities(msg, path)
        return
    text: str = msg.string  # type: ignore[attr-defined]
    parsed = _parse(text)
    if isinstance(parsed, str):
        yield path, text, parsed


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

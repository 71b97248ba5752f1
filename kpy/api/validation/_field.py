"""Field errors worded as Kubernetes words them.

Each constructor returns a `FieldError` whose text reads like Kubernetes'
(`spec.replicas: Invalid value: -1: must be greater than or equal to 0`), so
users who know Kubernetes' errors recognise kpy's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kpy.api import errors
from kpy.api.errors import FieldError

if TYPE_CHECKING:
    from collections.abc import Iterable

Errors = list[FieldError]


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, errors.REQUIRED, "Required value" + (f": {detail}" if detail else ""))


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, errors.INVALID, f"Invalid value: {_show(value)}: {detail}")


def not_supported(path: str, value: Any, supported: Iterable[str]) -> FieldError:
    options = ", ".join(json.dumps(s) for s in supported)
    return FieldError(
        path,
        errors.NOT_SUPPORTED,
        f"Unsupported value: {_show(value)}: supported values: {options}",
    )


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(path, errors.DUPLICATE, f"Duplicate value: {_show(value)}")


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, errors.FORBIDDEN, f"Forbidden: {detail}")


def too_long(path: str, limit: int) -> FieldError:
    return FieldError(path, errors.TOO_LONG, f"Too long: may not be more than {limit} bytes")


def immutable(path: str) -> FieldError:
    return invalid_raw(path, "field is immutable")


def invalid_raw(path: str, detail: str) -> FieldError:
    return FieldError(path, errors.INVALID, f"Invalid value: {detail}")


def each(path: str, value: Any, messages: Iterable[str]) -> Errors:
    """One Invalid error per message from a names.is_* check."""
    return [invalid(path, value, m) for m in messages]


def non_negative(path: str, value: int) -> Errors:
    return [invalid(path, value, "must be greater than or equal to 0")] if value < 0 else []


def positive(path: str, value: int) -> Errors:
    return [invalid(path, value, "must be greater than 0")] if value <= 0 else []


def one_of(path: str, value: str, supported: tuple[str, ...]) -> Errors:
    return [] if value in supported else [not_supported(path, value, supported)]

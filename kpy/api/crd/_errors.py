"""Field errors worded as Kubernetes' field.Error renders them.

(kpy.api.validation has the same constructors privately; this package sits
beside it and below its CRD check, which imports this package, so it keeps
its own few.)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kpy.api import errors
from kpy.api.errors import FieldError

if TYPE_CHECKING:
    from collections.abc import Iterable

# Kubernetes' FieldValueTooMany (maxItems, maxProperties); kpy.api.errors has no constant for it.
TOO_MANY = "FieldValueTooMany"


def show(value: Any) -> str:
    """A value as Kubernetes prints it: strings quoted, JSON for the rest."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, errors.REQUIRED, "Required value" + (f": {detail}" if detail else ""))


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, errors.INVALID, f"Invalid value: {show(value)}: {detail}")


def invalid_raw(path: str, detail: str) -> FieldError:
    return FieldError(path, errors.INVALID, f"Invalid value: {detail}")


def not_supported(path: str, value: Any, supported: Iterable[str]) -> FieldError:
    options = ", ".join(json.dumps(s) for s in supported)
    return FieldError(
        path, errors.NOT_SUPPORTED, f"Unsupported value: {show(value)}: supported values: {options}"
    )


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, errors.FORBIDDEN, f"Forbidden: {detail}")


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(path, errors.DUPLICATE, f"Duplicate value: {show(value)}")


def too_long(path: str, limit: int) -> FieldError:
    return FieldError(path, errors.TOO_LONG, f"Too long: may not be more than {limit} bytes")


def too_many(path: str, actual: int, limit: int) -> FieldError:
    return FieldError(path, TOO_MANY, f"Too many: {actual}: must have at most {limit} items")

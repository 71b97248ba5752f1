"""Validation: every problem with an object, each with its field path.

`validate(obj)` checks an object about to be created; `validate_update(new,
old)` checks an update (everything `validate` checks, plus what may not
change). Both return a list of `FieldError`; an empty list means valid. They
never raise for bad input and never modify the object; callers turn a
non-empty list into `errors.Invalid`.

Each kind's checks live with its group (`_core`, `_apps`, `_batch`, ...) and
register themselves here by message type. A kind without checks of its own
still gets its metadata checked, and every Quantity field of every kind is
checked to parse (`_quantities`), so that no component ever reads one that
does not.
"""

from __future__ import annotations

from kpy.api import names

# Importing the group modules registers their validators.
from kpy.api.validation import (  # noqa: F401
    _apps,
    _batch,
    _core,
    _discovery,
    _networking,
    _others,
    _policy,
    _rbac,
    _registry,
    _scheduling,
)
from kpy.api.validation._field import Errors
from kpy.api.validation._meta import validate_object_meta, validate_object_meta_update
from kpy.api.validation._quantities import syntax_errors
from kpy.api.validation._registry import NAME_CHECKS, validators
from kpy.api.validation._unsupported import refused_fields

__all__ = [
    "Errors",
    "validate",
    "validate_object_meta",
    "validate_object_meta_update",
    "validate_update",
    "validators",
]


def _meta_errors(obj: object) -> Errors:
    from kpy.api.scheme import scheme

    info = scheme.for_message(type(obj))  # type: ignore[arg-type]
    check = NAME_CHECKS.get(info.kind, names.is_dns1123_subdomain)
    return validate_object_meta(obj.metadata, namespaced=info.namespaced, name_check=check)  # type: ignore[attr-defined]


def validate(obj: object) -> Errors:
    """Every problem with `obj` as a new object (after defaulting)."""
    return _validate(obj, None)


def validate_update(new: object, old: object) -> Errors:
    """Every problem with replacing `old` by `new`. A quantity that does not
    parse is let through only where `old` already held the same text (see
    `_quantities`); everything else is checked as on create."""
    errs = _validate(new, old)
    errs += validate_object_meta_update(new.metadata, old.metadata)  # type: ignore[attr-defined]
    check = _registry.update_checks.get(type(new).__name__)
    if check is not None:
        errs += check(new, old)
    return errs


def _validate(obj: object, old: object | None) -> Errors:
    """Metadata, quantities and the kind's own create-time checks; `old` is
    the stored object on an update (see `_quantities.syntax_errors`)."""
    errs = _meta_errors(obj)
    errs += syntax_errors(obj, old)  # type: ignore[arg-type]
    check = _registry.create_checks.get(type(obj).__name__)
    if check is not None:
        errs += check(obj)
    errs += refused_fields(obj, old, reported=errs)  # type: ignore[arg-type]
    return errs

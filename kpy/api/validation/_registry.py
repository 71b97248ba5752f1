"""Where each group's validators register themselves, by kind name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kpy.api import names
from kpy.api.validation._field import Errors

CreateCheck = Callable[[Any], Errors]
UpdateCheck = Callable[[Any, Any], Errors]

create_checks: dict[str, CreateCheck] = {}
update_checks: dict[str, UpdateCheck] = {}

# The rule for metadata.name where it is not a DNS-1123 subdomain.
NAME_CHECKS: dict[str, Callable[[str], list[str]]] = {
    "Namespace": names.is_dns1123_label,
    "Service": names.is_dns1035_label,
}


def validators(kind: str) -> Callable[[CreateCheck], CreateCheck]:
    """Register the create-time checks of `kind` (the message name)."""

    def register(fn: CreateCheck) -> CreateCheck:
        create_checks[kind] = fn
        return fn

    return register


def update_validators(kind: str) -> Callable[[UpdateCheck], UpdateCheck]:
    """Register the extra update-time checks of `kind` (immutable fields...)."""

    def register(fn: UpdateCheck) -> UpdateCheck:
        update_checks[kind] = fn
        return fn

    return register

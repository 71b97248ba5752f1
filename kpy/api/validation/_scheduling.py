"""Validation of PriorityClass (scheduling.k8s.io/v1), as Kubernetes'
pkg/apis/scheduling/validation: a user's class stays at or below
1000000000, the `system-` prefix is kept for the built-in classes (with
their own values), preemptionPolicy is PreemptLowerPriority or Never, and
neither value nor preemptionPolicy changes after creation."""

from __future__ import annotations

from typing import Any

from kpy.api.scheduling import (
    HIGHEST_USER_DEFINABLE_PRIORITY,
    PREEMPTION_POLICIES,
    SYSTEM_PRIORITY_CLASS_PREFIX,
    SYSTEM_PRIORITY_CLASSES,
)
from kpy.api.validation._field import Errors, forbidden, one_of, required
from kpy.api.validation._registry import update_validators, validators


def _system_class_error(name: str, value: int, global_default: bool) -> str:
    known = SYSTEM_PRIORITY_CLASSES.get(name)
    if known is None:
        return f"{name} is not a known system priority class"
    if value != known:
        return f"value of {name} PriorityClass must be {known}"
    if global_default:
        return f"globalDefault of {name} PriorityClass must be false"
    return ""


@validators("PriorityClass")
def _validate_priority_class(pc: Any) -> Errors:
    errs: Errors = []
    name = pc.metadata.name
    if not pc.HasField("value"):
        errs.append(required("value"))
    if name.startswith(SYSTEM_PRIORITY_CLASS_PREFIX):
        problem = _system_class_error(name, pc.value, pc.global_default)
        if problem:
            errs.append(
                forbidden(
                    "metadata.name",
                    f"priority class names with '{SYSTEM_PRIORITY_CLASS_PREFIX}' prefix are "
                    f"reserved for system use only. error: {problem}",
                )
            )
    elif pc.value > HIGHEST_USER_DEFINABLE_PRIORITY:
        errs.append(
            forbidden(
                "value",
                "maximum allowed value of a user defined priority is "
                f"{HIGHEST_USER_DEFINABLE_PRIORITY}",
            )
        )
    if pc.HasField("preemption_policy"):
        errs += one_of("preemptionPolicy", pc.preemption_policy, PREEMPTION_POLICIES)
    return errs


@update_validators("PriorityClass")
def _validate_priority_class_update(new: Any, old: Any) -> Errors:
    """Pods were given the class's value and policy at creation: neither may change."""
    errs: Errors = []
    if new.value != old.value:
        errs.append(forbidden("value", "may not be changed in an update."))
    if new.preemption_policy != old.preemption_policy:
        errs.append(forbidden("preemptionPolicy", "may not be changed in an update."))
    return errs

"""Validation of policy/v1: PodDisruptionBudget.

As Kubernetes' `ValidatePodDisruptionBudgetSpec`: at most one of
`minAvailable` and `maxUnavailable`, each a non-negative integer or a
percentage no greater than 100%; a well-formed selector (an empty one
selects every pod of the namespace, as in policy/v1); a known
`unhealthyPodEvictionPolicy`. The controller's status figures may not be
negative.
"""

from __future__ import annotations

from typing import Any

from kpy.api.validation._apps import int_or_percent
from kpy.api.validation._field import Errors, invalid, invalid_raw, non_negative, one_of
from kpy.api.validation._meta import validate_label_selector
from kpy.api.validation._registry import validators

UNHEALTHY_POD_EVICTION_POLICIES = ("IfHealthyBudget", "AlwaysAllow")
_STATUS_COUNTS = (
    ("disruptions_allowed", "disruptionsAllowed"),
    ("current_healthy", "currentHealthy"),
    ("desired_healthy", "desiredHealthy"),
    ("expected_pods", "expectedPods"),
)


@validators("PodDisruptionBudget")
def _validate_pdb(pdb: Any) -> Errors:
    spec = pdb.spec
    errs: Errors = []
    if spec.HasField("min_available") and spec.HasField("max_unavailable"):
        errs.append(
            invalid_raw("spec", "minAvailable and maxUnavailable cannot be both set; keep one")
        )
    for field, json_name in (
        ("min_available", "minAvailable"),
        ("max_unavailable", "maxUnavailable"),
    ):
        if spec.HasField(field):
            errs += _budget(getattr(spec, field), f"spec.{json_name}")
    if spec.HasField("selector"):
        errs += validate_label_selector(spec.selector, "spec.selector")
    if spec.HasField("unhealthy_pod_eviction_policy"):
        errs += one_of(
            "spec.unhealthyPodEvictionPolicy",
            spec.unhealthy_pod_eviction_policy,
            UNHEALTHY_POD_EVICTION_POLICIES,
        )
    for field, json_name in _STATUS_COUNTS:
        errs += non_negative(f"status.{json_name}", getattr(pdb.status, field))
    return errs


def _budget(value: Any, path: str) -> Errors:
    number, errs = int_or_percent(value, path)
    if value.WhichOneof("value") == "str_val" and number is not None and number > 100:
        errs.append(invalid(path, value.str_val, "must not be greater than 100%"))
    return errs

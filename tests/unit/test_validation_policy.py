"""Validation of PodDisruptionBudgets (policy/v1): each case is a manifest,
decoded and defaulted as the API server would, and the field paths of the
errors it must produce (none for the valid ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from kpy.api import codec
from kpy.api.defaults import set_defaults
from kpy.api.validation import validate


def pdb(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
        "status": status or {},
    }


@dataclass(frozen=True)
class Case:
    name: str
    manifest: dict[str, Any]
    paths: tuple[str, ...] = ()
    detail: str = ""


WEB = {"matchLabels": {"app": "web"}}

CASES = [
    Case("minAvailable int", pdb({"minAvailable": 2, "selector": WEB})),
    Case("maxUnavailable percent", pdb({"maxUnavailable": "25%", "selector": WEB})),
    Case("neither: valid (every pod may go)", pdb({"selector": WEB})),
    Case("empty selector selects the namespace", pdb({"minAvailable": 1, "selector": {}})),
    Case(
        "both set",
        pdb({"minAvailable": 1, "maxUnavailable": 1, "selector": WEB}),
        ("spec",),
        "cannot be both set",
    ),
    Case("negative minAvailable", pdb({"minAvailable": -1}), ("spec.minAvailable",)),
    Case("over 100%", pdb({"maxUnavailable": "101%"}), ("spec.maxUnavailable",), "100%"),
    Case("not a percent", pdb({"minAvailable": "half"}), ("spec.minAvailable",)),
    Case(
        "bad selector operator",
        pdb({"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}),
        ("spec.selector.matchExpressions[0].operator",),
    ),
    Case(
        "unknown unhealthy policy",
        pdb({"unhealthyPodEvictionPolicy": "Sometimes"}),
        ("spec.unhealthyPodEvictionPolicy",),
        "AlwaysAllow",
    ),
    Case(
        "negative status",
        pdb({"minAvailable": 1}, {"disruptionsAllowed": -1}),
        ("status.disruptionsAllowed",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_pdb_validation(case: Case) -> None:
    errs = validate(set_defaults(codec.decode_object(case.manifest)))
    assert tuple(e.path for e in errs) == case.paths, f"{case.name}: {errs}"
    assert not case.detail or any(case.detail in e.detail for e in errs), f"{case.name}: {errs}"

"""Which CustomResourceDefinitions may have the names they ask for.

Kubernetes' naming controller: within one API group, the plural, singular,
short names, kind and list kind of a CRD must not be names another CRD of
that group already has; the older CRD keeps its names, the newer one is
not served and says why in its `NamesAccepted` condition. A CRD whose
names were accepted keeps them, whatever is created later. Every API server
(which serves what is accepted) and the controller manager (which writes
the conditions) decide with this one function, so they agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable


def _names(crd: Any) -> tuple[set[str], set[str]]:
    """The resource names (plural, singular, short names) and the kind
    names (kind, list kind) `crd` asks for."""
    n = crd.spec.names
    resources = {n.plural, n.singular or n.kind.lower(), *n.short_names} - {""}
    kinds = {n.kind, n.list_kind or f"{n.kind}List"} - {""}
    return resources, kinds


def _precedence(crd: Any) -> tuple[bool, int, int, str]:
    """Who keeps a contested name: a CRD whose names were accepted before
    (its NamesAccepted condition), then the older, then (created in the same
    second) the first by name."""
    accepted = any(c.type == "NamesAccepted" and c.status == "True" for c in crd.status.conditions)
    ts = crd.metadata.creation_timestamp
    return (not accepted, ts.seconds, ts.nanos, crd.metadata.name)


def name_conflicts(crds: Iterable[Any]) -> dict[str, str]:
    """For each CRD (by name) whose names clash with an older CRD of its
    group, why; a CRD not in the result has its names accepted."""
    taken: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    out: dict[str, str] = {}
    for crd in sorted(crds, key=_precedence):
        resources, kinds = _names(crd)
        by_resource, by_kind = taken.setdefault(crd.spec.group, ({}, {}))
        clashes = [
            f'"{r}" is already in use by {by_resource[r]}'
            for r in sorted(resources & by_resource.keys())
        ] + [f'"{k}" is already in use by {by_kind[k]}' for k in sorted(kinds & by_kind.keys())]
        if clashes:
            out[crd.metadata.name] = "; ".join(clashes)
            continue
        for r in resources:
            by_resource[r] = crd.metadata.name
        for k in kinds:
            by_kind[k] = crd.metadata.name
    return out

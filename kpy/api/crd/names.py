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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable


@dataclass(frozen=True, slots=True)
class Conflict:
    """Why a CRD's names are refused: Kubernetes' reason (which of its names
    clashed first: PluralConflict, SingularConflict, ShortNamesConflict,
    KindConflict, ListKindConflict) and a message naming every clash."""

    reason: str
    message: str


def _names(crd: Any) -> list[tuple[str, str, str]]:
    """Each name `crd` asks for: (the name, its kind of name, the conflict
    reason of a clash on it), resource names before kind names."""
    n = crd.spec.names
    out = [
        (n.plural, "resource", "PluralConflict"),
        (n.singular or n.kind.lower(), "resource", "SingularConflict"),
        *((short, "resource", "ShortNamesConflict") for short in n.short_names),
        (n.kind, "kind", "KindConflict"),
        (n.list_kind or f"{n.kind}List", "kind", "ListKindConflict"),
    ]
    return [entry for entry in out if entry[0]]


def _precedence(crd: Any) -> tuple[bool, int, int, str]:
    """Who keeps a contested name: a CRD whose names were accepted before
    (its NamesAccepted condition), then the older, then (created in the same
    second) the first by name."""
    accepted = any(c.type == "NamesAccepted" and c.status == "True" for c in crd.status.conditions)
    ts = crd.metadata.creation_timestamp
    return (not accepted, ts.seconds, ts.nanos, crd.metadata.name)


def name_conflicts(crds: Iterable[Any]) -> dict[str, Conflict]:
    """For each CRD (by name) whose names clash with an older CRD of its
    group, why; a CRD not in the result has its names accepted."""
    taken: dict[tuple[str, str, str], str] = {}  # (group, kind of name, name) -> CRD
    out: dict[str, Conflict] = {}
    for crd in sorted(crds, key=_precedence):
        group, name = crd.spec.group, crd.metadata.name
        clashes = [
            (reason, f'"{value}" is already in use by {taken[(group, what, value)]}')
            for value, what, reason in _names(crd)
            if (group, what, value) in taken
        ]
        # a name listed twice (singular = plural) is one name
        clashes = list(dict.fromkeys(clashes))
        if clashes:
            out[name] = Conflict(clashes[0][0], "; ".join(text for _, text in clashes))
            continue
        for value, what, _ in _names(crd):
            taken[(group, what, value)] = name
    return out

"""Node selectors and node affinity: which nodes a pod's `nodeSelector` and
required node affinity allow (component-helpers'
scheduling/corev1/nodeaffinity).

Pure logic, shared by the scheduler's NodeAffinity plugin and by the
controllers that must agree with it (DaemonSets), which may not import the
scheduler.

- nodeSelector (every key=value present on the node) AND required affinity.
- Required affinity: terms are OR'ed, a term's expressions AND'ed. An empty
  term list matches nothing; an empty term (no expressions, no fields) matches
  nothing; a term that does not parse (unknown operator, In without values,
  Gt/Lt without one integer, an invalid label value) matches nothing while
  the other terms still count.
- Operators In / NotIn / Exists / DoesNotExist / Gt / Lt on labels (NotIn and
  DoesNotExist match a node without the label; Gt/Lt compare integers).
  matchFields supports only metadata.name with In or NotIn and one value, and
  is ignored for a node without a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from kpy.api.labels import Operator, Selector, new_requirement

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from kpy.api.core import v1
    from kpy.api.core.v1 import Pod

__all__ = [
    "OBJECT_NAME_FIELD",
    "RequiredNodeAffinity",
    "Term",
    "any_term_matches",
    "parse_preferred",
    "parse_term",
    "parse_terms",
    "required_node_affinity",
    "required_node_selector",
    "score_terms",
]

OBJECT_NAME_FIELD: Final = "metadata.name"

_LABEL_OPERATORS: Final = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
    "Gt": Operator.GREATER_THAN,
    "Lt": Operator.LESS_THAN,
}


@dataclass(frozen=True, slots=True)
class Term:
    """One NodeSelectorTerm, parsed; `errors` say why it matches nothing."""

    labels: Selector | None
    # (field, must equal?, value): In -> equal, NotIn -> not equal.
    fields: tuple[tuple[str, bool, str], ...] | None
    errors: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        if self.errors:
            return False
        if self.labels is not None and not self.labels.matches(labels):
            return False
        if self.fields is not None and name:
            for field, equal, value in self.fields:
                have = name if field == OBJECT_NAME_FIELD else ""
                if (have == value) != equal:
                    return False
        return True


def _parse_expressions(
    exprs: Iterable[v1.NodeSelectorRequirement], errors: list[str]
) -> Selector | None:
    requirements = []
    for i, expr in enumerate(exprs):
        op = _LABEL_OPERATORS.get(expr.operator)
        if op is None:
            errors.append(f"matchExpressions[{i}].operator: Unsupported value: {expr.operator!r}")
            continue
        try:
            requirements.append(new_requirement(expr.key, op, list(expr.values)))
        except ValueError as err:
            errors.append(f"matchExpressions[{i}]: {err}")
    return None if errors else Selector(tuple(requirements))


def _parse_fields(
    exprs: Iterable[v1.NodeSelectorRequirement], errors: list[str]
) -> tuple[tuple[str, bool, str], ...]:
    fields = []
    for i, expr in enumerate(exprs):
        if expr.operator not in ("In", "NotIn"):
            errors.append(f"matchFields[{i}].operator: Unsupported value: {expr.operator!r}")
        elif len(expr.values) != 1:
            errors.append(f"matchFields[{i}].values: Invalid value: must have one element")
        else:
            fields.append((expr.key, expr.operator == "In", expr.values[0]))
    return tuple(fields)


def parse_term(term: v1.NodeSelectorTerm) -> Term | None:
    """The term parsed, or None for an empty term (which selects nothing)."""
    if not term.match_expressions and not term.match_fields:
        return None
    errors: list[str] = []
    labels = _parse_expressions(term.match_expressions, errors) if term.match_expressions else None
    fields = _parse_fields(term.match_fields, errors) if term.match_fields else None
    return Term(labels, fields, tuple(errors))


def parse_terms(terms: Iterable[v1.NodeSelectorTerm]) -> tuple[Term, ...]:
    return tuple(t for t in (parse_term(term) for term in terms) if t is not None)


def any_term_matches(terms: Sequence[Term], labels: Mapping[str, str], name: str) -> bool:
    return any(t.matches(labels, name) for t in terms)


def parse_preferred(
    terms: Iterable[v1.PreferredSchedulingTerm],
) -> tuple[tuple[int, Term], ...]:
    """Weighted preferred terms; ValueError if one does not parse."""
    parsed: list[tuple[int, Term]] = []
    for term in terms:
        if term.weight == 0:
            continue
        t = parse_term(term.preference)
        if t is None:
            continue
        if t.errors:
            raise ValueError("; ".join(t.errors))
        parsed.append((term.weight, t))
    return tuple(parsed)


def score_terms(terms: Sequence[tuple[int, Term]], labels: Mapping[str, str], name: str) -> int:
    return sum(weight for weight, t in terms if t.matches(labels, name))


@dataclass(frozen=True, slots=True)
class RequiredNodeAffinity:
    """A pod's nodeSelector and required node affinity, parsed once."""

    node_selector: tuple[tuple[str, str], ...]
    # None: the pod has no required affinity; () matches no node.
    terms: tuple[Term, ...] | None

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        for key, value in self.node_selector:
            if labels.get(key) != value:
                return False
        if self.terms is None:
            return True
        return any_term_matches(self.terms, labels, name)


def required_node_selector(pod: Pod) -> v1.NodeSelector | None:
    spec = pod.spec
    if not spec.HasField("affinity") or not spec.affinity.HasField("node_affinity"):
        return None
    node_affinity = spec.affinity.node_affinity
    if not node_affinity.HasField("required_during_scheduling_ignored_during_execution"):
        return None
    return node_affinity.required_during_scheduling_ignored_during_execution


def required_node_affinity(pod: Pod) -> RequiredNodeAffinity:
    """Kubernetes' GetRequiredNodeAffinity."""
    required = required_node_selector(pod)
    return RequiredNodeAffinity(
        tuple(pod.spec.node_selector.items()),
        None if required is None else parse_terms(required.node_selector_terms),
    )

"""Structural schemas of custom resources: the checks a CRD's
openAPIV3Schema must pass, and the `Structural` the API server builds from
it once per CRD version to default, prune and validate custom objects.

The object handed to `Structural` is the whole custom object as plain JSON
(dicts, lists, str, int, float, bool, None). apiVersion, kind and metadata
at its root belong to the server: the schema neither validates, defaults
nor prunes them. Order of use on a write, as Kubernetes does it: `prune`,
`default`, then `validate`; on a read, `default`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kpy.api.crd import _structure
from kpy.api.crd._defaulting import apply_defaults, prune
from kpy.api.crd._model import build_node
from kpy.api.crd._values import validate_values
from kpy.api.crd.cel import blocked_error, check_rules, compile_rules

if TYPE_CHECKING:
    from kpy.api.crd._model import Node
    from kpy.api.errors import FieldError

__all__ = ["FieldDoc", "Structural", "structural_errors"]


def structural_errors(schema: dict[str, Any], path: str) -> list[FieldError]:
    """Every reason `schema` is not a structural schema (or has a CEL rule
    that does not compile, or a bad default), each FieldError with its path
    under `path` (`spec.versions[0].schema.openAPIV3Schema`); [] when it is
    fine."""
    return _structure.structural_errors(schema, path)


@dataclass(frozen=True, slots=True)
class FieldDoc:
    """One field as `kpyctl explain` shows it. `type` is written as kubectl
    writes it (`string`, `integer`, `Object`, `[]Object`, `map[string]string`,
    `IntOrString`); `children` are the fields directly under it (for a list
    or map, under its items or values), each without children of its own."""

    name: str
    type: str
    description: str = ""
    required: bool = False
    children: tuple[FieldDoc, ...] = ()


class Structural:
    """A structural schema, built once (patterns and CEL rules compiled) and
    then used for any number of objects. Safe to share between threads: it
    is never changed after `build`."""

    def __init__(self, root: Node) -> None:
        self._root = root

    @classmethod
    def build(cls, schema: dict[str, Any]) -> Structural:
        """`schema` must already have passed `structural_errors`."""
        return cls(build_node(schema, compile_rules))

    def default(self, obj: dict[str, Any]) -> None:
        """Apply the schema's defaults to `obj` in place (idempotent)."""
        apply_defaults(self._root, obj, root=True)

    def prune(self, obj: dict[str, Any]) -> None:
        """Remove from `obj`, in place, every field the schema does not specify."""
        prune(self._root, obj, root=True)

    def validate(self, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[FieldError]:
        """Every error of `obj` against the schema and its CEL rules; `old`
        is the stored object on update (for transition rules). The rules are
        not run over an object with type or enum errors; one error says so."""
        report = validate_values(self._root, obj, "", root=True)
        if report.blocking:
            if self._root.rules_below:
                return [*report.errors, blocked_error()]
            return report.errors
        return [*report.errors, *check_rules(self._root, obj, old)]

    def describe(self, field_path: str) -> FieldDoc | None:
        """The field at dotted `field_path` (`spec.ports.name`; "" for the
        whole object), going through lists and maps to their items; None
        when the schema has no such field."""
        node, name, required = self._root, "", False
        for step in [s for s in field_path.split(".") if s]:
            holder = _element(node)
            found = holder.properties.get(step)
            if found is None:
                return None
            node, name, required = found, step, step in holder.required
        fields = _element(node)
        children = tuple(
            FieldDoc(key, _type_name(sub), sub.description, key in fields.required)
            for key, sub in sorted(fields.properties.items())
        )
        return FieldDoc(name, _type_name(node), node.description, required, children)


def _element(node: Node) -> Node:
    """The node whose fields a path step names: through list items and map values."""
    while True:
        if node.items is not None:
            node = node.items
        elif node.additional is not None and not node.properties:
            node = node.additional
        else:
            return node


def _type_name(node: Node) -> str:
    if node.int_or_string:
        return "IntOrString"
    if node.items is not None:
        return f"[]{_type_name(node.items)}"
    if node.additional is not None:
        return f"map[string]{_type_name(node.additional)}"
    if node.type == "object" or (not node.type and node.properties):
        return "Object"
    return node.type or "any"

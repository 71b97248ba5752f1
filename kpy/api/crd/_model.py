"""The structural schema as a tree of frozen nodes, built once from the
openAPIV3Schema dict of a CRD version.

A `Node` holds what the walkers (validation, defaulting, pruning, CEL rules,
explain) need, already parsed: patterns compiled, rules compiled, numbers
normalised. `allOf`/`anyOf`/`oneOf`/`not` branches are nodes too; a
structural schema lets them carry value validations only.

`build_node` trusts its input: call it only on a schema that passed
`structural_errors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

# The fields the server owns at the root of every object (and of every
# embedded resource): never validated, defaulted or pruned by the schema.
META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})

_ABSENT: Any = object()


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One compiled `x-kubernetes-validations` entry (compiled by
    `kpy.api.crd.cel.compile_rules`; a node of the model keeps its own)."""

    source: str
    program: Any
    message: str = ""
    message_program: Any = None
    reason: str = "FieldValueInvalid"
    field_path: str = ""  # relative to the rule's node, e.g. "spec.replicas"
    uses_old_self: bool = False
    optional_old_self: bool = False
    nesting: int = 0  # depth of nested comprehensions

    @property
    def name(self) -> str:
        """How errors name the rule: its message, else its text."""
        return self.message or self.source


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """One schema node. `type` is "" where the schema leaves it open
    (int-or-string, preserve-unknown-fields, or a value-validation branch)."""

    type: str = ""
    format: str = ""
    description: str = ""
    nullable: bool = False
    default: Any = _ABSENT
    properties: dict[str, Node] = field(default_factory=dict)
    # additionalProperties: a schema for every map value, or None. `open_map`
    # is true for `additionalProperties: true` (any value, nothing to check).
    additional: Node | None = None
    open_map: bool = False
    items: Node | None = None
    required: tuple[str, ...] = ()
    enum: tuple[Any, ...] | None = None
    pattern: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    multiple_of: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    min_properties: int | None = None
    max_properties: int | None = None
    all_of: tuple[Node, ...] = ()
    any_of: tuple[Node, ...] = ()
    one_of: tuple[Node, ...] = ()
    not_: Node | None = None
    preserve_unknown: bool = False
    embedded: bool = False
    int_or_string: bool = False
    list_type: str = ""
    list_map_keys: tuple[str, ...] = ()
    map_type: str = ""
    rules: tuple[Rule, ...] = ()
    rules_below: bool = False  # this node or a node under it has rules

    @property
    def has_default(self) -> bool:
        return self.default is not _ABSENT

    def child(self, key: str) -> Node | None:
        """The schema of map key `key`: its property, else additionalProperties."""
        found = self.properties.get(key)
        return found if found is not None else self.additional

    def keeps(self, key: str) -> bool:
        """Whether pruning keeps an unknown-to-properties `key`."""
        return key in self.properties or self.additional is not None or self.open_map


def build_node(
    schema: dict[str, Any], compile_rules: Callable[[list[Any]], tuple[Rule, ...]]
) -> Node:
    """The node tree of `schema` (already known to be structural)."""

    def sub(key: str) -> Node | None:
        value = schema.get(key)
        return build_node(value, compile_rules) if isinstance(value, dict) else None

    def subs(key: str) -> tuple[Node, ...]:
        return tuple(build_node(s, compile_rules) for s in schema.get(key) or ())

    additional = schema.get("additionalProperties")
    enum = schema.get("enum")
    properties = {
        k: build_node(v, compile_rules) for k, v in (schema.get("properties") or {}).items()
    }
    items, additional_node = sub("items"), sub("additionalProperties")
    rules = compile_rules(schema.get("x-kubernetes-validations") or [])
    below = [*properties.values(), items, additional_node]
    return Node(
        type=schema.get("type") or "",
        format=schema.get("format") or "",
        description=schema.get("description") or "",
        nullable=bool(schema.get("nullable")),
        default=_ABSENT if schema.get("default") is None else schema["default"],
        properties=properties,
        additional=additional_node,
        open_map=additional is True,
        items=items,
        required=tuple(schema.get("required") or ()),
        enum=tuple(enum) if enum is not None else None,
        pattern=schema.get("pattern") or "",
        minimum=schema.get("minimum"),
        maximum=schema.get("maximum"),
        exclusive_minimum=bool(schema.get("exclusiveMinimum")),
        exclusive_maximum=bool(schema.get("exclusiveMaximum")),
        multiple_of=schema.get("multipleOf"),
        min_length=schema.get("minLength"),
        max_length=schema.get("maxLength"),
        min_items=schema.get("minItems"),
        max_items=schema.get("maxItems"),
        min_properties=schema.get("minProperties"),
        max_properties=schema.get("maxProperties"),
        all_of=subs("allOf"),
        any_of=subs("anyOf"),
        one_of=subs("oneOf"),
        not_=sub("not"),
        preserve_unknown=bool(schema.get("x-kubernetes-preserve-unknown-fields")),
        embedded=bool(schema.get("x-kubernetes-embedded-resource")),
        int_or_string=bool(schema.get("x-kubernetes-int-or-string")),
        list_type=schema.get("x-kubernetes-list-type") or "",
        list_map_keys=tuple(schema.get("x-kubernetes-list-map-keys") or ()),
        map_type=schema.get("x-kubernetes-map-type") or "",
        rules=rules,
        rules_below=bool(rules) or any(n is not None and n.rules_below for n in below),
    )


# ------------------------------------------------------------------ paths and values


def child_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def index_path(path: str, index: int | str) -> str:
    """`spec.items[2]`, or `spec.labels[app]` for a map key."""
    return f"{path}[{index}]"


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def is_integer(value: Any) -> bool:
    """JSON integers, and numbers with no fraction (3.0), as Kubernetes counts them."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def show_number(value: float) -> str:
    """A bound as Go's %v prints it: 5, not 5.0."""
    return str(int(value)) if float(value).is_integer() else repr(value)

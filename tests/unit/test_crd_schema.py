"""Structural schemas of custom resources (kpy/api/crd): the structural
check of a CRD's openAPIV3Schema, then validation, defaulting, pruning and
explain of custom objects, each a table of named cases with the exact
errors (or object) a user would see, as Kubernetes words them."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest
from fuzz_strategies import FUZZ
from hypothesis import given
from hypothesis import strategies as st

from kpy.api.crd import FieldDoc, Structural, structural_errors

Json = dict[str, Any]
P = "spec.versions[0].schema.openAPIV3Schema"
SPEC = f"{P}.properties[spec]"


def root(spec: Json, **extra: Any) -> Json:
    """A CRD schema whose `spec` is `spec`."""
    return {"type": "object", "properties": {"spec": spec}, **extra}


def spec_of(properties: Json, **extra: Any) -> Json:
    return root({"type": "object", "properties": properties, **extra})


def obj(spec: Any) -> Json:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": spec,
    }


# ------------------------------------------------------------------ structural check


@dataclass(frozen=True)
class SchemaCase:
    name: str
    schema: Json
    errors: tuple[str, ...] = ()


INT_OR_STRING_ANY_OF = {
    "x-kubernetes-int-or-string": True,
    "anyOf": [{"type": "integer"}, {"type": "string"}],
}

STRUCTURAL = [
    SchemaCase("a typed spec", spec_of({"size": {"type": "integer", "default": 1}})),
    SchemaCase(
        "a field without a type",
        root({}),
        (f"{SPEC}.type: Required value: must not be empty for specified object fields",),
    ),
    SchemaCase(
        "array items without a type",
        spec_of({"tags": {"type": "array", "items": {"description": "a tag"}}}),
        (
            f"{SPEC}.properties[tags].items.type: Required value: "
            "must not be empty for specified array items",
        ),
    ),
    SchemaCase(
        "no type at the root",
        {"properties": {}},
        (f"{P}.type: Required value: must not be empty at the root",),
    ),
    SchemaCase(
        "an array without items",
        spec_of({"tags": {"type": "array"}}),
        (f"{SPEC}.properties[tags].items: Required value: must be specified",),
    ),
    SchemaCase(
        "properties and additionalProperties",
        spec_of({"a": {"type": "string"}}, additionalProperties={"type": "string"}),
        (
            f"{SPEC}.additionalProperties: Forbidden: additionalProperties and properties "
            "are mutual exclusive",
        ),
    ),
    SchemaCase(
        "additionalProperties at the root",
        {"type": "object", "additionalProperties": {"type": "string"}},
        (f"{P}.additionalProperties: Forbidden: must not be used at the root",),
    ),
    SchemaCase(
        "unsupported keywords",
        spec_of(
            {
                "a": {"$ref": "#/definitions/a"},
                "b": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                "c": {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
            },
            definitions={"a": {"type": "string"}},
            dependencies={"a": ["b"]},
        ),
        (
            f"{SPEC}.definitions: Forbidden: definitions is not supported",
            f"{SPEC}.dependencies: Forbidden: dependencies is not supported",
            f"{SPEC}.properties[a].$ref: Forbidden: $ref is not supported",
            f"{SPEC}.properties[a].type: Required value: must not be empty for specified "
            "object fields",
            f"{SPEC}.properties[b].uniqueItems: Forbidden: uniqueItems cannot be set to true "
            "since the runtime complexity becomes quadratic",
            f"{SPEC}.properties[c].patternProperties: Forbidden: patternProperties is not "
            "supported",
        ),
    ),
    SchemaCase(
        "an unknown keyword and a keyword of the wrong kind",
        spec_of({"a": {"type": "string", "maxlength": 3, "minLength": "3"}}),
        (
            f'{SPEC}.properties[a].maxlength: unknown field "maxlength"',
            f'{SPEC}.properties[a].minLength: Invalid value: "string": must be a '
            "non-negative integer",
        ),
    ),
    SchemaCase(
        "type null and an unknown type",
        spec_of({"a": {"type": "null"}, "b": {"type": "float"}}),
        (
            f"{SPEC}.properties[a].type: Forbidden: type cannot be set to null, use nullable "
            "as an alternative",
            f'{SPEC}.properties[b].type: Unsupported value: "float": supported values: "array", '
            '"boolean", "integer", "number", "object", "string"',
        ),
    ),
    SchemaCase(
        "types and defaults inside value validations",
        spec_of(
            {"a": {"type": "string"}},
            anyOf=[{"type": "object", "description": "x", "properties": {"a": {"default": "b"}}}],
        ),
        (
            f"{SPEC}.anyOf[0].type: Forbidden: must be empty to be structural",
            f"{SPEC}.anyOf[0].description: Forbidden: must be empty to be structural",
            f"{SPEC}.anyOf[0].properties[a].default: Forbidden: must be undefined to be structural",
        ),
    ),
    SchemaCase(
        "a value validation on a field the structure lacks",
        spec_of(
            {"a": {"type": "string"}},
            oneOf=[{"required": ["a"]}, {"properties": {"b": {"minLength": 1}}}],
        ),
        (
            f"{SPEC}.properties[b]: Required value: because it is defined in "
            f"{SPEC}.oneOf[1].properties[b]",
        ),
    ),
    SchemaCase("int-or-string spelled as anyOf", spec_of({"port": INT_OR_STRING_ANY_OF})),
    SchemaCase(
        "int-or-string with preserve-unknown-fields",
        spec_of(
            {
                "port": {
                    "x-kubernetes-int-or-string": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                }
            }
        ),
        (
            f"{SPEC}.properties[port].x-kubernetes-preserve-unknown-fields: Invalid value: true: "
            "must be false if x-kubernetes-int-or-string is true",
        ),
    ),
    SchemaCase(
        "preserve-unknown-fields false",
        spec_of({"a": {"type": "object", "x-kubernetes-preserve-unknown-fields": False}}),
        (
            f"{SPEC}.properties[a].x-kubernetes-preserve-unknown-fields: Invalid value: "
            "false: must be true or undefined",
        ),
    ),
    SchemaCase(
        "root metadata may only restrict name and generateName",
        {
            "type": "object",
            "properties": {
                "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
                "kind": {"type": "integer"},
            },
        },
        (
            f'{P}.properties[kind].type: Invalid value: "integer": must be string',
            f"{P}.properties[metadata]: Forbidden: must not specify anything other than name and "
            "generateName, but metadata is implicitly specified",
        ),
    ),
    SchemaCase(
        "root metadata restricting the name",
        {
            "type": "object",
            "properties": {
                "metadata": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "maxLength": 20}},
                }
            },
        },
    ),
    SchemaCase(
        "a default in root metadata",
        {"type": "object", "properties": {"metadata": {"type": "object", "default": {}}}},
        (f"{P}.properties[metadata].default: Forbidden: must not be set in top-level metadata",),
    ),
    SchemaCase(
        "an embedded resource without properties",
        spec_of({"template": {"type": "object", "x-kubernetes-embedded-resource": True}}),
        (
            f"{SPEC}.properties[template].properties: Required value: must not be empty if "
            "x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ),
    ),
    SchemaCase(
        "an embedded resource that is not an object",
        spec_of(
            {
                "template": {
                    "type": "string",
                    "x-kubernetes-embedded-resource": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                }
            }
        ),
        (
            f'{SPEC}.properties[template].type: Invalid value: "string": '
            "must be object if x-kubernetes-embedded-resource is true",
        ),
    ),
    SchemaCase(
        "list types",
        spec_of(
            {
                "a": {"type": "string", "x-kubernetes-list-type": "set"},
                "b": {
                    "type": "array",
                    "items": {"type": "string"},
                    "x-kubernetes-list-type": "bag",
                },
                "c": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    "x-kubernetes-list-type": "map",
                },
                "d": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["id"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                },
                "e": {
                    "type": "array",
                    "items": {"type": "string"},
                    "x-kubernetes-list-map-keys": ["x"],
                },
            }
        ),
        (
            f'{SPEC}.properties[a].type: Invalid value: "string": must be array if '
            "x-kubernetes-list-type is specified",
            f'{SPEC}.properties[b].x-kubernetes-list-type: Unsupported value: "bag": '
            'supported values: "atomic", "set", "map"',
            f"{SPEC}.properties[c].x-kubernetes-list-map-keys: Required value: must not be "
            "empty if x-kubernetes-list-type is map",
            f'{SPEC}.properties[d].x-kubernetes-list-map-keys: Invalid value: ["id"]: '
            "entries must all be names of item properties",
            f"{SPEC}.properties[e].x-kubernetes-list-type: Required value: must be map if "
            "x-kubernetes-list-map-keys is non-empty",
        ),
    ),
    SchemaCase(
        "a list-map key that is optional without a default",
        spec_of(
            {
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["port"],
                    "items": {"type": "object", "properties": {"port": {"type": "integer"}}},
                }
            }
        ),
        (
            f"{SPEC}.properties[ports].items.properties[port].default: Required value: this "
            "property is in "
            "x-kubernetes-list-map-keys, so it must have a default or be a required property",
        ),
    ),
    SchemaCase(
        "a map type on a string",
        spec_of({"a": {"type": "string", "x-kubernetes-map-type": "sparse"}}),
        (
            f'{SPEC}.properties[a].type: Invalid value: "string": must be object if '
            "x-kubernetes-map-type is specified",
            f'{SPEC}.properties[a].x-kubernetes-map-type: Unsupported value: "sparse": '
            'supported values: "atomic", "granular"',
        ),
    ),
    SchemaCase(
        "a pattern that is not a regular expression",
        spec_of({"a": {"type": "string", "pattern": "([a-z"}}),
        (
            f'{SPEC}.properties[a].pattern: Invalid value: "([a-z": '
            "must be a valid regular expression, but isn't: unclosed character class",
        ),
    ),
    SchemaCase(
        "a pattern with look-ahead (not RE2, as in Kubernetes)",
        spec_of({"a": {"type": "string", "pattern": "^(?!x)"}}),
        (
            f'{SPEC}.properties[a].pattern: Invalid value: "^(?!x)": must be a valid regular '
            "expression, but isn't: look-around, including look-ahead and look-behind, "
            "is not supported",
        ),
    ),
    SchemaCase(
        "defaults of the wrong type or with unknown fields",
        spec_of(
            {
                "size": {"type": "integer", "default": "big", "minimum": 1},
                "tls": {
                    "type": "object",
                    "properties": {"on": {"type": "boolean"}},
                    "default": {"on": True, "port": 1},
                },
                "mode": {"type": "string", "enum": ["a", "b"], "default": "c"},
            }
        ),
        (
            f'{SPEC}.properties[size].default: Invalid value: "string": '
            f"{SPEC}.properties[size].default "
            'in body must be of type integer: "string"',
            f'{SPEC}.properties[tls].default: Invalid value: {{"on": true, "port": 1}}: must '
            "not have unknown fields",
            f'{SPEC}.properties[mode].default: Unsupported value: "c": supported values: "a", "b"',
        ),
    ),
]


@pytest.mark.parametrize("case", STRUCTURAL, ids=[c.name for c in STRUCTURAL])
def test_structural_errors(case: SchemaCase) -> None:
    shown = [str(e) for e in structural_errors(case.schema, P)]
    assert sorted(shown) == sorted(case.errors), f"{case.name}: {shown}"


# ------------------------------------------------------------------ validation


@dataclass(frozen=True)
class ValueCase:
    name: str
    properties: Json
    spec: Any
    errors: tuple[str, ...] = ()
    extra: Json = field(default_factory=dict)  # keywords of the spec schema itself


def _check(case: ValueCase) -> None:
    schema = spec_of(case.properties, **case.extra)
    assert structural_errors(schema, P) == [], case.name
    shown = [str(e) for e in Structural.build(schema).validate(obj(case.spec))]
    assert shown == list(case.errors), f"{case.name}: {shown}"


TYPES = [
    ValueCase(
        "all of the right types",
        {"n": {"type": "integer"}, "s": {"type": "string"}, "b": {"type": "boolean"}},
        {"n": 1, "s": "x", "b": False},
    ),
    ValueCase(
        "a string for an integer",
        {"replicas": {"type": "integer"}},
        {"replicas": "string"},
        (
            'spec.replicas: Invalid value: "string": spec.replicas in body must be of type '
            'integer: "string"',
        ),
    ),
    ValueCase("3.0 is an integer", {"replicas": {"type": "integer"}}, {"replicas": 3.0}),
    ValueCase(
        "3.5 is not an integer",
        {"replicas": {"type": "integer"}},
        {"replicas": 3.5},
        (
            'spec.replicas: Invalid value: "number": spec.replicas in body must be of type '
            'integer: "number"',
        ),
    ),
    ValueCase("an integer is a number", {"ratio": {"type": "number"}}, {"ratio": 2}),
    ValueCase(
        "a boolean is not a number",
        {"ratio": {"type": "number"}},
        {"ratio": True},
        (
            'spec.ratio: Invalid value: "boolean": spec.ratio in body must be of type '
            'number: "boolean"',
        ),
    ),
    ValueCase(
        "an object for a list, and nested errors all at once",
        {
            "tags": {"type": "array", "items": {"type": "string"}},
            "m": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
        {"tags": {"a": 1}, "m": {"app": "x", "ok": 1}},
        (
            'spec.tags: Invalid value: "object": spec.tags in body must be of type array: "object"',
            'spec.m[app]: Invalid value: "string": spec.m[app] in body must be of type '
            'integer: "string"',
        ),
    ),
    ValueCase(
        "list items by index",
        {
            "items": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            }
        },
        {"items": [{"name": "a"}, {"name": 2}]},
        (
            'spec.items[1].name: Invalid value: "integer": spec.items[1].name in body must '
            'be of type string: "integer"',
        ),
    ),
    ValueCase(
        "the spec itself of the wrong type",
        {},
        "x",
        ('spec: Invalid value: "string": spec in body must be of type object: "string"',),
    ),
]

FORMATS = [
    ValueCase(
        "formats that hold",
        {
            k: {"type": "string", "format": k}
            for k in (
                "email",
                "hostname",
                "ipv4",
                "ipv6",
                "cidr",
                "mac",
                "uuid",
                "date",
                "date-time",
                "duration",
                "byte",
                "uri",
            )
        },
        {
            "email": "a@example.com",
            "hostname": "web-1.example.com",
            "ipv4": "10.0.0.1",
            "ipv6": "fd00::1",
            "cidr": "10.0.0.0/8",
            "mac": "00:1a:2b:3c:4d:5e",
            "uuid": "123e4567-e89b-12d3-a456-426614174000",
            "date": "2026-12-07",
            "date-time": "2026-12-07T19:00:00Z",
            "duration": "1h30m",
            "byte": "aGVsbG8=",
            "uri": "https://example.com/x",
        },
    ),
    *(
        ValueCase(
            f"not a {fmt}",
            {"v": {"type": "string", "format": fmt}},
            {"v": bad},
            (f'spec.v: Invalid value: "{bad}": spec.v in body must be of type {fmt}: "{bad}"',),
        )
        for fmt, bad in (
            ("email", "nobody"),
            ("hostname", "-web"),
            ("ipv4", "10.0.0.256"),
            ("ipv6", "10.0.0.1"),
            ("cidr", "10.0.0.1"),
            ("mac", "00:1a"),
            ("uuid", "123"),
            ("date", "2026-13-01"),
            ("date-time", "2026-12-07 noon"),
            ("duration", "soon"),
            ("byte", "not base64!"),
        )
    ),
    ValueCase("an unchecked format", {"v": {"type": "integer", "format": "int32"}}, {"v": 2**40}),
]

RANGES = [
    ValueCase(
        "minimum and maximum",
        {"a": {"type": "integer", "minimum": 1}, "b": {"type": "integer", "maximum": 5}},
        {"a": 0, "b": 6},
        (
            "spec.a: Invalid value: 0: spec.a in body should be greater than or equal to 1",
            "spec.b: Invalid value: 6: spec.b in body should be less than or equal to 5",
        ),
    ),
    ValueCase(
        "exclusive bounds",
        {
            "a": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            "b": {"type": "number", "maximum": 1.5, "exclusiveMaximum": True},
        },
        {"a": 0, "b": 1.5},
        (
            "spec.a: Invalid value: 0: spec.a in body should be greater than 0",
            "spec.b: Invalid value: 1.5: spec.b in body should be less than 1.5",
        ),
    ),
    ValueCase(
        "multipleOf",
        {"a": {"type": "integer", "multipleOf": 5}, "b": {"type": "number", "multipleOf": 0.1}},
        {"a": 12, "b": 0.3},
        ("spec.a: Invalid value: 12: spec.a in body should be a multiple of 5",),
    ),
    ValueCase(
        "string lengths",
        {"a": {"type": "string", "minLength": 3}, "b": {"type": "string", "maxLength": 2}},
        {"a": "ab", "b": "abc"},
        (
            'spec.a: Invalid value: "ab": spec.a in body should be at least 3 chars long',
            "spec.b: Too long: may not be more than 2 bytes",
        ),
    ),
    ValueCase(
        "list and map sizes",
        {
            "few": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "many": {"type": "array", "items": {"type": "string"}, "maxItems": 1},
            "labels": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "maxProperties": 1,
            },
            "none": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "minProperties": 1,
            },
        },
        {"few": [], "many": ["a", "b"], "labels": {"a": "1", "b": "2"}, "none": {}},
        (
            "spec.few: Invalid value: 0: spec.few in body should have at least 1 items",
            "spec.many: Too many: 2: must have at most 1 items",
            "spec.labels: Too many: 2: must have at most 1 items",
            "spec.none: Invalid value: 0: spec.none in body should have at least 1 properties",
        ),
    ),
]

ENUMS_AND_PATTERNS = [
    ValueCase(
        "a pattern that backtracks for ever in Python's re runs in linear time",
        {"a": {"type": "string", "pattern": "^(a+)+$"}},
        {"a": "a" * 5000 + "!"},
        (f"spec.a: Invalid value: \"{'a' * 5000}!\": spec.a in body should match '^(a+)+$'",),
    ),
    ValueCase(
        "a value outside the enum",
        {"size": {"type": "string", "enum": ["small", "large"]}},
        {"size": "huge"},
        ('spec.size: Unsupported value: "huge": supported values: "small", "large"',),
    ),
    ValueCase(
        "a number enum",
        {"level": {"type": "integer", "enum": [1, 2]}},
        {"level": 3},
        ('spec.level: Unsupported value: 3: supported values: "1", "2"',),
    ),
    ValueCase(
        "a number in the enum", {"level": {"type": "integer", "enum": [1, 2]}}, {"level": 2.0}
    ),
    ValueCase(
        "a pattern (searched, not anchored)",
        {
            "a": {"type": "string", "pattern": "[0-9]"},
            "b": {"type": "string", "pattern": "^[a-z]+$"},
        },
        {"a": "v1", "b": "Web"},
        ("spec.b: Invalid value: \"Web\": spec.b in body should match '^[a-z]+$'",),
    ),
]

REQUIRED = [
    ValueCase(
        "required fields",
        {"name": {"type": "string"}, "image": {"type": "string"}},
        {"image": "nginx"},
        ("spec.name: Required value",),
        {"required": ["name", "image"]},
    ),
    ValueCase(
        "required inside list items",
        {
            "ports": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["port"],
                    "properties": {"port": {"type": "integer"}},
                },
            }
        },
        {"ports": [{"port": 80}, {}]},
        ("spec.ports[1].port: Required value",),
    ),
]

NULLABLE = [
    ValueCase("null where nullable", {"a": {"type": "string", "nullable": True}}, {"a": None}),
    ValueCase(
        "null where not nullable",
        {"a": {"type": "string"}},
        {"a": None},
        ('spec.a: Invalid value: "null": spec.a in body must be of type string: "null"',),
    ),
]

LIST_TYPES = [
    ValueCase(
        "a set with a duplicate",
        {"tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}},
        {"tags": ["a", "b", "a"]},
        ('spec.tags[2]: Duplicate value: "a"',),
    ),
    ValueCase(
        "a map list with a duplicate key",
        {
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["port", "protocol"],
                "items": {
                    "type": "object",
                    "required": ["port", "protocol"],
                    "properties": {
                        "port": {"type": "integer"},
                        "protocol": {"type": "string"},
                        "name": {"type": "string"},
                    },
                },
            }
        },
        {
            "ports": [
                {"port": 80, "protocol": "TCP", "name": "a"},
                {"port": 80, "protocol": "UDP"},
                {"port": 80, "protocol": "TCP", "name": "b"},
            ]
        },
        ('spec.ports[2]: Duplicate value: {"port": 80, "protocol": "TCP"}',),
    ),
    ValueCase(
        "an atomic list may repeat",
        {
            "tags": {
                "type": "array",
                "items": {"type": "string"},
                "x-kubernetes-list-type": "atomic",
            }
        },
        {"tags": ["a", "a"]},
    ),
]

INT_OR_STRING = [
    ValueCase("an integer", {"port": {"x-kubernetes-int-or-string": True}}, {"port": 80}),
    ValueCase("a string", {"port": INT_OR_STRING_ANY_OF}, {"port": "http"}),
    ValueCase(
        "a boolean",
        {"port": {"x-kubernetes-int-or-string": True}},
        {"port": True},
        (
            'spec.port: Invalid value: "boolean": spec.port in body must be of type '
            'integer,string: "boolean"',
        ),
    ),
    ValueCase(
        "a string that must match a pattern",
        {"port": {"x-kubernetes-int-or-string": True, "pattern": "^[0-9]+%$"}},
        {"port": "50"},
        ("spec.port: Invalid value: \"50\": spec.port in body should match '^[0-9]+%$'",),
    ),
]

TEMPLATE = {
    "type": "object",
    "x-kubernetes-embedded-resource": True,
    "x-kubernetes-preserve-unknown-fields": True,
}
EMBEDDED = [
    ValueCase(
        "an embedded pod",
        {"template": TEMPLATE},
        {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}},
    ),
    ValueCase(
        "an embedded resource without apiVersion and kind",
        {"template": TEMPLATE},
        {"template": {"metadata": {"name": "a/b"}}},
        (
            "spec.template.apiVersion: Required value",
            "spec.template.kind: Required value",
            "spec.template.metadata.name: Invalid value: \"a/b\": may not be '.' or '..' and "
            "may not contain '/' or '%'",
        ),
    ),
]

JUNCTIONS = [
    ValueCase(
        "oneOf: exactly one of two fields",
        {"a": {"type": "string"}, "b": {"type": "string"}},
        {"a": "x", "b": "y"},
        (
            'spec: Invalid value: "spec" must validate one and only one schema (oneOf). '
            "Found 2 valid alternatives",
        ),
        {"oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
    ),
    ValueCase(
        "anyOf: none holds",
        {"a": {"type": "string"}, "b": {"type": "string"}},
        {},
        ('spec: Invalid value: "spec" must validate at least one schema (anyOf)',),
        {"anyOf": [{"required": ["a"]}, {"required": ["b"]}]},
    ),
    ValueCase(
        "allOf reports each branch's errors",
        {"a": {"type": "integer"}},
        {"a": 20},
        ("spec.a: Invalid value: 20: spec.a in body should be less than or equal to 10",),
        {"allOf": [{"properties": {"a": {"maximum": 10}}}]},
    ),
    ValueCase(
        "not",
        {"a": {"type": "string"}},
        {"a": "x"},
        ('spec: Invalid value: "spec" must not validate the schema (not)',),
        {"not": {"required": ["a"]}},
    ),
]

VALUE_TABLES = {
    "types": TYPES,
    "formats": FORMATS,
    "ranges": RANGES,
    "enums and patterns": ENUMS_AND_PATTERNS,
    "required": REQUIRED,
    "nullable": NULLABLE,
    "list types": LIST_TYPES,
    "int-or-string": INT_OR_STRING,
    "embedded resources": EMBEDDED,
    "allOf/anyOf/oneOf/not": JUNCTIONS,
}
VALUE_CASES = [(table, case) for table, cases in VALUE_TABLES.items() for case in cases]


@pytest.mark.parametrize(
    ("table", "case"), VALUE_CASES, ids=[f"{t}: {c.name}" for t, c in VALUE_CASES]
)
def test_validate(table: str, case: ValueCase) -> None:
    _check(case)


def test_root_meta_fields_are_left_to_the_server() -> None:
    schema = spec_of({"a": {"type": "string"}})
    structural = Structural.build(schema)
    obj_ = {"apiVersion": 1, "kind": ["x"], "metadata": {"anything": True}, "spec": {"a": "x"}}
    before = copy.deepcopy(obj_)
    structural.prune(obj_)
    structural.default(obj_)
    assert structural.validate(obj_) == []
    assert obj_ == before


def test_root_metadata_name_restrictions_apply() -> None:
    name_schema = {"type": "string", "maxLength": 5}
    schema = {
        "type": "object",
        "properties": {"metadata": {"type": "object", "properties": {"name": name_schema}}},
    }
    assert structural_errors(schema, P) == []
    structural = Structural.build(schema)
    assert structural.validate(obj({}) | {"metadata": {"name": "short"}}) == []
    shown = [str(e) for e in structural.validate(obj({}) | {"metadata": {"name": "longer"}})]
    assert shown == ["metadata.name: Too long: may not be more than 5 bytes"]


# ------------------------------------------------------------------ defaulting and pruning


@dataclass(frozen=True)
class RewriteCase:
    name: str
    schema: Json
    before: Json
    after: Json


DEFAULTING = [
    RewriteCase(
        "a missing field gets its default",
        spec_of({"replicas": {"type": "integer", "default": 1}, "image": {"type": "string"}}),
        {"image": "nginx"},
        {"image": "nginx", "replicas": 1},
    ),
    RewriteCase(
        "a given value is kept",
        spec_of({"replicas": {"type": "integer", "default": 1}}),
        {"replicas": 3},
        {"replicas": 3},
    ),
    RewriteCase(
        "a null of a non-nullable field: defaulted, or dropped without a default",
        spec_of({"a": {"type": "integer", "default": 1}, "b": {"type": "string"}}),
        {"a": None, "b": None},
        {"a": 1},
    ),
    RewriteCase(
        "a null of a nullable field stays",
        spec_of({"a": {"type": "integer", "default": 1, "nullable": True}}),
        {"a": None},
        {"a": None},
    ),
    RewriteCase(
        "defaults nest into a defaulted object",
        spec_of(
            {
                "tls": {
                    "type": "object",
                    "default": {},
                    "properties": {"port": {"type": "integer", "default": 443}},
                }
            }
        ),
        {},
        {"tls": {"port": 443}},
    ),
    RewriteCase(
        "defaults in list items and map values",
        spec_of(
            {
                "ports": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"protocol": {"type": "string", "default": "TCP"}},
                    },
                },
                "limits": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"max": {"type": "integer", "default": 10}},
                    },
                },
            }
        ),
        {"ports": [{}, {"protocol": "UDP"}], "limits": {"cpu": {}}},
        {"ports": [{"protocol": "TCP"}, {"protocol": "UDP"}], "limits": {"cpu": {"max": 10}}},
    ),
    RewriteCase(
        "the spec itself defaulted",
        root(
            {
                "type": "object",
                "default": {},
                "properties": {"size": {"type": "string", "default": "small"}},
            }
        ),
        {},
        {"size": "small"},
    ),
]

PRUNING = [
    RewriteCase(
        "unknown fields removed, at every depth",
        spec_of(
            {
                "a": {"type": "object", "properties": {"b": {"type": "string"}}},
                "tags": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"k": {"type": "string"}}},
                },
            }
        ),
        {"a": {"b": "x", "c": 1}, "tags": [{"k": "v", "junk": 1}], "junk": True},
        {"a": {"b": "x"}, "tags": [{"k": "v"}]},
    ),
    RewriteCase(
        "preserve-unknown-fields keeps unknown fields, prunes known ones by their schema",
        spec_of(
            {"a": {"type": "object", "properties": {"b": {"type": "string"}}}},
            **{"x-kubernetes-preserve-unknown-fields": True},
        ),
        {"a": {"b": "x", "c": 1}, "free": {"form": 1}},
        {"a": {"b": "x"}, "free": {"form": 1}},
    ),
    RewriteCase(
        "map values are kept, and pruned by their schema",
        spec_of(
            {
                "labels": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"v": {"type": "string"}},
                    },
                }
            }
        ),
        {"labels": {"app": {"v": "web", "x": 1}}},
        {"labels": {"app": {"v": "web"}}},
    ),
    RewriteCase(
        "an embedded resource keeps apiVersion, kind and metadata",
        spec_of(
            {
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {
                        "spec": {"type": "object", "properties": {"image": {"type": "string"}}}
                    },
                }
            }
        ),
        {
            "template": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"image": "x", "junk": 1},
                "status": {},
            }
        },
        {
            "template": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"image": "x"},
            }
        },
    ),
]

REWRITES = [("default", c) for c in DEFAULTING] + [("prune", c) for c in PRUNING]


@pytest.mark.parametrize(("verb", "case"), REWRITES, ids=[f"{v}: {c.name}" for v, c in REWRITES])
def test_rewrite(verb: str, case: RewriteCase) -> None:
    assert structural_errors(case.schema, P) == [], case.name
    structural = Structural.build(case.schema)
    thing = obj(copy.deepcopy(case.before))
    getattr(structural, verb)(thing)
    assert thing == obj(case.after), case.name
    getattr(structural, verb)(thing)
    assert thing == obj(case.after), f"{case.name}: not idempotent"


def test_pruning_drops_unknown_root_fields_but_not_meta() -> None:
    structural = Structural.build(spec_of({}))
    thing = {**obj({}), "extra": 1, "status": {"ready": True}}
    structural.prune(thing)
    assert thing == obj({})


# ------------------------------------------------------------------ explain


def test_describe() -> None:
    schema = spec_of(
        {
            "replicas": {"type": "integer", "description": "How many."},
            "ports": {
                "type": "array",
                "description": "Ports to open.",
                "items": {
                    "type": "object",
                    "required": ["port"],
                    "properties": {"port": {"type": "integer"}, "name": {"type": "string"}},
                },
            },
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "target": {"x-kubernetes-int-or-string": True},
        },
        required=["replicas"],
        description="The desired state.",
    )
    structural = Structural.build(schema)
    spec = structural.describe("spec")
    assert spec == FieldDoc(
        "spec",
        "Object",
        "The desired state.",
        children=(
            FieldDoc("labels", "map[string]string"),
            FieldDoc("ports", "[]Object", "Ports to open."),
            FieldDoc("replicas", "integer", "How many.", required=True),
            FieldDoc("target", "IntOrString"),
        ),
    )
    ports = structural.describe("spec.ports")
    assert ports is not None
    assert [(c.name, c.type, c.required) for c in ports.children] == [
        ("name", "string", False),
        ("port", "integer", True),
    ]
    assert structural.describe("spec.ports.port") == FieldDoc("port", "integer", required=True)
    assert structural.describe("spec.nothing") is None
    whole = structural.describe("")
    assert whole is not None
    assert [c.name for c in whole.children] == ["spec"]


# ------------------------------------------------------------------ fuzzing

_KEYS = st.sampled_from(
    [
        "type", "properties", "items", "additionalProperties", "required", "enum", "default",
        "nullable", "pattern", "format", "minimum", "maxLength", "minItems", "allOf", "anyOf",
        "oneOf", "not", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type", "x-kubernetes-validations", "metadata", "spec", "name", "rule",
        "message", "fieldPath", "object", "array", "string", "integer", "set", "map",
    ]
)  # fmt: skip
_SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | _KEYS
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(st.dictionaries(_KEYS, _JSON, max_size=5), _JSON)
def test_any_schema_and_object_give_field_errors_never_an_exception(
    schema: Json, value: Any
) -> None:
    """A schema, however malformed, gets errors; one that passes builds, and
    any object then prunes, defaults and validates without an exception."""
    problems = structural_errors(schema, P)
    assert all(p.detail for p in problems)
    if problems:
        return
    structural = Structural.build(schema)
    thing = {"apiVersion": "v1", "kind": "X", "metadata": {}, "spec": value}
    structural.prune(thing)
    structural.default(thing)
    assert all(p.detail for p in structural.validate(thing, copy.deepcopy(thing)))


_NAMES = st.sampled_from(["a", "b", "name", "port"])
_LEAF = st.fixed_dictionaries(
    {"type": st.sampled_from(["string", "integer", "number", "boolean"])},
    optional={
        "nullable": st.booleans(),
        "minimum": st.integers(-2, 2),
        "maxLength": st.integers(0, 3),
        "pattern": st.sampled_from(["^a", "[0-9]", "^(a+)+$"]),
        "format": st.sampled_from(["email", "date", "int32", "byte"]),
        "x-kubernetes-validations": st.just([{"rule": "self == self"}]),
    },
) | st.just({"x-kubernetes-int-or-string": True})
_SCHEMAS = st.recursive(
    _LEAF,
    lambda inner: (
        st.fixed_dictionaries(
            {"type": st.just("object"), "properties": st.dictionaries(_NAMES, inner, max_size=3)},
            optional={
                "required": st.lists(_NAMES, max_size=2),
                "x-kubernetes-preserve-unknown-fields": st.just(True),
                "x-kubernetes-validations": st.just(
                    [{"rule": "size(self) >= 0 && self.all(k, k != '')"}]
                ),
            },
        )
        | st.fixed_dictionaries(
            {"type": st.just("array"), "items": inner},
            optional={"maxItems": st.integers(0, 2), "x-kubernetes-list-type": st.just("set")},
        )
        | st.fixed_dictionaries({"type": st.just("object"), "additionalProperties": inner})
    ),
    max_leaves=8,
)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | _NAMES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_NAMES, inner, max_size=3),
    max_leaves=12,
)


@FUZZ
@given(_SCHEMAS, _VALUES, _VALUES)
def test_structural_schemas_handle_any_object(spec: Json, value: Any, old: Any) -> None:
    """Structural schemas build, and prune, default and validate any object
    (and any old object, for transition rules) without an exception."""
    schema = root(spec)
    problems = structural_errors(schema, P)
    assert all(p.detail for p in problems)
    if problems:
        return
    structural = Structural.build(schema)
    thing, before = obj(value), obj(old)
    structural.prune(thing)
    structural.default(thing)
    assert all(p.detail for p in structural.validate(thing, before))

"""CEL validation rules of custom resources (kpy/api/crd/cel.py): the
checks a CRD's rules must pass, and the errors rules give on create and on
update (transition rules), each a table of named cases with the exact
errors a user would see."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest

from kpy.api.crd import Structural, structural_errors
from kpy.api.crd import cel as crd_cel

Json = dict[str, Any]
P = "spec.versions[0].schema.openAPIV3Schema"
SPEC = f"{P}.properties[spec]"
SYNTAX = (
    "mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', "
    "NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}"
)


def schema_with(spec_rules: list[Json], properties: Json | None = None, **spec_extra: Any) -> Json:
    spec = {
        "type": "object",
        "properties": properties or REPLICAS,
        "x-kubernetes-validations": spec_rules,
    }
    return {"type": "object", "properties": {"spec": {**spec, **spec_extra}}}


def obj(spec: Any, name: str = "web") -> Json:
    return {
        "apiVersion": "example.com/v1",
        "kind": "WebApp",
        "metadata": {"name": name},
        "spec": spec,
    }


REPLICAS = {
    "replicas": {"type": "integer"},
    "maxReplicas": {"type": "integer"},
    "ratio": {"type": "number"},
    "name": {"type": "string"},
    "tags": {"type": "array", "items": {"type": "string"}},
    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
}
NOT_MORE = {
    "rule": "self.replicas <= self.maxReplicas",
    "message": "replicas must not exceed maxReplicas",
}

# ------------------------------------------------------------------ checking a CRD's rules


@dataclass(frozen=True)
class SchemaCase:
    name: str
    schema: Json
    errors: tuple[str, ...] = ()


RULE_CHECKS = [
    SchemaCase("a rule that compiles", schema_with([NOT_MORE])),
    SchemaCase(
        "a rule that does not compile",
        schema_with([{"rule": "self.a +"}]),
        (
            f'{SPEC}.x-kubernetes-validations[0].rule: Invalid value: "self.a +": '
            "compilation failed: "
            f"ERROR: <input>:1:9: Syntax error: {SYNTAX}",
        ),
    ),
    SchemaCase(
        "a messageExpression that does not compile",
        schema_with([{"rule": "true", "messageExpression": "'x' +"}]),
        (
            f"{SPEC}.x-kubernetes-validations[0].messageExpression: Invalid value: \"'x' +\": "
            f"messageExpression compilation failed: ERROR: <input>:1:6: Syntax error: {SYNTAX}",
        ),
    ),
    SchemaCase(
        "an empty rule, a blank message, a bad reason, a fieldPath that names no field",
        schema_with(
            [
                {"rule": " "},
                {"rule": "true", "message": " "},
                {"rule": "true", "reason": "FieldValueWrong"},
                {"rule": "true", "fieldPath": ".nothing"},
            ]
        ),
        (
            f"{SPEC}.x-kubernetes-validations[0].rule: Required value: rule is not specified",
            f'{SPEC}.x-kubernetes-validations[1].message: Invalid value: " ": message must '
            "be non-empty if specified",
            f"{SPEC}.x-kubernetes-validations[2].reason: Unsupported value: "
            '"FieldValueWrong": supported values: '
            '"FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", '
            '"FieldValueRequired"',
            f'{SPEC}.x-kubernetes-validations[3].fieldPath: Invalid value: ".nothing": '
            "fieldPath must be a valid path",
        ),
    ),
    SchemaCase(
        "a rule on several lines without a message",
        schema_with([{"rule": "self.replicas > 0 &&\nself.maxReplicas > 0"}]),
        (
            f"{SPEC}.x-kubernetes-validations[0].message: Required value: message must be "
            "specified if rule contains line breaks",
        ),
    ),
    SchemaCase(
        "oldSelf under the items of an atomic list",
        schema_with(
            [],
            {
                "tags": {
                    "type": "array",
                    "items": {
                        "type": "string",
                        "x-kubernetes-validations": [{"rule": "self == oldSelf"}],
                    },
                }
            },
        ),
        (
            f"{SPEC}.properties[tags].items.x-kubernetes-validations[0].rule: Invalid value: "
            '"self == oldSelf": '
            "oldSelf cannot be used on the uncorrelatable portion of the schema within "
            f"{SPEC}.properties[tags]",
        ),
    ),
    SchemaCase(
        "optionalOldSelf on a rule without oldSelf",
        schema_with([{"rule": "true", "optionalOldSelf": True}]),
        (
            f"{SPEC}.x-kubernetes-validations[0].optionalOldSelf: Invalid value: true: may "
            "not be set if oldSelf is not used in rule",
        ),
    ),
    SchemaCase(
        "rules inside a value validation",
        schema_with([], allOf=[{"x-kubernetes-validations": [NOT_MORE]}]),
        (f"{SPEC}.allOf[0].x-kubernetes-validations: Forbidden: must be empty to be structural",),
    ),
]


@pytest.mark.parametrize("case", RULE_CHECKS, ids=[c.name for c in RULE_CHECKS])
def test_rule_checks(case: SchemaCase) -> None:
    shown = [str(e) for e in structural_errors(case.schema, P)]
    assert sorted(shown) == sorted(case.errors), f"{case.name}: {shown}"


# ------------------------------------------------------------------ evaluating rules


@dataclass(frozen=True)
class RuleCase:
    name: str
    schema: Json
    spec: Any
    errors: tuple[str, ...] = ()
    old: Any = None  # the old spec on update


WITH_TAGS = {
    **REPLICAS,
    "tags": {
        "type": "array",
        "items": {"type": "string"},
        "x-kubernetes-validations": [{"rule": "self.all(x, x.size() < 10)"}],
    },
}
NAME_RULES = {
    **REPLICAS,
    "name": {
        "type": "string",
        "x-kubernetes-validations": [
            {"rule": "self.startsWith('a')", "message": "must start with a"},
            {"rule": "self.matches('^[a-z]+$')", "message": "must be lower case letters"},
            {"rule": "self.lowerAscii() == self", "message": "must be lower case (lowerAscii)"},
        ],
    },
}
IMMUTABLE_NAME = {
    **REPLICAS,
    "name": {
        "type": "string",
        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "name is immutable"}],
    },
}
SERVERS = {
    "servers": {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["host"],
        "items": {
            "type": "object",
            "required": ["host"],
            "properties": {"host": {"type": "string"}, "port": {"type": "integer"}},
            "x-kubernetes-validations": [
                {"rule": "self.port >= oldSelf.port", "message": "port may only grow"}
            ],
        },
    }
}

RULES = [
    RuleCase("a rule that holds", schema_with([NOT_MORE]), {"replicas": 2, "maxReplicas": 3}),
    RuleCase(
        "a rule that fails, with its message",
        schema_with([NOT_MORE]),
        {"replicas": 5, "maxReplicas": 3},
        ('spec: Invalid value: "object": replicas must not exceed maxReplicas',),
    ),
    RuleCase(
        "a rule without a message",
        schema_with([{"rule": "self.replicas <= self.maxReplicas"}]),
        {"replicas": 5, "maxReplicas": 3},
        ('spec: Invalid value: "object": failed rule: self.replicas <= self.maxReplicas',),
    ),
    RuleCase(
        "a messageExpression",
        schema_with(
            [
                {
                    **NOT_MORE,
                    "messageExpression": "'replicas ' + string(self.replicas) + ' exceeds ' "
                    "+ string(self.maxReplicas)",
                }
            ]
        ),
        {"replicas": 5, "maxReplicas": 3},
        ('spec: Invalid value: "object": replicas 5 exceeds 3',),
    ),
    RuleCase(
        "a messageExpression that fails falls back to the message",
        schema_with([{**NOT_MORE, "messageExpression": "'missing ' + self.nothing"}]),
        {"replicas": 5, "maxReplicas": 3},
        ('spec: Invalid value: "object": replicas must not exceed maxReplicas',),
    ),
    RuleCase(
        "a reason and a fieldPath",
        schema_with([{**NOT_MORE, "reason": "FieldValueForbidden", "fieldPath": ".replicas"}]),
        {"replicas": 5, "maxReplicas": 3},
        ("spec.replicas: Forbidden: replicas must not exceed maxReplicas",),
    ),
    RuleCase(
        "a messageExpression that gives an empty string is an error of its own",
        schema_with([{**NOT_MORE, "messageExpression": "' '"}]),
        {"replicas": 5, "maxReplicas": 3},
        ('spec: Invalid value: "object": messageExpression should evaluate to a non-empty string',),
    ),
    RuleCase(
        "reasons Required and Duplicate",
        schema_with(
            [
                {
                    "rule": "has(self.name)",
                    "reason": "FieldValueRequired",
                    "fieldPath": ".name",
                    "message": "name is required",
                },
                {
                    "rule": "self.tags.size() == 0",
                    "reason": "FieldValueDuplicate",
                    "fieldPath": ".tags",
                },
            ]
        ),
        {"tags": ["a"]},
        ("spec.name: Required value: name is required", 'spec.tags: Duplicate value: "object"'),
    ),
    RuleCase(
        "has() on an absent field",
        schema_with(
            [{"rule": "has(self.name) || has(self.tags)", "message": "name or tags is required"}]
        ),
        {"replicas": 1},
        ('spec: Invalid value: "object": name or tags is required',),
    ),
    RuleCase(
        "a comprehension over list items",
        schema_with([], WITH_TAGS),
        {"tags": ["short", "much-too-long-a-tag"]},
        ('spec.tags: Invalid value: "array": failed rule: self.all(x, x.size() < 10)',),
    ),
    RuleCase(
        "string rules on a scalar field report its value",
        schema_with([], NAME_RULES),
        {"name": "Web"},
        (
            'spec.name: Invalid value: "Web": must start with a',
            'spec.name: Invalid value: "Web": must be lower case letters',
            'spec.name: Invalid value: "Web": must be lower case (lowerAscii)',
        ),
    ),
    RuleCase(
        "size() of a map",
        schema_with(
            [],
            {
                "labels": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "x-kubernetes-validations": [
                        {"rule": "size(self) > 0", "message": "labels must not be empty"}
                    ],
                }
            },
        ),
        {"labels": {}},
        ('spec.labels: Invalid value: "object": labels must not be empty',),
    ),
    RuleCase(
        "rules on map values name the key",
        schema_with(
            [],
            {
                "labels": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "string",
                        "x-kubernetes-validations": [
                            {"rule": "self != ''", "message": "must not be empty"}
                        ],
                    },
                }
            },
        ),
        {"labels": {"app": "web", "tier": ""}},
        ('spec.labels[tier]: Invalid value: "": must not be empty',),
    ),
    RuleCase(
        "integers stay integers, numbers are doubles",
        schema_with(
            [{"rule": "self.replicas + 1 == 4 && type(self.replicas) == int && self.ratio == 2.0"}]
        ),
        {"replicas": 3.0, "ratio": 2},
    ),
    RuleCase(
        "property names that are not CEL identifiers are escaped",
        schema_with(
            [{"rule": "self.max__dash__surge <= self.__namespace__.size()", "message": "escaped"}],
            {"max-surge": {"type": "integer"}, "namespace": {"type": "string"}},
        ),
        {"max-surge": 3, "namespace": "ab"},
        ('spec: Invalid value: "object": escaped',),
    ),
    RuleCase(
        "a rule that fails to evaluate names the rule",
        schema_with([{"rule": "self.labels.app == 'web'"}]),
        {"labels": {}},
        (
            'spec: Invalid value: "object": no such key: app evaluating rule: '
            "self.labels.app == 'web'",
        ),
    ),
    RuleCase(
        "an overflow names the rule",
        schema_with(
            [{"rule": "self.replicas * 9223372036854775807 > 0", "message": "overflow check"}]
        ),
        {"replicas": 2},
        (
            "spec: Invalid value: \"object\": Arithmetic overflow in 'mul' on 2 and "
            "9223372036854775807. evaluating rule: overflow check",
        ),
    ),
    RuleCase(
        "a rule at the root sees metadata",
        {
            **schema_with([]),
            "x-kubernetes-validations": [
                {
                    "rule": "self.metadata.name.startsWith('web')",
                    "message": "name must start with web",
                }
            ],
        },
        {},
    ),
    RuleCase(
        "rules are not run over an object of the wrong types",
        schema_with([NOT_MORE]),
        {"replicas": "five", "maxReplicas": 3},
        (
            'spec.replicas: Invalid value: "string": spec.replicas in body must be of type '
            'integer: "string"',
            "Invalid value: some validation rules were not checked because the object was invalid; "
            "correct the existing errors to complete validation",
        ),
    ),
    RuleCase(
        "a rule too costly to run",
        schema_with(
            [{"rule": "self.tags.all(x, self.tags.all(y, self.tags.all(z, x != '')))"}, NOT_MORE]
        ),
        {"tags": [str(i) for i in range(200)], "replicas": 5, "maxReplicas": 3},
        (
            'spec: Invalid value: "object": \'operation cancelled: actual cost limit '
            "exceeded': no further "
            "validation rules will be run due to call cost exceeds limit for rule: "
            "self.tags.all(x, self.tags.all(y, self.tags.all(z, x != '')))",
        ),
    ),
]

TRANSITIONS = [
    RuleCase("an immutable field on create", schema_with([], IMMUTABLE_NAME), {"name": "a"}),
    RuleCase(
        "an immutable field unchanged",
        schema_with([], IMMUTABLE_NAME),
        {"name": "a"},
        old={"name": "a"},
    ),
    RuleCase(
        "an immutable field changed",
        schema_with([], IMMUTABLE_NAME),
        {"name": "b"},
        ('spec.name: Invalid value: "b": name is immutable',),
        old={"name": "a"},
    ),
    RuleCase(
        "an immutable field newly set on update",
        schema_with([], IMMUTABLE_NAME),
        {"name": "b"},
        old={},
    ),
    RuleCase(
        "optionalOldSelf runs on create too",
        schema_with(
            [
                {
                    "rule": "oldSelf.hasValue()",
                    "optionalOldSelf": True,
                    "message": "can only be created empty",
                }
            ]
        ),
        {"replicas": 1},
        ('spec: Invalid value: "object": can only be created empty',),
    ),
    RuleCase(
        "optionalOldSelf with an old value",
        schema_with(
            [
                {
                    "rule": "!oldSelf.hasValue() || self.replicas >= oldSelf.value().replicas",
                    "optionalOldSelf": True,
                    "message": "may not scale down",
                }
            ]
        ),
        {"replicas": 1},
        ('spec: Invalid value: "object": may not scale down',),
        old={"replicas": 2},
    ),
    RuleCase(
        "map-list items correlate by key, not by position",
        schema_with([], SERVERS),
        {
            "servers": [
                {"host": "b", "port": 90},
                {"host": "a", "port": 70},
                {"host": "c", "port": 1},
            ]
        },
        ('spec.servers[1]: Invalid value: "object": port may only grow',),
        old={"servers": [{"host": "a", "port": 80}, {"host": "b", "port": 90}]},
    ),
]

RULE_TABLES = {"rules": RULES, "transition rules": TRANSITIONS}
RULE_CASES = [(table, case) for table, cases in RULE_TABLES.items() for case in cases]


@pytest.mark.parametrize(
    ("table", "case"), RULE_CASES, ids=[f"{t}: {c.name}" for t, c in RULE_CASES]
)
def test_rules(table: str, case: RuleCase) -> None:
    assert structural_errors(case.schema, P) == [], case.name
    structural = Structural.build(case.schema)
    old = obj(case.old) if case.old is not None else None
    shown = [str(e) for e in structural.validate(obj(case.spec), old)]
    assert shown == list(case.errors), f"{case.name}: {shown}"


# ------------------------------------------------------------------ a realistic schema


WEBAPP = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["image", "replicas"],
            "x-kubernetes-validations": [
                NOT_MORE,
                {
                    "rule": "!has(self.tls) || self.tls.secretName != ''",
                    "message": "tls needs a secret",
                },
                {
                    "rule": "self.env.all(e, !e.name.startsWith('KPY_'))",
                    "messageExpression": "'reserved env: ' + self.env.filter(e, "
                    "e.name.startsWith('KPY_'))[0].name",
                },
            ],
            "properties": {
                "image": {"type": "string", "minLength": 1},
                "replicas": {"type": "integer", "minimum": 0, "default": 1},
                "maxReplicas": {"type": "integer", "minimum": 1, "default": 10},
                "port": {"x-kubernetes-int-or-string": True, "default": 8080},
                "host": {"type": "string", "format": "hostname"},
                "paths": {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^/"},
                    "x-kubernetes-list-type": "set",
                    "maxItems": 16,
                },
                "env": {
                    "type": "array",
                    "default": [],
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
                    },
                },
                "resources": {
                    "type": "object",
                    "properties": {"cpu": {"type": "string"}, "memory": {"type": "string"}},
                },
                "tls": {
                    "type": "object",
                    "properties": {
                        "secretName": {"type": "string"},
                        "enabled": {"type": "boolean", "default": True},
                    },
                },
                "labels": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "maxLength": 63},
                },
                "tier": {"type": "string", "enum": ["frontend", "backend"], "default": "frontend"},
                "timeout": {"type": "string", "format": "duration"},
                "ratio": {"type": "number", "minimum": 0, "maximum": 1},
                "suspend": {"type": "boolean"},
            },
        },
        "status": {"type": "object", "properties": {"readyReplicas": {"type": "integer"}}},
    },
}


def test_a_realistic_schema_compiles_each_rule_once(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    real = crd_cel.compile_expression

    def counting(source: str) -> Any:
        compiled.append(source)
        return real(source)

    assert structural_errors(WEBAPP, P) == []
    monkeypatch.setattr(crd_cel, "compile_expression", counting)
    structural = Structural.build(WEBAPP)
    assert len(compiled) == 4  # three rules and one messageExpression
    for i in range(1000):
        spec = {
            "image": f"nginx:1.{i}",
            "replicas": i % 10,
            "host": "web.example.com",
            "paths": ["/", f"/v{i}"],
            "env": [{"name": "MODE", "value": "prod"}, {"name": f"N{i}", "value": str(i)}],
            "labels": {"app": "web", "n": str(i)},
            "tls": {"secretName": "cert"},
            "ratio": 0.5,
            "unknown": True,
        }
        thing = obj(copy.deepcopy(spec), name=f"web-{i}")
        structural.prune(thing)
        structural.default(thing)
        assert structural.validate(thing, thing) == [], i
        assert thing["spec"]["tier"] == "frontend"
        assert "unknown" not in thing["spec"]
    assert len(compiled) == 4
    bad = obj(
        {
            "image": "x",
            "replicas": 20,
            "maxReplicas": 5,
            "env": [{"name": "KPY_X"}],
            "tls": {"secretName": ""},
        }
    )
    structural.default(bad)
    assert [str(e) for e in structural.validate(bad)] == [
        'spec: Invalid value: "object": replicas must not exceed maxReplicas',
        'spec: Invalid value: "object": tls needs a secret',
        'spec: Invalid value: "object": reserved env: KPY_X',
    ]

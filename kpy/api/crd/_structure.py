"""Whether a CRD version's openAPIV3Schema is a structural schema that
Kubernetes would accept, with every reason it is not, worded as Kubernetes
words them (`...properties[spec].type: Required value: must not be empty
for specified object fields`).

Three passes over the schema dict: the node checks (keywords, types,
extensions, rules, metadata), completeness (a field named in a value
validation is specified outside it too), and, once those pass, the defaults
(each must validate against its own schema and must not carry fields that
pruning would drop).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

from kpy.api import errors
from kpy.api.crd._defaulting import prune
from kpy.api.crd._errors import forbidden, invalid, not_supported, required
from kpy.api.crd._model import META_FIELDS, build_node, child_path, index_path, json_type
from kpy.api.crd._regex import regex_error
from kpy.api.crd._values import validate_values
from kpy.api.crd.cel import compile_rules, rule_errors
from kpy.api.errors import FieldError

TYPES = ("array", "boolean", "integer", "number", "object", "string")
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]
_JUNCTIONS = ("allOf", "anyOf", "oneOf")

_STR, _BOOL, _NUM, _COUNT, _OBJ, _LIST = "string", "boolean", "number", "count", "object", "array"
_PHRASES = {
    _STR: "a string",
    _BOOL: "a boolean",
    _NUM: "a number",
    _COUNT: "a non-negative integer",
    _OBJ: "an object",
    _LIST: "an array",
}
# Every keyword of JSONSchemaProps, with the JSON kind it must have.
_KEYWORDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("id", "$schema", "$ref", "description", "type", "format", "title", "pattern"), (_STR,)
    ),
    **dict.fromkeys(("x-kubernetes-list-type", "x-kubernetes-map-type"), (_STR,)),
    **dict.fromkeys(("nullable", "exclusiveMaximum", "exclusiveMinimum", "uniqueItems"), (_BOOL,)),
    **dict.fromkeys(
        (
            "x-kubernetes-preserve-unknown-fields",
            "x-kubernetes-embedded-resource",
            "x-kubernetes-int-or-string",
        ),
        (_BOOL,),
    ),
    **dict.fromkeys(("maximum", "minimum", "multipleOf"), (_NUM,)),
    **dict.fromkeys(
        ("maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties"),
        (_COUNT,),
    ),
    **dict.fromkeys(("properties", "patternProperties", "definitions", "dependencies"), (_OBJ,)),
    **dict.fromkeys(("not", "externalDocs"), (_OBJ,)),
    **dict.fromkeys(("additionalProperties", "additionalItems"), (_OBJ, _BOOL)),
    "items": (_OBJ, _LIST),
    **dict.fromkeys(("required", "enum", "allOf", "anyOf", "oneOf"), (_LIST,)),
    **dict.fromkeys(("x-kubernetes-list-map-keys", "x-kubernetes-validations"), (_LIST,)),
    **dict.fromkeys(("default", "example"), ()),
}
_UNSUPPORTED = ("id", "additionalItems", "patternProperties", "definitions", "dependencies", "$ref")
# What a value validation (allOf/anyOf/oneOf/not branch) may not carry, and how Kubernetes says so.
_NOT_IN_BRANCH = (
    ("type", "must be empty to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    ("externalDocs", "must be undefined to be structural"),
    ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
    ("x-kubernetes-embedded-resource", "must be false to be structural"),
    ("x-kubernetes-int-or-string", "must be false to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
)
_EMPTY_TYPE = {
    "root": "must not be empty at the root",
    "item": "must not be empty for specified array items",
    "field": "must not be empty for specified object fields",
}


@dataclass(frozen=True, slots=True)
class _Where:
    """What the walk knows about the place of a node."""

    level: str = "root"  # root, item or field
    in_meta: bool = False  # inside apiVersion, kind or metadata of a resource
    no_defaults: str | None = None  # why defaults are forbidden here
    uncorrelatable: str | None = None  # the list or atomic map under which oldSelf is unknown


def structural_errors(schema: Any, path: str) -> list[FieldError]:
    """See `kpy.api.crd.schema.structural_errors`."""
    if not isinstance(schema, dict):
        return [invalid(path, json_type(schema), "must be an object")]
    errs = _node(schema, path, _Where())
    errs += _completeness(schema, path)
    if not errs:
        errs += _default_errors(schema, path, in_meta=False, root=True)
    return errs


# ------------------------------------------------------------------ keywords


def _kind_ok(value: Any, kind: str) -> bool:
    if kind == _STR:
        return isinstance(value, str)
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _NUM:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == _COUNT:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == _OBJ:
        return isinstance(value, dict)
    return isinstance(value, list)


def _member_errors(key: str, value: Any, path: str) -> list[FieldError]:
    """Members of a keyword's list or map that have the wrong kind."""
    if key in ("properties", "patternProperties", "definitions") and isinstance(value, dict):
        return [
            invalid(index_path(path, k), json_type(v), "must be an object")
            for k, v in value.items()
            if not isinstance(v, dict)
        ]
    want = {
        "required": str,
        "x-kubernetes-list-map-keys": str,
        **dict.fromkeys(_JUNCTIONS, dict),
    }.get(key)
    if want is None or not isinstance(value, list):
        return []
    word = "a string" if want is str else "an object"
    return [
        invalid(index_path(path, i), json_type(v), f"must be {word}")
        for i, v in enumerate(value)
        if not isinstance(v, want)
    ]


def _shape(schema: dict[str, Any], path: str) -> tuple[dict[str, Any], list[FieldError]]:
    """The keywords of `schema` that have the right shape, and errors for the others."""
    errs: list[FieldError] = []
    clean: dict[str, Any] = {}
    for key, value in schema.items():
        at = child_path(path, key)
        kinds = _KEYWORDS.get(key)
        if kinds is None:
            errs.append(FieldError(at, errors.UNKNOWN_FIELD, f'unknown field "{key}"'))
        elif kinds and not any(_kind_ok(value, k) for k in kinds):
            wanted = " or ".join(_PHRASES[k] for k in kinds)
            errs.append(invalid(at, json_type(value), f"must be {wanted}"))
        else:
            member_errs = _member_errors(key, value, at)
            errs += member_errs
            if not member_errs:
                clean[key] = value
    return clean, errs


def _common(s: dict[str, Any], path: str) -> list[FieldError]:
    """Checks that hold in structural nodes and value validations alike."""
    errs = [forbidden(child_path(path, k), f"{k} is not supported") for k in _UNSUPPORTED if k in s]
    if s.get("uniqueItems"):
        detail = "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
        errs.append(forbidden(child_path(path, "uniqueItems"), detail))
    if isinstance(s.get("items"), list):
        errs.append(
            forbidden(child_path(path, "items"), "items must be a schema object and not an array")
        )
    reason = regex_error(s["pattern"]) if "pattern" in s else ""
    if reason:
        detail = f"must be a valid regular expression, but isn't: {reason}"
        errs.append(invalid(child_path(path, "pattern"), s["pattern"], detail))
    return errs


# ------------------------------------------------------------------ structural nodes


def _node(schema: dict[str, Any], path: str, where: _Where) -> list[FieldError]:
    s, errs = _shape(schema, path)
    errs += _common(s, path)
    errs += _generic(s, path, where)
    errs += _extensions(s, path)
    errs += _list_type(s, path)
    errs += _invariants(s, path, where)
    errs += _meta_fields(s, path, where)
    if "x-kubernetes-validations" in s:
        errs += rule_errors(
            s["x-kubernetes-validations"],
            s,
            child_path(path, "x-kubernetes-validations"),
            uncorrelatable=where.uncorrelatable,
        )
    errs += _branches(s, path, where.level)
    errs += _children(s, path, where)
    return errs


def _generic(s: dict[str, Any], path: str, where: _Where) -> list[FieldError]:
    errs: list[FieldError] = []
    kind = s.get("type", "")
    if kind == "null":
        detail = "type cannot be set to null, use nullable as an alternative"
        errs.append(forbidden(child_path(path, "type"), detail))
    elif kind and kind not in TYPES:
        errs.append(not_supported(child_path(path, "type"), kind, TYPES))
    if s.get("default") is not None and where.no_defaults is not None:
        errs.append(forbidden(child_path(path, "default"), f"must not be set {where.no_defaults}"))
    properties, additional = s.get("properties"), s.get("additionalProperties")
    if properties and (additional is False or isinstance(additional, dict)):
        detail = "additionalProperties and properties are mutual exclusive"
        errs.append(forbidden(child_path(path, "additionalProperties"), detail))
    return errs


def _extensions(s: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    kind = s.get("type", "")
    if s.get("x-kubernetes-preserve-unknown-fields") is False:
        errs.append(
            invalid(
                child_path(path, "x-kubernetes-preserve-unknown-fields"),
                False,
                "must be true or undefined",
            )
        )
    if s.get("x-kubernetes-int-or-string"):
        for other in ("x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource"):
            if s.get(other):
                errs.append(
                    invalid(
                        child_path(path, other),
                        True,
                        "must be false if x-kubernetes-int-or-string is true",
                    )
                )
    if "x-kubernetes-map-type" in s:
        errs += _must_be_type(kind, "object", path, "if x-kubernetes-map-type is specified")
        if s["x-kubernetes-map-type"] not in ("atomic", "granular"):
            errs.append(
                not_supported(
                    child_path(path, "x-kubernetes-map-type"),
                    s["x-kubernetes-map-type"],
                    ("atomic", "granular"),
                )
            )
    return errs


def _must_be_type(kind: str, wanted: str, path: str, why: str) -> list[FieldError]:
    if kind == wanted:
        return []
    at, detail = child_path(path, "type"), f"must be {wanted} {why}"
    return [required(at, detail) if not kind else invalid(at, kind, detail)]


def _list_type(s: dict[str, Any], path: str) -> list[FieldError]:
    """x-kubernetes-list-type and x-kubernetes-list-map-keys."""
    errs: list[FieldError] = []
    list_type, keys = s.get("x-kubernetes-list-type"), s.get("x-kubernetes-list-map-keys") or []
    items = s.get("items") if isinstance(s.get("items"), dict) else None
    type_at = child_path(path, "x-kubernetes-list-type")
    if list_type is not None:
        errs += _must_be_type(
            s.get("type", ""), "array", path, "if x-kubernetes-list-type is specified"
        )
        if list_type not in ("atomic", "set", "map"):
            errs.append(not_supported(type_at, list_type, ("atomic", "set", "map")))
    if keys and list_type is None:
        errs.append(required(type_at, "must be map if x-kubernetes-list-map-keys is non-empty"))
    elif keys and list_type != "map":
        errs.append(
            invalid(type_at, list_type, "must be map if x-kubernetes-list-map-keys is non-empty")
        )
    if list_type in ("set", "map") and items is not None and items.get("nullable"):
        errs.append(
            forbidden(
                f"{path}.items.nullable",
                f"cannot be nullable when x-kubernetes-list-type is {list_type}",
            )
        )
    if list_type == "set" and items is not None:
        errs += _set_items(items, path)
    if list_type == "map":
        errs += _map_list(s, keys, items, path)
    return errs


def _set_items(items: dict[str, Any], path: str) -> list[FieldError]:
    detail = "must be atomic as item of a list with x-kubernetes-list-type=set"
    if items.get("type") == "array" and items.get("x-kubernetes-list-type", "atomic") != "atomic":
        return [
            invalid(f"{path}.items.x-kubernetes-list-type", items["x-kubernetes-list-type"], detail)
        ]
    if items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
        return [
            invalid(
                f"{path}.items.x-kubernetes-map-type",
                items.get("x-kubernetes-map-type", "granular"),
                detail,
            )
        ]
    return []


def _map_list(
    s: dict[str, Any], keys: list[str], items: dict[str, Any] | None, path: str
) -> list[FieldError]:
    keys_at = child_path(path, "x-kubernetes-list-map-keys")
    errs: list[FieldError] = []
    if not keys:
        errs.append(required(keys_at, "must not be empty if x-kubernetes-list-type is map"))
    if items is None:
        return [
            *errs,
            required(
                child_path(path, "items"), "must have a schema if x-kubernetes-list-type is map"
            ),
        ]
    if items.get("type") != "object":
        detail = "must be object if parent array's x-kubernetes-list-type is map"
        return [*errs, invalid(f"{path}.items.type", items.get("type", ""), detail)]
    properties = _dict(items.get("properties"))
    needed = (
        {r for r in items.get("required") or () if isinstance(r, str)}
        if isinstance(items.get("required"), list)
        else set()
    )
    for i, key in enumerate(keys):
        prop = properties.get(key)
        prop_at = f"{path}.items.properties[{key}]"
        if not isinstance(prop, dict):
            errs.append(invalid(keys_at, keys, "entries must all be names of item properties"))
            continue
        if prop.get("type") in ("array", "object"):
            detail = "must be a scalar type if parent array's x-kubernetes-list-type is map"
            errs.append(invalid(f"{prop_at}.type", prop["type"], detail))
        if key in keys[:i]:
            errs.append(invalid(keys_at, keys, "must not contain duplicate entries"))
        if key not in needed and prop.get("default") is None:
            detail = (
                "this property is in x-kubernetes-list-map-keys, "
                "so it must have a default or be a required property"
            )
            errs.append(required(f"{prop_at}.default", detail))
        if prop.get("nullable"):
            detail = "this property is in x-kubernetes-list-map-keys, so it cannot be nullable"
            errs.append(forbidden(f"{prop_at}.nullable", detail))
    return errs


def _invariants(s: dict[str, Any], path: str, where: _Where) -> list[FieldError]:
    """Kubernetes' structural invariants: types present, items for arrays,
    roots and embedded resources."""
    errs: list[FieldError] = []
    kind = s.get("type", "")
    embedded = bool(s.get("x-kubernetes-embedded-resource"))
    open_type = s.get("x-kubernetes-int-or-string") or s.get("x-kubernetes-preserve-unknown-fields")
    if kind == "array" and "items" not in s:
        errs.append(required(child_path(path, "items"), "must be specified"))
    if "additionalProperties" in s and where.level == "root":
        errs.append(
            forbidden(child_path(path, "additionalProperties"), "must not be used at the root")
        )
    if embedded:
        errs += _must_be_type(kind, "object", path, "if x-kubernetes-embedded-resource is true")
        if "additionalProperties" in s:
            detail = "must not be used if x-kubernetes-embedded-resource is set"
            errs.append(forbidden(child_path(path, "additionalProperties"), detail))
        if not s.get("x-kubernetes-preserve-unknown-fields") and not s.get("properties"):
            detail = (
                "must not be empty if x-kubernetes-embedded-resource is true "
                "without x-kubernetes-preserve-unknown-fields"
            )
            errs.append(required(child_path(path, "properties"), detail))
        if where.in_meta:
            errs.append(
                forbidden(
                    child_path(path, "x-kubernetes-embedded-resource"),
                    "must not be used inside of resource meta",
                )
            )
    elif not kind and not open_type:
        errs.append(required(child_path(path, "type"), _EMPTY_TYPE[where.level]))
    if where.level == "root" and kind and kind != "object":
        errs.append(invalid(child_path(path, "type"), kind, "must be object at the root"))
    return errs


def _meta_fields(s: dict[str, Any], path: str, where: _Where) -> list[FieldError]:
    """apiVersion and kind are strings; root metadata may only restrict name and generateName."""
    root = where.level == "root"
    if not (root or s.get("x-kubernetes-embedded-resource")):
        return []
    errs: list[FieldError] = []
    properties = s.get("properties") or {}
    for name in ("kind", "apiVersion"):
        prop = properties.get(name)
        if isinstance(prop, dict) and prop.get("type") != "string":
            errs.append(
                invalid(f"{path}.properties[{name}].type", prop.get("type", ""), "must be string")
            )
    metadata = properties.get("metadata")
    if not isinstance(metadata, dict):
        return errs
    meta_at = f"{path}.properties[metadata]"
    if metadata.get("type") != "object":
        errs.append(invalid(f"{meta_at}.type", metadata.get("type", ""), "must be object"))
    names = set(_dict(metadata.get("properties")))
    extra = set(metadata) - {"type", "properties", "default"}
    if root and (extra or not names <= {"name", "generateName"}):
        detail = (
            "must not specify anything other than name and generateName, "
            "but metadata is implicitly specified"
        )
        errs.append(forbidden(meta_at, detail))
    return errs


def _children(s: dict[str, Any], path: str, where: _Where) -> list[FieldError]:
    errs: list[FieldError] = []
    resource = where.level == "root" or bool(s.get("x-kubernetes-embedded-resource"))
    for key, prop in (s.get("properties") or {}).items():
        sub = replace(where, level="field")
        if s.get("x-kubernetes-map-type") == "atomic":
            sub = replace(sub, uncorrelatable=where.uncorrelatable or path)
        if resource and key in META_FIELDS:
            sub = replace(sub, in_meta=True)
            if where.level == "root":
                sub = replace(sub, no_defaults=f"in top-level {key}")
        errs += _node(prop, f"{path}.properties[{key}]", sub)
    additional = s.get("additionalProperties")
    if isinstance(additional, dict):
        sub = replace(where, level="field")
        if where.in_meta:
            sub = replace(
                sub, no_defaults="inside additionalProperties applying to object metadata"
            )
        errs += _node(additional, child_path(path, "additionalProperties"), sub)
    items = s.get("items")
    if isinstance(items, dict):
        sub = replace(where, level="item")
        if s.get("x-kubernetes-list-type") != "map":
            sub = replace(sub, uncorrelatable=where.uncorrelatable or path)
        errs += _node(items, child_path(path, "items"), sub)
    return errs


# ------------------------------------------------------------------ value validations


def _branches(
    s: dict[str, Any], path: str, level: str, *, skip_first_any_of: bool = False
) -> list[FieldError]:
    """The allOf/anyOf/oneOf/not branches of `s`, which may carry value validations only.
    The two int-or-string spellings (anyOf integer|string, directly or as allOf[0]) are allowed."""
    errs: list[FieldError] = []
    for key in _JUNCTIONS:
        for i, branch in enumerate(s.get(key) or ()):
            if key == "anyOf" and (skip_first_any_of or s.get("anyOf") == _INT_OR_STRING):
                continue
            first = key == "allOf" and i == 0 and branch.get("anyOf") == _INT_OR_STRING
            errs += _branch(branch, f"{path}.{key}[{i}]", level, skip_first_any_of=first)
    if isinstance(s.get("not"), dict):
        errs += _branch(s["not"], child_path(path, "not"), level)
    return errs


def _branch(
    schema: dict[str, Any], path: str, level: str, *, skip_first_any_of: bool = False
) -> list[FieldError]:
    s, errs = _shape(schema, path)
    errs += _common(s, path)
    for key, detail in _NOT_IN_BRANCH:
        value = s.get(key)
        if value not in (None, False, "", []):
            errs.append(forbidden(child_path(path, key), detail))
    properties = s.get("properties") or {}
    if "metadata" in properties:
        errs.append(
            forbidden(f"{path}.properties[metadata]", "must not be specified in a nested context")
        )
    errs += _branches(s, path, level, skip_first_any_of=skip_first_any_of)
    if isinstance(s.get("items"), dict):
        errs += _branch(s["items"], child_path(path, "items"), level)
    for key, prop in properties.items():
        errs += _branch(prop, f"{path}.properties[{key}]", "field")
    return errs


def _completeness(s: dict[str, Any], path: str) -> list[FieldError]:
    """Every field or items a value validation names is specified in the structure too."""
    errs: list[FieldError] = []
    for branch, at in _junction_branches(s, path):
        errs += _complete(branch, s, path, at)
    for key, prop in _dict(s.get("properties")).items():
        if isinstance(prop, dict):
            errs += _completeness(prop, f"{path}.properties[{key}]")
    for key in ("items", "additionalProperties"):
        if isinstance(s.get(key), dict):
            errs += _completeness(s[key], child_path(path, key))
    return errs


def _complete(v: dict[str, Any], s: Any, s_path: str, v_path: str) -> list[FieldError]:
    if not isinstance(s, dict):
        return [required(s_path, f"because it is defined in {v_path}")]
    errs: list[FieldError] = []
    for branch, at in _junction_branches(v, v_path):
        errs += _complete(branch, s, s_path, at)
    if isinstance(v.get("items"), dict):
        errs += _complete(
            v["items"], s.get("items"), child_path(s_path, "items"), child_path(v_path, "items")
        )
    structure = _dict(s.get("properties"))
    for key, prop in _dict(v.get("properties")).items():
        if isinstance(prop, dict):
            errs += _complete(
                prop,
                structure.get(key),
                f"{s_path}.properties[{key}]",
                f"{v_path}.properties[{key}]",
            )
    return errs


def _junction_branches(s: dict[str, Any], path: str) -> list[tuple[dict[str, Any], str]]:
    found = [(s["not"], child_path(path, "not"))] if isinstance(s.get("not"), dict) else []
    for key in _JUNCTIONS:
        branches = s.get(key)
        if isinstance(branches, list):
            found += [
                (b, f"{path}.{key}[{i}]") for i, b in enumerate(branches) if isinstance(b, dict)
            ]
    return found


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# ------------------------------------------------------------------ defaults


def _default_errors(
    s: dict[str, Any], path: str, *, in_meta: bool, root: bool = False
) -> list[FieldError]:
    """Each default validates against its schema and survives pruning unchanged."""
    errs: list[FieldError] = []
    if s.get("default") is not None and not in_meta:
        node = build_node(s, compile_rules)
        at = child_path(path, "default")
        pruned = copy.deepcopy(s["default"])
        prune(node, pruned)
        if pruned != s["default"]:
            errs.append(invalid(at, s["default"], "must not have unknown fields"))
        errs += validate_values(node, s["default"], at, root=False).errors
    embedded = bool(s.get("x-kubernetes-embedded-resource"))
    for key, prop in _dict(s.get("properties")).items():
        meta = in_meta or ((root or embedded) and key in META_FIELDS)
        errs += _default_errors(prop, f"{path}.properties[{key}]", in_meta=meta)
    if isinstance(s.get("items"), dict):
        errs += _default_errors(s["items"], child_path(path, "items"), in_meta=in_meta)
    return errs

"""`kpyctl explain TYPE[.FIELD...]`: the documentation of a kind and its
fields, as kubectl's explain prints it.

    kpyctl explain pods
    kpyctl explain pods.spec.containers
    kpyctl explain deployment.spec.strategy --recursive
    kpyctl explain webapps.spec.replicas [--api-version example.com/v1]

- TYPE is the first segment (as in kubectl: `--api-version` picks another
  group/version); it is resolved as `get` resolves it, through the server's
  discovery for custom kinds. A built-in kind needs no server.
- Built-in kinds: the fields are the kind's protobuf message (JSON names),
  the descriptions the comments of proto/kpy/api, compiled into
  kpy/api/_descriptions.json by tools/proto_descriptions.py. Custom kinds:
  the CRD version's openAPIV3Schema (read from the server), its
  `description`s and `required` lists; `metadata` is ObjectMeta's.
- Output, as kubectl's: `KIND:` and `VERSION:`; for a field, `FIELD:
  name <type>` (a leaf) or `RESOURCE: name <type>` (a field with fields);
  `DESCRIPTION:` (the field's, then its type's), then `FIELDS:` sorted by
  name, each `name<TAB><type>` (` -required-` when the schema requires it)
  and its description. `--recursive` lists the fields of fields, indented,
  without descriptions. Types as kubectl writes them: `<string>`,
  `<integer>`, `<number>`, `<boolean>`, `<Object>`, `<[]Object>`,
  `<[]string>`, `<map[string]string>`, `<Quantity>`, `<IntOrString>`,
  `<Time>`. Descriptions are wrapped at 80 columns.
- An unknown TYPE is kubectl's `the server doesn't have a resource type
  "x"`; an unknown field `field "x" does not exist`; both exit 1.
"""

from __future__ import annotations

import functools
import json
import textwrap
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, TextIO

from google.protobuf.descriptor import FieldDescriptor

from kpy.api import codec, errors
from kpy.api.apiextensions.v1 import CustomResourceDefinition
from kpy.api.meta.v1 import ObjectMeta
from kpy.api.scheme import scheme
from kpy.api.unstructured import is_custom
from kpy.cli import _client
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from google.protobuf.descriptor import Descriptor
    from google.protobuf.message import Message

    from kpy.api.scheme import ResourceInfo
    from kpy.client import Client

__all__ = [
    "Node",
    "add_parser",
    "builtin_node",
    "explain_text",
    "render",
    "schema_node",
]

WRAP = 80
_FIELD_INDENT = 3
_DESCRIPTION_INDENT = 5

API_VERSION_DESCRIPTION = (
    "The versioned schema of this representation of an object: `group/version`, "
    "or `v1` for the core group. Servers convert recognized schemas to their latest "
    "internal value and may reject unrecognized ones."
)
KIND_DESCRIPTION = (
    "The REST resource this object represents, in CamelCase. Servers may infer it "
    "from the endpoint a client sends a request to. Cannot be updated."
)
METADATA_DESCRIPTION = "Standard object's metadata: name, namespace, labels, annotations, ..."


@dataclass(frozen=True, slots=True)
class Node:
    """One field (or the kind itself) as explain shows it: its type as
    kubectl names it, its descriptions (the field's, then its type's), and
    its fields (`fields()`: name -> (node, required)), empty for a leaf."""

    type: str
    descriptions: tuple[str, ...] = ()
    children: Callable[[], dict[str, tuple[Node, bool]]] | None = field(default=None)

    def fields(self) -> dict[str, tuple[Node, bool]]:
        return self.children() if self.children is not None else {}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("explain", help="the documentation of a kind or one of its fields")
    p.add_argument("target", metavar="TYPE[.FIELD...]", help="pods, pods.spec.containers, ...")
    p.add_argument(
        "--recursive", action="store_true", help="list the fields of fields, without descriptions"
    )
    p.add_argument(
        "--api-version", default="", metavar="GROUP/VERSION", help="the version to explain"
    )
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _explain))


async def _explain(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    word, *path = args.target.split(".")
    if not word or any(not p for p in path):
        raise UsageError(
            f"explain TYPE[.FIELD...], e.g. pods.spec.containers (got {args.target!r})"
        )
    await _client.discover(client, [word])
    info = _client.resolve(word)
    if args.api_version:
        chosen = scheme.lookup(args.api_version, info.kind)
        if chosen is None:
            raise UsageError(
                f'couldn\'t find resource for "{info.kind}" in {args.api_version}: '
                f"it is served as {', '.join(scheme.versions_of(info.kind))}"
            )
        info = chosen
    if is_custom(info.message):
        root = schema_node(await _custom_schema(client, info))
    else:
        root = builtin_node(info.message)
    out.write(explain_text(info, root, path, recursive=args.recursive))
    return 0


async def _custom_schema(client: Client, info: ResourceInfo) -> dict[str, Any]:
    """The openAPIV3Schema of custom kind `info`'s version ({} when its CRD
    has none)."""
    name = f"{info.plural}.{info.group}"
    try:
        crd = await client.get(CustomResourceDefinition, name)
    except errors.NotFound:
        raise UsageError(
            f'the CustomResourceDefinition "{name}" of {info.kind} is gone; '
            "run 'kpyctl get crds' to see what is served"
        ) from None
    for version in crd.spec.versions:
        if version.name == info.version and version.schema.HasField("open_apiv3_schema"):
            schema = codec.to_dict(version.schema.open_apiv3_schema)
            return schema if isinstance(schema, dict) else {}
    return {}


def explain_text(info: ResourceInfo, root: Node, path: list[str], *, recursive: bool) -> str:
    """The whole output of `explain` for `path` (field names) below `root`;
    UsageError when a field does not exist."""
    node, name = root, ""
    for segment in path:
        found = node.fields().get(segment)
        if found is None:
            raise UsageError(f'field "{segment}" does not exist')
        node, name = found[0], segment
    return render(info.kind, info.api_version, name, node, recursive=recursive)


def render(kind: str, api_version: str, name: str, node: Node, *, recursive: bool) -> str:
    """kubectl's text for `node`, reached as field `name` ("" for the kind)."""
    lines = [f"KIND:     {kind}", f"VERSION:  {api_version}", ""]
    fields = node.fields()
    if name:
        label = "RESOURCE:" if fields else "FIELD:   "
        lines += [f"{label} {name} <{node.type}>", ""]
    lines.append("DESCRIPTION:")
    described = [d for d in node.descriptions if d]
    for i, description in enumerate(described):
        if i:
            lines.append("")
        lines += _wrapped(description, _DESCRIPTION_INDENT)
    if not described:
        lines += _wrapped("<empty>", _DESCRIPTION_INDENT)
    if fields:
        lines += ["", "FIELDS:"]
        if recursive:
            lines += _recursive(fields, _FIELD_INDENT, ())
        else:
            for key in sorted(fields):
                child, required = fields[key]
                mark = " -required-" if required else ""
                lines.append(f"{' ' * _FIELD_INDENT}{key}\t<{child.type}>{mark}")
                text = [d for d in child.descriptions[:1] if d]
                lines += _wrapped(text[0], _DESCRIPTION_INDENT) if text else []
                lines.append("")
            lines.pop()  # no blank line after the last field
    return "\n".join(lines) + "\n"


def _recursive(
    fields: dict[str, tuple[Node, bool]], indent: int, seen: tuple[str, ...]
) -> list[str]:
    lines = []
    for key in sorted(fields):
        child = fields[key][0]
        lines.append(f"{' ' * indent}{key}\t<{child.type}>")
        # a type that contains itself (JSONSchemaProps) is listed once per branch
        identity = child.type + "|" + ",".join(sorted(child.fields())) if child.children else ""
        if child.children is not None and identity not in seen:
            lines += _recursive(child.fields(), indent + _FIELD_INDENT, (*seen, identity))
    return lines


def _wrapped(text: str, indent: int) -> list[str]:
    """`text`'s paragraphs wrapped to WRAP columns at `indent`, a blank
    line between paragraphs."""
    lines: list[str] = []
    for i, paragraph in enumerate(text.split("\n\n")):
        if i:
            lines.append("")
        lines += textwrap.wrap(
            " ".join(paragraph.split()),
            width=WRAP - indent,
            initial_indent=" " * indent,
            subsequent_indent=" " * indent,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [" " * indent]
    return lines


# ------------------------------------------------------------------ built-in kinds


@functools.cache
def _descriptions() -> dict[str, dict[str, str]]:
    """Comments of proto/kpy/api by message full name, then field name
    ("" for the message's own)."""
    text = resources.files("kpy.api").joinpath("_descriptions.json").read_text()
    loaded: dict[str, dict[str, str]] = json.loads(text)
    return loaded


# kpy's protos say nothing of which fields are required; these are the
# fields Kubernetes' OpenAPI marks required, for the kinds kpy serves.
_REQUIRED: dict[str, frozenset[str]] = {
    name: frozenset(fields)
    for name, fields in {
        "kpy.api.core.v1.PodSpec": ("containers",),
        "kpy.api.core.v1.Container": ("name",),
        "kpy.api.core.v1.EphemeralContainer": ("name",),
        "kpy.api.core.v1.ContainerPort": ("containerPort",),
        "kpy.api.core.v1.EnvVar": ("name",),
        "kpy.api.core.v1.VolumeMount": ("name", "mountPath"),
        "kpy.api.core.v1.Volume": ("name",),
        "kpy.api.core.v1.KeyToPath": ("key", "path"),
        "kpy.api.core.v1.ConfigMapKeySelector": ("key",),
        "kpy.api.core.v1.SecretKeySelector": ("key",),
        "kpy.api.core.v1.HTTPGetAction": ("port",),
        "kpy.api.core.v1.TCPSocketAction": ("port",),
        "kpy.api.core.v1.ServicePort": ("port",),
        "kpy.api.core.v1.NodeSelector": ("nodeSelectorTerms",),
        "kpy.api.core.v1.NodeSelectorRequirement": ("key", "operator"),
        "kpy.api.core.v1.PodAffinityTerm": ("topologyKey",),
        "kpy.api.core.v1.WeightedPodAffinityTerm": ("weight", "podAffinityTerm"),
        "kpy.api.core.v1.PreferredSchedulingTerm": ("weight", "preference"),
        "kpy.api.core.v1.TopologySpreadConstraint": (
            "maxSkew",
            "topologyKey",
            "whenUnsatisfiable",
        ),
        "kpy.api.meta.v1.LabelSelectorRequirement": ("key", "operator"),
        "kpy.api.meta.v1.OwnerReference": ("apiVersion", "kind", "name", "uid"),
        "kpy.api.apps.v1.DeploymentSpec": ("selector", "template"),
        "kpy.api.apps.v1.ReplicaSetSpec": ("selector",),
        "kpy.api.apps.v1.DaemonSetSpec": ("selector", "template"),
        "kpy.api.apps.v1.StatefulSetSpec": ("selector", "template"),
        "kpy.api.batch.v1.JobSpec": ("template",),
        "kpy.api.batch.v1.CronJobSpec": ("schedule", "jobTemplate"),
        "kpy.api.autoscaling.v2.HorizontalPodAutoscalerSpec": ("scaleTargetRef", "maxReplicas"),
        "kpy.api.autoscaling.v2.CrossVersionObjectReference": ("kind", "name"),
        "kpy.api.networking.v1.HTTPIngressRuleValue": ("paths",),
        "kpy.api.networking.v1.HTTPIngressPath": ("pathType", "backend"),
        "kpy.api.apiextensions.v1.CustomResourceDefinitionSpec": (
            "group",
            "names",
            "scope",
            "versions",
        ),
        "kpy.api.apiextensions.v1.CustomResourceDefinitionNames": ("plural", "kind"),
        "kpy.api.apiextensions.v1.CustomResourceDefinitionVersion": (
            "name",
            "served",
            "storage",
        ),
        "kpy.api.apiextensions.v1.CustomResourceColumnDefinition": ("name", "type", "jsonPath"),
    }.items()
}

# Messages shown as one value, named as kubectl names their types.
_LEAF_MESSAGES = {
    "google.protobuf.Timestamp": "Time",
    "google.protobuf.Struct": "Object",
    "google.protobuf.Value": "Object",
    "google.protobuf.ListValue": "[]Object",
    "kpy.api.meta.v1.Quantity": "Quantity",
    "kpy.api.meta.v1.IntOrString": "IntOrString",
}

_SCALARS = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "string",
    FieldDescriptor.TYPE_BOOL: "boolean",
    FieldDescriptor.TYPE_DOUBLE: "number",
    FieldDescriptor.TYPE_FLOAT: "number",
    FieldDescriptor.TYPE_ENUM: "string",
}


def builtin_node(message: type[Message]) -> Node:
    """A built-in kind (its message) as explain shows it, with apiVersion
    and kind beside the message's own fields."""
    descriptor: Descriptor = message.DESCRIPTOR  # type: ignore[assignment]  # upb's is the same

    def children() -> dict[str, tuple[Node, bool]]:
        fields = _message_fields(descriptor)
        fields.setdefault("apiVersion", (Node("string", (API_VERSION_DESCRIPTION,)), False))
        fields.setdefault("kind", (Node("string", (KIND_DESCRIPTION,)), False))
        return fields

    return Node("Object", (_descriptions().get(descriptor.full_name, {}).get("", ""),), children)


def _message_fields(descriptor: Descriptor) -> dict[str, tuple[Node, bool]]:
    comments = _descriptions().get(descriptor.full_name, {})
    required = _REQUIRED.get(descriptor.full_name, frozenset())
    out: dict[str, tuple[Node, bool]] = {}
    for fd in descriptor.fields:
        type_name, element = _proto_type(fd)
        descriptions = [comments.get(fd.name, "")]
        children = None
        if element is not None:
            if element.full_name == ObjectMeta.DESCRIPTOR.full_name and not descriptions[0]:
                descriptions = [METADATA_DESCRIPTION]
            descriptions.append(_descriptions().get(element.full_name, {}).get("", ""))
            children = functools.partial(_message_fields, element)
        out[fd.json_name] = (
            Node(type_name, tuple(descriptions), children),
            fd.json_name in required,
        )
    return out


def _proto_type(fd: FieldDescriptor) -> tuple[str, Descriptor | None]:
    """kubectl's name of `fd`'s type, and the message whose fields it has
    (None for a leaf)."""
    message = fd.message_type
    if message is not None and message.GetOptions().map_entry:
        value_type, element = _element_type(message.fields_by_name["value"])
        return f"map[string]{value_type}", element
    name, element = _element_type(fd)
    return (f"[]{name}" if fd.is_repeated else name), element


def _element_type(fd: FieldDescriptor) -> tuple[str, Descriptor | None]:
    message = fd.message_type
    if message is None:
        return _SCALARS.get(fd.type, "integer"), None
    if message.full_name in _LEAF_MESSAGES:
        return _LEAF_MESSAGES[message.full_name], None
    return "Object", message


# ------------------------------------------------------------------ custom kinds


def schema_node(schema: dict[str, Any]) -> Node:
    """A custom kind as explain shows it, from its openAPIV3Schema; apiVersion,
    kind and metadata are added when the schema does not declare them (the
    API server serves them for every kind), metadata as ObjectMeta."""
    root = _schema(schema)

    def children() -> dict[str, tuple[Node, bool]]:
        fields = root.fields()
        fields.setdefault("apiVersion", (Node("string", (API_VERSION_DESCRIPTION,)), False))
        fields.setdefault("kind", (Node("string", (KIND_DESCRIPTION,)), False))
        declared = fields.get("metadata")
        if declared is None or not declared[0].fields():
            meta = functools.partial(_message_fields, ObjectMeta.DESCRIPTOR)
            fields["metadata"] = (Node("Object", (METADATA_DESCRIPTION,), meta), False)
        return fields

    return Node("Object", root.descriptions, children)


def _schema(schema: Any) -> Node:
    if not isinstance(schema, dict):
        return Node("Object")
    description = str(schema.get("description", ""))
    type_name, holder = _schema_type(schema)
    children = None
    if isinstance(holder, dict) and isinstance(holder.get("properties"), dict):
        props: dict[str, Any] = holder["properties"]
        required = set(holder.get("required") or ())
        children = functools.partial(
            lambda p, r: {k: (_schema(v), k in r) for k, v in p.items()}, props, required
        )
    return Node(type_name, (description,), children)


def _schema_type(schema: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """kubectl's name of a schema's type, and the schema whose properties
    are its fields (an array's items, a map's values)."""
    if schema.get("x-kubernetes-int-or-string"):
        return "IntOrString", None
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        name, holder = _schema_type(items) if isinstance(items, dict) else ("Object", None)
        return f"[]{name}", holder
    if kind == "object" or (kind is None and "properties" in schema):
        values = schema.get("additionalProperties")
        if isinstance(values, dict) and "properties" not in schema:
            name, holder = _schema_type(values)
            return f"map[string]{name}", holder
        return "Object", schema
    if kind in ("string", "integer", "number", "boolean"):
        return str(kind), None
    return "Object", None  # untyped: x-kubernetes-preserve-unknown-fields or embedded

"""Strict conversion between manifests (YAML / JSON) and API messages.

Decoding walks the message descriptor, so every kind in `proto/` is handled
by the same code: field names are Kubernetes' JSON names, an unknown field is
an error that names it (with a suggestion when it looks like a typo), a value
of the wrong type is an error that names its field path, and every problem in
a document is reported at once, each with the line it is on. Nothing is
returned for a document that has any problem.

The special types are converted here and only here:
- `google.protobuf.Timestamp` <-> RFC 3339 strings;
- `kpy.api.meta.v1.Quantity` <-> "500m", "1Gi", 2 (kept canonical);
- `kpy.api.meta.v1.IntOrString` <-> 8080 or "http" / "25%";
- `google.protobuf.Struct` / `Value` <-> any JSON value;
- `bytes` <-> base64 strings, as Kubernetes writes Secret data.

Encoding emits exactly the fields that are set, so decode(encode(x)) == x and
a manifest decoded and encoded comes back with the same fields.

Input nested deeper than `MAX_DEPTH` (100) is refused as BadRequest before
any recursive walk starts (see `kpy.api.limits` for why 100). Free-form
JSON (Struct, Value) is bounded more tightly where it sits: protobuf reads
back at most `PROTOBUF_MAX_DEPTH` nested messages and every JSON level costs
it three (map entry, Value, Struct), so an object that decodes here is one
that storage can read again.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from kpy.api import errors
from kpy.api._descriptors import is_map, json_fields, map_value
from kpy.api._yaml import Document, YAMLError, load_documents
from kpy.api.errors import FieldError
from kpy.api.limits import MAX_DEPTH, depth_message, nesting_depth
from kpy.api.quantity import Quantity
from kpy.api.scheme import scheme

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from kpy.api.scheme import ResourceInfo, Scheme

M = TypeVar("M", bound="Message")

_TIMESTAMP = "google.protobuf.Timestamp"
_STRUCT = "google.protobuf.Struct"
_VALUE = "google.protobuf.Value"
_QUANTITY = "kpy.api.meta.v1.Quantity"
_INT_OR_STRING = "kpy.api.meta.v1.IntOrString"

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
}
_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)

PROTOBUF_MAX_DEPTH = 100
"""The most nested messages protobuf's parser (upb) reads; a deeper message
serializes fine but cannot be parsed again, so it must never be stored."""


# ---------------------------------------------------------------- decoding


def _type_name(value: Any) -> str:
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
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class _Decoder:
    """Fills messages from plain values, collecting every problem."""

    def __init__(self) -> None:
        self.problems: list[FieldError] = []
        self.level = 0  # how many messages enclose the one being filled, itself included

    def fail(self, path: str, reason: str, detail: str) -> None:
        self.problems.append(FieldError(path, reason, detail))

    def wrong_type(self, path: str, expected: str, value: Any) -> None:
        shown = json.dumps(value, default=str)
        if len(shown) > 40:
            shown = shown[:37] + "..."
        hint = ""
        if expected == "string" and isinstance(value, int | float | bool):
            hint = " (put it in quotes to make it a string)"
        self.fail(
            path, errors.INVALID, f"expected {expected}, got {_type_name(value)} {shown}{hint}"
        )

    def message(self, msg: Message, data: Any, path: str) -> None:
        self.level += 1
        try:
            self._fill(msg, data, path)
        finally:
            self.level -= 1

    def _fill(self, msg: Message, data: Any, path: str) -> None:
        full_name = msg.DESCRIPTOR.full_name
        special = _SPECIAL_DECODERS.get(full_name)
        if special is not None:
            special(self, msg, data, path)
            return
        if not isinstance(data, dict):
            self.wrong_type(path, "an object", data)
            return
        fields = json_fields(msg.DESCRIPTOR)
        for key, value in data.items():
            child = f"{path}.{key}" if path else str(key)
            field = fields.get(key) if isinstance(key, str) else None
            if field is None:
                self.unknown_field(child, str(key), fields)
                continue
            if value is None:
                continue  # JSON null: the field stays unset, as in Kubernetes
            self.field(msg, field, value, child)

    def unknown_field(self, path: str, key: str, fields: Mapping[str, FieldDescriptor]) -> None:
        close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.75)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        self.fail(path, errors.UNKNOWN_FIELD, f'unknown field "{key}"{hint}')

    def field(self, msg: Message, field: FieldDescriptor, value: Any, path: str) -> None:
        if is_map(field):
            self.map_field(getattr(msg, field.name), field, value, path)
        elif field.is_repeated:
            if not isinstance(value, list):
                self.wrong_type(path, "a list", value)
                return
            target = getattr(msg, field.name)
            for i, item in enumerate(value):
                item_path = f"{path}[{i}]"
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    self.message(target.add(), {} if item is None else item, item_path)
                else:
                    converted = self.scalar(field, item, item_path)
                    if converted is not None:
                        target.append(converted)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            sub = getattr(msg, field.name)
            sub.SetInParent()
            self.message(sub, value, path)
        else:
            converted = self.scalar(field, value, path)
            if converted is not None:
                setattr(msg, field.name, converted)

    def map_field(self, target: Any, field: FieldDescriptor, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.wrong_type(path, "an object", value)
            return
        value_field = map_value(field)
        for key, item in value.items():
            item_path = f"{path}[{key}]"
            if not isinstance(key, str):
                self.wrong_type(item_path, "a string key", key)
                continue
            if self.text(key, item_path) is None:
                continue
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                self.message(target[key], item, item_path)
            elif item is None:
                self.wrong_type(item_path, _scalar_name(value_field), item)
            else:
                converted = self.scalar(value_field, item, item_path)
                if converted is not None:
                    target[key] = converted

    def scalar(self, field: FieldDescriptor, value: Any, path: str) -> Any:
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            if isinstance(value, str):
                return self.text(value, path)
        elif kind == FieldDescriptor.TYPE_BOOL:
            if isinstance(value, bool):
                return value
        elif kind in _INT_RANGES:
            return self.integer(kind, value, path)
        elif kind in _FLOATS:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        elif kind == FieldDescriptor.TYPE_BYTES:
            return self.base64(value, path)
        self.wrong_type(path, _scalar_name(field), value)
        return None

    def text(self, value: str, path: str) -> str | None:
        """`value` if protobuf can store it: JSON's "\\ud800" escapes give
        Python strings with lone surrogates, which are not Unicode text."""
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            self.fail(
                path,
                errors.INVALID,
                f"not valid Unicode text: {value[exc.start]!r} at position {exc.start} is a "
                "lone surrogate; send the character itself, or its escape pair",
            )
            return None
        return value

    def integer(self, kind: int, value: Any, path: str) -> int | None:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            self.wrong_type(path, "an integer", value)
            return None
        low, high = _INT_RANGES[kind]
        if not low <= value <= high:
            self.fail(path, errors.INVALID, f"{value} is out of range ({low} to {high})")
            return None
        return value

    def base64(self, value: Any, path: str) -> bytes | None:
        if not isinstance(value, str):
            self.wrong_type(path, "a base64 string", value)
            return None
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            self.fail(path, errors.INVALID, "illegal base64 data (use stringData for plain text)")
            return None


def _scalar_name(field: FieldDescriptor) -> str:
    if field.type == FieldDescriptor.TYPE_STRING:
        return "string"
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "boolean"
    if field.type in _FLOATS:
        return "a number"
    return "an integer"


def _decode_timestamp(d: _Decoder, msg: Message, data: Any, path: str) -> None:
    if not isinstance(data, str):
        d.wrong_type(path, "an RFC 3339 time string", data)
        return
    try:
        msg.FromJsonString(data)  # type: ignore[attr-defined]
    except ValueError:
        d.fail(
            path, errors.INVALID, f'"{data}" is not an RFC 3339 time (e.g. 2026-01-02T15:04:05Z)'
        )


def _decode_quantity(d: _Decoder, msg: Message, data: Any, path: str) -> None:
    if isinstance(data, bool) or not isinstance(data, str | int | float):
        d.wrong_type(path, 'a quantity such as "500m" or "1Gi"', data)
        return
    try:
        msg.string = str(Quantity.parse(data))  # type: ignore[attr-defined]
    except ValueError as exc:
        d.fail(path, errors.INVALID, str(exc))


def _decode_int_or_string(d: _Decoder, msg: Message, data: Any, path: str) -> None:
    if isinstance(data, bool) or not isinstance(data, int | str):
        d.wrong_type(path, "an integer or a string", data)
    elif isinstance(data, int):
        if not -(2**31) <= data < 2**31:
            d.fail(path, errors.INVALID, f"{data} is out of range for an int32")
        else:
            msg.int_val = data  # type: ignore[attr-defined]
    else:
        msg.str_val = data  # type: ignore[attr-defined]


def _free_form_too_deep(d: _Decoder, data: Any, path: str, *, struct: bool) -> bool:
    """Whether free-form JSON at `path` nests too deep for protobuf to read
    back (reported as a problem): each JSON level costs three messages (map
    entry, Value, Struct), less one for a Struct, which is its own first."""
    room = PROTOBUF_MAX_DEPTH - d.level + (1 if struct else 0)
    limit = max(room // 3, 0)
    if nesting_depth(data, stop=limit) <= limit:
        return False
    d.fail(
        path,
        errors.INVALID,
        f"nesting depth exceeds {limit}: free-form JSON here can nest at most {limit} "
        f"levels (protobuf reads at most {PROTOBUF_MAX_DEPTH} nested messages); flatten it",
    )
    return True


def _decode_struct(d: _Decoder, msg: Message, data: Any, path: str) -> None:
    if not isinstance(data, dict):
        d.wrong_type(path, "an object", data)
        return
    if _free_form_too_deep(d, data, path, struct=True):
        return
    try:
        msg.update(_jsonable(data))  # type: ignore[attr-defined]
    except (ValueError, TypeError) as exc:
        d.fail(path, errors.INVALID, str(exc))


def _decode_value(d: _Decoder, msg: Message, data: Any, path: str) -> None:
    if _free_form_too_deep(d, data, path, struct=False):
        return
    holder = struct_pb2.Struct()
    try:
        holder.update({"v": _jsonable(data)})
    except (ValueError, TypeError) as exc:
        d.fail(path, errors.INVALID, str(exc))
        return
    msg.CopyFrom(holder.fields["v"])


def _jsonable(value: Any) -> Any:
    """YAML may produce int keys; JSON (and Struct) needs string keys."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


_SPECIAL_DECODERS = {
    _TIMESTAMP: _decode_timestamp,
    _QUANTITY: _decode_quantity,
    _INT_OR_STRING: _decode_int_or_string,
    _STRUCT: _decode_struct,
    _VALUE: _decode_value,
}


def from_dict(message_type: type[M], data: Any, *, path: str = "") -> M:
    """Decode a plain value (as parsed from YAML or JSON) into `message_type`.

    Raises `Invalid` listing every problem with its field path, or
    `BadRequest` for a value nested deeper than `MAX_DEPTH`."""
    if nesting_depth(data) > MAX_DEPTH:
        what = message_type.DESCRIPTOR.name + (f" {path}" if path else "")
        raise errors.BadRequest(f"{what}: {depth_message()}", kind=message_type.DESCRIPTOR.name)
    if not issubclass(message_type, Message):  # a custom kind (kpy.api.unstructured)
        return message_type.from_body(data, path=path)
    msg = message_type()
    decoder = _Decoder()
    decoder.message(msg, data, path)
    if decoder.problems:
        raise errors.Invalid(decoder.problems, kind=message_type.DESCRIPTOR.name)
    return msg


# ---------------------------------------------------------------- encoding


def to_dict(msg: Message) -> Any:
    """The plain (JSON-compatible) value of a message: set fields only, with
    Kubernetes' names, in schema order."""
    if not isinstance(msg, Message):  # a custom kind (kpy.api.unstructured)
        return msg.to_body()
    encoder = _SPECIAL_ENCODERS.get(msg.DESCRIPTOR.full_name)
    if encoder is not None:
        return encoder(msg)
    out: dict[str, Any] = {}
    for field, value in msg.ListFields():
        out[field.json_name] = _encode_field(field, value)
    return out


def _encode_field(field: FieldDescriptor, value: Any) -> Any:
    if is_map(field):
        value_field = map_value(field)
        return {k: _encode_scalar_or_message(value_field, value[k]) for k in sorted(value)}
    if field.is_repeated:
        return [_encode_scalar_or_message(field, v) for v in value]
    return _encode_scalar_or_message(field, value)


def _encode_scalar_or_message(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return to_dict(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def _encode_timestamp(msg: Any) -> str:
    text: str = msg.ToJsonString()
    return text


def _encode_quantity(msg: Any) -> str:
    return str(msg.string) if msg.HasField("string") else "0"


def _encode_int_or_string(msg: Any) -> int | str:
    which = msg.WhichOneof("value")
    if which == "str_val":
        return str(msg.str_val)
    return int(msg.int_val)


def _encode_struct(msg: Any) -> Any:
    return {k: _encode_value(v) for k, v in msg.fields.items()}


def _encode_value(msg: Any) -> Any:
    kind = msg.WhichOneof("kind")
    if kind == "struct_value":
        return _encode_struct(msg.struct_value)
    if kind == "list_value":
        return [_encode_value(v) for v in msg.list_value.values]
    if kind == "number_value":
        number = msg.number_value
        # Whole numbers read back as ints, as a user wrote them; -0.0 keeps its sign.
        whole = float(number).is_integer() and abs(number) < 2**53
        negative_zero = number == 0 and math.copysign(1.0, number) < 0
        return int(number) if whole and not negative_zero else number
    if kind in ("string_value", "bool_value"):
        return getattr(msg, kind)
    return None


_SPECIAL_ENCODERS = {
    _TIMESTAMP: _encode_timestamp,
    _QUANTITY: _encode_quantity,
    _INT_OR_STRING: _encode_int_or_string,
    _STRUCT: _encode_struct,
    _VALUE: _encode_value,
}


# ---------------------------------------------------------------- objects


@dataclass(frozen=True, slots=True)
class DecodeProblem:
    """Why one document of a manifest could not be decoded."""

    source: str
    document: int
    line: int | None
    error: errors.StatusError | YAMLError

    def __str__(self) -> str:
        where = self.source or "<input>"
        if self.document > 1 or self.line is not None:
            parts = []
            if self.document > 1:
                parts.append(f"document {self.document}")
            if self.line is not None:
                parts.append(f"line {self.line}")
            where += f" ({', '.join(parts)})"
        return f"{where}: {self.error}"


class ManifestError(errors.BadRequest):
    """A manifest with problems; `problems` holds each, with source and line."""

    def __init__(self, problems: list[DecodeProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def decode_object(data: Any, *, using: Scheme | None = None) -> Message:
    """Decode one object (a dict with apiVersion and kind) into its message.

    Raises `Invalid` naming the field of every problem: a missing or unknown
    apiVersion / kind, a kind not served in the given version, unknown fields,
    wrong types."""
    registry = using or scheme
    if not isinstance(data, dict):
        raise errors.Invalid(
            [
                FieldError(
                    "", errors.INVALID, f"a manifest must be an object, got {_type_name(data)}"
                )
            ]
        )
    info = _resolve_kind(data, registry)
    body = {k: v for k, v in data.items() if k not in ("apiVersion", "kind")}
    name = ""
    meta = body.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("name"), str):
        name = meta["name"]
    try:
        return from_dict(info.message, body)
    except errors.Invalid as exc:
        raise errors.Invalid(exc.causes, kind=info.kind, name=name) from None


def _resolve_kind(data: dict[str, Any], registry: Scheme) -> ResourceInfo:
    api_version, kind = data.get("apiVersion"), data.get("kind")
    problems = []
    if not api_version:
        problems.append(FieldError("apiVersion", errors.REQUIRED, "Required value"))
    elif not isinstance(api_version, str):
        problems.append(FieldError("apiVersion", errors.INVALID, "must be a string"))
    if not kind:
        problems.append(FieldError("kind", errors.REQUIRED, "Required value"))
    elif not isinstance(kind, str):
        problems.append(FieldError("kind", errors.INVALID, "must be a string"))
    if problems:
        raise errors.Invalid(problems)
    assert isinstance(api_version, str)
    assert isinstance(kind, str)
    info = registry.lookup(api_version, kind)
    if info is not None:
        return info
    detail = f'no matches for kind "{kind}" in version "{api_version}"'
    served = registry.versions_of(kind)
    if served:
        detail += f": {kind} is served by {', '.join(served)}; set apiVersion to {served[0]}"
    else:
        detail += "; `kpyctl api-resources` lists the kinds kpy serves"
    field = "apiVersion" if served else "kind"
    raise errors.Invalid([FieldError(field, errors.NOT_SUPPORTED, detail)])


def encode_object(obj: Message, *, using: Scheme | None = None) -> dict[str, Any]:
    """The manifest form of an object: apiVersion and kind, then its fields."""
    info = (using or scheme).for_message(type(obj))
    out: dict[str, Any] = {"apiVersion": info.api_version, "kind": info.kind}
    out.update(to_dict(obj))
    return out


def load_manifest(text: str, *, source: str = "", using: Scheme | None = None) -> list[Message]:
    """Every object in a YAML / JSON stream (multi-document, or a `kind: List`).

    All documents are decoded before anything is returned; if any has a
    problem, `ManifestError` lists every problem with its source and line,
    and no object is returned."""
    return _load(text, source, lambda item: decode_object(item, using=using), lists=True)


def load_fragment(text: str, message_type: type[M], *, source: str = "") -> list[M]:
    """Each document of `text` decoded as a bare `message_type` (a piece of a
    manifest, such as a PodSpec), as strictly as `load_manifest`."""
    return _load(text, source, lambda item: from_dict(message_type, item), lists=False)


def _load(text: str, source: str, decode: Callable[[Any], M], *, lists: bool) -> list[M]:
    try:
        documents = load_documents(text)
    except YAMLError as exc:
        raise ManifestError([DecodeProblem(source, 1, exc.line, exc)]) from None
    objects: list[M] = []
    problems: list[DecodeProblem] = []
    for doc in documents:
        for path, line in doc.duplicates:
            key = path.rsplit(".", 1)[-1]
            cause = FieldError(
                path, errors.DUPLICATE, f'duplicate field "{key}"; remove one of them'
            )
            problems.append(DecodeProblem(source, doc.index, line, errors.Invalid([cause])))
        for item, prefix in _items(doc) if lists else [(doc.value, "")]:
            try:
                objects.append(decode(item))
            except errors.Invalid as exc:
                for cause in exc.causes:
                    problems.append(
                        DecodeProblem(
                            source,
                            doc.index,
                            doc.line_of(prefix + cause.path),
                            errors.Invalid([cause], kind=exc.kind, name=exc.name),
                        )
                    )
            except errors.BadRequest as exc:  # the document as a whole, e.g. too deep
                problems.append(DecodeProblem(source, doc.index, doc.line, exc))
    if problems:
        raise ManifestError(problems)
    return objects


def _items(doc: Document) -> Iterable[tuple[Any, str]]:
    value = doc.value
    if (
        isinstance(value, dict)
        and value.get("kind") == "List"
        and isinstance(value.get("items"), list)
    ):
        for i, item in enumerate(value["items"]):
            yield item, f"items[{i}]."
    else:
        yield value, ""


def dump_yaml(objects: Iterable[Message], *, using: Scheme | None = None) -> str:
    """Objects as a multi-document YAML stream, in manifest form."""
    docs = [encode_object(o, using=using) for o in objects]
    return yaml.dump_all(
        docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes strings holding NEL (U+0085) double-quoted:
    PyYAML puts it raw into a single-quoted scalar, where YAML reads it as a
    line break and folds it to a space, so the text would not load back."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    if "\x85" in text:
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style='"')
    return dumper.represent_str(text)


_Dumper.add_representer(str, _represent_str)


def dump_json(obj: Message, *, using: Scheme | None = None) -> str:
    return json.dumps(encode_object(obj, using=using), indent=4)

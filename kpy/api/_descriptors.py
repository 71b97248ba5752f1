"""Small facts about protobuf field descriptors, shared by the codec and
defaulting (which both walk messages generically)."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor


def is_map(field: FieldDescriptor) -> bool:
    """A `map<K, V>` field (a repeated message of a synthetic entry type)."""
    entry = field.message_type
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and entry is not None
        and entry.GetOptions().map_entry
        and field.is_repeated
    )


def map_value(field: FieldDescriptor) -> FieldDescriptor:
    """The descriptor of a map field's values."""
    entry = field.message_type
    assert entry is not None, f"{field.full_name} is not a map"
    value: FieldDescriptor = entry.fields_by_name["value"]
    return value


def is_message(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE


_JSON_FIELDS: dict[str, dict[str, FieldDescriptor]] = {}


def json_fields(descriptor: Any) -> dict[str, FieldDescriptor]:
    """A message's fields by their JSON (Kubernetes) name, cached per type."""
    fields = _JSON_FIELDS.get(descriptor.full_name)
    if fields is None:
        fields = {f.json_name: f for f in descriptor.fields}
        _JSON_FIELDS[descriptor.full_name] = fields
    return fields

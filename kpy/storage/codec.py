"""Objects to etcd values and back.

A value is the object's binary protobuf encoding with
`metadata.resource_version` cleared, because the version is not part of the
object but the etcd revision that last wrote it. Decoding sets it again from
the key's mod_revision. Encoding never mutates the caller's object.
`versioned` gives the encoding of a decoded value without decoding it, for
watches and reads that pass stored objects on, and `delimited` puts such an
encoding in a reply as it is.

`decode` and `versioned` take the value as the store's transformer returned
it (decrypted, see `kpy.storage.encryption`); a value it could not read is
an `Unreadable`, on which both raise its error, so that a reader that never
touches such an object (the watch cache holding it) is not stopped by it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from google.protobuf.message import DecodeError, Message

from kpy.api.errors import StatusError, TooLarge
from kpy.api.meta.v1 import ObjectMeta

if TYPE_CHECKING:
    from kpy.api.scheme import ResourceInfo

_LENGTH_DELIMITED = 2  # the protobuf wire type of strings and messages

MAX_OBJECT_BYTES = 3 * 1024 * 1024 // 2
"""The largest encoded object the store writes (1.5 MiB, etcd's default request limit)."""

M = TypeVar("M", bound=Message)


def meta(obj: Message) -> ObjectMeta:
    """The object's ObjectMeta (the live field, not a copy)."""
    value = getattr(obj, "metadata", None)
    if not isinstance(value, ObjectMeta):
        raise TypeError(f"{type(obj).__name__} has no metadata field of type ObjectMeta")
    return value


def copy(obj: M) -> M:
    """A deep copy of a message."""
    out = type(obj)()
    out.CopyFrom(obj)
    return out


def with_version(obj: M, revision: int) -> M:
    """A copy of `obj` whose resource_version is `revision`."""
    out = copy(obj)
    meta(out).resource_version = str(revision)
    return out


def encode(info: ResourceInfo, obj: Message) -> bytes:
    """The etcd value of `obj`; raises TooLarge above MAX_OBJECT_BYTES."""
    if not isinstance(obj, info.message):
        raise TypeError(f"expected a {info.message.__name__}, got {type(obj).__name__}")
    stored = copy(obj)
    meta(stored).ClearField("resource_version")
    data = stored.SerializeToString(deterministic=True)
    if len(data) > MAX_OBJECT_BYTES:
        m = meta(obj)
        raise TooLarge(
            f'{info.group_resource} "{m.name}" is too large: {len(data)} bytes encoded, '
            f"the limit is {MAX_OBJECT_BYTES} bytes",
            kind=info.group_resource,
            name=m.name,
        )
    return data


class Unreadable(bytes):
    """A stored value the store's transformer could not read (as etcd holds
    it); `error` says which object and why. `decode` and `versioned` raise it."""

    error: StatusError

    def __new__(cls, value: bytes, error: StatusError) -> Unreadable:
        out = super().__new__(cls, value)
        out.error = error
        return out


def decode(info: ResourceInfo, key: bytes, value: bytes, revision: int) -> Message:
    """The object stored in `value`, with resource_version set to `revision`."""
    if isinstance(value, Unreadable):
        raise value.error
    obj = info.message()
    try:
        obj.ParseFromString(value)
    except DecodeError as e:
        raise StatusError(f"cannot decode {info.kind} stored at {key.decode()!r}: {e}") from e
    meta(obj).resource_version = str(revision)
    if info.on_read is not None:
        info.on_read(obj)
    return obj


def versioned(info: ResourceInfo, key: bytes, value: bytes, revision: int) -> bytes:
    """The binary encoding of `decode(info, key, value, revision)`, made
    without decoding where the kind allows it: a protobuf parser merges a
    message field that occurs twice, so `value` followed by a `metadata`
    holding only `resource_version` parses to the stored object with its
    version set (the stored value has none). The bytes differ from
    `SerializeToString` of the decoded object; every parser reads the same
    message from both. Kinds with an `on_read` hook, or not protobuf (custom
    kinds are JSON), are decoded and encoded."""
    if isinstance(value, Unreadable):
        raise value.error
    tag = _metadata_tag(info.message)
    if tag is None or info.on_read is not None:
        return decode(info, key, value, revision).SerializeToString()
    version = str(revision).encode()
    return value + _with_length(tag, _with_length(_VERSION_TAG, version))


def delimited(number: int, value: bytes) -> bytes:
    """Field `number` (bytes, a string or a message) holding `value`, in
    protobuf's wire format: tag, length, the bytes. Joined with the encoding
    of a message's other fields, before or after them, it parses as that
    message holding `value` there (one such piece per element of a repeated
    field): how a reply carries objects encoded already without copying
    each into a message first."""
    return _with_length(_field_tag(number), value)


def _with_length(tag: bytes, value: bytes) -> bytes:
    return tag + _varint(len(value)) + value


_ONE_BYTE = tuple(bytes((n,)) for n in range(0x80))


def _varint(n: int) -> bytes:
    # Most lengths here take one or two bytes: those are made without a loop.
    if n < 0x80:
        return _ONE_BYTE[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field_tag(number: int) -> bytes:
    return _varint(number << 3 | _LENGTH_DELIMITED)


_VERSION_TAG = _field_tag(ObjectMeta.DESCRIPTOR.fields_by_name["resource_version"].number)
_METADATA_TAGS: dict[type, bytes | None] = {}


def _metadata_tag(message_type: type) -> bytes | None:
    """The tag of the kind's `metadata` field if it is a protobuf message
    with an ObjectMeta there (None otherwise: the kind is decoded instead)."""
    try:
        return _METADATA_TAGS[message_type]
    except KeyError:
        pass
    tag = None
    descriptor = getattr(message_type, "DESCRIPTOR", None)
    if issubclass(message_type, Message) and descriptor is not None:
        field = descriptor.fields_by_name.get("metadata")
        if field is not None and field.message_type is ObjectMeta.DESCRIPTOR:
            tag = _field_tag(field.number)
    _METADATA_TAGS[message_type] = tag
    return tag

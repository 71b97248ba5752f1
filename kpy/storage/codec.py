"""Objects to etcd values and back.

A value is the object's binary protobuf encoding with
`metadata.resource_version` cleared, because the version is not part of the
object but the etcd revision that last wrote it. Decoding sets it again from
the key's mod_revision. Encoding never mutates the caller's object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from google.protobuf.message import DecodeError, Message

from kpy.api.errors import StatusError, TooLarge
from kpy.api.meta.v1 import ObjectMeta

if TYPE_CHECKING:
    from kpy.api.scheme import ResourceInfo

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


def decode(info: ResourceInfo, key: bytes, value: bytes, revision: int) -> Message:
    """The object stored in `value`, with resource_version set to `revision`."""
    obj = info.message()
    try:
        obj.ParseFromString(value)
    except DecodeError as e:
        raise StatusError(f"cannot decode {info.kind} stored at {key.decode()!r}: {e}") from e
    meta(obj).resource_version = str(revision)
    if info.on_read is not None:
        info.on_read(obj)
    return obj

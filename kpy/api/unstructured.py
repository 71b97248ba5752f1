"""Objects of custom kinds: kinds a CustomResourceDefinition adds at run time.

A built-in kind is a protobuf message; a custom kind has no message, only a
schema the API server reads from its CRD. Its objects are `CustomObject`s:
`metadata` is a real `ObjectMeta` (so the registry, the watch cache, the
informers, the garbage collector and kpyctl read it exactly as they read a
built-in kind's), and every other top-level field (`spec`, `status`, any
other) is plain JSON in `content`.

A `CustomObject` answers the part of the protobuf message protocol that
kpy's generic code uses (`SerializeToString`, `FromString`, `CopyFrom`,
`HasField`, `ClearField`, `ByteSize`, equality), so one code path serves
both. Its encoding, on the wire and in etcd, is the object's JSON with
`apiVersion` and `kind`, as Kubernetes stores custom resources.

`custom_kind()` makes (once) the class of one group/version/kind and
registers it in a scheme, so a kind is always the same class within a
process: informers, listers and the client key on it.
"""

from __future__ import annotations

import copy as _copy
import json
from typing import TYPE_CHECKING, Any, ClassVar, Final

from kpy.api import codec, errors
from kpy.api.errors import FieldError
from kpy.api.limits import MAX_DEPTH, depth_message, nesting_depth
from kpy.api.meta.v1 import ObjectMeta
from kpy.api.scheme import ResourceInfo, Scheme, scheme

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from google.protobuf.message import Message

__all__ = ["CustomObject", "custom_kind", "is_custom"]

_RESERVED: Final = ("apiVersion", "kind", "metadata")


class _Descriptor:
    """The little of a message descriptor generic code reads: names, and
    which top-level fields the kind has (custom kinds may have any; these
    are the ones code asks about)."""

    def __init__(self, kind: str, group: str) -> None:
        self.name = kind
        self.full_name = f"{group}.{kind}" if group else kind
        self.fields_by_name: dict[str, Any] = {"metadata": None, "spec": None, "status": None}


if TYPE_CHECKING:
    # To type checkers a custom object is a message, so that every typed API
    # of kpy (the client, informers, listers, the fake client) takes custom
    # kinds; at run time it is not one, and the codec tells them apart.
    from google.protobuf.message import Message as _Base
else:
    _Base = object


class CustomObject(_Base):
    """One object of a custom kind. Build one as `WebApp(metadata=ObjectMeta(
    name="shop"), spec={"replicas": 2})`; read and write its JSON fields as
    `obj.spec["replicas"]`, `obj["data"]` or `obj.content`."""

    #: set on each kind's class by `custom_kind`
    group: ClassVar[str] = ""
    version: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    #: extra fields a field selector may name (a CRD's selectableFields),
    #: each with the JSON path of its value below the object's root
    selectable_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    DESCRIPTOR: Any  # a `_Descriptor`, set on each kind's class

    __slots__ = ("content", "metadata")

    def __init__(self, metadata: ObjectMeta | None = None, **content: Any) -> None:
        self.metadata = ObjectMeta()
        if metadata is not None:
            self.metadata.CopyFrom(metadata)
        self.content: dict[str, Any] = {k: v for k, v in content.items() if v is not None}

    # -- the kind -----------------------------------------------------------

    @classmethod
    def api_version(cls) -> str:
        return f"{cls.group}/{cls.version}" if cls.group else cls.version

    # -- JSON fields --------------------------------------------------------

    @property
    def spec(self) -> dict[str, Any]:
        """The `spec` object (created empty when the object has none)."""
        return self._object("spec")

    @property
    def status(self) -> dict[str, Any]:
        """The `status` object (created empty when the object has none)."""
        return self._object("status")

    def _object(self, name: str) -> dict[str, Any]:
        value = self.content.get(name)
        if not isinstance(value, dict):
            value = self.content[name] = {}
        return value

    def __getitem__(self, key: str) -> Any:
        return self.content[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in _RESERVED:
            raise KeyError(f"{key} is not a JSON field of {self.kind}; use .metadata")
        self.content[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self.content

    def __iter__(self) -> Iterator[str]:
        return iter(self.content)

    def get(self, key: str, default: Any = None) -> Any:
        return self.content.get(key, default)

    # -- plain values -------------------------------------------------------

    def to_body(self) -> dict[str, Any]:
        """The object's fields without apiVersion and kind (`codec.to_dict`)."""
        out: dict[str, Any] = {}
        m = codec.to_dict(self.metadata)
        if m:
            out["metadata"] = m
        out.update(_copy.deepcopy(self.content))
        return out

    def to_object(self) -> dict[str, Any]:
        """The whole object as JSON: apiVersion, kind, then its fields."""
        return {"apiVersion": self.api_version(), "kind": self.kind, **self.to_body()}

    @classmethod
    def from_body(cls, data: Any, *, path: str = "") -> CustomObject:
        """The object `data` holds (apiVersion and kind, if present, must name
        this kind). Metadata is decoded as strictly as a built-in kind's;
        the other fields are kept as they are: the API server checks them
        against the CRD's schema. Raises `Invalid` naming each problem, or
        `BadRequest` for a value nested deeper than `MAX_DEPTH`, as the
        codec does for built-in kinds."""
        prefix = f"{path}." if path else ""
        if nesting_depth(data) > MAX_DEPTH:  # every walk of it below recurses
            what = cls.kind + (f" {path}" if path else "")
            raise errors.BadRequest(f"{what}: {depth_message()}", kind=cls.kind)
        if not isinstance(data, dict):
            raise errors.Invalid(
                [FieldError(path, errors.INVALID, f"must be an object, got {type(data).__name__}")],
                kind=cls.kind,
            )
        problems: list[FieldError] = []
        for key, want in (("apiVersion", cls.api_version()), ("kind", cls.kind)):
            got = data.get(key)
            # another served version of the same kind: its fields are the
            # same (CRD conversion "None" rewrites only apiVersion)
            if (
                got is not None
                and got != want
                and not (key == "apiVersion" and _same_group(got, cls.group))
            ):
                problems.append(
                    FieldError(f"{prefix}{key}", errors.INVALID, f"must be {want!r}, got {got!r}")
                )
        obj = cls()
        raw = data.get("metadata")
        if raw is not None:
            try:
                obj.metadata = codec.from_dict(ObjectMeta, raw, path=f"{prefix}metadata")
            except errors.Invalid as e:
                problems.extend(e.causes)
        if problems:
            raise errors.Invalid(problems, kind=cls.kind)
        obj.content = {k: _copy.deepcopy(v) for k, v in data.items() if k not in _RESERVED}
        return obj

    # -- the protobuf message protocol kpy's generic code uses --------------

    def SerializeToString(self, *, deterministic: bool = False) -> bytes:
        return json.dumps(self.to_object(), separators=(",", ":"), sort_keys=deterministic).encode()

    @classmethod
    def FromString(cls, data: bytes) -> CustomObject:
        obj = cls()
        obj.ParseFromString(data)
        return obj

    def ParseFromString(self, data: bytes) -> int:
        """Replaces this object by the one `data` encodes; raises
        `google.protobuf.message.DecodeError` when it is not one, as a
        message's parse does."""
        from google.protobuf.message import DecodeError

        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise DecodeError(f"not JSON: {e}") from None
        except RecursionError:  # the JSON decoder recurses per level
            raise DecodeError(depth_message()) from None
        try:
            other = type(self).from_body(parsed)
        except errors.StatusError as e:
            raise DecodeError(str(e)) from None
        self.metadata, self.content = other.metadata, other.content
        return len(data)

    def CopyFrom(self, other: Message) -> None:
        if other is self:
            return
        if not isinstance(other, CustomObject):
            raise TypeError(f"cannot copy a {type(other).__name__} into a {self.kind}")
        self.metadata = ObjectMeta()
        self.metadata.CopyFrom(other.metadata)
        self.content = _copy.deepcopy(other.content)

    def HasField(self, name: str) -> bool:
        return name == "metadata" or name in self.content

    def ClearField(self, name: str) -> None:
        if name == "metadata":
            self.metadata = ObjectMeta()
        else:
            self.content.pop(name, None)

    def ByteSize(self) -> int:
        return len(self.SerializeToString())

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and self.metadata == other.metadata
            and self.content == other.content
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, as messages are

    def __deepcopy__(self, memo: Any = None) -> CustomObject:
        out = type(self)()
        out.CopyFrom(self)
        return out

    def __repr__(self) -> str:
        m = self.metadata
        where = f"{m.namespace}/{m.name}" if m.namespace else m.name
        return f"{self.kind}({where!r}, {self.content!r})"


def _same_group(api_version: Any, group: str) -> bool:
    return isinstance(api_version, str) and api_version.rpartition("/")[0] == group


def is_custom(message_type: type) -> bool:
    """Whether `message_type` is a custom kind's class."""
    return isinstance(message_type, type) and issubclass(message_type, CustomObject)


_CLASSES: dict[tuple[str, str, str], type[CustomObject]] = {}


def custom_kind(
    api_version: str,
    kind: str,
    *,
    plural: str,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    singular: str = "",
    categories: tuple[str, ...] = (),
    status_subresource: bool = False,
    storage_version: str = "",
    selectable_fields: Mapping[str, tuple[str, ...]] | None = None,
    on_read: Callable[[Any], None] | None = None,
    using: Scheme | None = None,
) -> type[CustomObject]:
    """The class of custom kind `kind` in `api_version` (`group/version`),
    registered in `using` (the process's scheme by default) with its
    resource names. The class is made once per process; calling again with
    other names (a CRD that changed) registers the new names."""
    group, _, version = api_version.rpartition("/")
    if not group or not version:
        raise ValueError(f"a custom kind needs a group: {api_version!r} is not group/version")
    key = (group, version, kind)
    cls = _CLASSES.get(key)
    if cls is None:
        cls = type(
            kind,
            (CustomObject,),
            {
                "__slots__": (),
                "__module__": __name__,
                "group": group,
                "version": version,
                "kind": kind,
                "DESCRIPTOR": _Descriptor(kind, group),
            },
        )
        _CLASSES[key] = cls
    cls.selectable_fields = dict(selectable_fields or {})
    info = ResourceInfo(
        group,
        version,
        kind,
        plural,
        namespaced,
        cls,
        short_names=short_names,
        status_subresource=status_subresource,
        singular_name=singular,
        categories=categories,
        storage_version=storage_version,
        on_read=on_read,
    )
    (using or scheme).register_custom(info)
    return cls

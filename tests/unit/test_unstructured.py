"""Custom objects (`kpy.api.unstructured`): the message protocol kpy's
generic code relies on, the codec, the scheme's run-time kinds, field
selectors on a CRD's selectable fields, and patches."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf.message import DecodeError

from kpy.api import codec, errors, patch
from kpy.api.meta.v1 import ObjectMeta
from kpy.api.scheme import Scheme
from kpy.api.selection import object_fields, parse_predicate
from kpy.api.unstructured import CustomObject, custom_kind, is_custom

# A scheme of this module's own: the process's scheme stays as other tests expect it.
KINDS = Scheme()
Gizmo = custom_kind(
    "unit.example.com/v1",
    "Gizmo",
    plural="gizmos",
    short_names=("gz",),
    selectable_fields={"spec.color": ("spec", "color"), "spec.on": ("spec", "on")},
    using=KINDS,
)


def gizmo(name: str = "g", **spec: Any) -> CustomObject:
    return Gizmo(metadata=ObjectMeta(name=name, namespace="default", labels={"a": "b"}), spec=spec)


def test_the_wire_form_is_the_objects_json() -> None:
    g = gizmo(color="red", size=3)
    data = json.loads(g.SerializeToString())
    assert data == {
        "apiVersion": "unit.example.com/v1",
        "kind": "Gizmo",
        "metadata": {"name": "g", "namespace": "default", "labels": {"a": "b"}},
        "spec": {"color": "red", "size": 3},
    }
    back = Gizmo.FromString(g.SerializeToString())
    assert back == g
    assert back is not g
    assert back.content is not g.content


def test_message_protocol() -> None:
    g = gizmo(color="red")
    copy = Gizmo()
    copy.CopyFrom(g)
    copy.spec["color"] = "blue"
    assert g.spec["color"] == "red", "CopyFrom must copy deeply"
    cases: list[tuple[str, Any, Any]] = [
        ("has metadata", g.HasField("metadata"), True),
        ("has spec", g.HasField("spec"), True),
        ("no status", g.HasField("status"), False),
        ("byte size is the encoding's", g.ByteSize(), len(g.SerializeToString())),
        ("is custom", is_custom(Gizmo), True),
        ("a message is not", is_custom(ObjectMeta), False),
    ]
    for name, got, want in cases:
        assert got == want, name
    g.ClearField("spec")
    assert not g.HasField("spec")
    with pytest.raises(KeyError, match="metadata"):
        g["metadata"] = {}


def test_bad_encodings_are_decode_errors() -> None:
    cases = [
        ("not JSON", b"{nope"),
        ("another kind", b'{"apiVersion": "unit.example.com/v1", "kind": "Other"}'),
        ("another group", b'{"apiVersion": "x.example.com/v1", "kind": "Gizmo"}'),
        ("bad metadata", b'{"metadata": {"name": 3}}'),
        ("not an object", b"[1, 2]"),
        # deeper than MAX_DEPTH: refused before any recursive walk, so the
        # API server answers BadRequest instead of failing with RecursionError
        ("nested 500 deep", b'{"spec": {"x": ' + b"[" * 500 + b"]" * 500 + b"}}"),
        ("nested past the JSON decoder", b'{"spec": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ]
    for name, data in cases:
        with pytest.raises(DecodeError):
            Gizmo.FromString(data)
        assert name
    # 100 levels, the limit, still decode
    Gizmo.FromString(b'{"spec": ' + b"[" * 99 + b"]" * 99 + b"}")


def test_manifests_decode_strictly_in_metadata_only() -> None:
    (g,) = codec.load_manifest(
        "apiVersion: unit.example.com/v1\nkind: Gizmo\nmetadata: {name: m}\n"
        "spec: {anything: [1, {x: y}]}\n",
        using=KINDS,
    )
    assert isinstance(g, Gizmo)
    assert g.spec == {"anything": [1, {"x": "y"}]}
    assert codec.encode_object(g, using=KINDS)["kind"] == "Gizmo"
    assert "kind: Gizmo" in codec.dump_yaml([g], using=KINDS)
    with pytest.raises(codec.ManifestError, match='unknown field "labelz"'):
        codec.load_manifest(
            "apiVersion: unit.example.com/v1\nkind: Gizmo\nmetadata: {labelz: {}}\n",
            using=KINDS,
        )


def test_the_scheme_adds_replaces_and_forgets_custom_kinds() -> None:
    s = Scheme()
    cls = custom_kind("s.example.com/v1", "Thing", plural="things", short_names=("th",), using=s)
    assert s.resolve("th").message is cls
    assert s.resolve("things.s.example.com").kind == "Thing"
    assert s.resolve("things.v1.s.example.com").kind == "Thing"
    again = custom_kind("s.example.com/v1", "Thing", plural="things", namespaced=False, using=s)
    assert again is cls, "one class per kind in a process"
    assert not s.resolve("things").namespaced
    with pytest.raises(KeyError):
        s.resolve("th")  # the new names replaced the old
    s.unregister("s.example.com/v1", "Thing")
    with pytest.raises(KeyError):
        s.resolve("things")
    with pytest.raises(ValueError, match="group"):
        custom_kind("v1", "Core", plural="cores", using=s)


def test_field_selectors_read_selectable_fields() -> None:
    g = gizmo(color="red", on=True)
    assert object_fields(g) == {
        "metadata.name": "g",
        "metadata.namespace": "default",
        "spec.color": "red",
        "spec.on": "true",
    }
    cases = [
        ("by color", "spec.color=red", True),
        ("other color", "spec.color=blue", False),
        ("boolean", "spec.on=true", True),
        ("by name", "metadata.name=g", True),
    ]
    for name, selector, want in cases:
        predicate = parse_predicate("Gizmo", "", selector, message=Gizmo)
        assert predicate.matches(g) is want, name
    with pytest.raises(errors.BadRequest, match=r'"spec.size" \(supported: metadata.name'):
        parse_predicate("Gizmo", "", "spec.size=1", message=Gizmo)
    # a custom kind named like a built-in one does not take its fields
    Pod = custom_kind("unit.example.com/v1", "Pod", plural="pods", using=KINDS)
    with pytest.raises(errors.BadRequest):
        parse_predicate("Pod", "", "spec.nodeName=n", message=Pod)


def test_patches_of_custom_objects() -> None:
    target = codec.to_dict(gizmo(color="red", tags=["a"]))
    cases = [
        ("merge", {"spec": {"color": "blue", "tags": None}}, {"color": "blue"}),
        (
            "json",
            [{"op": "add", "path": "/spec/tags/-", "value": "b"}],
            {"color": "red", "tags": ["a", "b"]},
        ),
    ]
    for kind, document, want in cases:
        got = patch.apply_patch(kind, target, document, Gizmo)
        assert codec.from_dict(Gizmo, got).spec == want, kind
    with pytest.raises(errors.BadRequest, match="strategic merge patch is not supported"):
        patch.apply_patch("strategic", target, {"spec": {}}, Gizmo)

"""What a watch sends for a stored object: `kpy.storage.codec.versioned`
(the stored bytes with the resource version set, without decoding) and the
watch cache's frames (one WatchResponse serialised for many watchers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api.core.v1 import ConfigMap, Namespace, Pod
from kpy.api.meta.v1 import ObjectMeta
from kpy.api.scheme import ResourceInfo, Scheme, scheme
from kpy.api.unstructured import custom_kind
from kpy.apiserver.watch_cache import CacheEvent, Frame, _Stored
from kpy.rpc.apiserver import v1 as api
from kpy.storage.codec import decode, encode, versioned

if TYPE_CHECKING:
    from collections.abc import Callable

    from google.protobuf.message import Message

KINDS = Scheme()
Widget = custom_kind("widgets.test.kpy.io/v1", "Widget", plural="widgets", using=KINDS)


def _defaulted(obj: Any) -> None:
    obj.spec.setdefault("size", 3)


DefaultedWidget = custom_kind(
    "widgets.test.kpy.io/v2", "Widget", plural="widgets", on_read=_defaulted, using=KINDS
)


def info_of(message: type, using: Scheme = scheme) -> ResourceInfo:
    return using.for_message(message)


def pod() -> Pod:
    p = Pod(metadata=ObjectMeta(name="web-1", namespace="shop", uid="u-1"))
    p.metadata.labels["app"] = "web"
    p.spec.containers.add(name="web", image="nginx:1.25")
    return p


@dataclass(frozen=True)
class Case:
    name: str
    info: ResourceInfo
    make: Callable[[], Message]
    revision: int


CASES = [
    Case("a pod", info_of(Pod), pod, 12_345),
    Case("a configmap", info_of(ConfigMap), lambda: ConfigMap(metadata=ObjectMeta(name="c")), 7),
    Case(
        "a cluster-scoped kind",
        info_of(Namespace),
        lambda: Namespace(metadata=ObjectMeta(name="shop")),
        1,
    ),
    Case("a revision of many digits", info_of(Pod), pod, 2**62),
    Case(
        "a custom kind (JSON)",
        info_of(Widget, KINDS),
        lambda: Widget(metadata=ObjectMeta(name="w", namespace="shop"), spec={"size": 1}),
        99,
    ),
    Case(
        "a custom kind defaulted on read",
        info_of(DefaultedWidget, KINDS),
        lambda: DefaultedWidget(metadata=ObjectMeta(name="w", namespace="shop"), spec={}),
        100,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_versioned_bytes_read_as_the_decoded_object(case: Case) -> None:
    stored = encode(case.info, case.make())
    want = decode(case.info, b"/registry/x", stored, case.revision)

    data = versioned(case.info, b"/registry/x", stored, case.revision)

    got = case.info.message.FromString(data)
    assert got == want, case.name
    assert got.metadata.resource_version == str(case.revision), case.name  # type: ignore[attr-defined]


def test_a_frame_is_one_watch_response_and_frames_concatenate() -> None:
    info = info_of(Pod)
    stored = encode(info, pod())
    events = [
        CacheEvent("ADDED", _Stored(info, 10, key=b"/k", value=stored), None, 10, "shop"),
        CacheEvent("DELETED", _Stored(info, 11, key=b"/k", value=stored), None, 11, "shop"),
    ]
    first, second = Frame((events[0],)), Frame((events[1],))

    assert first.data() is first.data(), "serialised once"
    joined = api.WatchResponse.FromString(first.data() + second.data())
    got = [(e.type, e.resource_version, Pod.FromString(e.object)) for e in joined.events]
    assert got == [
        ("ADDED", "10", decode(info, b"/k", stored, 10)),
        ("DELETED", "11", decode(info, b"/k", stored, 11)),
    ]

"""Replies made of objects encoded already: `kpy.storage.codec.delimited`
(a field in protobuf's wire format), `kpy.apiserver.replies.ListReply` (a
ListResponse joined from framed items) and the watch cache's stored states,
which keep an object framed for a list and hand out its encoding for a get
or a watch. Each case checks what a client parses from the bytes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kpy.api.core.v1 import ConfigMap, Pod
from kpy.api.errors import StatusError
from kpy.api.meta.v1 import ObjectMeta
from kpy.api.scheme import scheme
from kpy.apiserver.replies import EncodedList, ListReply, list_item, serialise
from kpy.apiserver.watch_cache import _Stored
from kpy.rpc.apiserver import v1 as api
from kpy.storage.codec import Unreadable, decode, delimited, encode, versioned
from tests.unit.test_audit_events import call as audited
from tests.unit.test_audit_events import ref as audited_ref

SIZES = [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152]  # varint length boundaries


@pytest.mark.parametrize("size", SIZES)
def test_a_delimited_field_parses_as_the_message_holding_the_value(size: int) -> None:
    value = bytes(range(256)) * (size // 256) + bytes(size % 256)
    number = api.ObjectResponse.DESCRIPTOR.fields_by_name["object"].number
    data = delimited(number, value)
    assert api.ObjectResponse.FromString(data).object == value, f"{size} bytes"
    if value:  # protobuf leaves an empty field out; a parser reads the same from both
        assert data == api.ObjectResponse(object=value).SerializeToString(), f"{size} bytes"


@dataclass(frozen=True)
class ListCase:
    name: str
    items: list[bytes]
    resource_version: int
    continue_token: str | None = None
    remaining: int = 0


LIST_CASES = [
    ListCase("no items", [], 5),
    ListCase("one item", [b"\x0a\x03abc"], 7),
    ListCase("an empty item", [b"", b"x"], 8),
    ListCase("a page", [b"a" * 300, b"b" * 20_000, b"c"], 12_345, "token-1", 41),
    ListCase("a thousand items", [bytes([i % 256]) * (600 + i) for i in range(1000)], 99),
]


@pytest.mark.parametrize("case", LIST_CASES, ids=lambda c: c.name)
def test_a_list_reply_parses_as_the_list_response_with_its_fields(case: ListCase) -> None:
    reply = ListReply(
        EncodedList(
            [list_item(i) for i in case.items],
            case.resource_version,
            case.continue_token,
            case.remaining,
        )
    )
    want = api.ListResponse(
        items=case.items,
        resource_version=str(case.resource_version),
        remaining_item_count=case.remaining,
    )
    setattr(want, "continue", case.continue_token or "")
    got = api.ListResponse.FromString(serialise(reply))
    assert got == want, case.name
    # What readers of responses (the audit log) see on the reply itself.
    assert reply.items == case.items, case.name
    assert reply.resource_version == str(case.resource_version), case.name


async def test_the_audit_log_reads_a_list_reply_as_a_list_response() -> None:
    cm = ConfigMap(metadata=ObjectMeta(name="settings"), data={"mode": "fast"})
    reply = ListReply(EncodedList([list_item(cm.SerializeToString())], 7))
    request = api.ListRequest(ref=audited_ref("configmaps", ns="dev"))
    event, _ = await audited("List", request, reply, level="RequestResponse")
    assert event["responseObject"]["kind"] == "ConfigMapList"
    assert event["responseObject"]["metadata"] == {"resourceVersion": "7"}
    assert event["responseObject"]["items"][0]["data"] == {"mode": "fast"}


def test_serialise_takes_a_message_too() -> None:
    message = api.ListResponse(items=[b"a"], resource_version="3")
    assert serialise(message) == message.SerializeToString()


PODS = scheme.for_message(Pod)
CONFIGMAPS = scheme.for_message(ConfigMap)


def stored_pod() -> tuple[bytes, bytes]:
    pod = Pod(metadata=ObjectMeta(name="web", namespace="shop", uid="u-1", labels={"a": "b"}))
    pod.spec.containers.add(name="web", image="nginx:1.25")
    return b"/registry/core/v1/pods/shop/web", encode(PODS, pod)


def test_a_stored_state_gives_its_encoding_and_its_list_item() -> None:
    key, value = stored_pod()
    state = _Stored(PODS, 4_321, key=key, value=value)
    encoded = state.encoded()
    assert encoded == versioned(PODS, key, value, 4_321)
    assert encoded.startswith(value), "the stored bytes are passed on as they are"
    assert Pod.FromString(encoded) == decode(PODS, key, value, 4_321)
    assert state.item() == list_item(encoded)
    assert state.item() is state.item(), "made once and kept"
    assert state.encoded() == encoded, "the same bytes on every call"


def test_a_state_that_came_decoded_is_encoded_once() -> None:
    cm = ConfigMap(metadata=ObjectMeta(name="c", resource_version="9"), data={"k": "v"})
    state = _Stored(CONFIGMAPS, 9, obj=cm)
    assert ConfigMap.FromString(state.encoded()) == cm
    assert state.item() == list_item(cm.SerializeToString())


def test_an_unreadable_value_raises_its_error_and_keeps_nothing() -> None:
    key = b"/registry/core/v1/secrets/shop/s"
    error = StatusError('secrets "shop/s": no configured key can decrypt it')
    sealed = Unreadable(b"k8s:enc:aesgcm:v1:gone:" + b"\0" * 40, error)
    state = _Stored(scheme.resolve("secrets"), 7, key=key, value=sealed)
    for read in (state.encoded, state.item):
        with pytest.raises(StatusError, match="no configured key can decrypt it"):
            read()
    assert state._item is None, "nothing made from the sealed bytes is kept"

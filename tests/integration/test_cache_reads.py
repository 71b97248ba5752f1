"""Gets and lists answered with the watch cache's stored bytes, against a
real etcd and a real kpy-apiserver: what a client parses from the reply is
what the decode path answers (etcd's value decoded, as a paged list or the
store reads it), for every built-in kind, a custom kind, an encrypted
Secret, with selectors and with pages; and the reply carries the stored
bytes as they are, not an encoding made again.

The per-kind samples are written by a `Store` under an etcd prefix of this
module's own, so the session's API server and controllers never see them."""

from __future__ import annotations

import base64
import contextlib
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import grpc
import grpc.aio
import pytest

from kpy.api import codec, errors
from kpy.api.apiextensions.v1 import CustomResourceDefinition
from kpy.api.core.v1 import ConfigMap, Namespace, Pod, Secret
from kpy.api.meta.v1 import ObjectMeta
from kpy.api.scheme import scheme
from kpy.api.selection import parse_predicate
from kpy.api.unstructured import custom_kind, is_custom
from kpy.apiserver.process import APIServerProcess
from kpy.apiserver.watch_cache import WatchCache
from kpy.client import Client
from kpy.rpc.apiserver import v1 as api
from kpy.storage import Store
from kpy.storage.encryption import Key, render_config, write_private

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    import aetcd
    from google.protobuf.message import Message

    from kpy.api.scheme import ResourceInfo
    from kpy.storage import EtcdServer

pytestmark = pytest.mark.etcd

BUILT_IN = sorted(
    (info for info in scheme.all() if not is_custom(info.message)), key=lambda i: i.kind
)


# -- samples: every field of a kind set, a few levels deep ---------------------------


def fill(message: Message, depth: int = 0) -> None:
    """Sets every field of `message` (down to a few levels) to a sample
    value: one element per list, one entry per map, the last value of each
    enum, the last field of each oneof."""
    if _well_known(message):
        return
    for field in message.DESCRIPTOR.fields:
        name = field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _fill_map(getattr(message, name), field.message_type, depth)
        elif field.is_repeated:
            values = getattr(message, name)
            if field.message_type is not None:
                if depth < 4:
                    fill(values.add(), depth + 1)
            else:
                values.append(_scalar(field))
        elif field.message_type is not None:
            if depth < 4:
                fill(getattr(message, name), depth + 1)
        else:
            setattr(message, name, _scalar(field))


def _fill_map(values: Any, entry: Any, depth: int) -> None:
    value_field = entry.fields_by_name["value"]
    key = _scalar(entry.fields_by_name["key"])
    if value_field.message_type is None:
        values[key] = _scalar(value_field)
    elif depth < 4:
        fill(values[key], depth + 1)


def _scalar(field: Any) -> Any:
    if field.enum_type is not None:
        return field.enum_type.values[-1].number
    if field.type == field.TYPE_STRING:
        return f"s-{field.name}"
    if field.type == field.TYPE_BYTES:
        return b"\x00\xffb-" + field.name.encode()
    if field.type == field.TYPE_BOOL:
        return True
    if field.type in (field.TYPE_FLOAT, field.TYPE_DOUBLE):
        return 1.5
    return 7


def _well_known(message: Any) -> bool:
    full_name: str = message.DESCRIPTOR.full_name
    if full_name == "google.protobuf.Timestamp":
        message.seconds = 1_700_000_000
    elif full_name == "google.protobuf.Struct":
        message.update({"k": "v", "n": 2})
    elif full_name == "google.protobuf.Value":
        message.string_value = "v"
    elif full_name == "google.protobuf.ListValue":
        message.extend(["v", 2])
    return full_name.startswith("google.protobuf.")


def sample(info: ResourceInfo, namespace: str, name: str) -> Message:
    obj = info.message()
    fill(obj)
    m: ObjectMeta = obj.metadata  # type: ignore[attr-defined]
    m.Clear()
    fill(m)
    m.name, m.namespace = name, namespace if info.namespaced else ""
    m.ClearField("resource_version")
    m.labels.clear()
    m.labels["sample"] = name
    return obj


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"/cache-reads-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def running(store: Store, info: ResourceInfo) -> AsyncIterator[WatchCache]:
    cache = WatchCache(store, info)
    async with anyio.create_task_group() as tg:
        await tg.start(cache.run)
        yield cache
        tg.cancel_scope.cancel()


def parsed(info: ResourceInfo, data: bytes) -> Message:
    return info.message.FromString(data)


def parsed_items(info: ResourceInfo, elements: list[bytes]) -> list[Message]:
    listed = api.ListResponse.FromString(b"".join(elements))
    return [parsed(info, item) for item in listed.items]


async def test_every_built_in_kind_reads_the_same_from_stored_bytes(
    etcd_client: aetcd.Client, prefix: str, namespace: str
) -> None:
    store = Store(etcd_client, prefix=prefix)
    assert len(BUILT_IN) >= 30, [i.kind for i in BUILT_IN]
    for info in BUILT_IN:
        kind = info.kind
        ns = namespace if info.namespaced else ""
        for name in ("a", "b"):
            written = await store.create(info, sample(info, namespace, f"{name}-{namespace}"))
        async with running(store, info) as cache:
            await cache.wait_until_fresh(int(written.metadata.resource_version))  # type: ignore[attr-defined]
            name = f"a-{namespace}"
            data = cache.get_encoded(ns, name)
            assert data is not None, kind
            from_etcd = await store.get(info, ns, name)  # the decode path
            assert parsed(info, data) == from_etcd, kind
            assert parsed(info, data) == cache.get(ns, name), kind
            stored = (await etcd_client.get(store_key(prefix, info, ns, name))).value
            assert data.startswith(stored), f"{kind}: the stored bytes are not passed on"

            elements, rv = cache.list_items(ns or None)
            listed = await store.list(info, ns or None)
            assert parsed_items(info, elements) == list(listed.items), kind
            assert rv >= listed.resource_version, kind

            selector = parse_predicate(kind, f"sample=b-{namespace}", message=info.message)
            elements, _ = cache.list_items(ns or None, selector)
            (only,) = parsed_items(info, elements)
            assert only == await store.get(info, ns, f"b-{namespace}"), kind


def store_key(prefix: str, info: ResourceInfo, namespace: str, name: str) -> bytes:
    where = f"{info.storage_group}/{info.stored_version}/{info.plural}"
    path = f"{namespace}/{name}" if info.namespaced else name
    return f"{prefix}/{where}/{path}".encode()


# -- through the API server -------------------------------------------------------------


async def call(address: str, method: str, request: Any) -> Any:
    async with grpc.aio.insecure_channel(address) as channel:
        return await getattr(api.APIStub(channel), method)(request)


def ref(resource: str, namespace: str, name: str = "", group: str = "", version: str = "v1") -> Any:
    return api.ResourceRef(
        group=group, version=version, resource=resource, namespace=namespace, name=name
    )


def pod(namespace: str, name: str, app: str) -> Pod:
    p = Pod(metadata=ObjectMeta(name=name, namespace=namespace, labels={"app": app}))
    p.spec.containers.add(name="c", image="busybox:1.36")
    return p


async def pages(address: str, request: Any, limit: int) -> list[bytes]:
    """Every item of a paged list (read from etcd and decoded: the decode
    path), following continue tokens."""
    items: list[bytes] = []
    request.limit = limit
    while True:
        reply = await call(address, "List", request)
        items += reply.items
        token = getattr(reply, "continue")
        if not token:
            assert reply.remaining_item_count == 0
            return items
        setattr(request, "continue", token)


async def test_pods_read_the_same_from_the_cache_as_from_etcd(
    apiserver: APIServerProcess, client: Client, api_namespace: str, etcd_client: aetcd.Client
) -> None:
    ns, address = api_namespace, apiserver.address
    for i in range(7):
        await client.create(pod(ns, f"p{i}", "odd" if i % 2 else "even"))
    written = await client.update(await client.get(Pod, "p3", namespace=ns))  # a new version

    got = await call(address, "Get", api.GetRequest(ref=ref("pods", ns, "p3")))
    stored = (await etcd_client.get(f"/registry/core/v1/pods/{ns}/p3".encode())).value
    assert got.object.startswith(stored), "a get passes the stored bytes on"
    assert Pod.FromString(got.object) == written
    assert Pod.FromString(got.object) == await Store(etcd_client).get(
        scheme.for_message(Pod), ns, "p3"
    )

    from_etcd = await pages(address, api.ListRequest(ref=ref("pods", ns)), limit=1_000)
    assert len(from_etcd) == 7
    for rv in ("", "0"):
        listed = await call(
            address, "List", api.ListRequest(ref=ref("pods", ns), resource_version=rv)
        )
        assert [Pod.FromString(i) for i in listed.items] == [
            Pod.FromString(i) for i in from_etcd
        ], rv
        assert listed.items[3].startswith(stored), f'rv "{rv}": the stored bytes are passed on'
        assert int(listed.resource_version) >= int(written.metadata.resource_version), rv

    selections = [  # (case, label selector, field selector, names)
        ("label", "app=odd", "", ["p1", "p3", "p5"]),
        ("field", "", "metadata.name=p4", ["p4"]),
        ("both", "app=even", "metadata.name!=p0", ["p2", "p4", "p6"]),
        ("none match", "app=none", "", []),
    ]
    for case, labels, fields, names in selections:
        selection = api.ListRequest(
            ref=ref("pods", ns), label_selector=labels, field_selector=fields
        )
        decoded = await pages(address, selection, limit=2)
        for rv in ("", "0"):
            request = api.ListRequest(
                ref=ref("pods", ns),
                resource_version=rv,
                label_selector=labels,
                field_selector=fields,
            )
            listed = await call(address, "List", request)
            got_pods = [Pod.FromString(i) for i in listed.items]
            assert [p.metadata.name for p in got_pods] == names, (case, rv)
            assert got_pods == [Pod.FromString(i) for i in decoded], (case, rv)


async def test_pages_still_follow_continue_tokens(
    apiserver: APIServerProcess, client: Client, api_namespace: str
) -> None:
    ns, address = api_namespace, apiserver.address
    for i in range(5):
        await client.create(pod(ns, f"p{i}", "x"))
    first = await call(address, "List", api.ListRequest(ref=ref("pods", ns), limit=2))
    assert [Pod.FromString(i).metadata.name for i in first.items] == ["p0", "p1"]
    assert first.remaining_item_count == 3
    assert getattr(first, "continue")
    paged = await pages(address, api.ListRequest(ref=ref("pods", ns)), limit=2)
    whole = await call(address, "List", api.ListRequest(ref=ref("pods", ns)))
    assert [Pod.FromString(i) for i in paged] == [Pod.FromString(i) for i in whole.items]
    assert getattr(whole, "continue") == ""
    assert whole.remaining_item_count == 0


async def test_a_configmap_missing_reads_as_not_found(client: Client, api_namespace: str) -> None:
    await client.create(ConfigMap(metadata=ObjectMeta(name="here", namespace=api_namespace)))
    assert (await client.get(ConfigMap, "here", namespace=api_namespace)).metadata.name == "here"
    with pytest.raises(errors.NotFound, match='configmaps "gone" not found'):
        await client.get(ConfigMap, "gone", namespace=api_namespace)


# -- a custom kind: read defaults follow the CRD, so its objects are decoded ---------------


def gadget_crd(group: str) -> Any:
    (crd,) = codec.load_manifest(f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: cachereadgadgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{kind: CacheReadGadget, plural: cachereadgadgets}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {{type: string, default: small}}
""")
    return crd


@pytest.fixture
async def gadget_group(client: Client) -> AsyncIterator[str]:
    """A group of its own, its kind named apart from every other test's
    (the session's in-process API server registers a served CRD's kind in
    the process's scheme, which unit tests on the same worker resolve
    names in); the CRD is deleted afterwards."""
    group = f"t{uuid.uuid4().hex[:8]}.cachereads.example.com"
    yield group
    with contextlib.suppress(errors.NotFound):
        await client.delete(CustomResourceDefinition, f"cachereadgadgets.{group}")
    for info in scheme.all():
        if info.group == group:
            scheme.unregister(info.api_version, info.kind)


async def test_a_custom_kind_reads_with_the_crds_current_defaults(
    client: Client, api_namespace: str, gadget_group: str
) -> None:
    ns = api_namespace
    crd = await client.create(gadget_crd(gadget_group))
    Gadget = custom_kind(f"{gadget_group}/v1", "CacheReadGadget", plural="cachereadgadgets")
    with anyio.fail_after(30):
        while True:
            try:
                await client.create(
                    Gadget(metadata=ObjectMeta(name="g", namespace=ns, labels={"a": "b"}), spec={})
                )
                break
            except errors.NotFound:  # the API server does not serve the kind yet
                await anyio.sleep(0.05)
    assert (await client.get(Gadget, "g", namespace=ns)).spec == {"size": "small"}
    # A default added later shows on the object stored before, on every read.
    schema = crd.spec.versions[0].schema.open_apiv3_schema
    schema["properties"]["spec"]["properties"]["shape"] = {"type": "string", "default": "round"}
    await client.update(crd)
    want = {"size": "small", "shape": "round"}
    with anyio.fail_after(30):
        while True:  # the API server follows the CRD's update shortly
            if (await client.get(Gadget, "g", namespace=ns)).spec == want:
                break
            await anyio.sleep(0.05)
    for rv in ("", "0"):
        listed = await client.list(Gadget, namespace=ns, resource_version=rv)
        assert [o.spec for o in listed.items] == [want], rv
        selected = await client.list(
            Gadget, namespace=ns, resource_version=rv, label_selector="a=b"
        )
        assert [o.spec for o in selected.items] == [want], rv


# -- an encrypted Secret: the reply is the plaintext, never etcd's ciphertext --------------

KEY = Key("key1", base64.b64encode(b"g" * 32).decode())


@pytest.fixture(scope="module")
def encrypting_server(
    etcd_server: EtcdServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[APIServerProcess, str]]:
    prefix = f"/enc-reads-{uuid.uuid4().hex[:8]}"
    config: Path = tmp_path_factory.mktemp("encryption") / "encryption-config.yaml"
    write_private(config, render_config([KEY]))
    server = APIServerProcess(
        etcd_server.endpoint,
        bookmark_interval=0.5,
        extra_args=("--etcd-prefix", prefix, "--encryption-provider-config", str(config)),
    )
    server.start()
    pid = server.pid
    yield server, prefix
    server.stop()
    assert not server.running, f"kpy-apiserver (pid {pid}) still runs after stop()"


async def test_an_encrypted_secret_reads_as_its_plaintext(
    encrypting_server: tuple[APIServerProcess, str], etcd_client: aetcd.Client, namespace: str
) -> None:
    server, prefix = encrypting_server
    password = b"pw-" + uuid.uuid4().hex.encode()
    async with Client(server.address, retry_timeout=10.0) as client:
        await client.create(Namespace(metadata=ObjectMeta(name=namespace)))
        secret = Secret(metadata=ObjectMeta(name="db", namespace=namespace, labels={"a": "b"}))
        secret.data["password"] = password
        created = await client.create(secret)
    sealed = (await etcd_client.get(f"{prefix}/core/v1/secrets/{namespace}/db".encode())).value
    assert sealed.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert password not in sealed

    got = await call(server.address, "Get", api.GetRequest(ref=ref("secrets", namespace, "db")))
    assert Secret.FromString(got.object) == created
    assert b"k8s:enc:" not in got.object
    assert password in got.object
    for rv, selector in (("", ""), ("0", ""), ("", "a=b"), ("0", "a=b")):
        request = api.ListRequest(
            ref=ref("secrets", namespace), resource_version=rv, label_selector=selector
        )
        listed = await call(server.address, "List", request)
        assert [Secret.FromString(i) for i in listed.items] == [created], (rv, selector)
        assert all(b"k8s:enc:" not in i for i in listed.items), (rv, selector)

"""CustomResourceDefinitions served at run time by a real API server on a
real etcd: a new kind answers every verb, watch and selector as soon as its
CRD is stored, with its status and scale subresources, several versions on
one storage version, its schema's pruning, defaults and validation, and it
stops being served when its CRD goes.

Each test makes its own API group, so the tests share the session's API
server without seeing each other's kinds.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import codec, errors
from kpy.api.apiextensions.v1 import CustomResourceDefinition
from kpy.api.meta.v1 import ObjectMeta
from kpy.api.scheme import scheme
from kpy.api.unstructured import CustomObject, custom_kind
from kpy.client.client import _ref
from kpy.rpc.apiserver import v1 as api

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kpy.client import Client

SERVED_WITHIN = 10.0  # seconds; a CRD is served within ~100 ms on an idle machine


@pytest.fixture(autouse=True)
def _forget_kinds() -> Iterator[None]:
    """The kinds a test registers leave the process's scheme with it, so
    that tests after it in this process see the built-in kinds only."""
    before = {(i.api_version, i.kind) for i in scheme.all()}
    yield
    for info in scheme.all():
        if (info.api_version, info.kind) not in before:
            scheme.unregister(info.api_version, info.kind)


def _group() -> str:
    return f"t{uuid.uuid4().hex[:8]}.example.com"


def crd_manifest(
    group: str,
    *,
    kind: str = "Widget",
    plural: str = "widgets",
    versions: tuple[str, ...] = ("v1",),
    storage: str = "v1",
    scope: str = "Namespaced",
    short_names: tuple[str, ...] = ("wd",),
) -> CustomResourceDefinition:
    version_docs = "".join(
        f"""
  - name: {v}
    served: true
    storage: {str(v == storage).lower()}
    subresources:
      status: {{}}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    selectableFields:
    - jsonPath: .spec.color
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [color]
            properties:
              color: {{type: string, enum: [red, green, blue]}}
              replicas: {{type: integer, minimum: 0, default: 1}}
              size: {{type: string, default: small}}
            x-kubernetes-validations:
            - rule: "self.replicas <= 10"
              message: at most 10 replicas
          status:
            type: object
            properties:
              replicas: {{type: integer}}
              selector: {{type: string}}
              ready: {{type: boolean}}"""
        for v in versions
    )
    text = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  scope: {scope}
  names:
    kind: {kind}
    plural: {plural}
    shortNames: [{", ".join(short_names)}]
  versions:{version_docs}
"""
    (crd,) = codec.load_manifest(text)
    assert isinstance(crd, CustomResourceDefinition)
    return crd


async def served(client: Client, group: str, plural: str, version: str = "v1") -> float:
    """Waits until discovery lists the resource; returns how long it took."""
    start = time.monotonic()
    while time.monotonic() - start < SERVED_WITHIN:
        found = [
            r
            for r in await client.resources()
            if (r.group, r.version, r.resource) == (group, version, plural)
        ]
        if found:
            return time.monotonic() - start
        await anyio.sleep(0.02)
    pytest.fail(f"{plural}.{group}/{version} was not served within {SERVED_WITHIN} s")


async def not_served(client: Client, group: str, plural: str) -> None:
    deadline = time.monotonic() + SERVED_WITHIN
    while time.monotonic() < deadline:
        if not any((r.group, r.resource) == (group, plural) for r in await client.resources()):
            return
        await anyio.sleep(0.05)
    pytest.fail(f"{plural}.{group} is still served")


def widget_kind(group: str, version: str = "v1") -> type[CustomObject]:
    return custom_kind(
        f"{group}/{version}",
        "Widget",
        plural="widgets",
        status_subresource=True,
        selectable_fields={"spec.color": ("spec", "color")},
    )


def widget(cls: type[CustomObject], name: str, namespace: str, **spec: Any) -> CustomObject:
    return cls(metadata=ObjectMeta(name=name, namespace=namespace, labels={"app": name}), spec=spec)


async def test_a_crd_serves_every_verb_watch_and_selector(
    client: Client, api_namespace: str
) -> None:
    group = _group()
    created = await client.create(crd_manifest(group))
    assert "customresourcecleanup.apiextensions.k8s.io" in created.metadata.finalizers
    await served(client, group, "widgets")
    info = {r.resource: r for r in await client.resources()}["widgets"]
    assert (info.kind, info.namespaced, list(info.short_names)) == ("Widget", True, ["wd"])
    assert sorted(info.subresources) == ["scale", "status"]
    assert info.singular_name == "widget"

    Widget = widget_kind(group)
    start = (await client.list(Widget, namespace=api_namespace)).resource_version
    watch = client.watch(Widget, namespace=api_namespace, resource_version=start, bookmarks=False)
    async with watch as events:
        a = await client.create(widget(Widget, "a", api_namespace, color="red"))
        assert a.metadata.uid
        assert a.metadata.resource_version
        assert a.metadata.generation == 1
        await client.create(widget(Widget, "b", api_namespace, color="blue", replicas=3))

        got = await client.get(Widget, "a", namespace=api_namespace)
        assert got == a
        assert got.spec == {"color": "red", "replicas": 1, "size": "small"}  # defaults

        listed = await client.list(Widget, namespace=api_namespace)
        assert sorted(o.metadata.name for o in listed.items) == ["a", "b"]
        by_label = await client.list(Widget, namespace=api_namespace, label_selector="app=b")
        assert [o.metadata.name for o in by_label.items] == ["b"]
        by_name = await client.list(
            Widget, namespace=api_namespace, field_selector="metadata.name=a"
        )
        assert [o.metadata.name for o in by_name.items] == ["a"]
        by_color = await client.list(
            Widget, namespace=api_namespace, field_selector="spec.color=blue"
        )
        assert [o.metadata.name for o in by_color.items] == ["b"]
        with pytest.raises(errors.BadRequest, match=r"spec\.size"):
            await client.list(Widget, namespace=api_namespace, field_selector="spec.size=small")

        got.spec["color"] = "green"
        updated = await client.update(got)
        assert updated.metadata.generation == 2
        await client.delete(Widget, "b", namespace=api_namespace)

        seen: list[tuple[str, str]] = []
        with anyio.fail_after(10):
            async for event in events:
                seen.append((event.type, event.object.metadata.name))
                if len(seen) == 4:
                    break
        assert seen == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]


async def test_status_and_scale_subresources(client: Client, api_namespace: str) -> None:
    group = _group()
    await client.create(crd_manifest(group))
    await served(client, group, "widgets")
    Widget = widget_kind(group)
    obj = widget(Widget, "s", api_namespace, color="red", replicas=2)
    obj.status["ready"] = True
    created = await client.create(obj)
    assert "status" not in created  # the main path does not write status

    created.status["replicas"] = 2
    created.status["selector"] = "app=s"
    written = await client.update_status(created)
    assert written.status == {"replicas": 2, "selector": "app=s"}
    assert written.metadata.generation == 1  # status is not a generation

    written.status["replicas"] = 9
    written.spec["size"] = "large"
    again = await client.update(written)
    assert again.status["replicas"] == 2  # kept from the stored object
    assert again.spec["size"] == "large"
    assert again.metadata.generation == 2

    scale = await client.get_scale(Widget, "s", namespace=api_namespace)
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (2, 2, "app=s")
    await client.scale(Widget, "s", 5, namespace=api_namespace)
    assert (await client.get(Widget, "s", namespace=api_namespace)).spec["replicas"] == 5


async def test_the_schema_prunes_defaults_and_refuses_with_field_paths(
    client: Client, api_namespace: str
) -> None:
    group = _group()
    await client.create(crd_manifest(group))
    await served(client, group, "widgets")
    Widget = widget_kind(group)
    obj = widget(Widget, "p", api_namespace, color="red", extra="dropped")
    obj["other"] = {"also": "dropped"}
    created = await client.create(obj)
    assert created.spec == {"color": "red", "replicas": 1, "size": "small"}
    assert "other" not in created

    cases: list[tuple[str, dict[str, Any], str]] = [
        ("wrong type", {"color": "red", "replicas": "two"}, "spec.replicas"),
        ("not in the enum", {"color": "pink"}, "spec.color"),
        ("required", {"size": "small"}, "spec.color"),
        ("below the minimum", {"color": "red", "replicas": -1}, "spec.replicas"),
        ("a CEL rule", {"color": "red", "replicas": 11}, "at most 10 replicas"),
    ]
    for name, spec, words in cases:
        with pytest.raises(errors.Invalid) as caught:
            await client.create(widget(Widget, f"bad-{len(name)}", api_namespace, **spec))
        assert words in str(caught.value), f"{name}: {caught.value}"
    # nothing half-written
    listed = await client.list(Widget, namespace=api_namespace)
    assert [o.metadata.name for o in listed.items] == ["p"]


async def test_several_versions_share_one_storage_version(
    client: Client, api_namespace: str
) -> None:
    group = _group()
    await client.create(crd_manifest(group, versions=("v1beta1", "v1"), storage="v1"))
    await served(client, group, "widgets", "v1beta1")
    await served(client, group, "widgets", "v1")
    Old, New = widget_kind(group, "v1beta1"), widget_kind(group, "v1")
    await client.create(widget(Old, "v", api_namespace, color="blue"))
    got = await client.get(New, "v", namespace=api_namespace)
    assert got.to_object()["apiVersion"] == f"{group}/v1"
    assert got.spec["color"] == "blue"


async def test_a_crd_whose_names_clash_is_not_served(client: Client) -> None:
    group = _group()
    await client.create(crd_manifest(group))
    await served(client, group, "widgets")
    # another plural, the same kind in the same group: the older CRD keeps it
    # (created in the same second, the first by name: this one sorts after)
    await client.create(crd_manifest(group, plural="zwidgets", short_names=("zw",)))
    await anyio.sleep(1.0)
    resources = {(r.group, r.resource) for r in await client.resources()}
    assert (group, "widgets") in resources
    assert (group, "zwidgets") not in resources


async def test_a_deleted_crd_refuses_new_objects_and_stops_being_served(
    client: Client, api_namespace: str
) -> None:
    group = _group()
    await client.create(crd_manifest(group, scope="Cluster"))
    await served(client, group, "widgets")
    Widget = widget_kind(group)
    Cluster = custom_kind(f"{group}/v1", "Widget", plural="widgets", namespaced=False)
    assert Cluster is Widget
    await client.create(Widget(metadata=ObjectMeta(name="c"), spec={"color": "red"}))
    name = f"widgets.{group}"
    await client.delete(CustomResourceDefinition, name)
    # Terminating: the finalizer waits for the controller manager to delete its objects
    deadline = time.monotonic() + SERVED_WITHIN
    refused = ""
    while not refused:
        try:
            await client.create(Widget(metadata=ObjectMeta(name="d"), spec={"color": "red"}))
        except errors.MethodNotAllowed as e:
            refused = str(e)
            break
        assert time.monotonic() < deadline, "creates were not refused while the CRD terminates"
        await client.delete(Widget, "d")
        await anyio.sleep(0.05)
    assert "terminating" in refused
    assert [o.metadata.name for o in (await client.list(Widget)).items] == ["c"]
    # what the controller manager does: the objects go, then the finalizer
    await client.delete(Widget, "c")
    crd = await client.get(CustomResourceDefinition, name)
    del crd.metadata.finalizers[:]
    await client.update(crd)
    await not_served(client, group, "widgets")
    with pytest.raises(errors.NotFound):
        await client.list(Widget)


async def test_a_new_default_shows_on_objects_stored_before(
    client: Client, api_namespace: str
) -> None:
    group = _group()
    crd = await client.create(crd_manifest(group))
    await served(client, group, "widgets")
    Widget = widget_kind(group)
    await client.create(widget(Widget, "old", api_namespace, color="red"))
    schema = crd.spec.versions[0].schema.open_apiv3_schema
    spec_properties = schema["properties"]["spec"]["properties"]
    spec_properties["shape"] = {"type": "string", "default": "round"}
    await client.update(crd)

    async def shape() -> Any:
        got = await client.get(Widget, "old", namespace=api_namespace)
        return got.spec.get("shape")

    deadline = time.monotonic() + SERVED_WITHIN
    while await shape() != "round":
        assert time.monotonic() < deadline, "the new default never showed on read"
        await anyio.sleep(0.05)
    listed = await client.list(Widget, namespace=api_namespace)
    assert [o.spec.get("shape") for o in listed.items] == ["round"]


async def test_a_deeply_nested_object_is_bad_request_not_internal(
    client: Client, api_namespace: str
) -> None:
    """Another client may send any bytes: 500 levels of JSON (which the
    server's recursive walks could not take) is refused as BadRequest."""
    group = _group()
    await client.create(crd_manifest(group))
    await served(client, group, "widgets")
    info = client.info(widget_kind(group))
    body = (
        b'{"apiVersion": "%s/v1", "kind": "Widget", "metadata": {"name": "deep"}, '
        b'"spec": {"color": "red"}, "data": %s%s}' % (group.encode(), b"[" * 500, b"]" * 500)
    )
    request = api.CreateRequest(ref=_ref(info, api_namespace), object=body)
    with pytest.raises(errors.BadRequest, match="nesting depth exceeds 100"):
        await client._call("Create", request)

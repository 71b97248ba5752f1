"""Bad quantities sent through the SDK (which, unlike YAML through kpyctl, is
not parsed on the client) are refused by a real API server with Invalid and
the field path, and nothing is stored: neither on create nor through an
update of the main path or the status subresource."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api import codec
from kpy.api.core.v1 import Node, Pod
from kpy.api.errors import Invalid
from kpy.api.scheme import scheme

if TYPE_CHECKING:
    from kpy.client import Client
    from kpy.storage import Store

pytestmark = pytest.mark.etcd

BAD_FORMAT = "quantities must match the regular expression"


def pod(name: str) -> Pod:
    return codec.from_dict(
        Pod, {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    )


def node(name: str) -> Node:
    body: dict[str, Any] = {
        "metadata": {"name": name},
        "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }
    return codec.from_dict(Node, body)


def causes(error: Invalid) -> dict[str, str]:
    return {c.path: c.detail for c in error.causes}


async def stored_names(store: Store, kind: type[Any], namespace: str | None) -> list[str]:
    listed = await store.list(scheme.for_message(kind), namespace)
    return sorted(o.metadata.name for o in listed.items)  # type: ignore[attr-defined]


async def test_pod_with_bad_overhead_is_invalid_and_not_stored(
    client: Client, api_namespace: str, store: Store
) -> None:
    bad = pod("overhead")
    bad.spec.overhead["cpu"].string = "1.5.5Gi"
    with pytest.raises(Invalid) as raised:
        await client.create(bad)
    assert BAD_FORMAT in causes(raised.value)["spec.overhead[cpu]"]
    assert '"1.5.5Gi"' in str(raised.value)
    assert await stored_names(store, Pod, api_namespace) == []


async def test_bad_container_resources_are_invalid_not_internal(
    client: Client, api_namespace: str, store: Store
) -> None:
    bad = pod("limits")
    bad.spec.containers[0].resources.limits["memory"].string = "garbage!"
    bad.spec.containers[0].resources.requests["cpu"].string = "-1"
    with pytest.raises(Invalid) as raised:
        await client.create(bad)
    found = causes(raised.value)
    assert BAD_FORMAT in found["spec.containers[0].resources.limits[memory]"]
    assert (
        "must be greater than or equal to 0" in found["spec.containers[0].resources.requests[cpu]"]
    )
    assert await stored_names(store, Pod, api_namespace) == []


async def test_node_with_bad_allocatable_is_refused_on_every_path(
    client: Client, store: Store
) -> None:
    name = f"quantities-{uuid.uuid4().hex[:8]}"
    bad = node(name)
    bad.status.allocatable["cpu"].string = "garbage!"
    with pytest.raises(Invalid) as raised:
        await client.create(bad)
    assert BAD_FORMAT in causes(raised.value)["status.allocatable[cpu]"]
    assert name not in await stored_names(store, Node, None)

    created = await client.create(node(name))
    assert created.status.allocatable["cpu"].string == "4"  # defaulted from capacity

    status_update = Node()
    status_update.CopyFrom(created)
    status_update.status.allocatable["cpu"].string = "garbage!"
    with pytest.raises(Invalid) as raised:
        await client.update_status(status_update)
    assert BAD_FORMAT in causes(raised.value)["status.allocatable[cpu]"]

    status_update.status.allocatable["cpu"].string = "4"
    status_update.status.capacity["memory"].string = "-8Gi"
    with pytest.raises(Invalid) as raised:
        await client.update_status(status_update)
    assert "must be greater than or equal to 0" in causes(raised.value)["status.capacity[memory]"]

    main_update = Node()
    main_update.CopyFrom(created)
    main_update.spec.pod_cidr = "10.244.9.0/24"
    main_update.spec.taints.add(key="k", effect="NoSchedule")
    main_update.status.capacity["pods"].string = "1.5.5"
    updated = await client.update(main_update)  # the main path keeps the stored status
    assert updated.status == created.status

    assert (await client.get(Node, name)).status == created.status

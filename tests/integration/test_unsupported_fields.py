"""Fields kpy cannot honour, as a user meets them through a real API server:
refused on create with the field and the reason, nothing stored; and an
object stored before a field was refused can still be written and deleted."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from kpy.api import codec
from kpy.api.core.v1 import Pod
from kpy.api.defaults import set_defaults
from kpy.api.errors import Invalid, NotFound
from kpy.api.scheme import scheme

if TYPE_CHECKING:
    from kpy.client import Client
    from kpy.storage import Store

pytestmark = pytest.mark.etcd


def _pod(name: str, namespace: str, **spec: object) -> Pod:
    body = {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "app", "image": "kpy.local/busybox:latest"}], **spec},
    }
    return codec.from_dict(Pod, body)


async def test_refused_field_is_named_and_nothing_is_stored(
    client: Client, api_namespace: str
) -> None:
    with pytest.raises(Invalid) as caught:
        await client.create(_pod("host-net", api_namespace, hostNetwork=True))
    assert (
        "spec.hostNetwork: Forbidden: not supported by kpy (kpy-agent gives every pod its own "
        "network namespace); remove the field"
    ) in str(caught.value)
    with pytest.raises(NotFound):
        await client.get(Pod, "host-net", namespace=api_namespace)
    # The same field switched off is accepted.
    made = await client.create(_pod("no-host-net", api_namespace, hostNetwork=False))
    assert made.spec.host_network is False


async def test_object_stored_before_the_rule_can_still_be_updated_and_deleted(
    client: Client, store: Store, api_namespace: str
) -> None:
    """Written to etcd directly, as an older kpy would have stored it."""
    name = f"old-{uuid.uuid4().hex[:6]}"
    old = set_defaults(_pod(name, api_namespace, hostNetwork=True))
    old.metadata.uid = str(uuid.uuid4())
    await store.create(scheme.for_message(Pod), old)

    pod = await client.get(Pod, name, namespace=api_namespace)
    pod.status.phase = "Running"
    written = await client.update_status(pod)
    assert written.status.phase == "Running"

    pod = await client.get(Pod, name, namespace=api_namespace)
    pod.metadata.labels["touched"] = "yes"
    await client.update(pod)  # the refused value is held already: let through
    pod = await client.get(Pod, name, namespace=api_namespace)
    pod.spec.containers[0].tty = True
    with pytest.raises(Invalid, match=r"spec\.containers\[0\]\.tty: Forbidden"):
        await client.update(pod)  # a newly refused value is not

    await client.delete(Pod, name, namespace=api_namespace, grace_period_seconds=0)
    with pytest.raises(NotFound):
        await client.get(Pod, name, namespace=api_namespace)

"""The Endpoints and EndpointSlice controllers over a real API server: a
pod whose readiness changes moves between `addresses` and
`notReadyAddresses` (and its slice condition follows), driven by the pod
watch alone."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import pytest

from kpy.api import errors
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Endpoints, Pod, PodCondition, Service
from kpy.api.discovery.v1 import EndpointSlice
from tests.integration._controllers import eventually, running

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from kpy.client import Client

T = TypeVar("T")

pytestmark = pytest.mark.etcd


async def _set_status(client: Client, name: str, namespace: str, ip: str, ready: bool) -> None:
    pod = await client.get(Pod, name, namespace=namespace)
    pod.status.phase = "Running"
    pod.status.pod_ip = ip
    del pod.status.conditions[:]
    pod.status.conditions.append(PodCondition(type="Ready", status="True" if ready else "False"))
    await client.update_status(pod)


async def test_readiness_moves_the_address(client: Client, api_namespace: str) -> None:
    ns = api_namespace
    svc = from_dict(
        Service,
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )
    await client.create(svc)
    for name, ip in (("a", "10.1.0.1"), ("b", "10.1.0.2")):
        pod = from_dict(
            Pod,
            {
                "metadata": {"name": name, "labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "ports": [{"name": "http", "containerPort": 8080}],
                        }
                    ]
                },
            },
        )
        await client.create(pod)
        await _set_status(client, name, ns, ip, ready=True)

    async def addresses() -> tuple[list[str], list[str]]:
        try:
            ep = await client.get(Endpoints, "web", namespace=ns)
        except errors.NotFound:  # not written yet
            return ([], [])
        ready = sorted(f"{a.ip}:{s.ports[0].port}" for s in ep.subsets for a in s.addresses)
        not_ready = sorted(a.ip for s in ep.subsets for a in s.not_ready_addresses)
        return (ready, not_ready)

    async def slice_ready() -> dict[str, bool]:
        slices = await client.list(
            EndpointSlice, namespace=ns, label_selector="kubernetes.io/service-name=web"
        )
        return {e.addresses[0]: e.conditions.ready for s in slices.items for e in s.endpoints}

    async with running(client, ns, "endpoint", "endpointslice"):
        both: tuple[list[str], list[str]] = (["10.1.0.1:8080", "10.1.0.2:8080"], [])
        await eventually(lambda: _equals(addresses, both), what="both pods ready in Endpoints")
        await _set_status(client, "b", ns, "10.1.0.2", ready=False)
        moved = (["10.1.0.1:8080"], ["10.1.0.2"])
        await eventually(lambda: _equals(addresses, moved), what="pod b in notReadyAddresses")
        want = {"10.1.0.1": True, "10.1.0.2": False}
        await eventually(lambda: _equals(slice_ready, want), what="slice conditions")
        await _set_status(client, "b", ns, "10.1.0.2", ready=True)
        await eventually(lambda: _equals(addresses, both), what="pod b back in addresses")


async def _equals(read: Callable[[], Awaitable[T]], want: T) -> bool:
    return bool(await read() == want)

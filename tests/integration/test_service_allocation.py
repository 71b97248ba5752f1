"""Services get cluster IPs and node ports kept unique in etcd (issue 20):
two API servers over one etcd never hand out the same one; requested
values are honoured or refused; deletes and the start-up repair free them."""

from __future__ import annotations

import asyncio
import uuid
from ipaddress import IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kpy.api import errors
from kpy.api.core.v1 import ConfigMap, Namespace, Service
from kpy.api.scheme import scheme
from kpy.apiserver.process import APIServerProcess
from kpy.apiserver.service_alloc import PortRange, ServiceAllocator, ServiceRanges, held
from kpy.client import Client
from kpy.storage import Store, new_client

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kpy.storage import EtcdServer

pytestmark = pytest.mark.etcd

N = 200
# Small ranges, so that 200 Services fill most of them and both servers
# keep picking values the other one just took.
IP_RANGE = "127.96.7.0/24"  # 254 usable addresses
PORT_RANGE = "30000-30239"  # 240 ports


def _service(name: str, *, node_port: int = 0, cluster_ip: str = "") -> Service:
    svc = Service()
    svc.metadata.name = name
    svc.spec.type = "NodePort"
    svc.spec.selector["app"] = name
    port = svc.spec.ports.add()
    port.port = 80
    if node_port:
        port.node_port = node_port
    if cluster_ip:
        svc.spec.cluster_ip = cluster_ip
    return svc


@pytest.fixture
def two_servers(etcd_server: EtcdServer) -> Iterator[tuple[APIServerProcess, APIServerProcess]]:
    """Two API servers over one etcd, under a prefix of their own (so their
    allocations meet no other test's), stopped by pid."""
    args = (
        "--etcd-prefix",
        f"/svc-alloc-{uuid.uuid4().hex[:8]}",
        "--service-cluster-ip-range",
        IP_RANGE,
        "--service-node-port-range",
        PORT_RANGE,
    )
    servers = (
        APIServerProcess(etcd_server.endpoint, bookmark_interval=0.5, extra_args=args),
        APIServerProcess(etcd_server.endpoint, bookmark_interval=0.5, extra_args=args),
    )
    for server in servers:
        server.start()
    pids = [s.pid for s in servers]
    yield servers
    for server in servers:
        server.stop()
    running = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert not running, f"kpy-apiserver pids {running} still run after stop()"


@pytest.mark.timeout(240)
async def test_two_servers_never_hand_out_the_same_ip_or_port(
    two_servers: tuple[APIServerProcess, APIServerProcess],
) -> None:
    first, second = two_servers
    async with (
        Client(first.address, retry_timeout=60.0) as a,
        Client(second.address, retry_timeout=60.0) as b,
    ):
        ns = Namespace()
        ns.metadata.name = "alloc"
        await a.create(ns)
        await b.get(Namespace, "alloc")
        created = await asyncio.gather(
            *((a if i % 2 else b).create(_service(f"svc-{i}"), namespace="alloc") for i in range(N))
        )
        ips = [svc.spec.cluster_ip for svc in created]
        ports = [svc.spec.ports[0].node_port for svc in created]
        assert len(set(ips)) == N, f"{N - len(set(ips))} cluster IPs handed out twice"
        assert len(set(ports)) == N, f"{N - len(set(ports))} node ports handed out twice"
        assert all(ip.startswith("127.96.7.") for ip in ips), ips
        assert all(30000 <= p <= 30239 for p in ports), ports
        assert created[0].spec.cluster_ips == [created[0].spec.cluster_ip]
        assert list(created[0].spec.ip_families) == ["IPv4"]

        # What the other server now refuses, and what it honours.
        taken_ip, taken_port = ips[0], ports[0]
        for svc, path, why in (
            (_service("dup-ip", cluster_ip=taken_ip), "spec.clusterIP", "already allocated"),
            (_service("dup-port", node_port=taken_port), "spec.ports[0].nodePort", "already"),
            (_service("far", cluster_ip="127.96.8.1"), "spec.clusterIP", "not in the valid range"),
            (_service("far-port", node_port=31000), "spec.ports[0].nodePort", "valid range"),
        ):
            with pytest.raises(errors.Invalid) as refused:
                await a.create(svc, namespace="alloc")
            assert path in str(refused.value), svc.metadata.name
            assert why in str(refused.value), svc.metadata.name

        # A delete frees both; the freed values can then be asked for.
        await b.delete(Service, "svc-0", namespace="alloc")
        again = await a.create(
            _service("again", cluster_ip=taken_ip, node_port=taken_port), namespace="alloc"
        )
        assert again.spec.cluster_ip == taken_ip
        assert again.spec.ports[0].node_port == taken_port


async def test_cluster_ip_is_kept_on_update_and_immutable(
    client: Client, api_namespace: str
) -> None:
    svc = _service("web")
    svc.spec.type = "ClusterIP"
    svc.spec.session_affinity = "ClientIP"
    created = await client.create(svc)
    assert created.spec.cluster_ip.startswith("127.96."), created.spec.cluster_ip
    assert created.spec.session_affinity_config.client_ip.timeout_seconds == 10800

    # An update that does not name the IP (a manifest applied again) keeps it.
    again = _service("web")
    again.spec.type = "ClusterIP"
    again.metadata.resource_version = created.metadata.resource_version
    updated = await client.update(again)
    assert updated.spec.cluster_ip == created.spec.cluster_ip

    moved = Service()
    moved.CopyFrom(updated)
    moved.spec.cluster_ip = "127.96.200.200"
    del moved.spec.cluster_ips[:]
    with pytest.raises(errors.Invalid, match=r"spec\.clusterIP: Invalid value"):
        await client.update(moved)

    # A type change allocates the node port in the same write, and a
    # change back (a patch of the type alone) frees it.
    as_node_port = await client.patch(
        Service, "web", {"spec": {"type": "NodePort"}}, patch_type="merge"
    )
    node_port = as_node_port.spec.ports[0].node_port
    assert 30000 <= node_port <= 32767, node_port
    back = await client.patch(Service, "web", {"spec": {"type": "ClusterIP"}}, patch_type="merge")
    assert not back.spec.ports[0].HasField("node_port")
    taker = _service("taker", node_port=node_port)
    assert (await client.create(taker)).spec.ports[0].node_port == node_port

    headless = _service("headless")
    headless.spec.type = "ClusterIP"
    headless.spec.cluster_ip = "None"
    made = await client.create(headless)
    assert made.spec.cluster_ip == "None"
    assert list(made.spec.cluster_ips) == ["None"]

    external = Service()
    external.metadata.name = "ext"
    external.spec.type = "ExternalName"
    external.spec.external_name = "example.com"
    made = await client.create(external)
    assert not made.spec.cluster_ip
    assert not made.spec.cluster_ips


async def test_repair_frees_claims_no_service_holds(etcd_server: EtcdServer) -> None:
    """A claim left behind (its Service gone, its release lost) is freed
    when an API server starts."""
    prefix = f"/svc-repair-{uuid.uuid4().hex[:8]}"
    client = new_client(etcd_server.endpoint)
    try:
        store = Store(client, prefix=prefix)
        info = scheme.resolve("services")
        leaked = {"ranges/serviceips/127.96.0.9": b"default/gone/uid-1"}
        svc = _service("kept")
        svc.metadata.namespace = "default"
        svc.metadata.uid = "uid-2"
        svc.spec.cluster_ip = "127.96.0.10"
        svc.spec.ports[0].node_port = 30010
        await store.create(info, svc, claims=held(svc))
        await store.create(scheme.resolve("configmaps"), _config_map(), claims=leaked)
        freed = await ServiceAllocator(store, info).repair()
        assert freed == 1
        claims, _ = await store.list_claims("ranges/serviceips")
        assert claims == {"127.96.0.10": b"default/kept/uid-2"}
    finally:
        await client.close()


def _config_map() -> ConfigMap:
    cm = ConfigMap()
    cm.metadata.namespace = "default"
    cm.metadata.name = "holder"
    return cm


async def test_a_full_range_is_refused_clearly(etcd_server: EtcdServer) -> None:
    """Two usable addresses: the third Service is refused, naming the range;
    picking among the last free values goes through the stored claims."""
    client = new_client(etcd_server.endpoint)
    try:
        store = Store(client, prefix=f"/svc-full-{uuid.uuid4().hex[:8]}")
        ranges = ServiceRanges(IPv4Network("127.96.0.0/30"), PortRange(30000, 30001))
        allocator = ServiceAllocator(store, scheme.resolve("services"), ranges)
        made = []
        for i in range(2):
            svc = _service(f"s{i}")
            svc.metadata.namespace, svc.metadata.uid = "default", f"uid-{i}"
            made.append(await allocator.create(svc))
        assert sorted(s.spec.cluster_ip for s in made) == ["127.96.0.1", "127.96.0.2"]
        assert sorted(s.spec.ports[0].node_port for s in made) == [30000, 30001]
        third = _service("s2")
        third.spec.type = "ClusterIP"  # only the IP range is asked of
        third.spec.ports[0].ClearField("node_port")
        third.metadata.namespace, third.metadata.uid = "default", "uid-2"
        with pytest.raises(errors.Invalid, match=r"no free cluster IPs left in 127\.96\.0\.0/30"):
            await allocator.create(third)
    finally:
        await client.close()

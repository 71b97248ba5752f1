"""kpy-dns over a real API server, asked real questions on 127.0.0.1 by
dnspython's resolver, over UDP and TCP: a Service's cluster IP, a headless
Service's ready endpoints, a StatefulSet pod's stable name, SRV for a named
port, changes followed without a restart, REFUSED outside the cluster
domain, and forwarding only to the upstream it was given (a second kpy-dns
on 127.0.0.1: no query leaves the machine)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import dns.asyncquery
import dns.asyncresolver
import dns.flags
import dns.message
import dns.rcode
import dns.resolver
import pytest

from kpy.agent.dns import DNSSettings, parse_resolv_conf
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod, Service
from kpy.api.discovery.v1 import EndpointSlice
from kpy.dns.main import serve
from tests.integration._agent import running_agent
from tests.integration._controllers import eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from kpy.client import Client

pytestmark = pytest.mark.etcd


@asynccontextmanager
async def running_dns(
    client: Client, *, domain: str = "cluster.local", upstream: tuple[str, int] | None = None
) -> AsyncIterator[int]:
    """kpy-dns in this process on 127.0.0.1 (a free port), until the block ends."""
    async with anyio.create_task_group() as tg:
        bound = await tg.start(
            lambda task_status: serve(
                client,
                [("127.0.0.1", 0)],
                domain=domain,
                upstream=upstream,
                task_status=task_status,
            )
        )
        try:
            yield bound[0][1]
        finally:
            tg.cancel_scope.cancel()


def resolver(port: int) -> dns.asyncresolver.Resolver:
    r = dns.asyncresolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = port
    r.lifetime = 5.0
    return r


async def addresses(port: int, name: str, *, tcp: bool = False) -> list[str]:
    answer = await resolver(port).resolve(name, "A", tcp=tcp)
    return sorted(r.to_text() for r in answer)


async def ask(port: int, name: str, rdtype: str = "A", *, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(query, "127.0.0.1", timeout=5.0, port=port)


def service(name: str, **spec: Any) -> Service:
    return from_dict(Service, {"metadata": {"name": name}, "spec": spec})


def endpoint_slice(service: str, endpoints: list[dict[str, Any]], port: int) -> EndpointSlice:
    return from_dict(
        EndpointSlice,
        {
            "metadata": {
                "name": f"{service}-1",
                "labels": {"kubernetes.io/service-name": service},
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "pg", "port": port, "protocol": "TCP"}],
        },
    )


async def eventually_addresses(port: int, name: str, want: list[str] | str) -> None:
    """Waits for `name` to resolve to `want` ("NXDOMAIN": to be gone)."""
    got: list[str] | str = []
    with anyio.move_on_after(10.0):
        while True:
            try:
                got = await addresses(port, name)
            except dns.resolver.NXDOMAIN:
                got = "NXDOMAIN"
            if got == want:
                return
            await anyio.sleep(0.1)
    pytest.fail(f"{name}: wanted {want}, still {got} after 10s")


async def test_services_and_endpoints_by_name(client: Client, api_namespace: str) -> None:
    ns = api_namespace
    web = await client.create(
        service("web", selector={"app": "web"}, ports=[{"name": "http", "port": 80}]),
        namespace=ns,
    )
    await client.create(
        service("db", clusterIP="None", selector={"app": "db"}, ports=[{"port": 5432}]),
        namespace=ns,
    )
    endpoints = [
        {"addresses": ["127.0.2.1"], "hostname": "db-0", "conditions": {"ready": True}},
        {"addresses": ["127.0.2.2"], "hostname": "db-1", "conditions": {"ready": True}},
        {"addresses": ["127.0.2.3"], "hostname": "db-2", "conditions": {"ready": False}},
    ]
    await client.create(endpoint_slice("db", endpoints, 5432), namespace=ns)
    cluster_ip = web.spec.cluster_ip
    assert cluster_ip.startswith("127.96."), "the apiserver allocates from 127.96.0.0/16"

    async with running_dns(client) as port:
        assert await addresses(port, f"web.{ns}.svc.cluster.local") == [cluster_ip]
        assert await addresses(port, f"web.{ns}.svc.cluster.local", tcp=True) == [cluster_ip]
        assert await addresses(port, f"db.{ns}.svc.cluster.local") == ["127.0.2.1", "127.0.2.2"]
        assert await addresses(port, f"db-1.db.{ns}.svc.cluster.local") == ["127.0.2.2"]

        srv = await resolver(port).resolve(f"_pg._tcp.db.{ns}.svc.cluster.local", "SRV")
        assert sorted(r.to_text() for r in srv) == [
            f"0 100 5432 db-0.db.{ns}.svc.cluster.local.",
            f"0 100 5432 db-1.db.{ns}.svc.cluster.local.",
        ]

        missing = await ask(port, f"nope.{ns}.svc.cluster.local")
        assert missing.rcode() == dns.rcode.NXDOMAIN
        outside = await ask(port, "example.com", tcp=True)
        assert outside.rcode() == dns.rcode.REFUSED, "no upstream: nothing is forwarded"

        # Followed without a restart: a new service, one deleted.
        new = await client.create(service("late", ports=[{"port": 81}]), namespace=ns)
        await eventually_addresses(port, f"late.{ns}.svc.cluster.local", [new.spec.cluster_ip])
        await client.delete(Service, "web", namespace=ns)
        await eventually_addresses(port, f"web.{ns}.svc.cluster.local", "NXDOMAIN")


async def test_forwards_only_to_the_upstream_given(client: Client, api_namespace: str) -> None:
    ns = api_namespace
    svc = await client.create(service("api", ports=[{"port": 443}]), namespace=ns)
    # The "upstream" is another kpy-dns serving the domain kpy.test, on 127.0.0.1.
    async with running_dns(client, domain="kpy.test") as upstream:  # noqa: SIM117 - needs its port
        async with running_dns(client, upstream=("127.0.0.1", upstream)) as port:
            for tcp in (False, True):
                got = await addresses(port, f"api.{ns}.svc.kpy.test", tcp=tcp)
                assert got == [svc.spec.cluster_ip], f"forwarded (tcp={tcp})"
            assert await addresses(port, f"api.{ns}.svc.cluster.local") == [svc.spec.cluster_ip]


# -- what pods get: resolv.conf and service link variables (process runtime) ----------


async def exec_out(client: Client, pod: str, namespace: str, command: list[str]) -> str:
    out = bytearray()
    async for response in client.exec(pod, command, namespace=namespace):
        out += response.stdout + response.stderr
    return out.decode()


def sleeper(name: str, node_name: str, **spec: Any) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {"name": name},
            "spec": {
                "nodeName": node_name,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "300"]}],
                **spec,
            },
        },
    )


async def test_a_process_pod_reads_its_resolv_conf_and_service_env(
    client: Client, api_namespace: str, tmp_path: Path
) -> None:
    ns = api_namespace
    web = await client.create(
        service("web-app", selector={"app": "web"}, ports=[{"name": "http", "port": 80}]),
        namespace=ns,
    )
    dns_settings = DNSSettings(cluster_dns=("127.96.0.10",), cluster_domain="cluster.local")
    async with running_agent(client, runtime="process", root=tmp_path, dns=dns_settings) as agent:
        await client.create(sleeper("cluster", agent.node_name), namespace=ns)
        await client.create(
            sleeper("default", agent.node_name, dnsPolicy="Default", enableServiceLinks=False),
            namespace=ns,
        )
        for name in ("cluster", "default"):
            await eventually(partial(_running, client, name, ns), 30.0, f"pod {name} running")

        resolv = await exec_out(client, "cluster", ns, ["cat", "/etc/resolv.conf"])
        host_text = await anyio.Path("/etc/resolv.conf").read_text()
        host_searches = parse_resolv_conf(host_text).searches
        search = " ".join(
            dict.fromkeys(
                (f"{ns}.svc.cluster.local", "svc.cluster.local", "cluster.local", *host_searches)
            )
        )
        assert resolv == f"nameserver 127.96.0.10\nsearch {search}\noptions ndots:5\n"
        env = await exec_out(
            client, "cluster", ns, ["sh", "-c", "echo $WEB_APP_SERVICE_HOST $WEB_APP_PORT"]
        )
        assert env == f"{web.spec.cluster_ip} tcp://{web.spec.cluster_ip}:80\n"

        # dnsPolicy Default: the host's own file; enableServiceLinks false: no variables.
        resolv = await exec_out(client, "default", ns, ["cat", "/etc/resolv.conf"])
        assert resolv == host_text
        env = await exec_out(client, "default", ns, ["sh", "-c", "echo x$WEB_APP_SERVICE_HOST"])
        assert env == "x\n"


async def _running(client: Client, name: str, namespace: str) -> bool:
    pod = await client.get(Pod, name, namespace=namespace)
    return pod.status.phase == "Running"


async def test_a_large_answer_moves_to_tcp(client: Client, api_namespace: str) -> None:
    ns = api_namespace
    await client.create(
        service("big", clusterIP="None", selector={"app": "big"}, ports=[{"port": 1}]),
        namespace=ns,
    )
    addresses_ = [f"127.0.3.{i}" for i in range(1, 61)]
    endpoints = [{"addresses": [a], "conditions": {"ready": True}} for a in addresses_]
    await client.create(endpoint_slice("big", endpoints, 1), namespace=ns)
    name = f"big.{ns}.svc.cluster.local"
    async with running_dns(client) as port:
        truncated = await ask(port, name)
        assert truncated.flags & dns.flags.TC, "60 A records do not fit in 512 bytes"
        assert not truncated.answer
        # The resolver asks again over TCP, and gets them all.
        got = await addresses(port, name)
        assert sorted(got) == sorted(addresses_)

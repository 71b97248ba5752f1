"""kpy-ingress against the real API server: three small HTTP servers on
their own loopback addresses stand behind three Services (Services and
EndpointSlices written through the API, as the EndpointSlice controller
would), and one Ingress routes a.example and b.example each to its own
Service and /api to the third. Checked: routing by Host header and path,
an Ingress change taking effect without a restart, TLS with SNI from a
kubernetes.io/tls Secret, the status address, and the proxy's own 404,
502 and 503 answers. Every server and process is stopped by the test."""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import subprocess
import uuid
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from kpy.api import codec
from kpy.api.core.v1 import Secret, Service
from kpy.api.discovery.v1 import EndpointSlice
from kpy.api.networking.v1 import Ingress, IngressClass
from kpy.ingress.process import IngressProcess

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client

DEADLINE = 30.0  # seconds for a change to show (the machine is shared and loaded)


async def _backend(address: str, name: str, task_status: anyio.abc.TaskStatus[int]) -> None:
    """An HTTP server on `address` answering `<name> <path>` to every request."""

    async def answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            head = await reader.receive_until(b"\r\n\r\n", 65536)
            path = head.split(b" ")[1].decode()
            body = f"{name} {path}".encode()
            await stream.send(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n%s"
                % (len(body), body)
            )

    listener = await anyio.create_tcp_listener(local_host=address, local_port=0)
    async with listener:
        task_status.started(int(listener.extra(anyio.abc.SocketAttribute.local_port)))
        await listener.serve(answer)


async def request(
    port: int, host: str, path: str = "/", *, tls: ssl.SSLContext | None = None
) -> tuple[int, str]:
    """One GET through the ingress: (status, body)."""
    stream: anyio.abc.ByteStream
    if tls is None:
        stream = await anyio.connect_tcp("127.0.0.1", port)
    else:
        stream = await anyio.connect_tcp("127.0.0.1", port, ssl_context=tls, tls_hostname=host)
    data = b""
    try:
        await stream.send(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        while True:
            data += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        pass
    finally:
        with contextlib.suppress(ssl.SSLError, OSError, anyio.BrokenResourceError):
            await stream.aclose()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()


async def eventually(port: int, host: str, path: str, want: tuple[int, str], **kw: Any) -> None:
    """Waits until a request answers `want` (a status and a body prefix)."""
    got: tuple[int, str] | None = None
    with anyio.move_on_after(DEADLINE):
        while True:
            got = await request(port, host, path, **kw)
            if got[0] == want[0] and got[1].startswith(want[1]):
                return
            await anyio.sleep(0.1)
    pytest.fail(f"GET {host}{path}: wanted {want}, last got {got}")


def obj(manifest: dict[str, Any]) -> Any:
    return codec.decode_object(manifest)


def service(name: str) -> Service:
    svc = obj(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "web"}]},
        }
    )
    assert isinstance(svc, Service)
    return svc


def endpoint_slice(service: str, ip: str, port: int) -> EndpointSlice:
    sl = obj(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{service}-1",
                "labels": {"kubernetes.io/service-name": service},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        }
    )
    assert isinstance(sl, EndpointSlice)
    return sl


def rule(host: str, *paths: tuple[str, str]) -> dict[str, Any]:
    return {
        "host": host,
        "http": {
            "paths": [
                {
                    "path": p,
                    "pathType": "Prefix",
                    "backend": {"service": {"name": svc, "port": {"number": 80}}},
                }
                for p, svc in paths
            ]
        },
    }


def self_signed(tmp: Path, host: str) -> tuple[bytes, bytes]:
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert.read_bytes(), key.read_bytes()


@pytest.fixture
async def ingress_process(apiserver: APIServerProcess) -> AsyncIterator[tuple[IngressProcess, str]]:
    """kpy-ingress serving a controller name of this test's own; stopped by pid."""
    controller = f"kpy.io/ingress-test-{uuid.uuid4().hex[:8]}"
    proc = IngressProcess(apiserver.address, extra_args=("--controller-name", controller))
    await asyncio.to_thread(proc.start)
    pid = proc.pid
    try:
        yield proc, controller
    finally:
        await asyncio.to_thread(proc.stop)
        assert not await anyio.Path(f"/proc/{pid}").exists(), f"kpy-ingress (pid {pid}) still runs"


async def test_ingress_routes_hosts_and_paths(
    client: Client,
    api_namespace: str,
    ingress_process: tuple[IngressProcess, str],
    tmp_path: Path,
) -> None:
    proc, controller = ingress_process
    net = random.randrange(100, 250)
    addresses = {n: f"127.{net}.{random.randrange(1, 250)}.{i + 1}" for i, n in enumerate("abc")}
    class_name = f"test-{api_namespace}"[:63]
    async with AsyncExitStack() as stack:
        servers = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(servers.cancel_scope.cancel)  # every backend stops with the test
        ports = {n: await servers.start(_backend, addresses[n], f"backend-{n}") for n in addresses}
        for n, svc_name in (("a", "svc-a"), ("b", "svc-b"), ("c", "svc-api")):
            await client.create(service(svc_name))
            await client.create(endpoint_slice(svc_name, addresses[n], ports[n]))
        await client.create(service("svc-empty"))  # no endpoints: 503
        await client.create(service("svc-dead"))  # an endpoint nobody listens on: 502
        await client.create(endpoint_slice("svc-dead", addresses["a"], 1))

        ic = obj(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IngressClass",
                "metadata": {"name": class_name},
                "spec": {"controller": controller},
            }
        )
        await client.create(ic, namespace="")
        stack.push_async_callback(client.delete, IngressClass, class_name, namespace="")
        spec: dict[str, Any] = {
            "ingressClassName": class_name,
            "rules": [
                rule("a.example", ("/", "svc-a")),
                rule("b.example", ("/", "svc-b"), ("/api", "svc-api")),
                rule("empty.example", ("/", "svc-empty")),
                rule("dead.example", ("/", "svc-dead")),
            ],
        }
        manifest = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web"},
            "spec": spec,
        }
        await client.create(obj(manifest))
        port = proc.http_port

        # Each host to its own Service; the path rule sends /api to the third.
        await eventually(port, "a.example", "/x", (200, "backend-a /x"))
        await eventually(port, "b.example", "/", (200, "backend-b /"))
        await eventually(port, "b.example", "/api/users", (200, "backend-c /api/users"))
        await eventually(port, "b.example", "/apis", (200, "backend-b /apis"))
        await eventually(port, "B.Example:80", "/api", (200, "backend-c /api"))
        await eventually(port, "nobody.example", "/", (404, "404 Not Found"))
        await eventually(port, "empty.example", "/", (503, "503 Service Unavailable"))
        await eventually(port, "dead.example", "/", (502, "502 Bad Gateway"))

        # The status says where the Ingress is served.
        with anyio.fail_after(DEADLINE):
            while True:
                got = await client.get(Ingress, "web")
                lb = got.status.load_balancer.ingress
                if lb and lb[0].ip == "127.0.0.1":
                    break
                await anyio.sleep(0.1)
        assert [p.port for p in lb[0].ports] == [proc.http_port, proc.https_port]

        # A change takes effect without a restart: /api now goes to b's Service,
        # and TLS for a.example comes from a Secret.
        cert, key = self_signed(tmp_path, "a.example")
        secret = Secret(type="kubernetes.io/tls")
        secret.metadata.name = "a-tls"
        secret.data["tls.crt"], secret.data["tls.key"] = cert, key
        await client.create(secret)
        spec["rules"][1] = rule("b.example", ("/", "svc-b"), ("/api", "svc-b"))
        spec["tls"] = [{"hosts": ["a.example"], "secretName": "a-tls"}]
        updated = obj(manifest)
        updated.metadata.resource_version = got.metadata.resource_version
        updated.status.CopyFrom(got.status)
        await client.update(updated)
        await eventually(port, "b.example", "/api", (200, "backend-b /api"))

        tls = ssl.create_default_context(cadata=cert.decode())
        await eventually(
            proc.https_port, "a.example", "/secure", (200, "backend-a /secure"), tls=tls
        )
        # A name no TLS entry covers gets no certificate (no default was given).
        with pytest.raises(anyio.BrokenResourceError):
            await request(proc.https_port, "b.example", "/", tls=ssl.create_default_context())
        assert proc.running, "kpy-ingress restarted or died"

        # Handed to another class: no longer routed here, and the address goes.
        current = await client.get(Ingress, "web")
        current.spec.ingress_class_name = "someone-else"
        await client.update(current)
        await eventually(port, "a.example", "/x", (404, "404 Not Found"))
        with anyio.fail_after(DEADLINE):
            while True:
                if not (await client.get(Ingress, "web")).status.load_balancer.ingress:
                    break
                await anyio.sleep(0.1)


async def test_ingress_without_class_gets_the_default_and_is_served(
    client: Client, api_namespace: str, ingress_process: tuple[IngressProcess, str]
) -> None:
    """DefaultIngressClass admission through the real API server: the class
    annotated default is stored in the Ingress, whose controller serves it."""
    proc, controller = ingress_process
    class_name = f"default-{api_namespace}"[:63]
    address = f"127.{random.randrange(100, 250)}.{random.randrange(1, 250)}.9"
    async with AsyncExitStack() as stack:
        servers = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(servers.cancel_scope.cancel)
        port = await servers.start(_backend, address, "backend-d")
        await client.create(service("svc-d"))
        await client.create(endpoint_slice("svc-d", address, port))
        ic = obj(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IngressClass",
                "metadata": {
                    "name": class_name,
                    "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
                },
                "spec": {"controller": controller},
            }
        )
        await client.create(ic, namespace="")
        # The default class must not outlive the test: other tests' Ingresses would get it.
        stack.push_async_callback(client.delete, IngressClass, class_name, namespace="")
        created = await client.create(
            obj(
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "Ingress",
                    "metadata": {"name": "classless"},
                    "spec": {"rules": [rule("d.example", ("/", "svc-d"))]},
                }
            )
        )
        assert created.spec.ingress_class_name == class_name
        await eventually(proc.http_port, "d.example", "/", (200, "backend-d /"))

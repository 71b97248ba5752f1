"""`kpyctl port-forward` as a user runs it: a subprocess against the
session's API server, a real node agent (process runtime) running a pod
with a small HTTP server on its IP, and HTTP requests through the local
port."""

from __future__ import annotations

import re
import signal
import socket
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from kpy.api import codec, errors
from kpy.api.core.v1 import Pod, Service
from tests.integration._agent import running_agent
from tests.integration._controllers import eventually
from tests.integration._kpyctl import KPYCTL

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import Process

    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client

POD_PORT = 8080
STOP_TIMEOUT = 15.0  # seconds kpyctl may take to exit after SIGTERM on a loaded machine


def web_pod(node: str, www: Path) -> Pod:
    """A pod serving `www` over HTTP on its own IP, port 8080 (named http)."""
    serve = (
        f'exec {sys.executable} -m http.server {POD_PORT} --bind "$KPY_POD_IP" --directory {www}'
    )
    made: Pod = codec.from_dict(
        Pod,
        {
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "nodeName": node,
                "containers": [
                    {
                        "name": "web",
                        "image": "python",
                        "command": ["sh", "-c", serve],
                        "ports": [{"name": "http", "containerPort": POD_PORT}],
                    }
                ],
            },
        },
    )
    return made


def http_get(port: int, path: str) -> bytes:
    """The whole answer to `GET path` on 127.0.0.1:port (the server closes
    the connection after it: HTTP/1.0)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        return _read_all(s)


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@asynccontextmanager
async def port_forward(
    apiserver: APIServerProcess, ns: str, *words: str
) -> AsyncIterator[tuple[Process, int]]:
    """A running `kpyctl port-forward WORDS` and the local port it printed;
    stopped by its pid with SIGTERM on exit, which must end it with 0."""
    process = await anyio.open_process(
        [KPYCTL, "port-forward", *words, "--server", apiserver.address, "-n", ns]
    )
    try:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(30):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive(1)
        found = re.fullmatch(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)\n", line.decode())
        assert found, line
        yield process, int(found.group(1))
    finally:
        process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(STOP_TIMEOUT):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
            raise AssertionError(f"kpyctl port-forward (pid {process.pid}) ignored SIGTERM")
    assert process.returncode == 0, await _stderr(process)


async def _stderr(process: Process) -> str:
    assert process.stderr is not None
    out = b""
    try:
        while True:
            out += await process.stderr.receive()
    except (anyio.EndOfStream, anyio.ClosedResourceError):
        return out.decode()


async def test_port_forward_to_a_pod_and_a_service(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    www = tmp_path / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hello from the pod\n")
    async with running_agent(client, runtime="process", root=tmp_path / "agent") as agent:
        await client.create(web_pod(agent.node_name, www))
        service: Service = codec.from_dict(
            Service,
            {
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
            },
        )
        await client.create(service)

        async def running() -> bool:
            return (await client.get(Pod, "web")).status.phase == "Running"

        await eventually(running, 30, what="pod web running")

        async with port_forward(apiserver, ns, "pod/web", f":{POD_PORT}") as (_, local):

            async def answered() -> bytes:
                try:
                    return await anyio.to_thread.run_sync(http_get, local, "/hello.txt")
                except OSError:
                    return b""

            # The server in the pod may still be starting: a refused
            # forward closes the local connection, and we ask again.
            answer = await eventually(answered, 30, what="an answer through the forward")
            assert answer.startswith(b"HTTP/1.0 200"), answer
            assert answer.endswith(b"hello from the pod\n"), answer

            # Two connections at once: the first stays open, half sent,
            # while the second is answered; then the first is answered too.
            def two_at_once() -> tuple[bytes, bytes]:
                with socket.create_connection(("127.0.0.1", local), timeout=10) as first:
                    first.sendall(b"GET /hello.txt HTTP/1.0\r\n")
                    second = http_get(local, "/hello.txt")
                    first.sendall(b"\r\n")
                    return _read_all(first), second

            first, second = await anyio.to_thread.run_sync(two_at_once)
            assert first.endswith(b"hello from the pod\n"), first
            assert second.endswith(b"hello from the pod\n"), second

        # svc/web's port 80 targets the pod's port named http: 8080.
        async with port_forward(apiserver, ns, "svc/web", "0:80") as (_, local):
            answer = await anyio.to_thread.run_sync(http_get, local, "/hello.txt")
            assert answer.endswith(b"hello from the pod\n"), answer


async def test_port_forward_refused_connection_is_reported_and_closed(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    async with running_agent(client, runtime="process", root=tmp_path / "agent") as agent:
        await client.create(web_pod(agent.node_name, tmp_path))

        async def running() -> bool:
            return (await client.get(Pod, "web")).status.phase == "Running"

        await eventually(running, 30, what="pod web running")
        async with port_forward(apiserver, ns, "pod/web", ":9") as (process, local):
            # Nothing listens on port 9: the local connection is closed.
            answer = await anyio.to_thread.run_sync(http_get, local, "/")
            assert answer == b""
            assert process.stderr is not None
            with anyio.fail_after(15):
                said = (await process.stderr.receive()).decode()
            assert said.startswith(f"error: an error occurred forwarding {local} -> 9: "), said
            assert "connect: connection refused" in said, said


async def test_port_forward_to_a_pod_not_running_is_refused(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    # Bound to a node no agent runs: it stays Pending.
    await client.create(web_pod("no-such-node", Path("/")))
    done = await anyio.run_process(
        [KPYCTL, "port-forward", "pod/web", "8080", "--server", apiserver.address, "-n", ns],
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr.decode()) == (
        1,
        b"",
        "error: unable to forward port because pod is not running. Current status=Pending\n",
    )

    # The API server checks too, for clients that do not.
    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""

    with pytest.raises(errors.BadRequest, match=r"pod is not running\. Current status=Pending"):
        async for _ in client.port_forward("web", POD_PORT, nothing()):
            pass

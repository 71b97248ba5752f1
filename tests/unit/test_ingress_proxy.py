"""kpy-ingress's reverse proxy in process, on 127.0.0.1: what a client sees
for each kind of request and backend, table by table (the routing table is
built here; the API server plays no part)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from kpy.ingress import Backend, Endpoint, IngressProxy, ProxyOptions, RoutingTable
from kpy.ingress._routes import Route

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


async def echo(stream: anyio.abc.SocketStream) -> None:
    """Answers with the request head it got and its body (Content-Length)."""
    async with stream:
        reader = BufferedByteReceiveStream(stream)
        head = await reader.receive_until(b"\r\n\r\n", 65536)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.receive_exactly(length) if length else b""
        out = head + b"\n--\n" + body
        await stream.send(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nKeep-Alive: timeout=5\r\n\r\n%s"
            % (len(out), out)
        )


async def hang_up(stream: anyio.abc.SocketStream) -> None:
    async with stream:
        await BufferedByteReceiveStream(stream).receive_until(b"\r\n\r\n", 65536)


@dataclass(frozen=True)
class Case:
    name: str
    request: bytes
    status: int
    body_has: tuple[bytes, ...] = ()


CASES = [
    Case(
        "forwarded with X-Forwarded-* and Connection: close",
        b"GET /echo/x HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive\r\n\r\n",
        200,
        (
            b"GET /echo/x HTTP/1.1",
            b"X-Forwarded-For: 127.0.0.1",
            b"X-Forwarded-Host: a.example",
            b"X-Forwarded-Proto: http",
            b"Connection: close",
        ),
    ),
    Case(
        "a body streams through",
        b"POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello",
        200,
        (b"\n--\nhello",),
    ),
    Case(
        "absolute-form target: the authority is the host",
        b"GET http://a.example/echo/y HTTP/1.1\r\nHost: other\r\n\r\n",
        200,
        (b"GET /echo/y HTTP/1.1",),
    ),
    Case("no rule: 404", b"GET / HTTP/1.1\r\nHost: nobody\r\n\r\n", 404),
    Case(
        "no ready endpoint: 503 naming the backend",
        b"GET /empty HTTP/1.1\r\nHost: a.example\r\n\r\n",
        503,
        (b"ns/empty:80: no ready endpoints",),
    ),
    Case("nobody listens: 502", b"GET /dead HTTP/1.1\r\nHost: a.example\r\n\r\n", 502),
    Case(
        "the endpoint hangs up: 502",
        b"GET /hangup HTTP/1.1\r\nHost: a.example\r\n\r\n",
        502,
        (b"closed without answering",),
    ),
    Case("malformed head: 400", b"NONSENSE\r\n\r\n", 400),
]


async def _listen(
    handler: Callable[..., Awaitable[None]], *, task_status: anyio.abc.TaskStatus[int]
) -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as listener:
        task_status.started(int(listener.extra(anyio.abc.SocketAttribute.local_port)))
        await listener.serve(handler)


async def _serve(tg: anyio.abc.TaskGroup, handler: Callable[..., Awaitable[None]]) -> int:
    port: int = await tg.start(_listen, handler)
    return port


async def _get(port: int, raw: bytes) -> tuple[int, bytes]:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(raw)
        data = b""
        try:
            while True:
                data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    return int(data.split(b" ")[1]), data


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_proxy(case: Case) -> None:
    async with anyio.create_task_group() as tg:
        echo_port = await _serve(tg, echo)
        hangup_port = await _serve(tg, hang_up)
        free = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        dead_port = int(free.extra(anyio.abc.SocketAttribute.local_port))
        await free.aclose()  # nobody listens there now

        def backend(name: str, *ports: int) -> Backend:
            endpoints = tuple(Endpoint("127.0.0.1", p) for p in ports)
            return Backend("ns", name, "80", endpoints, "" if ports else "no ready endpoints")

        routes = (
            Route("/echo", False, backend("echo", echo_port)),
            Route("/empty", False, backend("empty")),
            Route("/dead", False, backend("dead", dead_port)),
            Route("/hangup", False, backend("hangup", hangup_port)),
        )
        proxy = IngressProxy(ProxyOptions(connect_timeout=2.0))
        proxy.swap(RoutingTable(exact_hosts={"a.example": routes}))
        http_port, _ = await tg.start(proxy.serve)
        status, data = await _get(http_port, case.request)
        tg.cancel_scope.cancel()
    assert status == case.status, f"{case.name}: {data!r}"
    for part in case.body_has:
        assert part in data, f"{case.name}: {part!r} not in {data!r}"
    assert data.count(b"Keep-Alive") == 0, f"{case.name}: hop-by-hop header relayed"

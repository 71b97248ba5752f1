"""The HTTP/1.1 reverse proxy of kpy-ingress: one listener for HTTP, one
for HTTPS (SNI picks the certificate), both routing through the current
`RoutingTable`.

Contract:

- `swap(table)` replaces the table atomically: a request reads the table
  once, when its head has arrived, and is routed by that table alone. No
  listener restarts.
- One request per connection: the proxy forwards the request head with
  `Connection: close` (and X-Forwarded-For/-Host/-Proto), streams the
  body through unchanged (Content-Length or chunked alike), relays the
  response with `Connection: close`, and closes both sides. Keep-alive is
  what this gives up for a proxy small enough to read in one sitting; a
  client simply opens the next connection.
- Answers of its own: 400 for a request head it cannot parse, 404 when no
  rule and no default backend match, 503 when the backend Service has no
  ready endpoint (or is not served), 502 when connecting to the chosen
  endpoint fails or it closes without answering. Endpoints are chosen at
  random among the ready ones.
- TLS: the certificate is the one the table holds for the client's server
  name (exact host, then `*.` wildcard), else the default certificate if
  one was given, else the handshake fails with `unrecognized_name`.

Written on anyio streams rather than aiohttp: forwarding bytes needs no
HTTP framework, and kpy's components are anyio task groups throughout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import ssl
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSListener

from kpy.ingress._routes import Certificate, RoutingTable

if TYPE_CHECKING:
    from anyio.abc import ByteReceiveStream, ByteSendStream, ByteStream

log = logging.getLogger("kpy.ingress.proxy")

__all__ = ["IngressProxy", "ProxyOptions"]

_MAX_HEAD: Final = 64 * 1024
_HOP_BY_HOP: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade", b"trailer"}
)
_REASONS: Final = {
    400: "Bad Request",
    404: "Not Found",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_STREAM_ERRORS: Final = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
    ssl.SSLError,
)


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    bind_address: str = "127.0.0.1"
    http_port: int = 0  # 0: a free port
    https_port: int = 0
    #: PEM certificate and key for server names no Ingress covers
    default_certificate: Certificate | None = None
    connect_timeout: float = 5.0
    head_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class _Request:
    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]

    def header(self, name: bytes) -> bytes:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return b""


class IngressProxy:
    """See the module docstring. `serve` reports (http_port, https_port)."""

    def __init__(self, options: ProxyOptions, *, rng: random.Random | None = None) -> None:
        self._options = options
        self._table = RoutingTable()
        self._rng = rng or random.Random()
        self._contexts: dict[Certificate, ssl.SSLContext] = {}

    @property
    def table(self) -> RoutingTable:
        return self._table

    def swap(self, table: RoutingTable) -> None:
        """Route every later request by `table`."""
        self._table = table
        # Contexts of certificates no longer in use go with the old table.
        keep = set(table.certificates.values())
        if self._options.default_certificate is not None:
            keep.add(self._options.default_certificate)
        self._contexts = {c: ctx for c, ctx in self._contexts.items() if c in keep}

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[tuple[int, int]] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        opts = self._options
        http = await anyio.create_tcp_listener(
            local_host=opts.bind_address, local_port=opts.http_port
        )
        https_tcp = await anyio.create_tcp_listener(
            local_host=opts.bind_address, local_port=opts.https_port
        )
        https = TLSListener(https_tcp, self._server_context(), standard_compatible=False)
        ports = (_port_of(http), _port_of(https_tcp))
        async with http, https, anyio.create_task_group() as tg:
            tg.start_soon(http.serve, lambda s: self._guarded(s, b"http", ports[0]))
            tg.start_soon(https.serve, lambda s: self._guarded(s, b"https", ports[1]))
            task_status.started(ports)

    # -- TLS ---------------------------------------------------------------------------

    def _server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        default = self._options.default_certificate
        if default is not None:
            _load(ctx, default)
        ctx.sni_callback = self._on_server_name
        return ctx

    def _on_server_name(
        self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _ctx: ssl.SSLContext
    ) -> int | None:
        cert = self._table.certificate(server_name) if server_name else None
        if cert is None:
            if self._options.default_certificate is not None:
                return None
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        try:
            conn.context = self._context_for(cert)
        except (ssl.SSLError, OSError, ValueError) as e:
            log.warning("bad TLS secret %s: %s", cert.secret, e, extra={"secret": cert.secret})
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None

    def _context_for(self, cert: Certificate) -> ssl.SSLContext:
        ctx = self._contexts.get(cert)
        if ctx is None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            _load(ctx, cert)
            self._contexts[cert] = ctx
        return ctx

    # -- HTTP --------------------------------------------------------------------------

    async def _guarded(self, client: ByteStream, scheme: bytes, port: int) -> None:
        """One connection; whatever goes wrong with it stays with it (a
        handler's exception would otherwise end the listener's task group)."""
        try:
            await self._handle(client, scheme, port)
        except Exception:
            log.exception("a %s connection failed", scheme.decode())

    async def _handle(self, client: ByteStream, scheme: bytes, port: int) -> None:
        async with client:
            reader = BufferedByteReceiveStream(client)
            try:
                with anyio.fail_after(self._options.head_timeout):
                    head = await reader.receive_until(b"\r\n\r\n", _MAX_HEAD)
            except (TimeoutError, anyio.DelimiterNotFound, anyio.IncompleteRead, *_STREAM_ERRORS):
                return
            request = _parse(head)
            if request is None:
                await _answer(client, 400, "malformed request head")
                return
            host = request.header(b"host").decode("latin-1")
            path = request.target.decode("latin-1")
            table = self._table  # this request's one table
            backend = table.route(host, path)
            if backend is None:
                await _answer(client, 404, "default backend - 404")
                return
            if not backend.endpoints:
                log.info("no endpoint for %s: %s", backend.name, backend.problem)
                await _answer(client, 503, f"{backend.name}: {backend.problem}")
                return
            endpoint = self._rng.choice(backend.endpoints)
            try:
                with anyio.fail_after(self._options.connect_timeout):
                    upstream = await anyio.connect_tcp(endpoint.ip, endpoint.port)
            except (TimeoutError, OSError) as e:
                log.info(
                    "connecting to %s at %s:%d failed: %s",
                    backend.name,
                    endpoint.ip,
                    endpoint.port,
                    e,
                )
                await _answer(
                    client, 502, f"{backend.name}: {endpoint.ip}:{endpoint.port} unreachable"
                )
                return
            peer = _peer_ip(client)
            async with upstream:
                await upstream.send(_forwarded_head(request, peer, scheme, port))
                await self._exchange(reader, client, upstream, backend.name)

    async def _exchange(
        self, reader: ByteReceiveStream, client: ByteStream, upstream: ByteStream, name: str
    ) -> None:
        """Body up, response down; ends when the upstream has answered and closed."""
        answered = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pipe, reader, upstream)
            up = BufferedByteReceiveStream(upstream)
            try:
                head = await up.receive_until(b"\r\n\r\n", _MAX_HEAD)
            except (anyio.DelimiterNotFound, anyio.IncompleteRead, *_STREAM_ERRORS):
                tg.cancel_scope.cancel()
            else:
                answered = True
                with contextlib.suppress(*_STREAM_ERRORS):
                    await client.send(_closing(head))
                    await _pipe(up, client)
                tg.cancel_scope.cancel()
        if not answered:  # outside the cancelled group, so the answer is sent
            await _answer(client, 502, f"{name}: the endpoint closed without answering")


async def _pipe(src: ByteReceiveStream, dst: ByteSendStream) -> None:
    try:
        while True:
            await dst.send(await src.receive())
    except _STREAM_ERRORS:
        return


def _parse(head: bytes) -> _Request | None:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return None
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            return None
        headers.append((name, value.strip()))
    method, target, version = parts
    if target.startswith((b"http://", b"https://")):
        # absolute-form: the authority is the host and the rest the path
        authority, _, rest = target.split(b"//", 1)[1].partition(b"/")
        target = b"/" + rest
        headers = [(k, v) for k, v in headers if k.lower() != b"host"] + [(b"Host", authority)]
    return _Request(method, target, version, headers)


def _forwarded_head(request: _Request, peer: str, scheme: bytes, port: int) -> bytes:
    out = [b" ".join((request.method, request.target, request.version))]
    prior_for = b""
    for key, value in request.headers:
        lower = key.lower()
        if lower in _HOP_BY_HOP:
            continue
        if lower == b"x-forwarded-for":
            prior_for = value + b", "
            continue
        if lower in (b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-port"):
            continue
        out.append(key + b": " + value)
    out += [
        b"X-Forwarded-For: " + prior_for + peer.encode(),
        b"X-Forwarded-Host: " + request.header(b"host"),
        b"X-Forwarded-Proto: " + scheme,
        b"X-Forwarded-Port: " + str(port).encode(),
        b"Connection: close",
    ]
    return b"\r\n".join(out) + b"\r\n\r\n"


def _closing(head: bytes) -> bytes:
    """A response head with its hop-by-hop headers replaced by `Connection: close`."""
    lines = head.split(b"\r\n")
    kept = [lines[0]] + [
        line
        for line in lines[1:]
        if line and line.partition(b":")[0].strip().lower() not in _HOP_BY_HOP
    ]
    return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n"


async def _answer(client: ByteSendStream, status: int, detail: str) -> None:
    body = f"{status} {_REASONS[status]}: {detail}\n".encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        await client.send(head + body)
    except _STREAM_ERRORS:
        return


def _peer_ip(stream: ByteStream) -> str:
    try:
        address = stream.extra(anyio.abc.SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return ""
    return str(address[0]) if isinstance(address, tuple) else str(address)


def _port_of(listener: anyio.TypedAttributeProvider) -> int:
    return int(listener.extra(anyio.abc.SocketAttribute.local_port))


def _load(ctx: ssl.SSLContext, cert: Certificate) -> None:
    """load_cert_chain reads files only: the PEMs pass through a private temp dir."""
    with tempfile.TemporaryDirectory(prefix="kpy-ingress-") as tmp:
        cert_file, key_file = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for path, data in ((cert_file, cert.cert_pem), (key_file, cert.key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(cert_file, key_file)

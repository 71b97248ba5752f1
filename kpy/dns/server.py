"""The DNS server: queries in, `records.answer` out, over UDP and TCP.

Contract:

- The wire format is dnspython's; this module only maps a question to
  `records.answer` and its result to a message. A query that does not
  parse gets FORMERR when its header can be read, else no reply.
- Answers in the cluster domain are authoritative (AA). A name outside it
  is forwarded to `upstream` (host, port) when one is given, over the
  transport the query came by, and the upstream's reply is relayed (its
  failure: SERVFAIL); without an upstream it is REFUSED: no query leaves
  the machine unless forwarding was asked for.
- A UDP reply larger than the client's buffer (512 bytes, or its EDNS
  payload size) is sent empty with TC set, so the client asks again over TCP.
- SRV answers carry the A records of their targets in the additional section.
- `serve_udp` / `serve_tcp` run until cancelled; a slow or broken client
  affects only its own connection.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from typing import TYPE_CHECKING, Final

import anyio
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from kpy.dns import records

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anyio.abc import Listener, SocketStream, UDPSocket

    from kpy.dns.records import Cluster, Record, Response

log = logging.getLogger("kpy.dns")

UDP_LIMIT: Final = 512
FORWARD_TIMEOUT: Final = 2.0  # seconds; a stub resolver retries after about as long
_TCP_IDLE: Final = 10.0  # seconds a TCP client may keep a connection open between queries


class DNSServer:
    """Answers queries for the cluster domain from `cluster` (see the module
    docstring). `upstream` is (host, port) or None: forwarding off."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        domain: str = records.DEFAULT_DOMAIN,
        upstream: tuple[str, int] | None = None,
        forward_timeout: float = FORWARD_TIMEOUT,
    ) -> None:
        self.cluster = cluster
        self.domain = domain
        self.upstream = upstream
        self.forward_timeout = forward_timeout

    async def reply(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The reply to one query message, or None when none can be made."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _formerr(wire)
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.NOTIMP if len(query.question) == 1 else dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        qtype = dns.rdatatype.to_text(question.rdtype)
        result = records.answer(self.cluster, question.name.to_text(), qtype, domain=self.domain)
        if not result.in_zone and self.upstream is not None:
            return await self._forward(query, tcp=tcp)
        response = self._message(query, result)
        limit = 65535 if tcp else max(UDP_LIMIT, query.payload if query.edns >= 0 else UDP_LIMIT)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response = self._message(query, records.Response(result.rcode))
            response.flags |= dns.flags.TC
            return response.to_wire()

    def _message(self, query: dns.message.Message, result: Response) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.from_text(result.rcode))
        if result.in_zone:
            response.flags |= dns.flags.AA
        response.answer.extend(_rrsets(result.answer))
        response.authority.extend(_rrsets(result.authority))
        targets = [r.data.split()[-1] for r in result.answer if r.type == "SRV"]
        extra = [
            record
            for target in dict.fromkeys(targets)
            for record in records.answer(self.cluster, target, "A", domain=self.domain).answer
        ]
        response.additional.extend(_rrsets(extra))
        return response

    async def _forward(self, query: dns.message.Message, *, tcp: bool) -> bytes:
        assert self.upstream is not None
        host, port = self.upstream
        try:
            send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
            reply = await send(query, host, timeout=self.forward_timeout, port=port)
            return reply.to_wire()
        except (dns.exception.DNSException, OSError) as e:
            log.warning(
                "upstream resolver failed",
                extra={
                    "upstream": f"{host}:{port}",
                    "name": query.question[0].name.to_text(),
                    "error": str(e) or type(e).__name__,
                },
            )
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()

    # -- transports -----------------------------------------------------------------

    async def serve_udp(self, sock: UDPSocket) -> None:
        """Answers datagrams on `sock` until cancelled, each in its own task
        (a forwarded query must not hold up the others); closes `sock`."""
        async with sock, anyio.create_task_group() as tg:
            async for wire, client in sock:
                tg.start_soon(self._udp_reply, sock, wire, client)

    async def _udp_reply(self, sock: UDPSocket, wire: bytes, client: tuple[str, int]) -> None:
        out = await self.reply(wire, tcp=False)
        if out is not None:
            # A client that is gone will ask again.
            with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await sock.sendto(out, *client)

    async def serve_tcp(self, listener: Listener[SocketStream]) -> None:
        """Answers connections on `listener` until cancelled; closes it."""
        async with listener:
            await listener.serve(self.serve_tcp_connection)

    async def serve_tcp_connection(self, stream: SocketStream) -> None:
        """Answers length-prefixed queries on one connection (RFC 1035
        4.2.2) until the client closes it or stays idle too long."""
        async with stream:
            try:
                while True:
                    with anyio.move_on_after(_TCP_IDLE) as idle:
                        size = struct.unpack("!H", await _read_exactly(stream, 2))[0]
                        wire = await _read_exactly(stream, size)
                    if idle.cancelled_caught:
                        return
                    out = await self.reply(wire, tcp=True)
                    if out is None:
                        return
                    await stream.send(struct.pack("!H", len(out)) + out)
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return


async def _read_exactly(stream: SocketStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += await stream.receive(size - len(data))
    return data


def _rrsets(found: Sequence[Record]) -> list[dns.rrset.RRset]:
    """Records grouped by (name, type), in the order they first appear."""
    groups: dict[tuple[str, str], list[Record]] = {}
    for r in found:
        groups.setdefault((r.name, r.type), []).append(r)
    return [
        dns.rrset.from_text_list(name, group[0].ttl, "IN", rtype, [r.data for r in group])
        for (name, rtype), group in groups.items()
    ]


def _formerr(wire: bytes) -> bytes | None:
    """FORMERR echoing the query's id, when the 12-byte header is there."""
    if len(wire) < 12:
        return None
    (query_id,) = struct.unpack("!H", wire[:2])
    flags = dns.flags.QR | dns.rcode.FORMERR
    return struct.pack("!HHHHHH", query_id, flags, 0, 0, 0, 0)

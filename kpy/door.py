"""The door of a component's own gRPC service: TLS, a client certificate
from the cluster CA, and only the callers it names.

The node agent's service (logs, exec, port-forward, stats: what the kubelet
serves on :10250) and the scheduler's Explain service are not the API
server: they answer a handful of callers, not users. As the kubelet with
`--client-ca-file` and webhook authorization answers the API server's
`--kubelet-client-certificate`, a door here:

- serves TLS with `--tls-cert-file` / `--tls-private-key-file` and requires
  a client certificate signed by `--client-ca-file` (`ServingTLS`,
  `listen`): a caller with no certificate, or one from another CA, fails the
  TLS handshake and reaches no handler;
- answers only a caller whose certificate's CN is one of its users, or
  whose O values include `system:masters` (`Door`, `DoorInterceptor`):
  anyone else gets PERMISSION_DENIED, a `Forbidden` Status naming the user
  and who is answered, and the refusal is logged with the method and peer.

Without the TLS files the service speaks plaintext to anyone, as before
(`kpy up --insecure`).

`handshake_problem` reads the details of a failed gRPC call as the client
side of such a door sees them (a plaintext server, a certificate from
another CA, ...), for callers' error messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import grpc
import grpc.aio

from kpy.api import errors
from kpy.auth.authentication import Credentials, X509Authenticator
from kpy.rpc import status

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from kpy.auth.attributes import UserInfo

__all__ = [
    "MASTERS_GROUP",
    "Door",
    "DoorInterceptor",
    "HandshakeProblem",
    "ServingTLS",
    "TLSFileError",
    "handshake_problem",
    "listen",
    "read_pem",
]

#: Kubernetes' superuser group: its members pass every door.
MASTERS_GROUP: Final = "system:masters"

log = logging.getLogger("kpy.door")


class TLSFileError(ValueError):
    """A TLS file a component cannot use; the message names the flag and the file."""


def read_pem(flag: str, path: str | Path, marker: bytes) -> bytes:
    """The PEM in `path`; TLSFileError naming `flag` and the file when it is
    unreadable or holds no PEM block of `marker`'s kind."""
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as e:
        raise TLSFileError(f"{flag}: cannot read {path}: {e.strerror}") from None
    if b"-----BEGIN" not in data or marker not in data:
        raise TLSFileError(
            f"{flag}: {path} holds no PEM {marker.decode().lower()}; "
            "give the PEM file kpy.pki (or openssl) wrote"
        )
    return data


@dataclass(frozen=True, slots=True)
class ServingTLS:
    """A service's certificate and key, and the CA its callers'
    certificates must chain to (all PEM)."""

    cert_pem: bytes
    key_pem: bytes = b""
    client_ca_pem: bytes = b""

    @classmethod
    def load(
        cls, cert_file: str | Path, key_file: str | Path, client_ca_file: str | Path
    ) -> ServingTLS:
        """The three files' contents; TLSFileError naming the flag
        (`--tls-cert-file`, `--tls-private-key-file`, `--client-ca-file`)
        and the file that is missing or holds no PEM of its kind."""
        return cls(
            read_pem("--tls-cert-file", cert_file, b"CERTIFICATE"),
            read_pem("--tls-private-key-file", key_file, b"PRIVATE KEY"),
            read_pem("--client-ca-file", client_ca_file, b"CERTIFICATE"),
        )

    @classmethod
    def from_flags(
        cls,
        cert_file: str | Path | None,
        key_file: str | Path | None,
        client_ca_file: str | Path | None,
    ) -> ServingTLS | None:
        """`load` when all three flags are given, None when none is;
        TLSFileError naming the missing ones when only some are (a door
        without a client CA would answer anyone holding any certificate)."""
        given = {
            "--tls-cert-file": cert_file,
            "--tls-private-key-file": key_file,
            "--client-ca-file": client_ca_file,
        }
        if cert_file and key_file and client_ca_file:
            return cls.load(cert_file, key_file, client_ca_file)
        missing = [flag for flag, value in given.items() if not value]
        if len(missing) == len(given):
            return None
        raise TLSFileError(
            f"{', '.join(f for f in given if f not in missing)} without "
            f"{' and '.join(missing)}: the TLS door needs all three "
            "(the serving certificate, its key, and the CA of the callers it answers)"
        )

    def server_credentials(self) -> grpc.ServerCredentials:
        """TLS with this certificate, requiring a client certificate signed
        by the client CA (gRPC's Python server can only require one or not
        ask: kpy.apiserver.authentication says more)."""
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)],
            root_certificates=self.client_ca_pem,
            require_client_auth=True,
        )


def listen(server: grpc.aio.Server, address: str, port: int, tls: ServingTLS | None) -> int:
    """Binds `server` to address:port, with TLS when `tls` is set; the port
    bound, 0 when none could be (the port is taken, the address not local)."""
    target = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    try:
        if tls is None:
            return server.add_insecure_port(target)
        return server.add_secure_port(target, tls.server_credentials())
    except RuntimeError:  # grpc raises it when no address could be bound
        return 0


@dataclass(frozen=True, slots=True)
class Door:
    """Who a service answers: users by name (a certificate's CN) and the
    members of `system:masters`. `service` names the service in messages
    ("the agent of node n1")."""

    service: str
    users: frozenset[str] = frozenset()
    flag: str = "--authorized-clients"

    def allows(self, user: UserInfo) -> bool:
        return user.name in self.users or MASTERS_GROUP in user.groups

    def allowed(self) -> str:
        """Who passes, in words."""
        names = ", ".join(f'"{u}"' for u in sorted(self.users))
        users = f"users {names} ({self.flag}) and " if names else ""
        return f"{users}members of group {MASTERS_GROUP}"

    def refusal(self, user: UserInfo) -> errors.Forbidden:
        groups = f" (groups {', '.join(user.groups)})" if user.groups else ""
        return errors.Forbidden(
            f'user "{user.name}"{groups} may not call {self.service}: it answers only '
            f"{self.allowed()}"
        )


@dataclass(frozen=True, slots=True)
class _Refused:
    error: errors.StatusError
    user: str


class DoorInterceptor(grpc.aio.ServerInterceptor):
    """Checks every call's client certificate against `door` before its
    handler runs (on a TLS port; a plaintext port has no certificates and
    gets no interceptor). A refusal is logged (method, user, peer) and
    answered PERMISSION_DENIED with a Forbidden Status; a certificate with
    no CN is UNAUTHENTICATED."""

    def __init__(self, door: Door) -> None:
        self._door = door
        self._x509 = X509Authenticator()

    def _check(self, method: str, context: Any) -> _Refused | None:
        pems = (context.auth_context() or {}).get("x509_pem_cert") or ()
        user = self._x509.authenticate(Credentials(bytes(pems[0]) if pems else None, ""))
        if user is None:
            error: errors.StatusError = errors.Unauthorized(
                f"{self._door.service} answers only callers with a client certificate "
                f"that names a user (CN); it answers {self._door.allowed()}"
            )
            refused = _Refused(error, "<no user>")
        elif not self._door.allows(user):
            refused = _Refused(self._door.refusal(user), user.name)
        else:
            return None
        log.warning(
            "refused a call: %s",
            refused.error.message,
            extra={"method": method, "user": refused.user, "peer": context.peer()},
        )
        return refused

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return None  # an unknown method: gRPC answers it
        method = str(handler_call_details.method).rpartition("/")[2]
        check = self._check

        async def refuse(context: Any, refused: _Refused) -> None:
            error = refused.error
            await context.abort(
                status.code_for(error), error.message, status.trailing_metadata(error)
            )

        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: Any) -> Any:
                if (refused := check(method, context)) is not None:
                    await refuse(context, refused)
                return await inner_uu(request, context)

            return handler._replace(unary_unary=unary_unary)  # type: ignore[no-any-return]
        if handler.stream_unary is not None:
            inner_su = handler.stream_unary

            async def stream_unary(requests: Any, context: Any) -> Any:
                if (refused := check(method, context)) is not None:
                    await refuse(context, refused)
                return await inner_su(requests, context)

            return handler._replace(stream_unary=stream_unary)  # type: ignore[no-any-return]
        field = "unary_stream" if handler.unary_stream is not None else "stream_stream"
        inner = getattr(handler, field)

        async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
            if (refused := check(method, context)) is not None:
                await refuse(context, refused)
            async for response in inner(request, context):
                yield response

        return handler._replace(**{field: streaming})  # type: ignore[no-any-return]


_CLOSED_SIGNS: Final = ("Socket closed", "Connection reset", "andshake")

HandshakeProblem = Literal["plaintext", "untrusted", "expired", "hostname", "closed"]


def handshake_problem(details: str) -> HandshakeProblem | None:
    """What a failed call's details say went wrong in a TLS handshake, as
    the client sees it: the server speaks plaintext, its certificate is not
    signed by our CA, has expired, does not name the address dialled; or
    the server closed the connection during the handshake (it refused our
    certificate, or we presented none, or it wants TLS and we spoke
    plaintext: gRPC's client cannot tell these apart). None: no such sign."""
    if "WRONG_VERSION_NUMBER" in details:
        return "plaintext"
    if "CERTIFICATE_VERIFY_FAILED" in details:
        return "expired" if "expired" in details else "untrusted"
    if "Hostname" in details or "hostname" in details:
        return "hostname"
    if any(sign in details for sign in _CLOSED_SIGNS):
        return "closed"
    return None

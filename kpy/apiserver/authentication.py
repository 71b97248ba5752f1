"""The API server's TLS and its authenticators, glued to gRPC.

- `load_tls` reads `--tls-cert-file`, `--tls-private-key-file` and
  `--client-ca-file` into `grpc.ssl_server_credentials`.
- `credentials_of(context)` is what a call presented: the verified client
  certificate from `context.auth_context()` (`x509_pem_cert`) and the
  bearer token of its `authorization` metadata.
- `current_user` holds the caller of the call being served: `_guard`
  (kpy.apiserver.service) sets it before any handler runs, so handlers,
  authorization and audit read it with `current_user.get()`. Without any
  authenticator it is `ANONYMOUS`.

gRPC's Python server can ask for a client certificate only by requiring
it (`require_client_auth`: its C core is told either "require and verify"
or "do not request"). So with a client CA every TLS connection must
present a certificate the CA signed, and a bearer token rides on top of
it; without one, certificates are not asked for and tokens are the only
way in. docs/security.md says what this means for deployments.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import grpc

from kpy.auth.authentication import ANONYMOUS, Credentials, bearer_token

if TYPE_CHECKING:
    from kpy.auth.attributes import UserInfo
    from kpy.auth.authentication import Chain

__all__ = [
    "AUTHORIZATION_METADATA",
    "TLSConfig",
    "TLSConfigError",
    "authenticate",
    "credentials_of",
    "current_user",
    "server_credentials",
]

#: The metadata key of a bearer token (HTTP's Authorization header).
AUTHORIZATION_METADATA: Final = "authorization"

#: The caller of the call being served (set by `_guard` before any handler).
current_user: contextvars.ContextVar[UserInfo] = contextvars.ContextVar(
    "kpy_current_user", default=ANONYMOUS
)


class TLSConfigError(ValueError):
    """A TLS file the server cannot use; the message names the flag and file."""


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """The server's certificate chain and key (PEM), and the CA its
    callers' certificates must chain to (None: no client certificates)."""

    cert_pem: bytes
    key_pem: bytes
    client_ca_pem: bytes | None = None

    @classmethod
    def load(
        cls, cert_file: str | Path, key_file: str | Path, client_ca_file: str | Path | None = None
    ) -> TLSConfig:
        """The files' contents; TLSConfigError naming the flag and the file
        that is missing or holds no PEM of the right kind."""
        cert = _read("--tls-cert-file", cert_file, b"CERTIFICATE")
        key = _read("--tls-private-key-file", key_file, b"PRIVATE KEY")
        ca = _read("--client-ca-file", client_ca_file, b"CERTIFICATE") if client_ca_file else None
        return cls(cert, key, ca)


def _read(flag: str, path: str | Path, marker: bytes) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TLSConfigError(f"{flag}: cannot read {path}: {e.strerror}") from None
    if b"-----BEGIN" not in data or marker not in data:
        raise TLSConfigError(
            f"{flag}: {path} holds no PEM {marker.decode().lower()}; "
            "give the PEM file kpy.pki (or openssl) wrote"
        )
    return data


def server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    """TLS with the server's certificate; with a client CA, callers must
    present a certificate it signed (see the module docstring)."""
    return grpc.ssl_server_credentials(
        [(tls.key_pem, tls.cert_pem)],
        root_certificates=tls.client_ca_pem,
        require_client_auth=tls.client_ca_pem is not None,
    )


def credentials_of(context: Any) -> Credentials:
    """The verified client certificate and the bearer token of a call."""
    certificate = None
    auth = context.auth_context() or {}
    pems = auth.get("x509_pem_cert") or ()
    if pems:
        certificate = bytes(pems[0])
    token = ""
    for key, value in context.invocation_metadata() or ():
        if key == AUTHORIZATION_METADATA:
            token = bearer_token(str(value))
            break
    return Credentials(certificate, token)


def authenticate(chain: Chain | None, context: Any) -> UserInfo:
    """The caller of a call (ANONYMOUS without authenticators); raises
    errors.Unauthorized when the chain knows it not."""
    if chain is None:
        return ANONYMOUS
    return chain.authenticate(credentials_of(context))

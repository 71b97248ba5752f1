"""Who is calling: Kubernetes' authenticator chain, as pure logic.

A request's `Credentials` are what the transport saw: the verified client
certificate (PEM; the TLS handshake already checked it against the client
CA) and the bearer token of an `authorization: Bearer <token>` header.
Authenticators turn them into a `UserInfo`:

- `X509Authenticator`: user = the certificate's CN, groups = its O values.
- `TokenAuthenticator`: a static token file (`--token-auth-file`), CSV rows
  `token,user,uid,"group1,group2"` as Kubernetes reads them.

`Chain.authenticate` asks each in turn (x509 first, as Kubernetes orders
them); the first that knows the caller wins, and the group
`system:authenticated` is added to every user it returns. A caller no
authenticator knows (no credentials, an unknown token) is `Unauthorized`,
with Kubernetes' message "Unauthorized": which part was wrong is logged by
the server, never told to the caller.

Nothing here reads the network; `load_token_file` is the one function that
reads a file.
"""

from __future__ import annotations

import csv
import functools
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from cryptography import x509
from cryptography.x509.oid import NameOID

from kpy.api import errors
from kpy.auth.attributes import UserInfo

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "ALL_AUTHENTICATED_GROUP",
    "ANONYMOUS",
    "Authenticator",
    "Chain",
    "Credentials",
    "TokenAuthenticator",
    "TokenFileError",
    "X509Authenticator",
    "bearer_token",
    "load_token_file",
    "parse_token_file",
    "with_authenticated_group",
]

#: Every authenticated user is in this group (Kubernetes' user.AllAuthenticated).
ALL_AUTHENTICATED_GROUP: Final = "system:authenticated"
#: The caller of a server with no authenticator configured (Kubernetes' anonymous user).
ANONYMOUS: Final = UserInfo("system:anonymous", ("system:unauthenticated",))


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presented: the peer's verified certificate (PEM, or
    None without one) and its bearer token ("" without one)."""

    certificate_pem: bytes | None = None
    token: str = ""


class Authenticator(Protocol):
    """One way of knowing a caller: the user, or None when these
    credentials are not of its kind or not known to it."""

    def authenticate(self, credentials: Credentials) -> UserInfo | None: ...


def bearer_token(authorization: str) -> str:
    """The token of an `authorization` header value `Bearer <token>` (the
    scheme in any case, as HTTP allows); "" for anything else."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


def with_authenticated_group(user: UserInfo) -> UserInfo:
    """`user` in the group `system:authenticated` (once)."""
    if ALL_AUTHENTICATED_GROUP in user.groups:
        return user
    return UserInfo(user.name, (*user.groups, ALL_AUTHENTICATED_GROUP), uid=user.uid)


class X509Authenticator:
    """The user of a verified client certificate: CN the name, each O a
    group. A certificate without a CN authenticates no one. Each distinct
    certificate is parsed once (a connection's calls all present the same)."""

    def authenticate(self, credentials: Credentials) -> UserInfo | None:
        if not credentials.certificate_pem:
            return None
        return _certificate_user(credentials.certificate_pem)


@functools.lru_cache(maxsize=1024)
def _certificate_user(pem: bytes) -> UserInfo | None:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    subject = cert.subject
    names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or not names[0].value:
        return None
    groups = tuple(str(o.value) for o in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return UserInfo(str(names[0].value), groups)


class TokenFileError(ValueError):
    """A token file that cannot be used; the message names the file, the
    line and what is wrong with it."""


class TokenAuthenticator:
    """Bearer tokens of a static token file (see `parse_token_file`).
    Tokens are compared in constant time."""

    def __init__(self, tokens: Mapping[str, UserInfo]) -> None:
        self._tokens = dict(tokens)

    def authenticate(self, credentials: Credentials) -> UserInfo | None:
        if not credentials.token:
            return None
        given = credentials.token.encode()
        found = None
        for token, user in self._tokens.items():  # every one, so timing says nothing
            if hmac.compare_digest(token.encode(), given):
                found = user
        return found


def parse_token_file(text: str, source: str = "token file") -> dict[str, UserInfo]:
    """The users of a Kubernetes static token file: one CSV row per token,
    `token,user,uid` and optionally a quoted comma-separated list of groups.
    Blank lines are skipped. TokenFileError names `source`, the line and the
    problem for a row with fewer than 3 columns, an empty token or user, or
    a token listed twice."""
    tokens: dict[str, UserInfo] = {}
    lines = text.splitlines()
    for number, row in enumerate(csv.reader(lines), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        where = f"{source}, line {number}"
        if len(row) < 3:
            raise TokenFileError(
                f'{where}: expected token,user,uid[,"group1,group2"], got {len(row)} '
                f"column{'s' if len(row) != 1 else ''}"
            )
        token, name, uid = (cell.strip() for cell in row[:3])
        if not token:
            raise TokenFileError(f"{where}: the token (column 1) is empty")
        if not name:
            raise TokenFileError(f"{where}: the user name (column 2) is empty")
        if token in tokens:
            raise TokenFileError(f"{where}: the token is listed twice; each token names one user")
        groups: tuple[str, ...] = ()
        if len(row) > 3:
            groups = tuple(g.strip() for g in row[3].split(",") if g.strip())
        tokens[token] = UserInfo(name, groups, uid=uid)
    return tokens


def load_token_file(path: str | Path) -> dict[str, UserInfo]:
    """`parse_token_file` of the file at `path`; TokenFileError when it
    cannot be read."""
    file = Path(path)
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else str(e)
        raise TokenFileError(f"cannot read the token file {file}: {reason}") from None
    return parse_token_file(text, str(file))


class Chain:
    """Kubernetes' union authenticator: the first of `authenticators` that
    knows the caller, plus `system:authenticated`; `Unauthorized` when none
    does."""

    def __init__(self, authenticators: Iterable[Authenticator]) -> None:
        self.authenticators = tuple(authenticators)

    def authenticate(self, credentials: Credentials) -> UserInfo:
        for authenticator in self.authenticators:
            user = authenticator.authenticate(credentials)
            if user is not None:
                return with_authenticated_group(user)
        raise errors.Unauthorized("Unauthorized")

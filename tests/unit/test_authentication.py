"""kpy.auth.authentication: who a caller is, from its client certificate or
its bearer token, as Kubernetes' authenticators decide it; and the
Unauthorized error on both sides of the wire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import pytest

from kpy import pki
from kpy.api import errors
from kpy.auth.attributes import UserInfo
from kpy.auth.authentication import (
    Chain,
    Credentials,
    TokenAuthenticator,
    TokenFileError,
    X509Authenticator,
    bearer_token,
    load_token_file,
    parse_token_file,
)
from kpy.rpc import status

if TYPE_CHECKING:
    from pathlib import Path

CA = pki.new_ca()
ADMIN = pki.issue_client(CA, "admin", ("system:masters",)).cert_pem
JANE = pki.issue_client(CA, "jane", ("dev", "ops")).cert_pem


@dataclass(frozen=True)
class TokenFileCase:
    name: str
    text: str
    want: dict[str, UserInfo] | None = None
    error: str = ""  # a part of the TokenFileError's message


TOKEN_FILE_CASES = [
    TokenFileCase("empty", "", {}),
    TokenFileCase(
        "Kubernetes' format, groups quoted",
        'abc123,alice,u-1,"system:masters,dev"\n',
        {"abc123": UserInfo("alice", ("system:masters", "dev"), uid="u-1")},
    ),
    TokenFileCase(
        "no groups, blank lines skipped, spaces trimmed",
        "\n t1 , bob , 7\n\nt2,carol,8,\n",
        {"t1": UserInfo("bob", (), uid="7"), "t2": UserInfo("carol", (), uid="8")},
    ),
    TokenFileCase("an empty uid is allowed", "t,dave,,ops\n", {"t": UserInfo("dave", ("ops",))}),
    TokenFileCase(
        "too few columns, on its line",
        "t1,bob,1\n\nt2,carol\n",
        error="tokens.csv, line 3: expected token,user,uid",
    ),
    TokenFileCase("an empty token", "t1,bob,1\n,carol,2\n", error="line 2: the token (column 1)"),
    TokenFileCase("an empty user", "t1, ,1\n", error="line 1: the user name (column 2) is empty"),
    TokenFileCase(
        "a token twice", "t1,bob,1\nt1,carol,2\n", error="line 2: the token is listed twice"
    ),
]


@pytest.mark.parametrize("case", TOKEN_FILE_CASES, ids=lambda c: c.name)
def test_token_file(case: TokenFileCase) -> None:
    if case.error:
        with pytest.raises(TokenFileError) as caught:
            parse_token_file(case.text, "tokens.csv")
        assert case.error in str(caught.value), (case.name, str(caught.value))
        return
    assert parse_token_file(case.text, "tokens.csv") == case.want, case.name


def test_token_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    missing = f"{tmp_path}/none.csv"
    with pytest.raises(TokenFileError, match=r"cannot read the token file .*none\.csv"):
        load_token_file(missing)


@dataclass(frozen=True)
class BearerCase:
    name: str
    header: str
    token: str


BEARER_CASES = [
    BearerCase("bearer", "Bearer abc", "abc"),
    BearerCase("scheme in any case", "bearer abc", "abc"),
    BearerCase("another scheme", "Basic abc", ""),
    BearerCase("no token", "Bearer", ""),
    BearerCase("empty", "", ""),
]


@pytest.mark.parametrize("case", BEARER_CASES, ids=lambda c: c.name)
def test_bearer_token(case: BearerCase) -> None:
    assert bearer_token(case.header) == case.token, case.name


TOKENS = {"good": UserInfo("alice", ("dev",), uid="u-1")}
CHAIN = Chain([X509Authenticator(), TokenAuthenticator(TOKENS)])


@dataclass(frozen=True)
class ChainCase:
    name: str
    credentials: Credentials
    want: UserInfo | None  # None: Unauthorized


CHAIN_CASES = [
    ChainCase(
        "certificate: CN the user, O the groups",
        Credentials(certificate_pem=ADMIN),
        UserInfo("admin", ("system:masters", "system:authenticated")),
    ),
    ChainCase(
        "certificate with several groups",
        Credentials(certificate_pem=JANE),
        UserInfo("jane", ("dev", "ops", "system:authenticated")),
    ),
    ChainCase(
        "token",
        Credentials(token="good"),
        UserInfo("alice", ("dev", "system:authenticated"), uid="u-1"),
    ),
    ChainCase(
        "certificate first, as Kubernetes orders them",
        Credentials(certificate_pem=ADMIN, token="good"),
        UserInfo("admin", ("system:masters", "system:authenticated")),
    ),
    ChainCase(
        "a bad token beside a good certificate",
        Credentials(certificate_pem=ADMIN, token="bad"),
        UserInfo("admin", ("system:masters", "system:authenticated")),
    ),
    ChainCase("nothing", Credentials(), None),
    ChainCase("a bad token", Credentials(token="bad"), None),
    ChainCase("a token's prefix", Credentials(token="goo"), None),
    ChainCase("not a certificate", Credentials(certificate_pem=b"junk"), None),
]


@pytest.mark.parametrize("case", CHAIN_CASES, ids=lambda c: c.name)
def test_chain(case: ChainCase) -> None:
    if case.want is not None:
        assert CHAIN.authenticate(case.credentials) == case.want, case.name
        return
    with pytest.raises(errors.Unauthorized) as caught:
        CHAIN.authenticate(case.credentials)
    assert str(caught.value) == "Unauthorized", case.name
    assert (caught.value.reason, caught.value.code) == ("Unauthorized", 401), case.name


def test_group_is_added_once() -> None:
    chain = Chain([TokenAuthenticator({"t": UserInfo("u", ("system:authenticated",))})])
    assert chain.authenticate(Credentials(token="t")).groups == ("system:authenticated",)


def test_unauthorized_travels_as_unauthenticated() -> None:
    error = errors.Unauthorized("Unauthorized")
    assert status.code_for(error) == grpc.StatusCode.UNAUTHENTICATED
    back = status.from_grpc(
        grpc.StatusCode.UNAUTHENTICATED, "Unauthorized", status.trailing_metadata(error)
    )
    assert isinstance(back, errors.Unauthorized)
    assert back.message == "Unauthorized"
    # without a Status (a proxy's, or gRPC's own): still Unauthorized
    bare = status.from_grpc(grpc.StatusCode.UNAUTHENTICATED, "no creds", ())
    assert isinstance(bare, errors.Unauthorized)

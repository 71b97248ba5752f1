"""TLS and authentication, end to end: private API servers in the test's
loop, serving TLS with the x509 and token authenticators, and SDK clients
configured as a user would configure them (a kpy config file).

Two servers, because gRPC's Python server asks for a client certificate
only by requiring it (see kpy.apiserver.authentication):
- `mtls`: --client-ca-file and --token-auth-file; every caller presents a
  certificate the cluster CA signed.
- `tokens`: TLS and --token-auth-file only; callers authenticate by token.
"""

from __future__ import annotations

import contextlib
import datetime
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import grpc
import grpc.aio
import pytest

from kpy import pki
from kpy.api import errors
from kpy.api.core.v1 import ConfigMap
from kpy.apiserver import main as apiserver_main
from kpy.apiserver.authentication import TLSConfig
from kpy.auth.attributes import UserInfo
from kpy.auth.authentication import Chain, TokenAuthenticator, X509Authenticator
from kpy.cli import main as kpyctl
from kpy.client import Client, load_config
from kpy.client.client import TLSHandshakeFailed
from kpy.rpc.apiserver import v1 as api
from tests.integration._apiserver import serving

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from kpy.apiserver.process import APIServerProcess
    from kpy.storage import EtcdServer

CA = pki.new_ca("cluster-ca")
SERVING = pki.issue_server(CA)
ADMIN = pki.issue_client(CA, "admin", ("system:masters",))
OTHER_CA = pki.new_ca("someone-elses-ca")
STRANGER = pki.issue_client(OTHER_CA, "mallory", ("system:masters",))
TOKENS = {"alice-token": UserInfo("alice", ("dev",), uid="u-alice")}


@contextlib.asynccontextmanager
async def _server(etcd_server: EtcdServer, tls: TLSConfig, chain: Chain) -> AsyncIterator[str]:
    async with serving(etcd_server, "tls", tls=tls, authenticators=chain) as server:
        yield f"127.0.0.1:{server.port}"


def mtls_server(etcd_server: EtcdServer) -> contextlib.AbstractAsyncContextManager[str]:
    """A server requiring client certificates of CA, and taking tokens too."""
    tls = TLSConfig(SERVING.cert_pem, SERVING.key_pem, CA.cert_pem)
    return _server(etcd_server, tls, Chain([X509Authenticator(), TokenAuthenticator(TOKENS)]))


def token_server(etcd_server: EtcdServer) -> contextlib.AbstractAsyncContextManager[str]:
    """A TLS server taking tokens, asking for no client certificate."""
    tls = TLSConfig(SERVING.cert_pem, SERVING.key_pem)
    return _server(etcd_server, tls, Chain([TokenAuthenticator(TOKENS)]))


def kpy_config(directory: Path, server: str, **fields: bytes | str) -> Path:
    """A kpy config for `server`: each bytes field is written to a file named
    after it and the config names that file; str fields are written as is."""
    lines = [f"servers: [{server}]"]
    for name, value in fields.items():
        key = name.replace("_", "-")
        if isinstance(value, bytes):
            (directory / key).write_bytes(value)
            lines.append(f"{key}: {directory / key}")
        else:
            lines.append(f"{key}: {value}")
    path = directory / f"config-{uuid.uuid4().hex[:6]}"
    path.write_text("\n".join(lines) + "\n")
    return path


async def whoami(config: Path, retry_timeout: float = 5.0) -> tuple[str, list[str], str]:
    async with Client(load_config(config), retry_timeout=retry_timeout) as client:
        answer = await client.whoami()
    return answer.username, list(answer.groups), answer.uid


@pytest.mark.timeout(90)
async def test_admin_certificate_is_admin(etcd_server: EtcdServer, tmp_path: Path) -> None:
    async with mtls_server(etcd_server) as server:
        config = kpy_config(
            tmp_path,
            server,
            certificate_authority=CA.cert_pem,
            client_certificate=ADMIN.cert_pem,
            client_key=ADMIN.key_pem,
        )
        assert await whoami(config) == ("admin", ["system:masters", "system:authenticated"], "")
        async with Client(load_config(config)) as client:  # and the API works over TLS
            cm = ConfigMap()
            cm.metadata.name = "over-tls"
            cm.data["k"] = "v"
            await client.create(cm, namespace="default")
            got = await client.get(ConfigMap, "over-tls", namespace="default")
            assert got.data["k"] == "v"


@pytest.mark.timeout(90)
async def test_token_is_its_user_and_strangers_are_unauthorized(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    async with token_server(etcd_server) as server:
        config = kpy_config(
            tmp_path, server, certificate_authority=CA.cert_pem, token="alice-token"
        )
        assert await whoami(config) == ("alice", ["dev", "system:authenticated"], "u-alice")
        for name, fields in [
            ("no credentials", {"certificate_authority": CA.cert_pem}),
            ("a bad token", {"certificate_authority": CA.cert_pem, "token": "wrong"}),
        ]:
            config = kpy_config(tmp_path, server, **fields)
            began = time.monotonic()
            with pytest.raises(errors.Unauthorized) as caught:
                await whoami(config, retry_timeout=20.0)
            assert str(caught.value) == "Unauthorized", name
            assert time.monotonic() - began < 10.0, f"{name}: Unauthorized is never retried"


@pytest.mark.timeout(90)
async def test_unauthenticated_calls_never_reach_a_handler(etcd_server: EtcdServer) -> None:
    """A malformed request and a watch, without credentials: Unauthorized,
    not BadRequest and not events."""
    credentials = grpc.ssl_channel_credentials(CA.cert_pem)
    async with (
        token_server(etcd_server) as server,
        grpc.aio.secure_channel(server, credentials) as channel,
    ):
        malformed = channel.unary_unary("/kpy.rpc.apiserver.v1.API/Get")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await malformed(b"\xff\xff\xff", timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert caught.value.details() == "Unauthorized"
        stub = api.APIStub(channel)
        watch = stub.Watch(api.WatchRequest(ref=api.ResourceRef(version="v1", resource="pods")))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await watch.read()
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.timeout(90)
async def test_certificate_of_another_ca_is_refused(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    async with mtls_server(etcd_server) as server:
        config = kpy_config(
            tmp_path,
            server,
            certificate_authority=CA.cert_pem,
            client_certificate=STRANGER.cert_pem,
            client_key=STRANGER.key_pem,
        )
        with pytest.raises(TLSHandshakeFailed) as caught:
            await whoami(config, retry_timeout=1.0)
    message = str(caught.value)
    assert "refused the client certificate" in message, message
    assert str(tmp_path / "client-certificate") in message, message
    assert "--client-ca-file" in message, message


@pytest.mark.timeout(90)
async def test_expired_certificates_are_named(etcd_server: EtcdServer, tmp_path: Path) -> None:
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=400)
    expired_admin = pki.issue_client(CA, "admin", ("system:masters",), now=long_ago)
    async with mtls_server(etcd_server) as server:
        config = kpy_config(
            tmp_path,
            server,
            certificate_authority=CA.cert_pem,
            client_certificate=expired_admin.cert_pem,
            client_key=expired_admin.key_pem,
        )
        with pytest.raises(TLSHandshakeFailed) as caught:
            await whoami(config, retry_timeout=1.0)
    message = str(caught.value)
    assert "refused the client certificate" in message, message
    assert "(it expired at " in message, message

    expired_serving = pki.issue_server(CA, now=long_ago)
    tls = TLSConfig(expired_serving.cert_pem, expired_serving.key_pem)
    async with _server(etcd_server, tls, Chain([TokenAuthenticator(TOKENS)])) as server:
        config = kpy_config(tmp_path, server, certificate_authority=CA.cert_pem, token="t")
        with pytest.raises(TLSHandshakeFailed) as caught:
            await whoami(config, retry_timeout=20.0)
    message = str(caught.value)
    assert "the API server's certificate has expired" in message, message


@pytest.mark.timeout(90)
async def test_tls_mistakes_fail_clearly(
    etcd_server: EtcdServer, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    """A server whose certificate another CA signed (not retried: it names
    the CA file), a plaintext client against TLS, TLS against plaintext."""
    async with token_server(etcd_server) as server:
        other = kpy_config(
            tmp_path, server, certificate_authority=OTHER_CA.cert_pem, token="alice-token"
        )
        began = time.monotonic()
        with pytest.raises(TLSHandshakeFailed) as caught:
            await whoami(other, retry_timeout=20.0)
        message = str(caught.value)
        assert message.startswith("certificate verify failed"), message
        assert str(tmp_path / "certificate-authority") in message, message
        assert time.monotonic() - began < 10.0, "a certificate problem is not retried"

        plaintext = kpy_config(tmp_path, server)
        with pytest.raises(TLSHandshakeFailed) as caught:
            await whoami(plaintext, retry_timeout=1.0)
        message = str(caught.value)
        assert "if it serves TLS, set certificate-authority" in message, message
        assert str(plaintext) in message, message

    config = kpy_config(tmp_path, apiserver.address, certificate_authority=CA.cert_pem)
    with pytest.raises(TLSHandshakeFailed) as caught:
        await whoami(config, retry_timeout=20.0)
    assert "does not speak TLS" in str(caught.value)


@pytest.mark.timeout(90)
async def test_plaintext_server_answers_anonymous(apiserver: APIServerProcess) -> None:
    """Today's default is unchanged: no TLS, no authentication."""
    async with Client(apiserver.address) as client:
        answer = await client.whoami()
    assert (answer.username, list(answer.groups)) == (
        "system:anonymous",
        ["system:unauthenticated"],
    )


@pytest.mark.timeout(120)
async def test_kpyctl_auth_whoami(
    etcd_server: EtcdServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with mtls_server(etcd_server) as server:
        good = kpy_config(
            tmp_path,
            server,
            certificate_authority=CA.cert_pem,
            client_certificate=ADMIN.cert_pem,
            client_key=ADMIN.key_pem,
        )
        monkeypatch.setenv("KPY_CONFIG", str(good))
        assert await anyio.to_thread.run_sync(kpyctl.main, ["auth", "whoami"]) == 0
        assert capsys.readouterr().out == (
            "ATTRIBUTE   VALUE\n"
            "Username    admin\n"
            "Groups      [system:masters system:authenticated]\n"
        )
    async with token_server(etcd_server) as server:
        anonymous = kpy_config(tmp_path, server, certificate_authority=CA.cert_pem)
        monkeypatch.setenv("KPY_CONFIG", str(anonymous))
        assert await anyio.to_thread.run_sync(kpyctl.main, ["auth", "whoami"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: You must be logged in to the server (Unauthorized)\n"), err
    assert f"{anonymous} holds no credentials" in err, err


@dataclass(frozen=True)
class FlagCase:
    name: str
    argv: list[str]
    error: str


def test_security_flags_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tokens.csv").write_text("t1,bob,1\nt2\n")
    pki.write(SERVING, tmp_path / "tls.crt", tmp_path / "tls.key")
    tls = ["--tls-cert-file", str(tmp_path / "tls.crt")]
    key = ["--tls-private-key-file", str(tmp_path / "tls.key")]
    cases = [
        FlagCase("a certificate without its key", tls, "go together: give both"),
        FlagCase(
            "a client CA without TLS", ["--client-ca-file", "x"], "--client-ca-file needs TLS"
        ),
        FlagCase(
            "tokens without TLS",
            ["--token-auth-file", str(tmp_path / "tokens.csv")],
            "--token-auth-file needs TLS",
        ),
        FlagCase(
            "a bad token file, naming its line",
            [*tls, *key, "--token-auth-file", str(tmp_path / "tokens.csv")],
            "tokens.csv, line 2: expected token,user,uid",
        ),
        FlagCase(
            "a missing client CA",
            [*tls, *key, "--client-ca-file", str(tmp_path / "ca.crt")],
            "--client-ca-file: cannot read",
        ),
        FlagCase(
            "a key that is not a key",
            [*tls, "--tls-private-key-file", str(tmp_path / "tls.crt")],
            "--tls-private-key-file: ",
        ),
    ]
    for case in cases:
        parser = apiserver_main._parser()
        args = parser.parse_args(case.argv)
        with pytest.raises(SystemExit):
            apiserver_main._security(parser, args)
        err = capsys.readouterr().err
        assert case.error in err, (case.name, err)
    parser = apiserver_main._parser()
    tls_config, chain = apiserver_main._security(parser, parser.parse_args([*tls, *key]))
    assert tls_config is not None
    assert tls_config.client_ca_pem is None
    assert chain is None

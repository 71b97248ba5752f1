"""The kpy config's TLS and credential fields (kubeconfig's
certificate-authority, client-certificate, client-key, their -data twins,
token and token-file): what a client ends up with, and the errors a user
meets, naming the file and the field."""

from __future__ import annotations

import argparse
import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kpy import pki
from kpy.cli._client import with_credential_flags
from kpy.client import Client, ConfigError, TLSCredentials, load_config

if TYPE_CHECKING:
    from pathlib import Path

CA = pki.new_ca()
ADMIN = pki.issue_client(CA, "admin", ("system:masters",))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A directory holding ca.crt, admin.crt, admin.key and token."""
    (tmp_path / "ca.crt").write_bytes(CA.cert_pem)
    pki.write(ADMIN, tmp_path / "admin.crt", tmp_path / "admin.key")
    (tmp_path / "token").write_text("s3cret\n")
    return tmp_path


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    ca: bool = False  # the CA was loaded
    cert: bool = False  # the client certificate and key were loaded
    token: str = ""
    error: str = ""  # a part of the ConfigError's message


CASES = [
    Case("no TLS: plaintext, as before", "servers: [127.0.0.1:6443]\n"),
    Case("a CA file, relative to the config", "certificate-authority: ca.crt\n", ca=True),
    Case(
        "CA, client certificate and key files",
        "certificate-authority: ca.crt\nclient-certificate: admin.crt\nclient-key: admin.key\n",
        ca=True,
        cert=True,
    ),
    Case(
        "everything inline as base64",
        f"certificate-authority-data: {b64(CA.cert_pem)}\n"
        f"client-certificate-data: {b64(ADMIN.cert_pem)}\n"
        f"client-key-data: {b64(ADMIN.key_pem)}\n",
        ca=True,
        cert=True,
    ),
    Case("a token", "certificate-authority: ca.crt\ntoken: abc\n", ca=True, token="abc"),
    Case(
        "a token file",
        "certificate-authority: ca.crt\ntoken-file: token\n",
        ca=True,
        token="s3cret",
    ),
    Case(
        "a file and its -data",
        f"certificate-authority: ca.crt\ncertificate-authority-data: {b64(CA.cert_pem)}\n",
        error="give certificate-authority or certificate-authority-data, not both",
    ),
    Case(
        "a missing CA file",
        "certificate-authority: nowhere.crt\n",
        error="certificate-authority: cannot read",
    ),
    Case(
        "a CA that is not PEM",
        "certificate-authority: token\n",
        error="holds no PEM certificate",
    ),
    Case(
        "-data that is not base64",
        "certificate-authority-data: '%%%'\n",
        error="certificate-authority-data: not base64",
    ),
    Case(
        "a key given as the certificate",
        "certificate-authority: ca.crt\nclient-certificate: admin.key\nclient-key: admin.key\n",
        error="holds no PEM certificate",
    ),
    Case(
        "a certificate without its key",
        "certificate-authority: ca.crt\nclient-certificate: admin.crt\n",
        error="client-key: missing",
    ),
    Case(
        "a client certificate without a CA",
        "client-certificate: admin.crt\nclient-key: admin.key\n",
        error="client-certificate needs certificate-authority",
    ),
    Case("a token without a CA", "token: abc\n", error="a token is sent only over TLS"),
    Case(
        "a token and a token file",
        "certificate-authority: ca.crt\ntoken: a\ntoken-file: token\n",
        error="give token or token-file, not both",
    ),
    Case(
        "a token with a space",
        "certificate-authority: ca.crt\ntoken: 'a b'\n",
        error="token: must not contain whitespace",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_tls_fields(case: Case, files: Path) -> None:
    path = files / "config"
    path.write_text(case.text)
    if case.error:
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        message = str(caught.value)
        assert case.error in message, (case.name, message)
        assert str(path) in message or "cannot read" in message, (case.name, message)
        return
    config = load_config(path)
    assert (config.tls is not None) is case.ca, case.name
    if config.tls is not None:
        assert config.tls.ca_pem == CA.cert_pem, case.name
        assert (config.tls.cert_pem == ADMIN.cert_pem) is case.cert, case.name
        assert (config.tls.key_pem == ADMIN.key_pem) is case.cert, case.name
    assert config.token == case.token, case.name
    assert "PRIVATE KEY" not in repr(config), case.name  # secrets stay out of logs
    assert case.token == "" or case.token not in repr(config), case.name


def test_tls_credentials_from_files(files: Path) -> None:
    tls = TLSCredentials.from_files(files / "ca.crt", files / "admin.crt", files / "admin.key")
    assert (tls.ca_pem, tls.cert_pem, tls.key_pem) == (CA.cert_pem, ADMIN.cert_pem, ADMIN.key_pem)
    assert tls.ca_source == str(files / "ca.crt")
    with pytest.raises(ConfigError, match="go together"):
        TLSCredentials.from_files(files / "ca.crt", files / "admin.crt")


async def test_client_with_tls_balances_over_ip_servers(files: Path) -> None:
    """Several IP servers over TLS still share one balancing channel, each
    server's certificate checked against the first host's address."""
    path = files / "config"
    path.write_text("servers: [127.0.0.1:6443, 127.0.0.1:6444]\ncertificate-authority: ca.crt\n")
    async with Client(load_config(path)) as client:
        [(target, options)] = client._targets
        assert target == "ipv4:127.0.0.1:6443,127.0.0.1:6444"
        assert ("grpc.ssl_target_name_override", "127.0.0.1") in options


@dataclass(frozen=True)
class FlagCase:
    name: str
    config: str  # the kpy config file
    flags: dict[str, str]  # argparse dest -> a file name in `files`, or the token
    ca: bytes | None = None  # the CA in effect (None: plaintext)
    cert: bool = False
    token: str = ""
    error: str = ""


OTHER_CA = pki.new_ca("other")

FLAG_CASES = [
    FlagCase("no flags: the config as it is", "certificate-authority: ca.crt\n", {}, CA.cert_pem),
    FlagCase(
        "--certificate-authority turns TLS on", "", {"certificate_authority": "ca.crt"}, CA.cert_pem
    ),
    FlagCase(
        "every flag",
        "",
        {
            "certificate_authority": "ca.crt",
            "client_certificate": "admin.crt",
            "client_key": "admin.key",
            "token": "t0k",
        },
        CA.cert_pem,
        cert=True,
        token="t0k",
    ),
    FlagCase(
        "--certificate-authority replaces the config's, keeping its client certificate",
        "certificate-authority: ca.crt\nclient-certificate: admin.crt\nclient-key: admin.key\n",
        {"certificate_authority": "other.crt"},
        OTHER_CA.cert_pem,
        cert=True,
    ),
    FlagCase(
        "--token over the config's CA, replacing its token",
        "certificate-authority: ca.crt\ntoken: old\n",
        {"token": "new"},
        CA.cert_pem,
        token="new",
    ),
    FlagCase(
        "--client-certificate without --client-key",
        "certificate-authority: ca.crt\n",
        {"client_certificate": "admin.crt"},
        error="--client-certificate and --client-key go together",
    ),
    FlagCase(
        "a client certificate without any CA",
        "",
        {"client_certificate": "admin.crt", "client_key": "admin.key"},
        error="--client-certificate needs --certificate-authority",
    ),
    FlagCase("a token without any CA", "", {"token": "t"}, error="--token is sent only over TLS"),
]


@pytest.mark.parametrize("case", FLAG_CASES, ids=lambda c: c.name)
def test_kpyctl_credential_flags(case: FlagCase, files: Path) -> None:
    (files / "other.crt").write_bytes(OTHER_CA.cert_pem)
    path = files / "config"
    path.write_text(case.config)
    values = {k: v if k == "token" else str(files / v) for k, v in case.flags.items()}
    args = argparse.Namespace(
        **{
            k: values.get(k)
            for k in ("certificate_authority", "client_certificate", "client_key", "token")
        }
    )
    if case.error:
        with pytest.raises(ConfigError) as caught:
            with_credential_flags(load_config(path), args)
        assert case.error in str(caught.value), (case.name, str(caught.value))
        return
    config = with_credential_flags(load_config(path), args)
    assert (config.tls.ca_pem if config.tls else None) == case.ca, case.name
    assert (config.tls is not None and config.tls.cert_pem == ADMIN.cert_pem) is case.cert, (
        case.name
    )
    assert config.token == case.token, case.name

"""kpy.storage.etcd_tls without an etcd: the flags' files as kube-apiserver
reads them (each refusal naming the flag), and what a failed gRPC call's
details tell the user to fix."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kpy import pki
from kpy.storage.etcd_tls import ClientTLS, EtcdTLSError, hint

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)


@dataclass(frozen=True)
class HintCase:
    name: str
    details: str
    says: str  # "" : not about TLS


HINTS = [
    HintCase(
        "no client certificate, or one of another CA (TLS 1.2 alert)",
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:2379: Tls "
        "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:10000412:SSL "
        "routines:OPENSSL_internal:SSLV3_ALERT_BAD_CERTIFICATE: OK",
        "etcd refused this client's certificate: give --etcd-certfile and --etcd-keyfile",
    ),
    HintCase(
        "TLS 1.3's certificate-required alert",
        "Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: "
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "etcd refused this client's certificate",
    ),
    HintCase(
        "etcd's certificate from another CA",
        "Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL "
        "routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer",
        "etcd has a serving certificate this client does not trust: give --etcd-cafile",
    ),
    HintCase(
        "etcd's certificate names another host",
        "Custom verification check failed with error: UNAUTHENTICATED: Hostname "
        "Verification Check failed.",
        "give --etcd-cafile the CA that signed etcd's --cert-file (and a certificate naming",
    ),
    HintCase(
        "a TLS client at a plaintext etcd",
        "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:2379: "
        "Handshake read failed (Socket closed)",
        "etcd does not speak TLS: remove --etcd-cafile, --etcd-certfile and --etcd-keyfile",
    ),
    HintCase(
        "a plaintext client at a TLS etcd",
        "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:2379: "
        "Socket closed",
        "if etcd serves TLS (https:// client URLs), give --etcd-cafile",
    ),
    HintCase(
        "nothing listening: not about TLS",
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:2379: "
        "Failed to connect to remote host: Connection refused",
        "",
    ),
]


@pytest.mark.parametrize("case", HINTS, ids=lambda c: c.name)
def test_hint_names_what_to_fix(case: HintCase) -> None:
    got = hint(case.details)
    if case.says:
        assert case.says in got, f"{case.name}: {got!r}"
    else:
        assert got == "", f"{case.name}: {got!r}"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("etcd-tls")
    ca = pki.new_ca("etcd-ca", now=NOW)
    out = {
        name: root / name for name in ("ca.crt", "ca.key", "c.crt", "c.key", "old.crt", "old.key")
    }
    pki.write(ca, out["ca.crt"], out["ca.key"])
    pki.write(pki.issue_client(ca, "x", now=NOW), out["c.crt"], out["c.key"])
    old = pki.issue_client(ca, "x", days=1, now=NOW - datetime.timedelta(days=3))
    pki.write(old, out["old.crt"], out["old.key"])
    return out


@dataclass(frozen=True)
class LoadCase:
    name: str
    ca: str | None
    cert: str | None
    key: str | None
    error: str  # "" : loads


LOADS = [
    LoadCase("nothing given: plaintext", None, None, None, ""),
    LoadCase("all three", "ca.crt", "c.crt", "c.key", ""),
    LoadCase("the CA alone: no client certificate", "ca.crt", None, None, ""),
    LoadCase(
        "a certificate without its key", "ca.crt", "c.crt", None,
        "--etcd-certfile and --etcd-keyfile go together: give both",
    ),
    LoadCase(
        "a key without its certificate", "ca.crt", None, "c.key",
        "--etcd-certfile and --etcd-keyfile go together",
    ),
    LoadCase("a missing CA", "nope.crt", "c.crt", "c.key", "--etcd-cafile {nope}: cannot read"),
    LoadCase("a key as the CA", "c.key", "c.crt", "c.key", "--etcd-cafile {ckey}: holds no PEM"),
    LoadCase(
        "a certificate as the key", "ca.crt", "c.crt", "c.crt",
        "--etcd-keyfile {ccrt}: holds no PEM private key",
    ),
    LoadCase(
        "a key of another certificate", "ca.crt", "c.crt", "old.key",
        "--etcd-keyfile {oldkey} is not the key of --etcd-certfile {ccrt} (KEY_VALUES_MISMATCH)",
    ),
    LoadCase(
        "an expired client certificate", "ca.crt", "old.crt", "old.key",
        "--etcd-certfile {old} expired at 2026-12-05 12:00 UTC; etcd would refuse it",
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", LOADS, ids=lambda c: c.name)
def test_load_reads_the_flags_files_or_names_the_flag(
    case: LoadCase, files: dict[str, Path]
) -> None:
    def path(name: str | None) -> Path | None:
        if name is None:
            return None
        return files.get(name, files["ca.crt"].parent / name)

    names = {
        "nope": "nope.crt",
        "ckey": "c.key",
        "ccrt": "c.crt",
        "old": "old.crt",
        "oldkey": "old.key",
    }
    paths = {field: str(path(name)) for field, name in names.items()}
    if case.error:
        with pytest.raises(EtcdTLSError) as refused:
            ClientTLS.load(path(case.ca), path(case.cert), path(case.key), now=NOW)
        assert case.error.format(**paths) in str(refused.value), case.name
        return
    tls = ClientTLS.load(path(case.ca), path(case.cert), path(case.key), now=NOW)
    if case.ca is None:
        assert tls is None, case.name
        return
    assert tls is not None, case.name
    assert (tls.cert_pem is None) is (case.cert is None), case.name
    assert tls.flags()[:2] == ("--etcd-cafile", str(files["ca.crt"])), case.name

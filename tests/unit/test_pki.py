"""kpy.pki: the cluster CA and the certificates it signs, read back as a
person checking them (or `kpy status`) would: subject, issuer, names,
validity, usages, and the files' modes."""

from __future__ import annotations

import datetime
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from kpy import pki

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
CA = pki.new_ca("test-ca", now=NOW)


@dataclass(frozen=True)
class IssueCase:
    name: str
    issue: Callable[[], pki.CertKey]
    subject: str
    cn: str
    organizations: tuple[str, ...] = ()
    is_ca: bool = False
    usage: x509.ObjectIdentifier | None = None
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    days: int = pki.LEAF_DAYS
    issuer: str = "CN=test-ca"
    at: datetime.datetime = NOW  # when it was issued


ISSUE_CASES = [
    IssueCase("the CA", lambda: CA, "CN=test-ca", "test-ca", is_ca=True, days=pki.CA_DAYS),
    IssueCase(
        "a server certificate names localhost and 127.0.0.1",
        lambda: pki.issue_server(CA, now=NOW),
        "CN=kpy-apiserver",
        "kpy-apiserver",
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        dns=("localhost",),
        ips=("127.0.0.1",),
    ),
    IssueCase(
        "a server certificate with more hosts, each once",
        lambda: pki.issue_server(
            CA, "api", hosts=("10.0.0.7", "api.example", "127.0.0.1", "::1"), now=NOW
        ),
        "CN=api",
        "api",
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        dns=("localhost", "api.example"),
        ips=("127.0.0.1", "10.0.0.7", "::1"),
    ),
    IssueCase(
        "a client certificate: CN the user, O the groups",
        lambda: pki.issue_client(CA, "admin", ("system:masters", "ops"), now=NOW),
        "CN=admin,O=ops,O=system:masters",
        "admin",
        organizations=("system:masters", "ops"),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    ),
    IssueCase(
        "a client certificate without groups",
        lambda: pki.issue_client(CA, "jane", now=NOW),
        "CN=jane",
        "jane",
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    ),
    IssueCase(
        "a leaf never outlives its CA",
        lambda: pki.issue_client(CA, "late", now=NOW + datetime.timedelta(days=pki.CA_DAYS - 10)),
        "CN=late",
        "late",
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        days=-1,  # ends with the CA instead
        at=NOW + datetime.timedelta(days=pki.CA_DAYS - 10),
    ),
]


@pytest.mark.parametrize("case", ISSUE_CASES, ids=lambda c: c.name)
def test_issued_certificates(case: IssueCase) -> None:
    pair = case.issue()
    info = pki.describe(pair.cert_pem)
    assert info.subject == case.subject, case.name
    assert info.issuer == case.issuer, case.name
    assert info.common_name == case.cn, case.name
    assert info.organizations == case.organizations, case.name
    assert info.is_ca is case.is_ca, case.name
    assert info.dns_names == case.dns, case.name
    assert info.ip_addresses == case.ips, case.name
    assert case.at - datetime.timedelta(minutes=5) < info.not_before <= case.at, case.name
    ca_end = pki.describe(CA.cert_pem).not_after
    if case.days > 0:
        assert info.not_after == NOW + datetime.timedelta(days=case.days), case.name
    else:
        assert info.not_after == ca_end, case.name
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey), case.name
    if case.usage is not None:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usages) == [case.usage], case.name
        # signed by the CA
        ca_cert = x509.load_pem_x509_certificate(CA.cert_pem)
        cert.verify_directly_issued_by(ca_cert)
    assert b"PRIVATE KEY" in pair.key_pem, case.name


@dataclass(frozen=True)
class ExpiryCase:
    name: str
    at: datetime.datetime
    expired: bool


EXPIRY_CASES = [
    ExpiryCase("just issued", NOW, False),
    ExpiryCase("a day before the end", NOW + datetime.timedelta(days=364), False),
    ExpiryCase("at the end", NOW + datetime.timedelta(days=365), True),
    ExpiryCase("long after", NOW + datetime.timedelta(days=800), True),
]


@pytest.mark.parametrize("case", EXPIRY_CASES, ids=lambda c: c.name)
def test_expiry_is_read_from_the_certificate(case: ExpiryCase) -> None:
    info = pki.describe(pki.issue_client(CA, "u", now=NOW).cert_pem)
    assert info.expired(case.at) is case.expired, case.name
    assert (info.remaining(case.at) <= datetime.timedelta(0)) is case.expired, case.name


@dataclass(frozen=True)
class ErrorCase:
    name: str
    call: Callable[[], object]
    message: str


ERROR_CASES = [
    ErrorCase("not a certificate", lambda: pki.describe(b"junk", what="ca.crt"), "ca.crt is not"),
    ErrorCase("a client without a user", lambda: pki.issue_client(CA, ""), "needs a user name"),
    ErrorCase(
        "a host with a space", lambda: pki.issue_server(CA, hosts=("a b",)), "'a b' is neither"
    ),
    ErrorCase("a CA without a name", lambda: pki.new_ca(""), "needs a common name"),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
def test_errors_say_what_is_wrong(case: ErrorCase) -> None:
    with pytest.raises(pki.PKIError) as caught:
        case.call()
    assert case.message in str(caught.value), case.name


def test_write_keeps_the_key_private_and_load_reads_it_back(tmp_path: Path) -> None:
    pair = pki.issue_client(CA, "admin", ("system:masters",))
    cert, key = tmp_path / "pki" / "admin.crt", tmp_path / "pki" / "admin.key"
    key.parent.mkdir()
    key.write_text("old, world-readable")
    key.chmod(0o644)
    pki.write(pair, cert, key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert.stat().st_mode) == 0o644
    assert pki.load(cert, key) == pair
    assert sorted(p.name for p in key.parent.iterdir()) == ["admin.crt", "admin.key"]


def test_load_names_the_file_it_cannot_use(tmp_path: Path) -> None:
    cert = tmp_path / "c.crt"
    cert.write_bytes(CA.cert_pem)
    with pytest.raises(pki.PKIError, match=r"cannot read .*missing\.key"):
        pki.load(cert, tmp_path / "missing.key")
    (tmp_path / "bad.key").write_text("not pem")
    with pytest.raises(pki.PKIError, match=r"bad\.key holds no PEM private key"):
        pki.load(cert, tmp_path / "bad.key")


def test_a_server_certificate_with_client_auth_may_also_dial() -> None:
    """etcd's server and peer certificates, as kubeadm's: members and the
    health check present them as client certificates too."""
    both = pki.issue_server(CA, "kpy-etcd", client_auth=True, now=NOW)
    usages = (
        x509.load_pem_x509_certificate(both.cert_pem)
        .extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        .value
    )
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert pki.describe(both.cert_pem).dns_names == ("localhost",)

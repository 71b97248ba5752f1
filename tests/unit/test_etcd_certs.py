"""kpy.cluster.etcd_certs: etcd's own CA and certificates in a local
cluster, as kubeadm lays them out; kept across `kpy up`s, never renewed
by surprise, renewed on request with etcd's CA (not the cluster's)."""

from __future__ import annotations

import datetime
import stat
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from kpy import pki
from kpy.cluster import certs, etcd_certs

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH

# (stem, CN, extended key usages)
LAYOUT = [
    ("server", "kpy-etcd", [SERVER, CLIENT]),
    ("peer", "kpy-etcd-peer", [SERVER, CLIENT]),
    ("apiserver-etcd-client", "kube-apiserver-etcd-client", [CLIENT]),
]


def usages(path: Path) -> list[x509.ObjectIdentifier]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_ensure_makes_etcds_own_ca_and_what_it_signs(tmp_path: Path) -> None:
    files = etcd_certs.ensure(tmp_path, peers=True, now=NOW)
    assert files.root == tmp_path.absolute() / "pki" / "etcd"
    assert stat.S_IMODE(files.root.stat().st_mode) == 0o700
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    assert pki.describe(files.ca_file.read_bytes()).is_ca
    for stem, cn, want in LAYOUT:
        cert_path, key_path = files.pair(stem)
        info = pki.describe(cert_path.read_bytes())
        assert (info.common_name, info.issuer) == (cn, "CN=etcd-ca"), stem
        assert usages(cert_path) == want, stem
        x509.load_pem_x509_certificate(cert_path.read_bytes()).verify_directly_issued_by(ca)
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600, stem
    assert files.apiserver_flags() == (
        "--etcd-cafile", str(files.ca_file),
        "--etcd-certfile", str(files.pair("apiserver-etcd-client")[0]),
        "--etcd-keyfile", str(files.pair("apiserver-etcd-client")[1]),
    )  # fmt: skip


def test_one_member_needs_no_peer_certificate(tmp_path: Path) -> None:
    files = etcd_certs.ensure(tmp_path, peers=False, now=NOW)
    assert not files.pair("peer")[0].exists()
    assert files.pair("server")[0].exists()


def test_files_are_kept_and_a_new_ca_remakes_every_leaf(tmp_path: Path) -> None:
    files = etcd_certs.ensure(tmp_path, peers=True, now=NOW)
    before = {stem: files.pair(stem)[0].read_bytes() for stem, _, _ in LAYOUT}
    etcd_certs.ensure(tmp_path, peers=True, now=NOW)
    assert {stem: files.pair(stem)[0].read_bytes() for stem, _, _ in LAYOUT} == before

    for path in files.pair("ca"):
        path.unlink()
    etcd_certs.ensure(tmp_path, peers=True, now=NOW)
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    for stem, _, _ in LAYOUT:
        cert = x509.load_pem_x509_certificate(files.pair(stem)[0].read_bytes())
        cert.verify_directly_issued_by(ca)  # the new CA's, not the old one's


def test_an_expired_certificate_stops_up_naming_the_file_and_renew_fixes_it(
    tmp_path: Path,
) -> None:
    files = etcd_certs.ensure(tmp_path, peers=False, now=NOW)
    later = NOW + datetime.timedelta(days=pki.LEAF_DAYS + 1)
    with pytest.raises(etcd_certs.EtcdCertError) as expired:
        etcd_certs.ensure(tmp_path, peers=False, now=later)
    assert f"{files.pair('server')[0]} expired at " in str(expired.value)
    assert "kpy renew-certs" in str(expired.value)

    renewed = etcd_certs.renew(tmp_path, now=later)
    assert renewed == [files.pair("server")[0], files.pair("apiserver-etcd-client")[0]]
    etcd_certs.ensure(tmp_path, peers=False, now=later)  # usable again
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    for cert_path in renewed:
        x509.load_pem_x509_certificate(cert_path.read_bytes()).verify_directly_issued_by(ca)
    assert usages(files.pair("server")[0]) == [SERVER, CLIENT], "same usages after renewal"


def test_kpy_renew_certs_renews_etcds_with_etcds_own_ca(tmp_path: Path) -> None:
    """`kpy renew-certs` (kpy.cluster.certs.renew) walks every pki/
    certificate; etcd's must stay signed by etcd's CA, not the cluster's."""
    cluster = certs.ClusterPKI.open(tmp_path, now=NOW)
    cluster.client(certs.ADMIN, now=NOW)
    files = etcd_certs.ensure(tmp_path, peers=True, now=NOW)
    etcd_ca_before = files.ca_file.read_bytes()
    later = NOW + datetime.timedelta(days=200)

    renewed = certs.renew(tmp_path, now=later)

    assert files.pair("server")[0] in renewed
    assert files.ca_file not in renewed
    assert files.ca_file.read_bytes() == etcd_ca_before, "etcd's CA is kept"
    etcd_ca = x509.load_pem_x509_certificate(etcd_ca_before)
    for stem, _, want in LAYOUT:
        cert = x509.load_pem_x509_certificate(files.pair(stem)[0].read_bytes())
        cert.verify_directly_issued_by(etcd_ca)
        assert usages(files.pair(stem)[0]) == want, stem
        assert pki.describe(files.pair(stem)[0].read_bytes()).not_before > NOW, stem

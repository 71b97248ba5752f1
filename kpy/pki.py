"""A cluster's public key infrastructure: its CA and the certificates it signs.

Built on `cryptography`, as `kubeadm`'s certs phase: one self-signed CA
(ECDSA P-256, 10 years) signs server certificates (serverAuth; SANs DNS
`localhost` and IP `127.0.0.1` plus any host asked for) and client
certificates (clientAuth; CN is the user name, each O a group, as the
Kubernetes x509 authenticator reads them), both valid 1 year.

Contracts:
- Every function takes the time as `now` (default: the current UTC time),
  so tests need no sleeping and no patching; a certificate is valid from a
  minute before `now` (a clock slightly behind still accepts it).
- `CertKey` holds PEM bytes only; nothing here keeps a file open.
- `write` writes the private key with mode 0600 (created so, never
  world-readable even for an instant) and the certificate with 0644;
  it replaces both files whole.
- `describe` reads any PEM certificate (not only kpy's), for `kpy status`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_DAYS",
    "LEAF_DAYS",
    "CertKey",
    "CertificateInfo",
    "PKIError",
    "describe",
    "issue_client",
    "issue_server",
    "load",
    "new_ca",
    "write",
]

CA_DAYS: Final = 3650
LEAF_DAYS: Final = 365
_BACKDATE: Final = datetime.timedelta(minutes=1)
_DEFAULT_SANS: Final = ("localhost", "127.0.0.1")


class PKIError(ValueError):
    """A certificate or key that cannot be read or used; the message names
    the file (when there is one) and what to do."""


@dataclass(frozen=True, slots=True)
class CertKey:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What a person checking a certificate wants to see."""

    subject: str  # RFC 4514, as openssl prints it: "CN=admin,O=system:masters"
    issuer: str
    common_name: str
    organizations: tuple[str, ...]
    not_before: datetime.datetime  # aware, UTC
    not_after: datetime.datetime  # aware, UTC
    is_ca: bool
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]

    def expired(self, now: datetime.datetime | None = None) -> bool:
        return (now or _utcnow()) >= self.not_after

    def remaining(self, now: datetime.datetime | None = None) -> datetime.timedelta:
        """Time left before it expires (negative once expired)."""
        return self.not_after - (now or _utcnow())


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def new_ca(
    common_name: str = "kpy-ca",
    *,
    days: int = CA_DAYS,
    now: datetime.datetime | None = None,
) -> CertKey:
    """A new self-signed CA that may sign leaf certificates (not other CAs)."""
    if not common_name:
        raise PKIError("a CA needs a common name")
    start = (now or _utcnow()) - _BACKDATE
    key = _new_key()
    name = _name(common_name)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _BACKDATE + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertKey(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _ca_parts(ca: CertKey) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = _load_cert(ca.cert_pem, "the CA certificate")
    key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError("the CA key is not an ECDSA key; make a new CA with kpy.pki.new_ca")
    return cert, key


def _leaf(
    ca: CertKey,
    subject: x509.Name,
    usages: list[x509.ObjectIdentifier],
    sans: list[x509.GeneralName],
    days: int,
    now: datetime.datetime | None,
) -> CertKey:
    ca_cert, ca_key = _ca_parts(ca)
    start = (now or _utcnow()) - _BACKDATE
    end = min(start + _BACKDATE + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    key = _new_key()
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return CertKey(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_server(
    ca: CertKey,
    common_name: str = "kpy-apiserver",
    *,
    hosts: tuple[str, ...] = (),
    client_auth: bool = False,
    days: int = LEAF_DAYS,
    now: datetime.datetime | None = None,
) -> CertKey:
    """A serving certificate signed by `ca` for `localhost`, `127.0.0.1` and
    `hosts` (each an IP address or a DNS name). Never outlives the CA.
    `client_auth` also lets its holder present it as a client certificate
    (clientAuth): etcd's server and peer certificates are both, as
    kubeadm's, since members dial each other with them."""
    sans: list[x509.GeneralName] = []
    for host in dict.fromkeys((*_DEFAULT_SANS, *hosts)):  # in order, once each
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not host or any(c.isspace() for c in host):
                raise PKIError(f"{host!r} is neither an IP address nor a DNS name") from None
            sans.append(x509.DNSName(host))
    usages = [ExtendedKeyUsageOID.SERVER_AUTH]
    if client_auth:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    return _leaf(ca, _name(common_name), usages, sans, days, now)


def issue_client(
    ca: CertKey,
    user: str,
    groups: tuple[str, ...] = (),
    *,
    days: int = LEAF_DAYS,
    now: datetime.datetime | None = None,
) -> CertKey:
    """A client certificate signed by `ca`: CN `user`, one O per group (how
    the API server's x509 authenticator reads a user). Never outlives the CA."""
    if not user:
        raise PKIError("a client certificate needs a user name (its CN)")
    subject = _name(user, groups)
    return _leaf(ca, subject, [ExtendedKeyUsageOID.CLIENT_AUTH], [], days, now)


def _load_cert(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise PKIError(f"{what} is not a PEM certificate ({e})") from None


def describe(cert_pem: bytes, *, what: str = "the certificate") -> CertificateInfo:
    """The subject, issuer, validity and names of a PEM certificate (the
    first one of a chain). PKIError, naming `what`, when it is not one."""
    cert = _load_cert(cert_pem, what)
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(alt.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in alt.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=str(names[0].value) if names else "",
        organizations=tuple(str(o.value) for o in orgs),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        is_ca=is_ca,
        dns_names=dns,
        ip_addresses=ips,
    )


def write(pair: CertKey, cert_path: str | Path, key_path: str | Path) -> None:
    """Writes the certificate (0644) and the private key (0600), creating
    their directories (0700) as needed and replacing any older files."""
    for path, data, mode in (
        (Path(key_path), pair.key_pem, 0o600),
        (Path(cert_path), pair.cert_pem, 0o644),
    ):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)  # the umask may have taken bits away; never added any
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(temporary, path)


def load(cert_path: str | Path, key_path: str | Path) -> CertKey:
    """A certificate and key from their files; PKIError naming the file
    that is missing or not PEM."""
    parts = []
    for path, marker in ((Path(cert_path), b"CERTIFICATE"), (Path(key_path), b"PRIVATE KEY")):
        try:
            data = path.read_bytes()
        except OSError as e:
            raise PKIError(f"cannot read {path}: {e.strerror}") from None
        if b"-----BEGIN" not in data or marker not in data:
            raise PKIError(f"{path} holds no PEM {marker.decode().lower()}")
        parts.append(data)
    return CertKey(parts[0], parts[1])

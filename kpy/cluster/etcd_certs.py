"""etcd's own PKI in a local cluster, as kubeadm makes /etc/kubernetes/pki/etcd.

etcd gets a CA of its own, apart from the cluster CA (kpy.cluster.certs):
a certificate the cluster CA signs (an agent's, an admin's) is then worth
nothing to etcd, which only the API servers may reach. Under the cluster
directory:

    pki/etcd/ca.crt ca.key              etcd's CA (10 years)
    pki/etcd/server.crt .key            every member's serving certificate (127.0.0.1,
                                        localhost); also a client certificate, as
                                        kubeadm's: etcd's health check presents it
    pki/etcd/peer.crt .key              members to each other (several members only)
    pki/etcd/apiserver-etcd-client.crt .key
                                        the API servers' client certificate
                                        (CN kube-apiserver-etcd-client)

etcd serves clients (and peers) TLS only, with `--client-cert-auth` (and
`--peer-client-cert-auth`) on this CA; the API servers get
`--etcd-cafile`, `--etcd-certfile` and `--etcd-keyfile` (`apiserver_flags`).

Contracts, as kpy.cluster.certs's:
- A file that exists is kept, never remade (`kpy up` after `kpy down`
  reuses them); only a new etcd CA (the old one was removed) makes every
  leaf anew, since the old ones no longer chain to it.
- Nothing is renewed by surprise: an expired certificate stops `kpy up`
  (EtcdCertError naming the file and what to do); `renew()` issues the
  leaves again with this CA, same names and usages.
- Private keys are 0600 (kpy.pki.write), `pki/etcd/` 0700.

`for_machines` makes the same kind of files for deploy/'s three machines
(deploy/etcd-certs.py runs it), each member with certificates naming its
own address.
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from kpy import pki
from kpy.storage import ClientTLS, ServingTLS

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

ETCD_DIR: Final = "pki/etcd"
CLIENT_USER: Final = "kube-apiserver-etcd-client"  # kubeadm's CN for it
_CN = {"server": "kpy-etcd", "peer": "kpy-etcd-peer"}


class EtcdCertError(RuntimeError):
    """A certificate or key of etcd's PKI that cannot be used; the message
    names the file and what to do."""


@dataclass(frozen=True, slots=True)
class EtcdPKI:
    """The files of etcd's PKI (absolute paths), made by `ensure`."""

    root: Path

    def pair(self, stem: str) -> tuple[Path, Path]:
        return self.root / f"{stem}.crt", self.root / f"{stem}.key"

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.crt"

    def serving(self) -> ServingTLS:
        """etcd's client side: its serving certificate, and this CA for clients."""
        return ServingTLS(*self.pair("server"), self.ca_file)

    def peering(self) -> ServingTLS:
        """etcd's peer side: the peer certificate, and this CA for peers."""
        return ServingTLS(*self.pair("peer"), self.ca_file)

    def apiserver_flags(self) -> tuple[str, ...]:
        """kpy-apiserver's --etcd-cafile, --etcd-certfile, --etcd-keyfile."""
        cert, key = self.pair("apiserver-etcd-client")
        return ("--etcd-cafile", str(self.ca_file), "--etcd-certfile", str(cert),
                "--etcd-keyfile", str(key))  # fmt: skip

    def client_tls(self) -> ClientTLS:
        """What the API servers reach etcd with, for kpy's own checks."""
        tls = ClientTLS.load(self.ca_file, *self.pair("apiserver-etcd-client"))
        assert tls is not None
        return tls


def _now(now: datetime.datetime | None) -> datetime.datetime:
    return now or datetime.datetime.now(datetime.UTC)


def _issuers(
    ca: pki.CertKey, now: datetime.datetime | None
) -> dict[str, Callable[[], pki.CertKey]]:
    """How each leaf is made (and renewed): serving and peer certificates
    are client certificates too, since members and the health check dial
    with them (as kubeadm's)."""
    return {
        "server": lambda: pki.issue_server(ca, _CN["server"], client_auth=True, now=now),
        "peer": lambda: pki.issue_server(ca, _CN["peer"], client_auth=True, now=now),
        "apiserver-etcd-client": lambda: pki.issue_client(ca, CLIENT_USER, now=now),
    }


def ensure(directory: Path, *, peers: bool, now: datetime.datetime | None = None) -> EtcdPKI:
    """etcd's PKI under `directory` (see the module docstring), made where
    missing: the peer certificate only with `peers` (several members)."""
    files = EtcdPKI(directory.absolute() / ETCD_DIR)
    files.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca, fresh = _ca(files, now)
    issuers = _issuers(ca, now)
    for stem in ("server", "peer", "apiserver-etcd-client"):
        if stem == "peer" and not peers:
            continue
        cert, key = files.pair(stem)
        if fresh or not (cert.exists() and key.exists()):
            pki.write(issuers[stem](), cert, key)
        else:
            _check_usable(cert, now)
    return files


def _ca(files: EtcdPKI, now: datetime.datetime | None) -> tuple[pki.CertKey, bool]:
    cert, key = files.pair("ca")
    if not cert.exists() and not key.exists():
        ca = pki.new_ca("etcd-ca", now=now)
        pki.write(ca, cert, key)
        return ca, True
    try:
        ca = pki.load(cert, key)
    except pki.PKIError as e:
        raise EtcdCertError(
            f"{e}; remove {files.root} and run `kpy up` again to make etcd's CA and "
            "certificates anew"
        ) from None
    _check_usable(cert, now, is_ca=True)
    return ca, False


def _check_usable(cert: Path, now: datetime.datetime | None, *, is_ca: bool = False) -> None:
    try:
        info = pki.describe(cert.read_bytes(), what=str(cert))
    except (OSError, pki.PKIError) as e:
        raise EtcdCertError(f"cannot use {cert}: {e}; remove it and run `kpy up` again") from None
    if not info.expired(_now(now)):
        return
    when = f"{info.not_after:%Y-%m-%d %H:%M} UTC"
    if is_ca:
        raise EtcdCertError(
            f"etcd's CA {cert} expired at {when}; a CA is not renewed in place: remove "
            f"{cert.parent} and run `kpy up` again to make etcd's CA and certificates anew"
        )
    raise EtcdCertError(
        f"{cert} expired at {when}; renew it with `kpy renew-certs` (or remove it and its "
        "key) and run `kpy up` again"
    )


def renew(directory: Path, *, now: datetime.datetime | None = None) -> list[Path]:
    """Issues every leaf of etcd's PKI under `directory` again with etcd's
    own CA (new keys, same names and usages, `pki.LEAF_DAYS`); returns the
    certificates renewed (none without an etcd CA: a cluster made before
    etcd had one, or with `--insecure`). EtcdCertError when the CA cannot
    be read. etcd and the API servers read them when they start next."""
    files = EtcdPKI(directory.absolute() / ETCD_DIR)
    if not any(path.exists() for path in files.pair("ca")):
        return []
    try:
        ca = pki.load(*files.pair("ca"))
    except pki.PKIError as e:
        raise EtcdCertError(f"{e}; there is no etcd CA to renew with: `kpy up` makes one") from None
    renewed = []
    for stem, issue in _issuers(ca, now).items():
        cert, key = files.pair(stem)
        if cert.exists():
            pki.write(issue(), cert, key)
            renewed.append(cert)
    return renewed


@dataclass(frozen=True, slots=True)
class Machine:
    """One etcd member of a multi-machine layout: its member name and the
    address (IP or DNS name) it serves on."""

    name: str
    address: str


def for_machines(
    out: Path, machines: Sequence[Machine], *, now: datetime.datetime | None = None
) -> list[Path]:
    """The files of deploy/'s layout (deploy/README.md) under `out`, made
    where missing (an existing CA is reused, so a member can be added
    later): `ca.crt ca.key`; per member `<name>/server.crt .key` and
    `<name>/peer.crt .key`, naming its address and name besides localhost
    and 127.0.0.1 (serverAuth and clientAuth, as kubeadm's); and
    `apiserver-etcd-client.crt .key`. Returns the certificates written."""
    if not machines:
        raise EtcdCertError("name at least one etcd member (NAME=ADDRESS)")
    files = EtcdPKI(out.absolute())
    files.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca, fresh = _ca(files, now)
    written = [files.ca_file] if fresh else []
    wanted: list[tuple[str, Callable[[], pki.CertKey]]] = [
        ("apiserver-etcd-client", lambda: pki.issue_client(ca, CLIENT_USER, now=now))
    ]
    for m in machines:
        for kind, cn in (("server", m.name), ("peer", f"{m.name}-peer")):
            wanted.append((f"{m.name}/{kind}", functools.partial(
                pki.issue_server, ca, cn, hosts=(m.address, m.name), client_auth=True, now=now
            )))  # fmt: skip
    for stem, make in wanted:
        cert, key = files.pair(stem)
        if fresh or not (cert.exists() and key.exists()):
            cert.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            pki.write(make(), cert, key)
            written.append(cert)
    return written

"""The PKI of a local cluster: the CA, every certificate `kpy up` gives its
processes, and the client config each of them calls the API with.

Under the cluster directory, as kubeadm lays out /etc/kubernetes/pki:

    pki/ca.crt ca.key                      the cluster CA (10 years)
    pki/apiserver.crt .key                 the API server's serving certificate
    pki/apiserver-kubelet-client.crt .key  the API server towards the agents
    pki/admin.crt .key                     kubernetes-admin (system:masters): <dir>/config
    pki/controller-manager, scheduler, kube-proxy, dns, ingress, simulated-nodes
                                           each component's client certificate
    pki/scheduler-serving.crt .key         the scheduler's Explain service
    pki/nodes/<node>.crt .key              system:node:<node> (system:nodes)
    pki/nodes/<node>-serving.crt .key      the agent's serving certificate
    pki/sa.key sa.pub                      the ServiceAccount token signing pair
    kubeconfigs/<component>.config         a kpy client config per component

Contracts:
- A file that exists is kept, never remade: `kpy up` after `kpy down`
  reuses them, so configs copied elsewhere keep working. Only a new CA (the
  old one was removed) makes every leaf certificate anew, since the old
  ones no longer chain to it.
- Nothing is renewed by surprise: a certificate already expired stops
  `kpy up` (`ExpiredError`, naming the file and `kpy renew-certs`); one
  expiring within `WARN_WITHIN` is reported by `expiring()` and started
  with. `renew()` (the `kpy renew-certs` command) issues every leaf
  certificate again for `LEAF_DAYS`, same subject and names, same CA.
- Private keys are 0600 (kpy.pki.write); `pki/` and `pki/nodes/` are 0700.
- Every function takes `now` (default: the current UTC time) so tests need
  no sleeping.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from kpy import pki
from kpy.cluster import etcd_certs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

PKI_DIR: Final = "pki"
KUBECONFIG_DIR: Final = "kubeconfigs"
WARN_WITHIN: Final = datetime.timedelta(days=30)
# The DNS names pods use for the API server (Kubernetes' `kubernetes` Service).
_API_NAMES: Final = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


class CertError(RuntimeError):
    """A certificate or key of the cluster that cannot be used; the message
    names the file and what to do."""


class ExpiredError(CertError):
    """A certificate of the cluster has expired."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a client certificate names: `stem` is its file name under pki/
    (and its config's under kubeconfigs/), `user` its CN, `groups` its O."""

    stem: str
    user: str
    groups: tuple[str, ...] = ()


ADMIN: Final = Identity("admin", "kubernetes-admin", ("system:masters",))
APISERVER_KUBELET_CLIENT: Final = Identity(
    "apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)
)
CONTROLLER_MANAGER: Final = Identity("controller-manager", "system:kube-controller-manager")
SCHEDULER: Final = Identity("scheduler", "system:kube-scheduler")
KUBE_PROXY: Final = Identity("kube-proxy", "system:kube-proxy")
# kpy-dns is bound (kpy.auth.bootstrap) as the ServiceAccount kube-system/kube-dns,
# as CoreDNS is in Kubernetes: its certificate names that account's user.
DNS: Final = Identity(
    "dns",
    "system:serviceaccount:kube-system:kube-dns",
    ("system:serviceaccounts", "system:serviceaccounts:kube-system"),
)
INGRESS: Final = Identity("ingress", "system:kpy-ingress")
# One agent process for many simulated nodes: see kpy.auth.bootstrap.
SIMULATED_NODES: Final = Identity("simulated-nodes", "system:kpy-simulated-nodes")


def node_identity(node: str) -> Identity:
    """A node's client identity, which the node authorizer reads."""
    return Identity(f"nodes/{node}", f"system:node:{node}", ("system:nodes",))


def _now(now: datetime.datetime | None) -> datetime.datetime:
    return now or datetime.datetime.now(datetime.UTC)


class ClusterPKI:
    """The PKI of the cluster in `directory` (see the module docstring):
    `open()` loads or makes the CA; the other methods load or make what
    they name and return file paths (absolute)."""

    def __init__(self, directory: Path, ca: pki.CertKey, *, fresh_ca: bool) -> None:
        self.directory = directory.absolute()
        self.root = self.directory / PKI_DIR
        self.ca = ca
        self.fresh_ca = fresh_ca  # every leaf is made anew: the old ones chain to another CA
        self._issued: set[str] = set()  # the stems issued by this object (once each)

    @classmethod
    def open(cls, directory: Path, *, now: datetime.datetime | None = None) -> ClusterPKI:
        """The cluster's CA, made if `pki/ca.crt` is missing; ExpiredError if
        it expired, CertError if its files are unreadable."""
        root = directory.absolute() / PKI_DIR
        cert, key = root / "ca.crt", root / "ca.key"
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not cert.exists() and not key.exists():
            ca = pki.new_ca("kpy-ca", now=now)
            pki.write(ca, cert, key)
            return cls(directory, ca, fresh_ca=True)
        try:
            ca = pki.load(cert, key)
            info = pki.describe(ca.cert_pem, what=str(cert))
        except pki.PKIError as e:
            raise CertError(
                f"{e}; remove {root} to make a new CA and certificates (every config "
                "holding the old CA then stops working)"
            ) from None
        if info.expired(_now(now)):
            raise ExpiredError(
                f"the cluster CA {cert} expired at {info.not_after:%Y-%m-%d %H:%M} UTC; "
                f"a CA is not renewed in place: remove {root} and run `kpy up` again to "
                "make a new CA and certificates (copies of the old config stop working)"
            )
        return cls(directory, ca, fresh_ca=False)

    def ca_file(self) -> Path:
        return self.root / "ca.crt"

    def _paths(self, stem: str) -> tuple[Path, Path]:
        return self.root / f"{stem}.crt", self.root / f"{stem}.key"

    def _ensure(
        self,
        stem: str,
        issue: Callable[[], pki.CertKey],
        now: datetime.datetime | None,
        hosts: tuple[str, ...] = (),
    ) -> tuple[Path, Path]:
        """The pair `stem`, issued if missing (or the CA is new), or if it is
        a serving certificate that does not name every one of `hosts`."""
        cert, key = self._paths(stem)
        stale = self.fresh_ca and stem not in self._issued
        if stale or not (cert.exists() and key.exists()) or self._lacks(cert, hosts):
            if "/" in stem:
                cert.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            pki.write(issue(), cert, key)
            self._issued.add(stem)
            return cert, key
        try:
            info = pki.describe(cert.read_bytes(), what=str(cert))
        except (OSError, pki.PKIError) as e:
            raise CertError(f"cannot use {cert}: {e}; remove it and run `kpy up` again") from None
        if info.expired(_now(now)):
            raise ExpiredError(
                f"{cert} expired at {info.not_after:%Y-%m-%d %H:%M} UTC; renew the "
                f"certificates with `kpy renew-certs --dir {self.directory}` (or remove "
                f"{cert} and {key}) and run `kpy up` again"
            )
        return cert, key

    def _lacks(self, cert: Path, hosts: tuple[str, ...]) -> bool:
        """Whether the certificate in `cert` misses a name of `hosts` (say,
        the `kubernetes` Service's IP in the Service range of a new `kpy
        up`): it is issued again, same CA, as a new name is no renewal."""
        if not hosts:
            return False
        try:
            info = pki.describe(cert.read_bytes(), what=str(cert))
        except (OSError, pki.PKIError):
            return False  # reported by _ensure
        return not set(hosts) <= {*info.dns_names, *info.ip_addresses}

    def client(
        self, identity: Identity, *, now: datetime.datetime | None = None
    ) -> tuple[Path, Path]:
        """The client certificate and key of `identity`."""
        return self._ensure(
            identity.stem,
            lambda: pki.issue_client(self.ca, identity.user, identity.groups, now=now),
            now,
        )

    def server(
        self,
        stem: str,
        common_name: str,
        hosts: tuple[str, ...] = (),
        *,
        now: datetime.datetime | None = None,
    ) -> tuple[Path, Path]:
        """A serving certificate for 127.0.0.1, localhost and `hosts`."""
        return self._ensure(
            stem, lambda: pki.issue_server(self.ca, common_name, hosts=hosts, now=now), now, hosts
        )

    def apiserver(
        self,
        service_ip: str = "",
        *,
        hosts: tuple[str, ...] = (),
        now: datetime.datetime | None = None,
    ) -> tuple[Path, Path]:
        """The API server's serving certificate: 127.0.0.1, localhost, the
        `kubernetes.default.svc...` names, `service_ip`, the `kubernetes`
        Service's address that pods dial, and `hosts` (the names and
        addresses of the API servers' machines, deploy/make-certs.py)."""
        names = (*_API_NAMES, *hosts, *((service_ip,) if service_ip else ()))
        return self.server("apiserver", "kpy-apiserver", names, now=now)

    def node(self, node: str, *, now: datetime.datetime | None = None) -> tuple[Path, Path]:
        """Node `node`'s client certificate (system:node:<node>)."""
        return self.client(node_identity(node), now=now)

    def node_serving(
        self, node: str, hosts: tuple[str, ...] = (), *, now: datetime.datetime | None = None
    ) -> tuple[Path, Path]:
        """The serving certificate of node `node`'s agent (its name and `hosts`)."""
        return self.server(f"nodes/{node}-serving", node, (node, *hosts), now=now)

    def service_account_keys(self) -> tuple[Path, Path]:
        """`sa.key` (ECDSA P-256, PKCS#8, 0600) and `sa.pub`, the pair
        ServiceAccount tokens are signed and checked with; made once."""
        private, public = self.root / "sa.key", self.root / "sa.pub"
        if private.exists() and public.exists():
            return private, public
        key = ec.generate_private_key(ec.SECP256R1())
        _write_private(
            private,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return private, public

    def kubeconfig(self, name: str, identity: Identity, servers: str) -> Path:
        """`kubeconfigs/<name>.config`: the API `servers` (comma-separated),
        the CA and `identity`'s certificate and key (made if missing);
        rewritten each time (the servers may have moved)."""
        cert, key = self.client(identity)
        path = self.directory / KUBECONFIG_DIR / f"{name}.config"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"# written by `kpy up`: how {name} calls the API server, as {identity.user}\n"
            + render_config(servers.split(","), self.ca_file(), cert, key)
        )
        return path

    # The flags of each process `kpy up` starts (made files included).

    def component_flags(self, identity: Identity, servers: str) -> tuple[str, ...]:
        """`--kubeconfig` of a component calling the API as `identity`."""
        return ("--kubeconfig", str(self.kubeconfig(identity.stem, identity, servers)))

    def apiserver_flags(self, service_ip: str = "") -> tuple[str, ...]:
        """TLS, x509 client authentication (authorization then defaults to
        Node,RBAC), the client certificate it presents to agents, and the
        ServiceAccount token keys; `service_ip` (the `kubernetes` Service's)
        is named by its serving certificate."""
        cert, key = self.apiserver(service_ip)
        kubelet_cert, kubelet_key = self.client(APISERVER_KUBELET_CLIENT)
        signing, public = self.service_account_keys()
        ca = str(self.ca_file())
        return (
            *("--tls-cert-file", str(cert), "--tls-private-key-file", str(key)),
            *("--client-ca-file", ca),
            *("--kubelet-client-certificate", str(kubelet_cert)),
            *("--kubelet-client-key", str(kubelet_key)),
            *("--kubelet-certificate-authority", ca),
            *("--service-account-key-file", str(public)),
            *("--service-account-signing-key-file", str(signing)),
        )

    def controller_manager_flags(self, servers: str) -> tuple[str, ...]:
        """Its client config, and the CA it publishes to every namespace
        (ConfigMap kube-root-ca.crt)."""
        return (
            *self.component_flags(CONTROLLER_MANAGER, servers),
            *("--root-ca-file", str(self.ca_file())),
        )

    def scheduler_flags(self, servers: str) -> tuple[str, ...]:
        """Its client config, and TLS on its Explain service (answering
        system:masters, that is the admin's kpyctl)."""
        cert, key = self.server("scheduler-serving", "kpy-scheduler")
        return (
            *self.component_flags(SCHEDULER, servers),
            *("--tls-cert-file", str(cert), "--tls-private-key-file", str(key)),
            *("--client-ca-file", str(self.ca_file())),
        )

    def agent_flags(self, node: str, servers: str) -> tuple[str, ...]:
        """Node `node`'s agent: its client config as system:node:<node>
        (`kubeconfigs/<node>.config`), its serving certificate, and the CA of
        the callers it answers (the API server's kubelet client)."""
        config = self.kubeconfig(node, node_identity(node), servers)
        cert, key = self.node_serving(node)
        return (
            *("--kubeconfig", str(config)),
            *("--tls-cert-file", str(cert), "--tls-private-key-file", str(key)),
            *("--client-ca-file", str(self.ca_file())),
        )

    def simulated_nodes_flags(self, servers: str) -> tuple[str, ...]:
        """The agent of many simulated nodes: one identity for all (see
        kpy.auth.bootstrap), one serving certificate."""
        config = self.kubeconfig(SIMULATED_NODES.stem, SIMULATED_NODES, servers)
        cert, key = self.server("nodes/simulated-nodes-serving", "kpy-simulated-nodes")
        return (
            *("--kubeconfig", str(config)),
            *("--tls-cert-file", str(cert), "--tls-private-key-file", str(key)),
            *("--client-ca-file", str(self.ca_file())),
        )


def render_config(servers: list[str], ca: Path, cert: Path, key: Path) -> str:
    """The lines of a kpy client config (kpy.client.config) for these
    servers, CA and client certificate."""
    listed = "".join(f"  - {s}\n" for s in servers)
    return (
        f"servers:\n{listed}"
        f"certificate-authority: {ca}\n"
        f"client-certificate: {cert}\n"
        f"client-key: {key}\n"
    )


def _write_private(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(temporary, path)


@dataclass(frozen=True, slots=True)
class Lifetime:
    """One certificate of the cluster, for `kpy status`."""

    path: Path  # relative to the cluster directory
    subject: str
    not_after: datetime.datetime
    days_left: int  # whole days; negative once expired

    @property
    def warning(self) -> str:
        """What to tell the user about it ("" when it has time left)."""
        if self.days_left < 0:
            return "EXPIRED: run `kpy renew-certs`"
        if self.days_left < WARN_WITHIN.days:
            return f"expires in under {WARN_WITHIN.days} days: run `kpy renew-certs`"
        return ""


def _certificates(directory: Path) -> Iterator[Path]:
    root = directory / PKI_DIR
    if not root.is_dir():
        return
    yield from sorted(p for p in root.rglob("*.crt") if p.is_file())


def lifetimes(directory: Path, *, now: datetime.datetime | None = None) -> list[Lifetime]:
    """Every certificate under `<directory>/pki`, CA first, then by path.
    Unreadable ones are left out (they are reported when used)."""
    at = _now(now)
    out = []
    for path in _certificates(directory):
        try:
            info = pki.describe(path.read_bytes(), what=str(path))
        except (OSError, pki.PKIError):
            continue
        days = (info.not_after - at).days  # floor: -1 as soon as it expired
        out.append(Lifetime(path.relative_to(directory), info.subject, info.not_after, days))
    out.sort(key=lambda lt: (lt.path.name != "ca.crt", str(lt.path)))
    return out


def expiring(directory: Path, *, now: datetime.datetime | None = None) -> list[Lifetime]:
    """The certificates that expire within `WARN_WITHIN` (or have)."""
    return [lt for lt in lifetimes(directory, now=now) if lt.warning]


def renew(directory: Path, *, now: datetime.datetime | None = None) -> list[Path]:
    """Issues every leaf certificate the cluster CA signed under
    `<directory>/pki` again, with the same subject, usages and names, valid
    `pki.LEAF_DAYS` from `now` (never past the CA); each with a new key.
    etcd's, under pki/etcd, are renewed with etcd's own CA
    (kpy.cluster.etcd_certs.renew). Returns the certificates renewed.
    CertError when there is no CA, or it expires within `WARN_WITHIN` (a
    CA is not renewed in place)."""
    root = directory.absolute() / PKI_DIR
    try:
        ca = pki.load(root / "ca.crt", root / "ca.key")
    except pki.PKIError as e:
        raise CertError(f"{e}; there is no CA to renew with: `kpy up` makes one") from None
    ca_info = pki.describe(ca.cert_pem, what=str(root / "ca.crt"))
    if ca_info.remaining(_now(now)) < WARN_WITHIN:
        raise CertError(
            f"the cluster CA {root / 'ca.crt'} expires at {ca_info.not_after:%Y-%m-%d} UTC; "
            f"a CA is not renewed in place: remove {root} and run `kpy up` again to make "
            "a new CA and certificates"
        )
    renewed = []
    etcd_root = directory.absolute() / etcd_certs.ETCD_DIR
    for cert_path in _certificates(directory.absolute()):
        if cert_path == root / "ca.crt" or cert_path.is_relative_to(etcd_root):
            continue  # etcd's are signed by etcd's own CA: renewed below
        key_path = cert_path.with_suffix(".key")
        pem = cert_path.read_bytes()
        info = pki.describe(pem, what=str(cert_path))
        if info.is_ca or info.issuer != ca_info.subject:
            continue
        cert = x509.load_pem_x509_certificate(pem)
        try:
            usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usages = x509.ExtendedKeyUsage([])
        if ExtendedKeyUsageOID.SERVER_AUTH in usages:
            hosts = (*info.dns_names, *info.ip_addresses)
            both = ExtendedKeyUsageOID.CLIENT_AUTH in usages
            pair = pki.issue_server(ca, info.common_name, hosts=hosts, client_auth=both, now=now)
        else:
            pair = pki.issue_client(ca, info.common_name, info.organizations, now=now)
        pki.write(pair, cert_path, key_path)
        renewed.append(cert_path)
    try:
        renewed += etcd_certs.renew(directory, now=now)
    except etcd_certs.EtcdCertError as e:
        raise CertError(str(e)) from None
    return renewed

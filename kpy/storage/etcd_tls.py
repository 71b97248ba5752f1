"""Reaching etcd over TLS with a client certificate, as kube-apiserver does.

kube-apiserver's `--etcd-cafile`, `--etcd-certfile` and `--etcd-keyfile`
(https://kubernetes.io/docs/reference/command-line-tools-reference/kube-apiserver/)
name the CA that signed etcd's serving certificate and the client
certificate etcd's `--trusted-ca-file` signed (`--client-cert-auth`).
Every kpy tool that opens etcd takes the same three files.

Contracts:
- `ClientTLS.load` reads the files once, at start, and refuses (EtcdTLSError,
  naming the flag and the file) a missing or non-PEM file, a certificate
  without its key or the reverse, a key that is not the certificate's, and
  a client certificate already expired.
  With the CA alone, etcd's certificate is verified and no client
  certificate is offered; with a certificate and no CA, the system's CAs
  verify etcd (as kube-apiserver).
- `SecureClient` is aetcd's `Client` on a TLS channel (aetcd itself dials
  only plaintext): every stub the store uses (KV, Watch, Lease,
  Maintenance) and every watch rides that one channel, so there is no
  plaintext path left.
- gRPC checks one name for a channel: with one endpoint, its host (the
  certificate must name it); with several (the members of one etcd
  cluster, failed over by gRPC), `MEMBERS_NAME`, which every etcd serving
  certificate made by kubeadm or kpy carries. The dedicated etcd CA is
  then what vouches for a member, as in kubeadm's layout.
- `check(endpoints, tls)` shakes hands with each endpoint (Python's ssl,
  a few seconds at most) and raises EtcdTLSError when etcd and the client
  disagree: etcd wants TLS and the client has none, or the reverse, etcd's
  certificate is not trusted, or etcd refused the client's certificate.
  An endpoint that does not answer at all passes: that is an outage,
  which the caller retries as ever, not a configuration error.
- `hint(details)` turns a failed gRPC call's details into what to fix
  ("" when the failure is not about TLS), for `kpy.storage._errors`.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aetcd
import grpc
from aetcd import rpc, watcher
from cryptography import x509

if TYPE_CHECKING:
    from collections.abc import Sequence

CA_FLAG: Final = "--etcd-cafile"
CERT_FLAG: Final = "--etcd-certfile"
KEY_FLAG: Final = "--etcd-keyfile"
FLAGS: Final = f"{CA_FLAG}, {CERT_FLAG} and {KEY_FLAG}"
MEMBERS_NAME: Final = "localhost"
_PROBE_TIMEOUT: Final = 3.0


class EtcdTLSError(ValueError):
    """etcd and this client disagree about TLS, or a TLS file is unusable;
    the message names the flag to fix."""


@dataclass(frozen=True, slots=True)
class ClientTLS:
    """The client's side of etcd's TLS: PEM contents, and the files they
    came from (for messages and for Python's ssl, which reads files)."""

    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    ca_pem: bytes | None
    cert_pem: bytes | None
    key_pem: bytes | None

    @classmethod
    def load(
        cls,
        ca_file: str | Path | None,
        cert_file: str | Path | None,
        key_file: str | Path | None,
        *,
        now: datetime.datetime | None = None,
    ) -> ClientTLS | None:
        """The files of `--etcd-cafile`, `--etcd-certfile` and
        `--etcd-keyfile` (None: none given, etcd is reached in plaintext);
        EtcdTLSError as the module docstring says."""
        if ca_file is None and cert_file is None and key_file is None:
            return None
        if (cert_file is None) != (key_file is None):
            raise EtcdTLSError(f"{CERT_FLAG} and {KEY_FLAG} go together: give both")
        ca = _read(CA_FLAG, ca_file, b"CERTIFICATE") if ca_file else None
        cert = _read(CERT_FLAG, cert_file, b"CERTIFICATE") if cert_file else None
        key = _read(KEY_FLAG, key_file, b"PRIVATE KEY") if key_file else None
        if cert_file is not None and key_file is not None:
            _check_pair(Path(cert_file), Path(key_file), cert, now)
        return cls(
            Path(ca_file) if ca_file else None,
            Path(cert_file) if cert_file else None,
            Path(key_file) if key_file else None,
            ca,
            cert,
            key,
        )

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca_pem, self.key_pem, self.cert_pem)

    def flags(self) -> tuple[str, ...]:
        """The command-line words that give these files to a kpy tool."""
        words: list[str] = []
        for flag, path in (
            (CA_FLAG, self.ca_file),
            (CERT_FLAG, self.cert_file),
            (KEY_FLAG, self.key_file),
        ):
            if path is not None:
                words += [flag, str(path)]
        return tuple(words)


def _read(flag: str, path: str | Path, marker: bytes) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise EtcdTLSError(f"{flag} {path}: cannot read it ({e.strerror})") from None
    if b"-----BEGIN" not in data or marker not in data:
        raise EtcdTLSError(f"{flag} {path}: holds no PEM {marker.decode().lower()}")
    return data


def _check_pair(
    path: Path, key_path: Path, pem: bytes | None, now: datetime.datetime | None
) -> None:
    """The certificate is readable, not expired, and the key is its own."""
    try:
        cert = x509.load_pem_x509_certificate(pem or b"")
    except ValueError as e:
        raise EtcdTLSError(f"{CERT_FLAG} {path}: not a PEM certificate ({e})") from None
    try:
        ssl.create_default_context().load_cert_chain(path, key_path)
    except ssl.SSLError as e:
        raise EtcdTLSError(
            f"{KEY_FLAG} {key_path} is not the key of {CERT_FLAG} {path} ({e.reason}): give "
            "the key the certificate was made with"
        ) from None
    at = now or datetime.datetime.now(datetime.UTC)
    if at >= cert.not_valid_after_utc:
        raise EtcdTLSError(
            f"{CERT_FLAG} {path} expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; "
            "etcd would refuse it: give a certificate that is still valid"
        )


class SecureClient(aetcd.Client):  # type: ignore[misc]  # aetcd is untyped
    """aetcd's Client whose channel is TLS with `tls`'s CA and certificate."""

    _is_connecting: bool  # aetcd's, set by its __init__

    def __init__(self, tls: ClientTLS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tls = tls
        self._credentials = tls.credentials()

    async def connect(self) -> None:
        """aetcd's `Client.connect` (1.0.0) with `secure_channel` in place of
        its `insecure_channel`, and without etcd's password authentication,
        which kpy never uses (the certificate is the identity)."""
        if self._connected.is_set():
            return
        if self._is_connecting:  # another task is connecting: wait for it
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        try:
            self._is_connecting = True
            target = f"{self._host}:{self._port}"
            self.channel = rpc.secure_channel(
                target, self._credentials, options=self._options.items()
            )
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = watcher.Watcher(
                rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata
            )
            self._connected.set()
        finally:
            self._is_connecting = False


# -- why a connection failed ----------------------------------------------------------

_NOT_TLS: Final = (
    "does not speak TLS: remove {flags}, or serve etcd's clients over TLS "
    "(etcd's --cert-file, --key-file and https:// --listen-client-urls)"
)
_UNTRUSTED: Final = (
    "has a serving certificate this client does not trust{why}: give {ca_flag} the CA "
    "that signed etcd's --cert-file (and a certificate naming the host dialled)"
)
_REFUSED: Final = (
    "refused this client's certificate{which}: give {cert_flag} and {key_flag}, a "
    "certificate signed by the CA of etcd's --trusted-ca-file that has not expired"
)
_WANTS_TLS: Final = (
    "serves TLS, but this client speaks plaintext: give {flags} (the CA of etcd's serving "
    "certificate, and a client certificate signed by etcd's --trusted-ca-file)"
)


def hint(details: str) -> str:
    """What to fix for a gRPC failure whose details are `details`; "" when
    they do not look like a TLS disagreement."""
    if "CERTIFICATE_VERIFY_FAILED" in details or "Hostname Verification" in details:
        return "etcd " + _UNTRUSTED.format(why="", ca_flag=CA_FLAG)
    if "ALERT" in details.upper() and "Tls handshake failed" in details:
        return "etcd " + _REFUSED.format(which="", cert_flag=CERT_FLAG, key_flag=KEY_FLAG)
    if "Handshake read failed" in details or "WRONG_VERSION_NUMBER" in details:
        return "etcd " + _NOT_TLS.format(flags=FLAGS)
    if "Socket closed" in details:
        return f"if etcd serves TLS (https:// client URLs), give {FLAGS}"
    return ""


def check(endpoints: Sequence[str], tls: ClientTLS | None, *, timeout: float = 0.0) -> None:
    """The handshake check of the module docstring, one endpoint after the
    other ("host:port" each); EtcdTLSError at the first disagreement."""
    server_name = None if len(endpoints) == 1 else MEMBERS_NAME
    for address in endpoints:
        problem = _probe(address, tls, server_name, timeout or _PROBE_TIMEOUT)
        if problem:
            raise EtcdTLSError(f"etcd at {address} {problem}")


def _probe(address: str, tls: ClientTLS | None, server_name: str | None, timeout: float) -> str:
    host, _, port = address.rpartition(":")
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    except (OSError, ValueError):
        return ""  # nothing answers: an outage, not a disagreement
    with sock:
        if tls is None:
            return _WANTS_TLS.format(flags=FLAGS) if _speaks_tls(sock) else ""
        return _tls_problem(sock, host if server_name is None else server_name, tls)


def _speaks_tls(sock: socket.socket) -> bool:
    """Whether the server answers a TLS hello as TLS (a handshake, or a TLS
    alert such as "certificate required") rather than as plaintext."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with context.wrap_socket(sock, do_handshake_on_connect=True):
            return True
    except ssl.SSLError as e:
        return _alert(e)
    except OSError:
        return False


def _tls_problem(sock: socket.socket, server_name: str, tls: ClientTLS) -> str:
    context = ssl.create_default_context(cadata=tls.ca_pem.decode() if tls.ca_pem else None)
    if tls.cert_file is not None and tls.key_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)  # checked by ClientTLS.load
    refused = _REFUSED.format(
        which=f" ({CERT_FLAG} {tls.cert_file})" if tls.cert_file else " (none was given)",
        cert_flag=CERT_FLAG,
        key_flag=KEY_FLAG,
    )
    try:
        conn = context.wrap_socket(sock, server_hostname=server_name)
    except ssl.SSLCertVerificationError as e:
        ca = f"{CA_FLAG} {tls.ca_file}" if tls.ca_file else "the system's CAs"
        why = f" ({e.verify_message}; checked with {ca})"
        return _UNTRUSTED.format(why=why, ca_flag=CA_FLAG)
    except ssl.SSLError as e:
        return refused if _alert(e) else _NOT_TLS.format(flags=FLAGS)
    except TimeoutError:
        return ""  # too slow to tell: the store's own calls will say
    except OSError:  # closed or reset during the handshake: no TLS there
        return _NOT_TLS.format(flags=FLAGS)
    with conn:
        try:
            # TLS 1.3 tells the client its certificate was refused only
            # after the handshake: ask for /health and read the answer.
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: etcd\r\nConnection: close\r\n\r\n")
            conn.recv(1)
        except ssl.SSLError as e:
            return refused if _alert(e) else ""
        except OSError:
            return ""  # TLS works; whatever else failed, the store's calls will say
    return ""


def _alert(error: ssl.SSLError) -> bool:
    """Whether the peer answered with a TLS alert (it speaks TLS, and refused)."""
    return "ALERT" in str(error.reason or "").upper()

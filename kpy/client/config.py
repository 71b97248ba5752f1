"""Where the API servers are: `~/.kpy/config`, `KPY_CONFIG`, flags.

The file is YAML:

    servers:            # every API server (with --workers N, each worker)
      - 127.0.0.1:6443
      - 127.0.0.1:6444
    namespace: default  # for commands that take one and were given none
    timeout: 30         # seconds per request
    schedulers:         # the schedulers' Explain service, for `kpyctl describe`
      - 127.0.0.1:10251 #   of a pending pod (`kpy up` writes its own)
    cluster-uid: 3f2a9c1e5b7d4a60  # which cluster this is (`kpy up` writes it)
    certificate-authority: ca.crt   # TLS: the CA the servers' certificates chain to
    client-certificate: admin.crt   # and who we are: a certificate the server's
    client-key: admin.key           #   client CA signed (user = CN, groups = O)
    token: 0123456789abcdef         # or a bearer token (token-file: read from a file)

The TLS and credential fields are kubeconfig's cluster and user fields:
each file field has a `-data` twin holding the base64 of the PEM
(`certificate-authority-data`, `client-certificate-data`,
`client-key-data`); relative paths are read from the config file's
directory. With a CA the client speaks TLS to every server, presents the
client certificate if one is given, and sends the token as
`authorization: Bearer <token>`; a `token-file` is read again whenever it
changes (a pod's projected ServiceAccount token is replaced before it
expires), as client-go re-reads it. A client certificate or a token without a
CA is refused: credentials never cross the network in plaintext. Without
any of them the client speaks plaintext gRPC, as before.

Servers that are all IP addresses share the calls (one per server in
turn, skipping one that is down); servers given by name are tried in order,
the next one when one fails (see kpy.client.client).

`KPY_CONFIG` names another file; servers given as flags (or to
`load_config(servers=...)`) win over both. Without any file the client talks
to 127.0.0.1:6443, where `kpy up` puts the first API server, unless it runs
in a pod:

In a pod (client-go's in-cluster config), `load_incluster_config()` reads
the ServiceAccount's files the pod's kube-api-access volume holds at
`/var/run/secrets/kubernetes.io/serviceaccount/`: the server is
`$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` (the `kubernetes`
Service, whose variables every container gets), the CA is `ca.crt`, the
token is read from `token` (again whenever it changes) and the namespace is
`$POD_NAMESPACE` or the `namespace` file. `load_config()` falls back to it,
as client-go's default loading does, when KPY_CONFIG is unset, no
~/.kpy/config exists, `KUBERNETES_SERVICE_HOST` is set and the directory
holds a `token`.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_SERVER: Final = "127.0.0.1:6443"
DEFAULT_PATH: Final = Path("~/.kpy/config")
#: Where a pod's ServiceAccount token, CA and namespace are (the kube-api-access volume).
SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")


_FIELDS = (
    "servers",
    "namespace",
    "timeout",
    "schedulers",
    "cluster-uid",
    "certificate-authority",
    "certificate-authority-data",
    "client-certificate",
    "client-certificate-data",
    "client-key",
    "client-key-data",
    "token",
    "token-file",
)


class ConfigError(ValueError):
    """The config file is unreadable or malformed; the message names the file
    and the field."""


@dataclass(frozen=True, slots=True)
class TLSCredentials:
    """What a TLS channel needs (PEM): the CA the servers' certificates must
    chain to and, optionally, the client certificate and key to present.
    `ca_source` and `cert_source` say where they came from (a file, or a
    `-data` field of a config), for error messages."""

    ca_pem: bytes
    ca_source: str = ""
    cert_pem: bytes | None = None
    key_pem: bytes | None = field(default=None, repr=False)
    cert_source: str = ""

    @classmethod
    def from_files(
        cls,
        certificate_authority: str | Path,
        client_certificate: str | Path | None = None,
        client_key: str | Path | None = None,
    ) -> TLSCredentials:
        """The credentials in these PEM files; ConfigError naming the file
        that is missing or holds no PEM of its kind."""
        if (client_certificate is None) != (client_key is None):
            raise ConfigError("client-certificate and client-key go together: give both")
        ca_file = Path(certificate_authority).expanduser()
        ca = _pem(_read_file(ca_file, "certificate-authority"), _CERT, str(ca_file))
        tls = cls(ca, str(ca_file))
        if client_certificate is not None and client_key is not None:
            tls = tls.with_client(client_certificate, client_key)
        return tls

    def with_client(self, client_certificate: str | Path, client_key: str | Path) -> TLSCredentials:
        """These credentials, presenting the certificate and key in these
        PEM files instead of any they had."""
        cert_file = Path(client_certificate).expanduser()
        key_file = Path(client_key).expanduser()
        return replace(
            self,
            cert_pem=_pem(_read_file(cert_file, "client-certificate"), _CERT, str(cert_file)),
            key_pem=_pem(_read_file(key_file, "client-key"), _KEY, str(key_file)),
            cert_source=str(cert_file),
        )


@dataclass(frozen=True, slots=True)
class ClientConfig:
    servers: tuple[str, ...] = (DEFAULT_SERVER,)
    namespace: str = "default"
    timeout: float = 30.0
    source: str = ""  # the file it came from, for messages
    schedulers: tuple[str, ...] = ()  # Explain services, asked in this order
    cluster_uid: str = ""  # the cluster's identity, as `kpy up` made it
    tls: TLSCredentials | None = None  # None: plaintext gRPC
    token: str = field(default="", repr=False)  # a bearer token, sent only over TLS
    #: where `token` came from (token-file), read again when it changes ("": none)
    token_file: str = ""


def config_path() -> Path:
    """The config file in effect: $KPY_CONFIG, else ~/.kpy/config."""
    return Path(os.environ.get("KPY_CONFIG") or DEFAULT_PATH).expanduser()


def load_config(
    path: str | Path | None = None,
    *,
    servers: str | list[str] | tuple[str, ...] | None = None,
    namespace: str | None = None,
    service_account_dir: str | Path = SERVICE_ACCOUNT_DIR,
) -> ClientConfig:
    """The configuration from `path` (default: `config_path()`; a missing
    default file is fine, a missing named file is an error), with `servers`
    ("a:1,b:2" or a list) and `namespace` overriding it. With no `path`, no
    KPY_CONFIG and no default file, in a pod (`in_cluster`), the in-cluster
    config of `service_account_dir`."""
    explicit = path is not None or bool(os.environ.get("KPY_CONFIG"))
    file = Path(path).expanduser() if path is not None else config_path()
    data: dict[str, Any] = {}
    if file.exists():
        data = _read(file)
    elif explicit:
        raise ConfigError(f"kpy config file {file} does not exist; create it or unset KPY_CONFIG")
    if not file.exists() and in_cluster(service_account_dir):
        config = load_incluster_config(service_account_dir)
    else:
        config = _from_data(data, str(file) if file.exists() else "")
    if servers:
        listed = servers.split(",") if isinstance(servers, str) else list(servers)
        config = replace(config, servers=_check_servers(listed, "--server"))
    if namespace:
        config = replace(config, namespace=namespace)
    return config


def in_cluster(
    service_account_dir: str | Path = SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Whether this process runs in a pod with a ServiceAccount token:
    `KUBERNETES_SERVICE_HOST` is set and the directory holds a `token`."""
    env = os.environ if environ is None else environ
    return (
        bool(env.get("KUBERNETES_SERVICE_HOST")) and (Path(service_account_dir) / "token").is_file()
    )


def load_incluster_config(
    service_account_dir: str | Path = SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] | None = None,
) -> ClientConfig:
    """The config of a process in a pod (client-go's InClusterConfig; see
    the module docstring): ConfigError saying what is missing when this is
    not a pod with a ServiceAccount token."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError(
            "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
            "KUBERNETES_SERVICE_PORT must be defined (they are in a pod's containers, from "
            "the Service default/kubernetes); outside a pod, use a kpy config file"
        )
    directory = Path(service_account_dir)
    where = f"in-cluster config ({directory})"
    token_file = directory / "token"
    token = _token({"token-file": str(token_file)}, where, directory)
    tls = TLSCredentials.from_files(directory / "ca.crt")
    namespace = env.get("POD_NAMESPACE", "")
    if not namespace:
        try:
            namespace = (directory / "namespace").read_text().strip()
        except OSError:
            namespace = ""
    server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return ClientConfig(
        servers=_check_servers([server], f"{where}: KUBERNETES_SERVICE_HOST/PORT"),
        namespace=namespace or "default",
        source=where,
        tls=tls,
        token=token,
        token_file=str(token_file),
    )


def _read(file: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read kpy config {file}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"kpy config {file}: expected a mapping with `servers`, got {data!r}")
    return data


def _from_data(data: dict[str, Any], source: str) -> ClientConfig:
    where = source or "config"
    unknown = sorted(str(key) for key in set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {unknown[0]!r}; the fields are {', '.join(_FIELDS)}"
        )
    servers = data.get("servers", [DEFAULT_SERVER])
    if isinstance(servers, str):  # "a:1,b:2", as the flag takes them
        servers = servers.split(",")
    if not isinstance(servers, list) or not servers:
        raise ConfigError(f"{where}: servers: must be a non-empty list of host:port")
    namespace = data.get("namespace", "default")
    if not isinstance(namespace, str) or not namespace:
        raise ConfigError(f"{where}: namespace: must be a non-empty string")
    timeout = data.get("timeout", 30)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout < math.inf  # also refuses .nan
    ):
        raise ConfigError(f"{where}: timeout: must be a positive number of seconds, not {timeout}")
    schedulers = data.get("schedulers", [])
    if isinstance(schedulers, str):
        schedulers = schedulers.split(",")
    if not isinstance(schedulers, list):
        raise ConfigError(f"{where}: schedulers: must be a list of host:port")
    cluster_uid = data.get("cluster-uid", "")
    if not isinstance(cluster_uid, str):
        raise ConfigError(f"{where}: cluster-uid: must be a string, not {cluster_uid!r}")
    base = Path(source).parent if source else Path.cwd()
    tls = _tls(data, where, base)
    token = _token(data, where, base)
    file = data.get("token-file")
    token_file = str(base / Path(file).expanduser()) if token and isinstance(file, str) else ""
    if token and tls is None:
        raise ConfigError(
            f"{where}: token: a token is sent only over TLS; add certificate-authority "
            "(the cluster's CA file) so that the client can check the server"
        )
    return ClientConfig(
        _check_servers(servers, f"{where}: servers"),
        namespace,
        float(timeout),
        source,
        _check_servers(schedulers, f"{where}: schedulers"),
        cluster_uid,
        tls,
        token,
        token_file,
    )


_CERT: Final = b"CERTIFICATE"
_KEY: Final = b"PRIVATE KEY"


def _read_file(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{name}: cannot read {path}: {e.strerror}") from None


def _pem(data: bytes, marker: bytes, where: str) -> bytes:
    if b"-----BEGIN" not in data or marker not in data:
        raise ConfigError(
            f"{where}: holds no PEM {marker.decode().lower()} "
            "(expected a block starting -----BEGIN ...)"
        )
    return data


def _material(
    data: dict[str, Any], name: str, where: str, base: Path, marker: bytes
) -> tuple[bytes, str] | None:
    """The PEM of field `name` (a file) or `name`-data (base64), with where
    it came from; None when neither is set."""
    file, inline = data.get(name), data.get(f"{name}-data")
    if file is not None and inline is not None:
        raise ConfigError(f"{where}: give {name} or {name}-data, not both")
    if file is not None:
        if not isinstance(file, str) or not file:
            raise ConfigError(f"{where}: {name}: must be the path of a PEM file")
        path = base / Path(file).expanduser()
        content = _read_file(path, f"{where}: {name}")
        return _pem(content, marker, f"{where}: {name} {path}"), str(path)
    if inline is not None:
        try:
            decoded = base64.b64decode(str(inline), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                f"{where}: {name}-data: not base64; encode the PEM file with `base64 -w0 FILE`"
            ) from None
        return _pem(decoded, marker, f"{where}: {name}-data"), f"{name}-data of {where}"
    return None


def _tls(data: dict[str, Any], where: str, base: Path) -> TLSCredentials | None:
    ca = _material(data, "certificate-authority", where, base, _CERT)
    cert = _material(data, "client-certificate", where, base, _CERT)
    key = _material(data, "client-key", where, base, _KEY)
    if (cert is None) != (key is None):
        missing = "client-key" if key is None else "client-certificate"
        raise ConfigError(
            f"{where}: {missing}: missing; client-certificate and client-key go together"
        )
    if ca is None:
        if cert is not None:
            raise ConfigError(
                f"{where}: client-certificate needs certificate-authority (the cluster's CA "
                "file): a client certificate is presented only over TLS"
            )
        return None
    return TLSCredentials(
        ca[0],
        ca[1],
        cert[0] if cert else None,
        key[0] if key else None,
        cert[1] if cert else "",
    )


def _token(data: dict[str, Any], where: str, base: Path) -> str:
    token, file = data.get("token"), data.get("token-file")
    if token is not None and file is not None:
        raise ConfigError(f"{where}: give token or token-file, not both")
    if file is not None:
        if not isinstance(file, str) or not file:
            raise ConfigError(f"{where}: token-file: must be the path of a file")
        token = _read_file(base / Path(file).expanduser(), f"{where}: token-file").decode(
            errors="replace"
        )
    if token is None:
        return ""
    if not isinstance(token, str) or not token.strip():
        raise ConfigError(f"{where}: token: must be a non-empty string")
    text = token.strip()
    if any(c.isspace() for c in text):
        raise ConfigError(f"{where}: token: must not contain whitespace")
    return text


def _check_servers(servers: list[Any], where: str) -> tuple[str, ...]:
    out = []
    for i, server in enumerate(servers):
        text = str(server).strip()
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f'{where}[{i}]: "{text}" is not of the form host:port (port 1 to 65535)'
            )
        out.append(text)
    return tuple(out)

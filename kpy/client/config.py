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

Servers that are all IP addresses share the calls (one per server in
turn, skipping one that is down); servers given by name are tried in order,
the next one when one fails (see kpy.client.client).

`KPY_CONFIG` names another file; servers given as flags (or to
`load_config(servers=...)`) win over both. Without any file the client talks
to 127.0.0.1:6443, where `kpy up` puts the first API server.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import yaml

DEFAULT_SERVER: Final = "127.0.0.1:6443"
DEFAULT_PATH: Final = Path("~/.kpy/config")


_FIELDS = ("servers", "namespace", "timeout", "schedulers", "cluster-uid")


class ConfigError(ValueError):
    """The config file is unreadable or malformed; the message names the file
    and the field."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    servers: tuple[str, ...] = (DEFAULT_SERVER,)
    namespace: str = "default"
    timeout: float = 30.0
    source: str = ""  # the file it came from, for messages
    schedulers: tuple[str, ...] = ()  # Explain services, asked in this order
    cluster_uid: str = ""  # the cluster's identity, as `kpy up` made it


def config_path() -> Path:
    """The config file in effect: $KPY_CONFIG, else ~/.kpy/config."""
    return Path(os.environ.get("KPY_CONFIG") or DEFAULT_PATH).expanduser()


def load_config(
    path: str | Path | None = None,
    *,
    servers: str | list[str] | tuple[str, ...] | None = None,
    namespace: str | None = None,
) -> ClientConfig:
    """The configuration from `path` (default: `config_path()`; a missing
    default file is fine, a missing named file is an error), with `servers`
    ("a:1,b:2" or a list) and `namespace` overriding it."""
    explicit = path is not None or bool(os.environ.get("KPY_CONFIG"))
    file = Path(path).expanduser() if path is not None else config_path()
    data: dict[str, Any] = {}
    if file.exists():
        data = _read(file)
    elif explicit:
        raise ConfigError(f"kpy config file {file} does not exist; create it or unset KPY_CONFIG")
    config = _from_data(data, str(file) if file.exists() else "")
    if servers:
        listed = servers.split(",") if isinstance(servers, str) else list(servers)
        config = replace(config, servers=_check_servers(listed, "--server"))
    if namespace:
        config = replace(config, namespace=namespace)
    return config


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
    return ClientConfig(
        _check_servers(servers, f"{where}: servers"),
        namespace,
        float(timeout),
        source,
        _check_servers(schedulers, f"{where}: schedulers"),
        cluster_uid,
    )


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

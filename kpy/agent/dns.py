"""A pod's resolv.conf, as the kubelet forms it (pkg/kubelet/network/dns).

Contract:

- `pod_resolv_conf(pod, settings, host)` is pure: the pod, the agent's
  `--cluster-dns` / `--cluster-domain`, and the host's resolv.conf (parsed
  by `parse_resolv_conf`) in; a `ResolvConf` and the warnings the kubelet
  records as `DNSConfigForming` Events out. By `dnsPolicy`:
  ClusterFirst (the default): the cluster DNS servers, the search list
  `<ns>.svc.<domain> svc.<domain> <domain>` then the host's, `ndots:5`;
  a hostNetwork pod (or an agent without `--cluster-dns`) falls back to
  Default. ClusterFirstWithHostNet: ClusterFirst, host network or not.
  Default: the host's resolv.conf. None: nothing but `dnsConfig`.
  `dnsConfig` is then merged in: nameservers and searches appended without
  repeats, options by name (the pod's value wins).
- A `dnsConfig` that Kubernetes' API validation refuses (more than 3
  nameservers or 32 searches, a nameserver that is not an IP, `None`
  without a nameserver) raises `ConfigError` naming the field: the
  container waits with CreateContainerConfigError. Limits exceeded by the
  merge are cut as the kubelet cuts them (3 nameservers; 32 search paths,
  each at most 253 characters, 2048 characters in all), with a warning.
- `PodDNS` is what the agent hands the pod workers: it writes the file into
  the pod's directory and returns the Mount that puts it at
  /etc/resolv.conf (none when the pod's file would be the host's own:
  every runtime gives a container the host's already), and computes the
  service link variables (`env.service_env`) from the agent's Services.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from kpy.agent.env import ConfigError, service_env
from kpy.agent.runtime.base import Mount

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from kpy.api.core.v1 import Container, Pod, Service

__all__ = [
    "DEFAULT_DOMAIN",
    "HOST_RESOLV_CONF",
    "DNSSettings",
    "PodDNS",
    "ResolvConf",
    "format_resolv_conf",
    "parse_resolv_conf",
    "pod_resolv_conf",
]

log = logging.getLogger("kpy.agent.dns")

DEFAULT_DOMAIN: Final = "cluster.local"
HOST_RESOLV_CONF: Final = Path("/etc/resolv.conf")
RESOLV_CONF_PATH: Final = "/etc/resolv.conf"
MAX_NAMESERVERS: Final = 3
MAX_SEARCHES: Final = 32
MAX_SEARCH_CHARS: Final = 2048
MAX_SEARCH_LENGTH: Final = 253
CLUSTER_OPTIONS: Final = ("ndots:5",)


@dataclass(frozen=True, slots=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DNSSettings:
    """The agent's `--cluster-dns` (empty: none, ClusterFirst acts as
    Default) and `--cluster-domain`."""

    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = DEFAULT_DOMAIN


def parse_resolv_conf(text: str) -> ResolvConf:
    """nameserver, search and options lines, as the kubelet reads them: the
    last search line wins, a trailing dot is dropped, `#`/`;` start comments."""
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver" and values:
            nameservers.append(values[0])
        elif key == "search":
            searches = [v.removesuffix(".") for v in values if v != "."]
        elif key == "options":
            options = list(_merge_options(options, values))
    return ResolvConf(tuple(nameservers), tuple(searches), tuple(options))


def format_resolv_conf(conf: ResolvConf) -> str:
    lines = [f"nameserver {ns}" for ns in conf.nameservers]
    if conf.searches:
        lines.append("search " + " ".join(conf.searches))
    if conf.options:
        lines.append("options " + " ".join(conf.options))
    return "".join(line + "\n" for line in lines)


def pod_resolv_conf(
    pod: Pod, settings: DNSSettings, host: ResolvConf
) -> tuple[ResolvConf, list[str]]:
    """The pod's resolv.conf and the DNSConfigForming warnings; see the
    module docstring. Raises ConfigError for a dnsConfig the API refuses."""
    spec = pod.spec
    policy = spec.dns_policy or "ClusterFirst"
    _check_dns_config(pod, policy)
    if policy == "None":
        conf = ResolvConf()
    elif _cluster_first(policy, spec.host_network) and settings.cluster_dns:
        domain = settings.cluster_domain.strip(".")
        namespace = pod.metadata.namespace or "default"
        cluster = (f"{namespace}.svc.{domain}", f"svc.{domain}", domain) if domain else ()
        conf = ResolvConf(
            settings.cluster_dns, _unique([*cluster, *host.searches]), CLUSTER_OPTIONS
        )
    else:
        conf = host
    if spec.HasField("dns_config"):
        extra = spec.dns_config
        options = [o.name + (f":{o.value}" if o.value else "") for o in extra.options]
        conf = ResolvConf(
            _unique([*conf.nameservers, *extra.nameservers]),
            _unique([*conf.searches, *extra.searches]),
            _merge_options(list(conf.options), options),
        )
    return _fit_limits(conf)


def _cluster_first(policy: str, host_network: bool) -> bool:
    return policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_network)


def _check_dns_config(pod: Pod, policy: str) -> None:
    """What Kubernetes' API validation refuses in spec.dnsConfig."""
    spec = pod.spec
    extra = spec.dns_config
    where = f"pod {pod.metadata.namespace}/{pod.metadata.name}: spec.dnsConfig"
    if policy == "None" and not extra.nameservers:
        raise ConfigError(
            f"{where}.nameservers: must provide at least one DNS nameserver when "
            "`dnsPolicy` is None; add one, or use another dnsPolicy"
        )
    if len(extra.nameservers) > MAX_NAMESERVERS:
        raise ConfigError(
            f"{where}.nameservers: must not have more than {MAX_NAMESERVERS} nameservers "
            f"(has {len(extra.nameservers)}); the resolver reads only the first 3"
        )
    for ns in extra.nameservers:
        try:
            ipaddress.ip_address(ns)
        except ValueError:
            raise ConfigError(f"{where}.nameservers: {ns!r} must be a valid IP address") from None
    if len(extra.searches) > MAX_SEARCHES:
        raise ConfigError(
            f"{where}.searches: must not have more than {MAX_SEARCHES} search paths "
            f"(has {len(extra.searches)})"
        )
    for option in extra.options:
        if not option.name:
            raise ConfigError(f"{where}.options: every option must have a name")


def _fit_limits(conf: ResolvConf) -> tuple[ResolvConf, list[str]]:
    """Cuts what a resolver would not read, as the kubelet does, saying so."""
    warnings: list[str] = []
    nameservers = conf.nameservers
    if len(nameservers) > MAX_NAMESERVERS:
        nameservers = nameservers[:MAX_NAMESERVERS]
        warnings.append(
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied "
            f"nameserver line is: {' '.join(nameservers)}"
        )
    searches = list(conf.searches[:MAX_SEARCHES])
    cut = len(conf.searches) > MAX_SEARCHES
    kept = [s for s in searches if len(s) <= MAX_SEARCH_LENGTH]
    cut = cut or len(kept) != len(searches)
    while kept and len(" ".join(kept)) > MAX_SEARCH_CHARS:
        kept.pop()
        cut = True
    if cut:
        warnings.append(
            "Search Line limits were exceeded, some search paths have been omitted, the "
            f"applied search line is: {' '.join(kept)}"
        )
    return ResolvConf(nameservers, tuple(kept), conf.options), warnings


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def _merge_options(existing: Sequence[str], new: Sequence[str]) -> tuple[str, ...]:
    """Options by name, in the order names first appear; a later value wins."""
    merged: dict[str, str] = {}
    for option in (*existing, *new):
        name, sep, value = option.partition(":")
        merged[name] = sep + value
    return tuple(name + value for name, value in merged.items())


@dataclass
class PodDNS:
    """The agent's DNS and service links for its pods (see the module
    docstring). `services` lists the agent's Services (every namespace);
    `warn(pod, message)` records a DNSConfigForming Warning Event."""

    settings: DNSSettings
    services: Callable[[], Iterable[Service]]
    host_resolv_conf: Path = HOST_RESOLV_CONF
    warn: Callable[[Pod, str], None] = field(default=lambda pod, message: None)

    def service_env(self, pod: Pod) -> dict[str, str]:
        """The pod's service link variables (`env.service_env`)."""
        links = pod.spec.enable_service_links if pod.spec.HasField("enable_service_links") else True
        return service_env(self.services(), pod.metadata.namespace, enable_service_links=links)

    def mounts(self, pod: Pod, container: Container, pod_dir: Path) -> list[Mount]:
        """Writes the pod's resolv.conf in `pod_dir` and returns its mount at
        /etc/resolv.conf: none when it is the host's own, or when the
        container mounts a volume there itself. Raises ConfigError."""
        if any(m.mount_path == RESOLV_CONF_PATH for m in container.volume_mounts):
            return []
        host = self._host()
        conf, warnings = pod_resolv_conf(pod, self.settings, host)
        for message in warnings:
            self.warn(pod, message)
        if conf == host:
            return []
        path = pod_dir / "resolv.conf"
        _write(path, format_resolv_conf(conf))
        return [Mount(host_path=str(path), container_path=RESOLV_CONF_PATH, read_only=True)]

    def _host(self) -> ResolvConf:
        try:
            return parse_resolv_conf(self.host_resolv_conf.read_text())
        except FileNotFoundError:
            return ResolvConf()
        except OSError as e:
            raise ConfigError(
                f"cannot read the host's resolv.conf {self.host_resolv_conf}: {e}; "
                "dnsPolicy Default and ClusterFirst need it"
            ) from None


def _write(path: Path, text: str) -> None:
    """Atomically, so a container starting meanwhile never reads half a file."""
    try:
        if path.exists() and path.read_text() == text:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        tmp.replace(path)
    except OSError as e:
        raise ConfigError(f"cannot write the pod's resolv.conf {path}: {e}") from None

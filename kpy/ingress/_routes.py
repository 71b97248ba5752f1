"""The routing table: which backend endpoint answers a request, by host and
path, built from Ingresses, Services, EndpointSlices and Secrets.

`build_table(...)` is pure: it reads the objects it is given and returns a
frozen `RoutingTable`, which the proxy swaps in whole on every change (a
request sees one table, never half of an update). The matching rules are
Kubernetes':

- Hosts: an exact host beats a wildcard; `*.foo.com` matches exactly one
  label before `foo.com` (`bar.foo.com`, not `foo.com` nor `a.bar.foo.com`);
  rules without a host match every host. The most specific group of rules
  that has a matching path answers; a host compares without its port and
  case-insensitively.
- Paths: among the matching paths of a group the longest wins, and on a
  tie Exact beats Prefix. Exact compares the whole path; Prefix compares
  path elements (`/foo` matches `/foo`, `/foo/` and `/foo/bar`, never
  `/foobar`), ignoring a trailing slash; ImplementationSpecific is treated
  as Prefix (an empty path as `/`).
- When nothing matches: the defaultBackend (of the oldest Ingress that has
  one), else no route (the proxy answers 404).
- Two Ingresses claiming the same host, path and type: the older wins, as
  ingress-nginx does.

A backend resolves to the ready endpoints of its Service's port: the
EndpointSlices labelled `kubernetes.io/service-name` carry the port under
the Service port's name, already resolved to the pod's target port (a
named targetPort is resolved per pod by the EndpointSlice controller).
An endpoint whose `ready` condition is unset counts as ready, as
Kubernetes documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from kpy.api.networking import PATH_TYPE_EXACT

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from kpy.api.core.v1 import Secret, Service
    from kpy.api.discovery.v1 import EndpointSlice
    from kpy.api.networking.v1 import Ingress, IngressBackend

__all__ = [
    "Backend",
    "Certificate",
    "Endpoint",
    "Route",
    "RoutingTable",
    "build_table",
    "normalize_host",
    "path_matches",
]

SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
TLS_CERT_KEY: Final = "tls.crt"
TLS_PRIVATE_KEY: Final = "tls.key"


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str
    port: int


@dataclass(frozen=True, slots=True)
class Backend:
    """A Service port and its ready endpoints at the time the table was built.
    `problem` says why there are none (for the 503 body and the log)."""

    namespace: str
    service: str
    port: str  # the Service port's number or name, as the Ingress wrote it
    endpoints: tuple[Endpoint, ...] = ()
    problem: str = ""

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.service}:{self.port}"


@dataclass(frozen=True, slots=True)
class Route:
    path: str  # without its trailing slash for Prefix; "" is the Prefix "/"
    exact: bool
    backend: Backend
    #: the Ingress that wrote it ("namespace/name"), for logs
    source: str = ""

    def matches(self, request_path: str) -> bool:
        return path_matches(self.path, self.exact, request_path)


@dataclass(frozen=True, slots=True)
class Certificate:
    """A TLS Secret's PEM certificate chain and key."""

    secret: str  # "namespace/name"
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """Routes by host, frozen; `route(host, path)` never blocks or raises."""

    exact_hosts: Mapping[str, tuple[Route, ...]] = field(default_factory=dict)
    wildcard_hosts: Mapping[str, tuple[Route, ...]] = field(default_factory=dict)
    any_host: tuple[Route, ...] = ()
    default_backend: Backend | None = None
    #: SNI host (exact or `*.suffix`) -> certificate
    certificates: Mapping[str, Certificate] = field(default_factory=dict)
    #: "namespace/name" of every Ingress this table serves
    ingresses: tuple[str, ...] = ()

    def route(self, host: str, path: str) -> Backend | None:
        """The backend for a request to `host` (as in the Host header) and
        `path` (the request target; its query is ignored), or None (404)."""
        host = normalize_host(host)
        path = path.split("?", 1)[0].split("#", 1)[0] or "/"
        for routes in self._groups(host):
            best = _best(routes, path)
            if best is not None:
                return best.backend
        return self.default_backend

    def certificate(self, server_name: str) -> Certificate | None:
        """The certificate for a TLS client hello naming `server_name`."""
        host = normalize_host(server_name)
        found = self.certificates.get(host)
        if found is None and "." in host:
            found = self.certificates.get("*." + host.split(".", 1)[1])
        return found

    def _groups(self, host: str) -> Iterable[tuple[Route, ...]]:
        if host in self.exact_hosts:
            yield self.exact_hosts[host]
        if "." in host:
            wildcard = self.wildcard_hosts.get("*." + host.split(".", 1)[1])
            if wildcard is not None:
                yield wildcard
        yield self.any_host


def normalize_host(host: str) -> str:
    """`Foo.Example:8080` -> `foo.example`; IPv6 literals keep their brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def path_matches(rule_path: str, exact: bool, request_path: str) -> bool:
    """Whether a rule's path matches a request's: see the module docstring.
    For Prefix, `rule_path` has its trailing slash removed ("" is "/")."""
    if exact:
        return request_path == rule_path
    if not rule_path:
        return True
    return request_path == rule_path or request_path.startswith(rule_path + "/")


def _best(routes: Iterable[Route], path: str) -> Route | None:
    matching = [r for r in routes if r.matches(path)]
    # Longest path first; on a tie Exact before Prefix. Routes arrive oldest
    # Ingress first and max() keeps the first of equals.
    return max(matching, key=lambda r: (len(r.path), r.exact), default=None)


def build_table(
    ingresses: Iterable[Ingress],
    services: Iterable[Service],
    slices: Iterable[EndpointSlice],
    secrets: Iterable[Secret],
) -> RoutingTable:
    """The table for `ingresses` (already filtered to this controller's class)."""
    ordered = sorted(
        ingresses,
        key=lambda i: (
            i.metadata.creation_timestamp.ToNanoseconds(),
            i.metadata.namespace,
            i.metadata.name,
        ),
    )
    resolve = _Resolver(services, slices)
    secret_by_key = {f"{s.metadata.namespace}/{s.metadata.name}": s for s in secrets}
    exact: dict[str, list[Route]] = {}
    wildcard: dict[str, list[Route]] = {}
    any_host: list[Route] = []
    seen: set[tuple[str, str, bool]] = set()
    default: Backend | None = None
    certificates: dict[str, Certificate] = {}
    for ing in ordered:
        ns, source = ing.metadata.namespace, f"{ing.metadata.namespace}/{ing.metadata.name}"
        if default is None and ing.spec.HasField("default_backend"):
            default = resolve.backend(ns, ing.spec.default_backend)
        for rule in ing.spec.rules:
            host = normalize_host(rule.host) if rule.host else ""
            target = any_host
            if host.startswith("*."):
                target = wildcard.setdefault(host, [])
            elif host:
                target = exact.setdefault(host, [])
            for p in rule.http.paths:
                is_exact = p.path_type == PATH_TYPE_EXACT
                path = p.path if is_exact else p.path.rstrip("/")
                if (host, path, is_exact) in seen:
                    continue  # an older Ingress holds this route
                seen.add((host, path, is_exact))
                target.append(Route(path, is_exact, resolve.backend(ns, p.backend), source))
        _add_certificates(ing, secret_by_key, certificates)
    return RoutingTable(
        exact_hosts={h: tuple(r) for h, r in exact.items()},
        wildcard_hosts={h: tuple(r) for h, r in wildcard.items()},
        any_host=tuple(any_host),
        default_backend=default,
        certificates=certificates,
        ingresses=tuple(f"{i.metadata.namespace}/{i.metadata.name}" for i in ordered),
    )


def _add_certificates(
    ing: Ingress, secrets: Mapping[str, Secret], out: dict[str, Certificate]
) -> None:
    """The TLS Secrets of `ing` by host; a `tls` entry without hosts covers
    the hosts of the Ingress's rules. Older Ingresses keep a host."""
    ns = ing.metadata.namespace
    for tls in ing.spec.tls:
        secret = secrets.get(f"{ns}/{tls.secret_name}") if tls.secret_name else None
        if secret is None:
            continue
        cert, key = secret.data.get(TLS_CERT_KEY), secret.data.get(TLS_PRIVATE_KEY)
        if not cert or not key:
            continue
        found = Certificate(f"{ns}/{tls.secret_name}", bytes(cert), bytes(key))
        hosts = list(tls.hosts) or [r.host for r in ing.spec.rules if r.host]
        for host in hosts:
            out.setdefault(normalize_host(host), found)


class _Resolver:
    """Service ports to ready endpoints, indexed once per table."""

    def __init__(self, services: Iterable[Service], slices: Iterable[EndpointSlice]) -> None:
        self._services = {(s.metadata.namespace, s.metadata.name): s for s in services}
        self._slices: dict[tuple[str, str], list[EndpointSlice]] = {}
        for sl in slices:
            owner = sl.metadata.labels.get(SERVICE_NAME_LABEL)
            if owner:
                self._slices.setdefault((sl.metadata.namespace, owner), []).append(sl)

    def backend(self, namespace: str, backend: IngressBackend) -> Backend:
        svc_ref = backend.service
        port_ref = svc_ref.port
        port = port_ref.name or str(port_ref.number)
        if not backend.HasField("service"):
            kind = backend.resource.kind
            return Backend(namespace, "", "", problem=f"resource backends ({kind}) are not served")
        svc = self._services.get((namespace, svc_ref.name))
        if svc is None:
            return Backend(
                namespace, svc_ref.name, port, problem=f'service "{svc_ref.name}" not found'
            )
        for sp in svc.spec.ports:
            if (port_ref.name and sp.name == port_ref.name) or (
                not port_ref.name and sp.port == port_ref.number
            ):
                endpoints = self._ready(namespace, svc_ref.name, sp.name, sp.protocol or "TCP")
                problem = "" if endpoints else "no ready endpoints"
                return Backend(namespace, svc_ref.name, port, endpoints, problem)
        return Backend(
            namespace, svc_ref.name, port, problem=f'service "{svc_ref.name}" has no port {port}'
        )

    def _ready(
        self, namespace: str, service: str, port_name: str, protocol: str
    ) -> tuple[Endpoint, ...]:
        found: dict[Endpoint, None] = {}  # ordered, without duplicates across slices
        for sl in self._slices.get((namespace, service), []):
            numbers = [
                p.port
                for p in sl.ports
                if p.name == port_name and (p.protocol or "TCP") == protocol and p.port
            ]
            if not numbers:
                continue
            for ep in sl.endpoints:
                cond = ep.conditions
                if cond.HasField("ready") and not cond.ready:
                    continue
                for address in ep.addresses:
                    found[Endpoint(address, numbers[0])] = None
        return tuple(found)

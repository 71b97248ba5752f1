"""Ingresses and IngressClasses as `kubectl describe` shows them (kubectl's
IngressDescriber and IngressClassDescriber), as rows for describe's
tabwriter (kpy.cli._printers.tabulate with padding 2).

Contracts:
- Pure: objects are read, never mutated; events are the caller's,
  appended after these rows.
- `ingress_rows(ing, endpoints)`: Name, Labels, Namespace, Address,
  Ingress Class, Default backend, TLS (`SECRET terminates HOSTS`), Rules
  (a Host / Path / Backends table, `*` for a rule without host, each
  backend as `service:port (endpoints)`), Annotations. `endpoints` maps a
  Service name of the Ingress's namespace to its ready `ip:port`s; a
  Service missing from it shows kubectl's `<error: endpoints "x" not found>`.
- `ingress_class_rows(ic)`: Name, Labels, Annotations, Controller,
  Parameters (Kind, Name, and APIGroup / Scope / Namespace when set).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kpy.cli import _describe_pod, _printers

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["Rows", "ingress_class_rows", "ingress_rows"]

Rows = list[list[str]]
_ind = _describe_pod.indent
NONE = _printers.NONE
_MAX_ENDPOINTS = 3  # kubectl shows a few and "+ N more..."


def _endpoints(name: str, endpoints: Mapping[str, Sequence[str]]) -> str:
    found = endpoints.get(name)
    if found is None:
        return f'<error: endpoints "{name}" not found>'
    if not found:
        return NONE
    shown = ",".join(found[:_MAX_ENDPOINTS])
    more = len(found) - _MAX_ENDPOINTS
    return shown + (f" + {more} more..." if more > 0 else "")


def _backend(backend: Any, endpoints: Mapping[str, Sequence[str]]) -> str:
    if backend.HasField("resource"):
        r = backend.resource
        group = f"APIGroup: {r.api_group}, " if r.api_group else ""
        return f"{group}Kind: {r.kind}, Name: {r.name}"
    svc = backend.service
    port = svc.port.name or str(svc.port.number)
    return f"{svc.name}:{port} ({_endpoints(svc.name, endpoints)})"


def _rules(ing: Any, endpoints: Mapping[str, Sequence[str]]) -> Rows:
    rows: Rows = [
        ["Rules:"],
        [_ind(1, "Host"), "Path", "Backends"],
        [_ind(1, "----"), "----", "--------"],
    ]
    if not ing.spec.rules:
        backend = "<default>"
        if ing.spec.HasField("default_backend"):
            backend = _backend(ing.spec.default_backend, endpoints)
        rows.append([_ind(1, "*"), "*", backend])
        return rows
    # kubectl's tabwriter lines: `host\t` then `\tpath \tbackend` per path.
    for rule in ing.spec.rules:
        rows.append([_ind(1, rule.host or "*"), ""])
        for p in rule.http.paths:
            rows.append([_ind(2, ""), (p.path or "/") + " ", _backend(p.backend, endpoints)])
    return rows


def ingress_rows(ing: Any, endpoints: Mapping[str, Sequence[str]]) -> Rows:
    """An Ingress's description up to its events (see the module docstring)."""
    meta, spec = ing.metadata, ing.spec
    lb = ing.status.load_balancer.ingress
    default = "<default>"
    if spec.HasField("default_backend"):
        default = _backend(spec.default_backend, endpoints)
    rows: Rows = [
        ["Name:", meta.name],
        *_describe_pod.labels_rows("Labels:", dict(meta.labels), "="),
        ["Namespace:", meta.namespace],
        ["Address:", ",".join(e.ip or e.hostname for e in lb if e.ip or e.hostname)],
        ["Ingress Class:", spec.ingress_class_name or NONE],
        ["Default backend:", default],
    ]
    if spec.tls:
        rows.append(["TLS:"])
        for tls in spec.tls:
            secret = tls.secret_name or "SNI routes"
            rows.append([_ind(1, f"{secret} terminates {','.join(tls.hosts)}")])
    rows += _rules(ing, endpoints)
    rows += _describe_pod.annotations_rows("Annotations:", dict(meta.annotations))
    return rows


def ingress_class_rows(ic: Any) -> Rows:
    """An IngressClass's description up to its events (see the module docstring)."""
    meta, spec = ic.metadata, ic.spec
    rows: Rows = [
        ["Name:", meta.name],
        *_describe_pod.labels_rows("Labels:", dict(meta.labels), "="),
        *_describe_pod.annotations_rows("Annotations:", dict(meta.annotations)),
        ["Controller:", spec.controller],
    ]
    if spec.HasField("parameters"):
        p = spec.parameters
        rows.append(["Parameters:"])
        if p.api_group:
            rows.append([_ind(1, "APIGroup:"), p.api_group])
        rows += [[_ind(1, "Kind:"), p.kind], [_ind(1, "Name:"), p.name]]
        if p.scope:
            rows.append([_ind(1, "Scope:"), p.scope])
        if p.namespace:
            rows.append([_ind(1, "Namespace:"), p.namespace])
    return rows

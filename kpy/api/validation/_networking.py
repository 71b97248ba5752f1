"""Validation of networking.k8s.io/v1: Ingress and IngressClass.

As Kubernetes' pkg/apis/networking/validation: an Ingress has rules or a
defaultBackend; a host is a DNS-1123 subdomain, or a wildcard one
(`*.foo.com`), never an IP address; every path has a pathType (there is no
default), and Exact and Prefix paths are absolute and clean; a backend is a
Service (name and exactly one of port name and number) or a resource, not
both; TLS hosts follow the host rules; an IngressClass names its controller
as a domain-prefixed path, which never changes.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from kpy.api import names
from kpy.api.networking import PATH_TYPE_IMPLEMENTATION_SPECIFIC, PATH_TYPES
from kpy.api.validation._field import (
    Errors,
    each,
    forbidden,
    immutable,
    invalid,
    not_supported,
    one_of,
    required,
    too_long,
)
from kpy.api.validation._registry import update_validators, validators

#: Path fragments Kubernetes refuses in Exact and Prefix paths.
_INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_PATH_SUFFIXES = ("/..", "/.")
_MAX_CONTROLLER_LEN = 250
_PARAMETER_SCOPES = ("Cluster", "Namespace")


@validators("Ingress")
def _validate_ingress(ing: Any) -> Errors:
    spec = ing.spec
    errs: Errors = []
    if not spec.rules and not spec.HasField("default_backend"):
        errs.append(invalid("spec", "", "either `defaultBackend` or `rules` must be specified"))
    if spec.HasField("ingress_class_name"):
        errs += each(
            "spec.ingressClassName",
            spec.ingress_class_name,
            names.is_dns1123_subdomain(spec.ingress_class_name),
        )
    if spec.HasField("default_backend"):
        errs += _backend(spec.default_backend, "spec.defaultBackend")
    for i, tls in enumerate(spec.tls):
        for j, host in enumerate(tls.hosts):
            errs += _host(host, f"spec.tls[{i}].hosts[{j}]")
        if tls.secret_name:
            errs += each(
                f"spec.tls[{i}].secretName",
                tls.secret_name,
                names.is_dns1123_subdomain(tls.secret_name),
            )
    for i, rule in enumerate(spec.rules):
        errs += _rule(rule, f"spec.rules[{i}]")
    return errs


def _host(host: str, path: str) -> Errors:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [invalid(path, host, "must be a DNS name, not an IP address")]
    if "*" in host:
        return each(path, host, names.is_wildcard_dns1123_subdomain(host))
    return each(path, host, names.is_dns1123_subdomain(host))


def _rule(rule: Any, path: str) -> Errors:
    errs: Errors = []
    if rule.host:
        errs += _host(rule.host, f"{path}.host")
    if rule.HasField("http"):
        if not rule.http.paths:
            errs.append(required(f"{path}.http.paths"))
        for i, p in enumerate(rule.http.paths):
            errs += _http_path(p, f"{path}.http.paths[{i}]")
    return errs


def _http_path(p: Any, path: str) -> Errors:
    errs: Errors = []
    if not p.HasField("path_type"):
        errs.append(required(f"{path}.pathType", "pathType must be specified"))
    elif p.path_type not in PATH_TYPES:
        errs.append(not_supported(f"{path}.pathType", p.path_type, PATH_TYPES))
    elif p.path_type == PATH_TYPE_IMPLEMENTATION_SPECIFIC:
        if p.path and not p.path.startswith("/"):
            errs.append(invalid(f"{path}.path", p.path, "must be an absolute path"))
    else:
        errs += _clean_absolute_path(p.path, f"{path}.path")
    if not p.HasField("backend"):
        errs.append(required(f"{path}.backend"))
    else:
        errs += _backend(p.backend, f"{path}.backend")
    return errs


def _clean_absolute_path(value: str, path: str) -> Errors:
    if not value.startswith("/"):
        return [invalid(path, value, "must be an absolute path")]
    errs: Errors = []
    for seq in _INVALID_PATH_SEQUENCES:
        if seq in value:
            errs.append(invalid(path, value, f"must not contain '{seq}'"))
    for suffix in _INVALID_PATH_SUFFIXES:
        if value.endswith(suffix):
            errs.append(invalid(path, value, f"cannot end with '{suffix}'"))
    return errs


def _backend(backend: Any, path: str) -> Errors:
    has_service = backend.HasField("service")
    has_resource = backend.HasField("resource")
    if has_service and has_resource:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if has_resource:
        errs: Errors = []
        if not backend.resource.kind:
            errs.append(required(f"{path}.resource.kind"))
        if not backend.resource.name:
            errs.append(required(f"{path}.resource.name"))
        return errs
    if not has_service:
        return [invalid(path, "", "one backend must be specified")]
    return _service_backend(backend.service, f"{path}.service")


def _service_backend(svc: Any, path: str) -> Errors:
    errs: Errors = []
    if not svc.name:
        errs.append(required(f"{path}.name"))
    else:
        errs += each(f"{path}.name", svc.name, names.is_dns1035_label(svc.name))
    port = svc.port
    has_name, has_number = bool(port.name), port.HasField("number")
    if has_name and has_number:
        errs.append(invalid(f"{path}.port", "", "cannot set both port name & port number"))
    elif has_name:
        errs += each(f"{path}.port.name", port.name, names.is_valid_port_name(port.name))
    elif has_number:
        errs += each(f"{path}.port.number", port.number, names.is_valid_port_num(port.number))
    else:
        errs.append(required(f"{path}.port", "port name or number is required"))
    return errs


@validators("IngressClass")
def _validate_ingress_class(ic: Any) -> Errors:
    spec = ic.spec
    errs: Errors = []
    if not spec.controller:
        errs.append(required("spec.controller"))
    elif len(spec.controller) > _MAX_CONTROLLER_LEN:
        errs.append(too_long("spec.controller", _MAX_CONTROLLER_LEN))
    else:
        errs += each(
            "spec.controller", spec.controller, names.is_domain_prefixed_path(spec.controller)
        )
    if spec.HasField("parameters"):
        errs += _parameters(spec.parameters, "spec.parameters")
    return errs


def _parameters(params: Any, path: str) -> Errors:
    errs: Errors = []
    if not params.kind:
        errs.append(required(f"{path}.kind"))
    if not params.name:
        errs.append(required(f"{path}.name"))
    scope = params.scope or "Cluster"
    if params.HasField("scope"):
        errs += one_of(f"{path}.scope", params.scope, _PARAMETER_SCOPES)
    if scope == "Namespace" and not params.namespace:
        errs.append(required(f"{path}.namespace", "`parameters.scope` is set to 'Namespace'"))
    if scope == "Cluster" and params.namespace:
        errs.append(forbidden(f"{path}.namespace", "`parameters.scope` is set to 'Cluster'"))
    return errs


@update_validators("IngressClass")
def _validate_ingress_class_update(new: Any, old: Any) -> Errors:
    """Ingresses were admitted to the controller the class named: it may not change."""
    if new.spec.controller != old.spec.controller:
        return [immutable("spec.controller")]
    return []

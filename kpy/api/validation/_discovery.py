"""Validation of EndpointSlice (discovery.k8s.io/v1), as Kubernetes'
ValidateEndpointSlice: an address type from the list (immutable), at most
1000 endpoints of 1 to 100 addresses each, valid for the address type, and
at most 100 uniquely named ports."""

from __future__ import annotations

import ipaddress
from typing import Any, Final

from kpy.api import names
from kpy.api.validation._field import (
    Errors,
    duplicate,
    each,
    immutable,
    invalid,
    one_of,
    required,
    too_long,
)
from kpy.api.validation._registry import update_validators, validators

ADDRESS_TYPES: Final = ("IPv4", "IPv6", "FQDN")
PROTOCOLS: Final = ("TCP", "UDP", "SCTP")
MAX_ENDPOINTS: Final = 1000
MAX_ADDRESSES: Final = 100
MAX_PORTS: Final = 100


@validators("EndpointSlice")
def _validate_endpoint_slice(slice_: Any) -> Errors:
    if not slice_.address_type:
        return [required("addressType")]
    errs = one_of("addressType", slice_.address_type, ADDRESS_TYPES)
    if len(slice_.endpoints) > MAX_ENDPOINTS:
        errs.append(too_long("endpoints", MAX_ENDPOINTS))
    for i, endpoint in enumerate(slice_.endpoints):
        errs += _endpoint(endpoint, f"endpoints[{i}]", slice_.address_type)
    if len(slice_.ports) > MAX_PORTS:
        errs.append(too_long("ports", MAX_PORTS))
    seen: set[str] = set()
    for i, port in enumerate(slice_.ports):
        path = f"ports[{i}]"
        if port.name:
            errs += each(f"{path}.name", port.name, names.is_dns1123_label(port.name))
        if port.name in seen:
            errs.append(duplicate(f"{path}.name", port.name))
        seen.add(port.name)
        if port.HasField("port"):
            errs += each(f"{path}.port", port.port, names.is_valid_port_num(port.port))
        if port.protocol:
            errs += one_of(f"{path}.protocol", port.protocol, PROTOCOLS)
    return errs


def _endpoint(endpoint: Any, path: str, address_type: str) -> Errors:
    errs: Errors = []
    if not endpoint.addresses:
        errs.append(required(f"{path}.addresses", "must contain at least 1 address"))
    elif len(endpoint.addresses) > MAX_ADDRESSES:
        errs.append(too_long(f"{path}.addresses", MAX_ADDRESSES))
    for j, address in enumerate(endpoint.addresses):
        errs += _address(address, f"{path}.addresses[{j}]", address_type)
    if endpoint.hostname:
        errs += each(
            f"{path}.hostname", endpoint.hostname, names.is_dns1123_label(endpoint.hostname)
        )
    if endpoint.node_name:
        errs += each(
            f"{path}.nodeName", endpoint.node_name, names.is_dns1123_subdomain(endpoint.node_name)
        )
    return errs


def _address(address: str, path: str, address_type: str) -> Errors:
    if address_type == "FQDN":
        return each(path, address, names.is_dns1123_subdomain(address))
    version = 4 if address_type == "IPv4" else 6
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return [invalid(path, address, f"must be a valid {address_type} address")]
    if ip.version != version:
        return [invalid(path, address, f"must be a valid {address_type} address")]
    return []


@update_validators("EndpointSlice")
def _validate_endpoint_slice_update(new: Any, old: Any) -> Errors:
    if old.address_type and new.address_type != old.address_type:
        return [immutable("addressType")]
    return []

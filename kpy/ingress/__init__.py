"""kpy-ingress: kpy's ingress controller (controller name `kpy.io/ingress`).

It routes HTTP and HTTPS by host and path to the ready endpoints of
Services, as the Ingresses of its IngressClasses say. Three parts, each in
its own module: the routing table (`_routes`, pure: built from objects,
swapped whole), the reverse proxy (`_proxy`, anyio streams, TLS by SNI) and
the controller (`_controller`, informers that rebuild the table and write
each Ingress's status address). `main` is the process, `process` runs it as
a child.
"""

from __future__ import annotations

from kpy.ingress._controller import CONTROLLER_NAME, IngressController, StatusAddress, serves
from kpy.ingress._proxy import IngressProxy, ProxyOptions
from kpy.ingress._routes import Backend, Certificate, Endpoint, RoutingTable, build_table

__all__ = [
    "CONTROLLER_NAME",
    "Backend",
    "Certificate",
    "Endpoint",
    "IngressController",
    "IngressProxy",
    "ProxyOptions",
    "RoutingTable",
    "StatusAddress",
    "build_table",
    "serves",
]

"""`kpyctl expose TYPE NAME | TYPE/NAME --port=P [flags]`: kubectl's expose,
which creates a Service for a deployment, replica set, replication
controller, pod or service.

Contracts, as kubectl keeps them:
- The object must exist; other kinds are refused (`cannot expose a
  StatefulSet.apps`).
- The selector is `--selector`, else the object's: a deployment's or
  replica set's `spec.selector.matchLabels` (matchExpressions cannot be
  turned into a Service's map selector and are refused), a replication
  controller's or service's `spec.selector`, a pod's labels.
- The port is `--port`, else the object's ports (the containers' declared
  ports, a service's ports): none is an error, several give one service
  port each, named `port-1`, `port-2`, ...; `--target-port` (a number or a
  port name) applies to every port, and defaults to the port itself. The
  protocol is `--protocol`, else the one the container declares for that
  port, else TCP.
- The Service is named after the object (`--name` to choose), carries the
  object's labels (`--labels` to choose) and prints `service/NAME exposed`;
  `--dry-run=client` builds and prints it without storing it,
  `--dry-run=server` has it checked and not stored; `-o yaml|json|name`
  prints the object instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TextIO

from kpy.api import codec
from kpy.api.core.v1 import Service
from kpy.api.labels import convert_selector_to_labels_map
from kpy.cli import _client
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from kpy.api.scheme import ResourceInfo
    from kpy.client import Client

__all__ = ["ExposeOptions", "add_parser", "refuse_unexposable", "service_for"]

#: The kinds kubectl expose accepts.
EXPOSABLE: Final = frozenset(
    {"Pod", "Service", "ReplicationController", "Deployment", "ReplicaSet"}
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "expose",
        help="expose a deployment, replica set, replication controller, pod or service "
        "as a new Service",
        usage="kpyctl expose (TYPE NAME | TYPE/NAME) [--port=PORT] [--target-port=PORT] [flags]",
    )
    p.add_argument("target", nargs="+", metavar="TYPE/NAME | TYPE NAME")
    p.add_argument("--port", default="", help="the port the service serves (default: introspected)")
    p.add_argument(
        "--target-port", default="", help="the container port (number or name) traffic goes to"
    )
    p.add_argument("--name", default="", help="the service's name (the object's if unset)")
    p.add_argument(
        "--type",
        default="",
        choices=["", "ClusterIP", "NodePort", "LoadBalancer"],
        help="the service type (ClusterIP if unset)",
    )
    p.add_argument("--protocol", default="", help="TCP, UDP or SCTP (the container's, else TCP)")
    p.add_argument(
        "--selector", "-l", default="", help="k=v,... pods to route to (the object's if unset)"
    )
    p.add_argument("--labels", default="", help="k=v,... the service's labels (the object's)")
    p.add_argument("--cluster-ip", default="", help="the cluster IP to ask for, or None (headless)")
    p.add_argument("--dry-run", choices=["none", "client", "server"], default="none")
    p.add_argument("-o", "--output", choices=["yaml", "json", "name"], default=None)
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _expose))


@dataclass(frozen=True)
class ExposeOptions:
    """The flags that shape the Service (empty: derived from the object)."""

    port: str = ""
    target_port: str = ""
    name: str = ""
    type: str = ""
    protocol: str = ""
    selector: str = ""
    labels: str = ""
    cluster_ip: str = ""


def refuse_unexposable(info: ResourceInfo) -> None:
    """UsageError, in kubectl's words, for a kind expose does not take."""
    if info.kind not in EXPOSABLE:
        group = f".{info.group}" if info.group else ""
        raise UsageError(
            f"cannot expose a {info.kind}{group}: only deployments, replica sets, "
            "replication controllers, pods and services can be exposed"
        )


def service_for(info: ResourceInfo, obj: Any, options: ExposeOptions) -> Service:
    """The Service kubectl expose builds for `obj` (of kind `info`);
    UsageError in kubectl's words when the kind cannot be exposed or the
    selector or port cannot be found."""
    refuse_unexposable(info)
    kind = info.kind
    selector = _map(options.selector, "--selector") if options.selector else _selector(kind, obj)
    ports = [options.port] if options.port else _ports(kind, obj)
    if not ports and options.cluster_ip != "None":
        raise UsageError("couldn't find port via --port flag or introspection")
    protocols = _protocols(kind, obj)
    service_ports: list[dict[str, Any]] = []
    for i, text in enumerate(ports):
        number = _port_number(text, "--port")
        port: dict[str, Any] = {
            "port": number,
            "protocol": options.protocol or protocols.get(number, "TCP"),
            "targetPort": _target(options.target_port) if options.target_port else number,
        }
        if len(ports) > 1:
            port["name"] = f"port-{i + 1}"
        service_ports.append(port)
    labels = _map(options.labels, "--labels") if options.labels else dict(obj.metadata.labels)
    spec: dict[str, Any] = {"selector": selector, "ports": service_ports}
    if options.type:
        spec["type"] = options.type
    if options.cluster_ip:
        spec["clusterIP"] = options.cluster_ip
    body = {"metadata": {"name": options.name or obj.metadata.name, "labels": labels}, "spec": spec}
    made: Service = codec.from_dict(Service, body)
    return made


def _selector(kind: str, obj: Any) -> dict[str, str]:
    if kind == "Pod":
        if not obj.metadata.labels:
            raise UsageError("the pod has no labels and cannot be exposed")
        return dict(obj.metadata.labels)
    if kind == "Service":
        if not obj.spec.selector:
            raise UsageError("the service has no pod selector set")
        return dict(obj.spec.selector)
    if kind == "ReplicationController":
        selector = obj.spec.selector or obj.spec.template.metadata.labels
        return dict(selector)
    singular = kind.lower()
    if not obj.spec.HasField("selector"):
        raise UsageError(f"invalid {singular}: no selectors, therefore cannot be exposed")
    selector = obj.spec.selector
    if selector.match_expressions:
        shown = "; ".join(
            f"{e.key} {e.operator} [{', '.join(e.values)}]".replace(" []", "")
            for e in selector.match_expressions
        )
        raise UsageError(
            f'couldn\'t convert expressions - "{shown}" to map-based selector format; '
            "give the service's selector with --selector"
        )
    if not selector.match_labels:
        raise UsageError(f"invalid {singular}: no selectors, therefore cannot be exposed")
    return dict(selector.match_labels)


def _containers(kind: str, obj: Any) -> Sequence[Any]:
    if kind == "Pod":
        return list(obj.spec.containers)
    if kind == "Service":
        return []
    return list(obj.spec.template.spec.containers)


def _ports(kind: str, obj: Any) -> list[str]:
    """The ports kubectl introspects, in order, without repeats."""
    if kind == "Service":
        found = [p.port for p in obj.spec.ports]
    else:
        found = [p.container_port for c in _containers(kind, obj) for p in c.ports]
    return [str(p) for p in dict.fromkeys(found)]


def _protocols(kind: str, obj: Any) -> dict[int, str]:
    if kind == "Service":
        return {p.port: p.protocol for p in obj.spec.ports if p.protocol}
    return {
        p.container_port: p.protocol for c in _containers(kind, obj) for p in c.ports if p.protocol
    }


def _port_number(text: str, flag: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise UsageError(f"{flag} must be a port number, got {text!r}") from None
    if not 1 <= number <= 65535:
        raise UsageError(f"{flag} must be between 1 and 65535, got {number}")
    return number


def _target(text: str) -> int | str:
    """--target-port: a number, or the name of a container port."""
    return _port_number(text, "--target-port") if text.isdigit() else text


def _map(text: str, flag: str) -> dict[str, str]:
    try:
        return convert_selector_to_labels_map(text)
    except ValueError as e:
        raise UsageError(f"{flag}: {e}") from None


async def _expose(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    info, name = _client.object_target(args.target)
    ns = _client.namespace_of(client, args)
    refuse_unexposable(info)
    obj: Any = await client.get(info.message, name, namespace=ns)
    options = ExposeOptions(
        port=args.port,
        target_port=args.target_port,
        name=args.name,
        type=args.type,
        protocol=args.protocol,
        selector=args.selector,
        labels=args.labels,
        cluster_ip=args.cluster_ip,
    )
    service = service_for(info, obj, options)
    service.metadata.namespace = ns
    if args.dry_run == "client":
        _print(service, args.output, " (dry run)", out)
        return 0
    made = await client.create(service, namespace=ns, dry_run=args.dry_run == "server")
    _print(made, args.output, " (server dry run)" if args.dry_run == "server" else "", out)
    return 0


def _print(service: Service, output: str | None, suffix: str, out: TextIO) -> None:
    if output == "yaml":
        out.write(codec.dump_yaml([service]))
    elif output == "json":
        out.write(json.dumps(codec.encode_object(service), indent=4) + "\n")
    elif output == "name":
        out.write(f"service/{service.metadata.name}\n")
    else:
        out.write(f"service/{service.metadata.name} exposed{suffix}\n")

"""`kpyctl autoscale TYPE/NAME --max N [--min M] [--cpu-percent P]`:
kubectl's autoscale, which creates a HorizontalPodAutoscaler
(autoscaling/v2) for a Deployment, ReplicaSet, StatefulSet or
ReplicationController.

Contracts, as kubectl keeps them:
- The object is named `TYPE/NAME` or `TYPE NAME` and must exist; a kind
  without a scale subresource is refused ("cannot autoscale a Pod").
- `--max` is required and at least 1, and at least `--min`; without
  `--min` the server's default (1) applies; without `--cpu-percent` the
  server's default target (80% CPU) does.
- The HPA is named after the object (`--name` to choose) and prints
  `horizontalpodautoscaler.autoscaling/web autoscaled`; `--dry-run=client`
  only builds and prints it, `--dry-run=server` has it checked and not
  stored; `-o yaml|json|name` prints the object instead.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Final, TextIO

from kpy.api import codec
from kpy.api.autoscaling.v2 import HorizontalPodAutoscaler
from kpy.cli import _client
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    import argparse

    from kpy.api.scheme import ResourceInfo
    from kpy.client import Client

__all__ = ["add_parser", "autoscaler_for"]

#: The kinds with a scale subresource that kubectl autoscale accepts.
SCALABLE: Final = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"})


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "autoscale", help="create a horizontal pod autoscaler for a deployment or similar"
    )
    p.add_argument("target", nargs="+", metavar="TYPE/NAME | TYPE NAME")
    p.add_argument("--max", type=int, default=-1, help="the most pods the autoscaler may run")
    p.add_argument("--min", type=int, default=-1, help="the fewest pods (the server's 1 if unset)")
    p.add_argument(
        "--cpu-percent",
        type=int,
        default=-1,
        help="the average CPU use to aim for, in percent of the pods' requests (80 if unset)",
    )
    p.add_argument("--name", default="", help="the autoscaler's name (the object's if unset)")
    p.add_argument("--dry-run", choices=["none", "client", "server"], default="none")
    p.add_argument("-o", "--output", choices=["yaml", "json", "name"], default=None)
    _client.add_flags(p)
    p.set_defaults(run=_run)


def autoscaler_for(
    info: ResourceInfo,
    name: str,
    *,
    max_replicas: int,
    min_replicas: int = -1,
    cpu_percent: int = -1,
    hpa_name: str = "",
) -> HorizontalPodAutoscaler:
    """The HPA kubectl autoscale builds; UsageError for a kind that does not
    scale or bounds that cannot hold."""
    if info.kind not in SCALABLE:
        raise UsageError(
            f"cannot autoscale a {info.kind}: only Deployments, ReplicaSets,"
            " StatefulSets and ReplicationControllers have a scale subresource"
        )
    if max_replicas < 1:
        raise UsageError(f"--max=MAXPODS is required and must be at least 1, max: {max_replicas}")
    if max_replicas < min_replicas:
        raise UsageError(
            "--max=MAXPODS must be larger or equal to --min=MINPODS,"
            f" max: {max_replicas}, min: {min_replicas}"
        )
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": info.api_version, "kind": info.kind, "name": name},
        "maxReplicas": max_replicas,
    }
    if min_replicas >= 0:
        spec["minReplicas"] = min_replicas
    if cpu_percent >= 0:
        target = {"type": "Utilization", "averageUtilization": cpu_percent}
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]
    made: HorizontalPodAutoscaler = codec.from_dict(
        HorizontalPodAutoscaler, {"metadata": {"name": hpa_name or name}, "spec": spec}
    )
    return made


def _run(args: argparse.Namespace) -> int:
    try:
        info, name = _client.object_target(args.target)
        hpa = autoscaler_for(
            info,
            name,
            max_replicas=args.max,
            min_replicas=args.min,
            cpu_percent=args.cpu_percent,
            hpa_name=args.name,
        )
    except UsageError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    if args.dry_run == "client":
        if args.namespace:
            hpa.metadata.namespace = args.namespace
        _print(hpa, args.output, " (dry run)", sys.stdout)
        return 0

    async def autoscale(client: Client, a: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        ns = _client.namespace_of(client, a)
        await client.get(info.message, name, namespace=ns)  # the target must exist
        made = await client.create(hpa, namespace=ns, dry_run=a.dry_run == "server")
        _print(made, a.output, " (server dry run)" if a.dry_run == "server" else "", out)
        return 0

    return _client.run(args, autoscale)


def _print(hpa: HorizontalPodAutoscaler, output: str | None, suffix: str, out: TextIO) -> None:
    if output == "yaml":
        out.write(codec.dump_yaml([hpa]))
    elif output == "json":
        out.write(json.dumps(codec.encode_object(hpa), indent=4) + "\n")
    elif output == "name":
        out.write(f"horizontalpodautoscaler.autoscaling/{hpa.metadata.name}\n")
    else:
        out.write(f"horizontalpodautoscaler.autoscaling/{hpa.metadata.name} autoscaled{suffix}\n")

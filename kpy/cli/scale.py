"""`kpyctl scale TYPE/NAME --replicas N [--current-replicas M]`: kubectl's
scale, through the scale subresource of whatever has one (Deployments,
ReplicaSets, StatefulSets, ReplicationControllers).

The object is named `TYPE/NAME` or `TYPE NAME`. `--current-replicas` is a
precondition: the size is only changed if it is that now (Conflict
otherwise). Prints kubectl's `deployment.apps/web scaled`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from kpy.api import errors
from kpy.cli import _client
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    import argparse

    from kpy.client import Client

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("scale", help="set a new size for a deployment, replica set or stateful set")
    p.add_argument("target", nargs="+", metavar="TYPE/NAME | TYPE NAME")
    p.add_argument("--replicas", type=int, required=True, help="the new number of replicas")
    p.add_argument(
        "--current-replicas",
        type=int,
        default=None,
        help="only scale if the current size is this (a precondition)",
    )
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _scale))


async def _scale(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    info, name = _client.object_target(args.target)
    if args.replicas < 0:
        raise UsageError("--replicas must be 0 or more")
    ns = _client.namespace_of(client, args)
    kind: Any = info.message
    scale = await client.get_scale(kind, name, namespace=ns)
    if args.current_replicas is not None and scale.spec.replicas != args.current_replicas:
        raise errors.Conflict(
            f"expected replicas to be {args.current_replicas}, was {scale.spec.replicas}",
            name=name,
        )
    scale.spec.replicas = args.replicas
    await client.update_scale(kind, scale, namespace=ns)
    out.write(f"{_client.ref(info, name)} scaled\n")
    return 0

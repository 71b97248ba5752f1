"""`kpyctl taint nodes NAME KEY[=VALUE]:EFFECT... KEY[:EFFECT]-... [--overwrite]`:
kubectl's taint.

The node's taint list is changed by a compare-and-swap update (read,
change, write with the read's resourceVersion; again on Conflict), so a
concurrent writer's taints are never lost. A taint with the same key and
effect is only replaced with `--overwrite`; removing one that is not there
is NotFound. Prints kubectl's `node/n1 tainted` (or `untainted`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from kpy.api import errors
from kpy.api.core.v1 import Node, Taint
from kpy.api.scheme import scheme
from kpy.cli import _client
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    import argparse

    from kpy.client import Client

__all__ = ["add_parser", "parse_taint"]

_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("taint", help="update the taints of a node")
    p.add_argument("kind", metavar="nodes")
    p.add_argument("node")
    p.add_argument("taints", nargs="+", metavar="KEY[=VALUE]:EFFECT | KEY[:EFFECT]-")
    p.add_argument("--overwrite", action="store_true")
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _taint))


def parse_taint(word: str) -> tuple[str, str, str, bool]:
    """(key, value, effect, remove) of `key=value:Effect`, `key:Effect`,
    `key-` or `key:Effect-`; UsageError naming the problem."""
    remove = word.endswith("-")
    body = word[:-1] if remove else word
    spec, _, effect = body.partition(":")
    key, _, value = spec.partition("=")
    if not key:
        raise UsageError(f"invalid taint {word!r}: the key is empty")
    if effect and effect not in _EFFECTS:
        raise UsageError(f"invalid taint effect {effect!r}: use one of {', '.join(_EFFECTS)}")
    if not remove and not effect:
        raise UsageError(f"invalid taint {word!r}: give KEY[=VALUE]:EFFECT, or KEY- to remove")
    return key, value, effect, remove


async def _taint(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if scheme.resolve(args.kind).kind != "Node":
        raise UsageError("taint works on nodes: kpyctl taint nodes NAME KEY=VALUE:EFFECT")
    wanted = [parse_taint(w) for w in args.taints]
    while True:
        node = await client.get(Node, args.node)
        taints = list(node.spec.taints)
        removed = False
        for key, value, effect, remove in wanted:
            same = [t for t in taints if t.key == key and (not effect or t.effect == effect)]
            if remove:
                if not same:
                    raise errors.NotFound(f"taint {key!r} not found", name=args.node)
                taints = [t for t in taints if t not in same]
                removed = True
                continue
            if same and not args.overwrite:
                raise UsageError(
                    f"node {args.node} already has {key} taint(s) with same effect(s) "
                    "and --overwrite is false"
                )
            taints = [t for t in taints if t not in same] + [
                Taint(key=key, value=value, effect=effect)
            ]
        del node.spec.taints[:]
        node.spec.taints.extend(taints)
        try:
            await client.update(node)
        except errors.Conflict:
            continue
        out.write(f"node/{args.node} {'untainted' if removed else 'tainted'}\n")
        return 0

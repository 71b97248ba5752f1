"""`kpyctl cordon NODE` and `kpyctl uncordon NODE`: mark a node
unschedulable, or schedulable again (its spec.unschedulable).

Both verbs live here: they set one field, one way or the other, and
`uncordon` is found under `cordon`'s name (kubectl keeps the two beside
`drain` in its drain command; kpy's drain.py is long enough, and cordons
through the same _cordon.py). Prints kubectl's `node/n1 cordoned`, or
`node/n1 already cordoned` when there was nothing to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from kpy.cli import _client
from kpy.cli._cordon import set_unschedulable

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable

    from kpy.client import Client

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds both `cordon` and `uncordon`."""
    for verb, value in (("cordon", True), ("uncordon", False)):
        p = sub.add_parser(verb, help=f"mark a node as {'un' if value else ''}schedulable")
        p.add_argument("node")
        _client.add_flags(p)
        p.set_defaults(run=lambda args, v=value: _client.run(args, _verb(v)))


def _verb(
    unschedulable: bool,
) -> Callable[[Client, argparse.Namespace, TextIO, TextIO], Awaitable[int]]:
    async def run(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        await set_unschedulable(client, args.node, unschedulable, out)
        return 0

    return run

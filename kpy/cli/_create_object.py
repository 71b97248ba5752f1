"""One object built from flags (`create namespace|configmap|secret`,
`run`), created as kubectl creates it: `configmap/NAME created`, or with
`--dry-run=client` only built and printed (`-o yaml|json|name` prints the
object itself, as users pipe it into a file), or with `--dry-run=server`
checked by the server and not stored."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from kpy.api import codec
from kpy.api.scheme import scheme
from kpy.cli import _client

if TYPE_CHECKING:
    import argparse

    from google.protobuf.message import Message

    from kpy.client import Client

__all__ = ["create_object"]


def create_object(args: argparse.Namespace, body: dict[str, Any]) -> int:
    """Creates (or with --dry-run=client only prints) the object `body`."""
    obj = codec.decode_object(body)
    info = scheme.for_message(type(obj))
    if args.dry_run == "client":
        if info.namespaced and args.namespace:
            obj.metadata.namespace = args.namespace  # type: ignore[attr-defined]
        _print(obj, args.output, " (dry run)", sys.stdout)
        return 0

    async def create(client: Client, a: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        ns = _client.namespace_of(client, a) if info.namespaced else None
        made = await client.create(obj, namespace=ns, dry_run=a.dry_run == "server")
        _print(made, a.output, " (server dry run)" if a.dry_run == "server" else "", out)
        return 0

    return _client.run(args, create)


def _print(obj: Message, output: str | None, suffix: str, out: TextIO) -> None:
    info = scheme.for_message(type(obj))
    name = _client.ref(info, obj.metadata.name)  # type: ignore[attr-defined]
    if output == "yaml":
        out.write(codec.dump_yaml([obj]))
    elif output == "json":
        out.write(json.dumps(codec.encode_object(obj), indent=4) + "\n")
    elif output == "name":
        out.write(name + "\n")
    else:
        out.write(f"{name} created{suffix}\n")

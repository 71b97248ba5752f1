"""`label` and `annotate`: one change to a map of an object's metadata,
made the way kubectl makes it.

    kpyctl label|annotate TYPE/NAME | TYPE NAME KEY=VALUE... KEY-... [--overwrite]

`KEY=VALUE` sets, `KEY-` removes. A key that already has another value is
only replaced with `--overwrite` (kubectl's `error: 'app' already has a
value (web), and --overwrite is false`). The change is one merge patch of
just those keys, so a concurrent writer's other keys are never lost; the
verb prints kubectl's `pod/web labeled`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from kpy.cli import _client
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    import argparse

    from kpy.client import Client

__all__ = ["add_metadata_parser", "parse_changes"]


def add_metadata_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], verb: str, field: str, done: str
) -> None:
    """Adds `verb`, which changes `metadata.<field>` and prints `done`."""
    p = sub.add_parser(verb, help=f"update the {field} of an object")
    p.add_argument("target", metavar="TYPE/NAME | TYPE NAME")
    p.add_argument("changes", nargs="+", metavar="KEY=VALUE | KEY-")
    p.add_argument("--overwrite", action="store_true", help=f"replace existing {field}")
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _metadata_verb(field, done)))


def parse_changes(words: list[str]) -> dict[str, str | None]:
    """`key=value` sets, `key-` removes (None); UsageError for anything else."""
    changes: dict[str, str | None] = {}
    for word in words:
        if word.endswith("-") and "=" not in word:
            changes[word[:-1]] = None
        elif "=" in word:
            key, _, value = word.partition("=")
            changes[key] = value
        else:
            raise UsageError(f"invalid change {word!r}: use KEY=VALUE to set, KEY- to remove")
    return changes


def _metadata_verb(field: str, done: str) -> Any:
    async def run(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        await _client.discover(client, _client.type_words([args.target]))
        if "/" in args.target:
            info, name = _client.slash_target(args.target)
        else:
            info, name = _client.resolve(args.target), ""
        if not name:
            if not args.changes or "=" in args.changes[0] or args.changes[0].endswith("-"):
                raise UsageError("name the object as TYPE/NAME or TYPE NAME")
            name, args.changes = args.changes[0], args.changes[1:]
        changes = parse_changes(args.changes)
        ns = _client.namespace_of(client, args) if info.namespaced else None
        live = await client.get(info.message, name, namespace=ns)
        current = getattr(live.metadata, field)  # type: ignore[attr-defined]
        for key, value in changes.items():
            if (
                value is not None
                and key in current
                and current[key] != value
                and not args.overwrite
            ):
                raise UsageError(
                    f"'{key}' already has a value ({current[key]}), and --overwrite is false"
                )
        patch = {"metadata": {field: changes}}
        await client.patch(info.message, name, patch, namespace=ns, patch_type="merge")
        out.write(f"{_client.ref(info, name)} {done}\n")
        return 0

    return run

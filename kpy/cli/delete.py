"""`kpyctl delete`: kubectl's delete.

    kpyctl delete TYPE NAME... | TYPE/NAME... | TYPE -l SELECTOR | TYPE --all | -f FILE

`--cascade=background` (default) lets the garbage collector remove
dependents after the object; `foreground` keeps the object (deleting)
until its blocking dependents are gone; `orphan` leaves them. `--grace-period`
overrides a pod's termination grace (0 with `--force` deletes at once).
Prints `pod "web-1" deleted` per object, as kubectl does; a missing object
is `Error from server (NotFound)` and exit 1, unless `--ignore-not-found`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from kpy.api import errors
from kpy.api.scheme import scheme
from kpy.cli import _client
from kpy.cli._manifests import Source, UsageError, load_objects, read_sources

if TYPE_CHECKING:
    import argparse

    from kpy.api.scheme import ResourceInfo
    from kpy.client import Client

_POLICIES = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan"}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("delete", help="delete resources by name, label selector, or file")
    p.add_argument("target", nargs="*", metavar="TYPE NAME... | TYPE/NAME...")
    p.add_argument("-f", "--filename", action="append", default=[], metavar="FILE")
    p.add_argument("-l", "--selector", default="", help="delete the objects with these labels")
    p.add_argument("--all", action="store_true", help="delete every object of the type")
    p.add_argument("--cascade", choices=sorted(_POLICIES), default="background")
    p.add_argument("--grace-period", type=int, default=None, metavar="SECONDS")
    p.add_argument("--force", action="store_true", help="with --grace-period=0: do not wait")
    p.add_argument("--ignore-not-found", action="store_true")
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _delete))


def _targets(
    args: argparse.Namespace, sources: list[Source]
) -> list[tuple[ResourceInfo, str, str | None]]:
    """(kind, name, namespace from a file or None) for each named object;
    [] when a selector or --all picks them."""
    if args.filename:
        if args.target:
            raise UsageError("give either -f FILE or TYPE NAME, not both")
        found = []
        for obj in load_objects(sources, verb="delete"):
            meta = obj.metadata  # type: ignore[attr-defined]
            found.append((scheme.for_message(type(obj)), meta.name, meta.namespace or None))
        return found
    if not args.target:
        raise UsageError("give TYPE NAME, TYPE/NAME, TYPE -l SELECTOR, TYPE --all or -f FILE")
    if all("/" in word for word in args.target):
        return [
            (_client.resolve(w.partition("/")[0]), w.partition("/")[2], None) for w in args.target
        ]
    info = _client.resolve(args.target[0])
    names = args.target[1:]
    if not names and not (args.selector or args.all):
        raise UsageError(f"give the names of the {info.plural} to delete, or -l SELECTOR, or --all")
    return [(info, name, None) for name in names]


async def _delete(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.grace_period == 0 and not args.force:
        raise UsageError("--grace-period=0 deletes at once only together with --force")
    ns = _client.namespace_of(client, args)
    policy = _POLICIES[args.cascade]
    sources = read_sources(args.filename) if args.filename else []
    if sources:
        await _client.discover_kinds(client, _client.manifest_kinds(s.text for s in sources))
    else:
        words = [w for w in args.target if "/" in w] + args.target[:1]
        await _client.discover(client, _client.type_words(words))
    targets = _targets(args, sources)
    if not targets:  # a selector or --all
        info = _client.resolve(args.target[0])
        kind: Any = info.message
        deleted: list[Any] = await client.delete_collection(
            kind,
            namespace=ns if info.namespaced else None,
            label_selector=args.selector,
            grace_period_seconds=args.grace_period,
            propagation_policy=policy,
        )
        for obj in deleted:
            out.write(f'{info.singular} "{obj.metadata.name}" deleted\n')
        if not deleted:
            err.write(
                f"No resources found in {ns} namespace.\n"
                if info.namespaced
                else "No resources found\n"
            )
        return 0
    failed = 0
    for info, name, file_ns in targets:
        try:
            await client.delete(
                info.message,
                name,
                namespace=(file_ns or ns) if info.namespaced else None,
                grace_period_seconds=args.grace_period,
                propagation_policy=policy,
            )
        except errors.NotFound as e:
            if not args.ignore_not_found:
                err.write(f"Error from server (NotFound): {e.message}\n")
                failed += 1
            continue
        out.write(f'{info.singular} "{name}" deleted\n')
    return 1 if failed else 0

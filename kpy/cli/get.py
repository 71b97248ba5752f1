"""`kpyctl get TYPE [NAME...]`: kubectl's get, with its columns, flags,
wording and exit codes.

- TYPE is anything `scheme.resolve` knows (`pods`, `po`, `deploy`,
  `deployments.apps`); `TYPE/NAME` works too. An unknown type is
  `error: the server doesn't have a resource type "xyz"`, exit 1.
- Without NAME it lists (`-l`, `--field-selector`, `-n`, `-A`); an empty
  list prints `No resources found in NS namespace.` (or `No resources
  found`) on stderr and exits 0. With NAMEs each is read; a missing one is
  `Error from server (NotFound): pods "x" not found` on stderr, the others
  are still printed, and the exit code is 1.
- `-o wide|yaml|json|name`: columns from kpy.cli._printers; yaml/json print
  the manifest form (one object when one NAME was asked, else a `List`),
  which `kpy.api.codec.load_manifest` reads back.
- `-w` prints the table, then one line per change from a watch that starts
  at the list's resourceVersion, until interrupted (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from kpy.api import codec
from kpy.cli import _client, _printers

if TYPE_CHECKING:
    import argparse

    from google.protobuf.message import Message

    from kpy.api.scheme import ResourceInfo
    from kpy.client import Client

__all__ = ["add_parser", "resolve_type", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("get", help="display one or many resources")
    p.add_argument("type", metavar="TYPE[/NAME]", help="pods, deploy, nodes, ... or TYPE/NAME")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-o", "--output", choices=["wide", "yaml", "json", "name"], default=None)
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web,tier!=db")
    p.add_argument("--field-selector", default="", help="field selector, e.g. spec.nodeName=n1")
    p.add_argument("-w", "--watch", action="store_true", help="after listing, print every change")
    _client.add_flags(p, all_namespaces=True)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return _client.run(args, _get)


def resolve_type(spec: str, names: list[str]) -> tuple[ResourceInfo, list[str]]:
    """The resource and names of `TYPE NAME...` or `TYPE/NAME`; UsageError
    (kubectl's wording) when the type is unknown."""
    if "/" in spec:
        spec, name = spec.split("/", 1)
        names = [name, *names]
    return _client.resolve(spec), names


async def _get(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    info, names = resolve_type(args.type, args.names)
    all_ns = bool(args.all_namespaces) and not names
    namespace = None if all_ns else _client.namespace_of(client, args)
    code = 0
    resource_version = ""
    if names:
        objects, code = await _client.get_named(client, info, names, namespace, err)
    else:
        listed = await _list_all(client, info, namespace, args)
        objects, resource_version = listed
    namespace_column = all_ns and info.namespaced
    widths = _print(objects, info, args, out, namespace_column=namespace_column)
    if not objects and not names and args.output not in ("yaml", "json"):
        where = f" in {namespace} namespace" if info.namespaced and not all_ns else ""
        err.write(f"No resources found{where}.\n")
    if args.watch:
        out.flush()
        await _watch(client, info, namespace, args, out, resource_version, names, widths)
    return code


async def _list_all(
    client: Client, info: ResourceInfo, namespace: str | None, args: argparse.Namespace
) -> tuple[list[Message], str]:
    objects: list[Message] = []
    token: str | None = None
    while True:
        page = await client.list(
            info.message,
            namespace=namespace,
            label_selector=args.selector,
            field_selector=args.field_selector,
            limit=500,
            continue_token=token,
        )
        objects.extend(page.items)
        token = page.continue_token
        if not token:
            return objects, page.resource_version


def _print(
    objects: list[Message],
    info: ResourceInfo,
    args: argparse.Namespace,
    out: TextIO,
    *,
    namespace_column: bool,
) -> list[int]:
    """Prints the objects; returns the table's column widths (for -w)."""
    if args.output in ("yaml", "json"):
        if len(objects) == 1 and len(args.names) + ("/" in args.type) == 1:
            body: Any = codec.encode_object(objects[0])
        else:
            body = {
                "apiVersion": "v1",
                "items": [codec.encode_object(o) for o in objects],
                "kind": "List",
                "metadata": {"resourceVersion": ""},
            }
        out.write(_serialize(body, args.output))
        return []
    if args.output == "name":
        for obj in objects:
            out.write(name_of(info, obj) + "\n")
        return []
    if not objects:
        return []
    rows = _printers.table(
        info.kind,
        objects,
        time.time(),
        wide=args.output == "wide",
        namespace_column=namespace_column,
    )
    out.write(_printers.tabulate(rows))
    return _printers.table_widths(rows)


def _serialize(body: Any, output: str) -> str:
    if output == "json":
        return json.dumps(body, indent=4) + "\n"
    return yaml.safe_dump(body, sort_keys=False, default_flow_style=False, allow_unicode=True)


def name_of(info: ResourceInfo, obj: Message) -> str:
    """`pod/web-0`, `deployment.apps/web`: kubectl's -o name."""
    suffix = f".{info.group}" if info.group else ""
    return f"{info.singular}{suffix}/{obj.metadata.name}"  # type: ignore[attr-defined]


async def _watch(
    client: Client,
    info: ResourceInfo,
    namespace: str | None,
    args: argparse.Namespace,
    out: TextIO,
    resource_version: str,
    names: list[str],
    widths: list[int],
) -> None:
    wide = args.output == "wide"
    namespace_column = namespace is None and info.namespaced
    header_printed = bool(widths)
    async with client.watch(
        info.message,
        namespace=namespace,
        resource_version=resource_version,
        label_selector=args.selector,
        field_selector=args.field_selector,
    ) as events:
        async for event in events:
            if event.type == "BOOKMARK":
                continue
            obj = event.object
            if names and obj.metadata.name not in names:  # type: ignore[attr-defined]
                continue
            if args.output == "name":
                out.write(name_of(info, obj) + "\n")
            elif args.output in ("yaml", "json"):
                separator = "---\n" if args.output == "yaml" else ""
                out.write(separator + _serialize(codec.encode_object(obj), args.output))
            else:
                rows = _printers.table(
                    info.kind, [obj], time.time(), wide=wide, namespace_column=namespace_column
                )
                if not header_printed:
                    widths = _printers.table_widths(rows)
                    out.write(_printers.pad_row(rows[0], widths))
                    header_printed = True
                out.write(_printers.pad_row(rows[1], widths))
            out.flush()

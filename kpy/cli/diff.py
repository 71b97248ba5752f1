"""`kpyctl diff -f FILE | -k DIR`: what `apply` would change, as kubectl
diff shows it.

Each object is applied with server dry run (so defaults, admission and the
three-way merge are the server's, exactly as `apply` would have them) and
the result is compared with the live object (nothing, when it does not
exist yet). The output is a unified diff per object, headed as kubectl's
(`diff -u -N /tmp/LIVE-.../apps.v1.Deployment.default.web /tmp/MERGED-...`),
each object as YAML with sorted keys. Exit status is diff's, as kubectl's:
0 when nothing would change, 1 when something would, above 1 on error.
"""

from __future__ import annotations

import difflib
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from kpy.api import codec, errors
from kpy.api.scheme import scheme
from kpy.cli import _client, _kustomize
from kpy.cli._apply_object import apply_object
from kpy.cli._manifests import UsageError, load_objects, read_sources

if TYPE_CHECKING:
    import argparse

    from google.protobuf.message import Message

    from kpy.client import Client

__all__ = ["add_parser", "object_diff"]

ERROR = 2  # kubectl diff: 0 same, 1 different, >1 failed


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("diff", help="diff the live version against a would-be applied version")
    p.add_argument("-f", "--filename", action="append", default=[], metavar="FILE")
    p.add_argument("-k", "--kustomize", default=None, metavar="DIR")
    p.add_argument("-R", "--recursive", action="store_true")
    _client.add_flags(p)
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    err = sys.stderr
    try:
        if args.kustomize is not None:
            if args.filename:
                raise UsageError("only one of -f or -k can be specified")
            sources = [_kustomize.build_source(args.kustomize)]
        elif not args.filename:
            raise UsageError("must specify one of -f and -k")
        else:
            sources = read_sources(args.filename, recursive=args.recursive)
        kinds = _client.manifest_kinds(s.text for s in sources)
        # a custom kind is decoded once discovery has registered it
        known = all(scheme.lookup(api_version, kind) for api_version, kind in kinds)
        objects = load_objects(sources, verb="diff") if known else None
    except UsageError as e:
        err.write(f"error: {e}\n")
        return ERROR
    except codec.ManifestError as e:
        for problem in e.problems:
            err.write(f"error: {problem}\n")
        return ERROR

    async def diff(client: Client, a: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        if objects is not None:
            return await _diff(client, a, objects, out, err)
        await _client.discover_kinds(client, kinds)
        return await _diff(client, a, load_objects(sources, verb="diff"), out, err)

    code = _client.run(args, diff)
    # _client.run reports its own failures as 1, which diff means as "different".
    return {_DIFFERENT: 1, 1: ERROR}.get(code, code)


_DIFFERENT = 10  # _diff's "something would change", told apart from _client.run's 1


async def _diff(
    client: Client, args: argparse.Namespace, objects: list[Message], out: TextIO, err: TextIO
) -> int:
    tag = os.getpid()
    failed = different = False
    for obj in objects:
        info = scheme.for_message(type(obj))
        meta = obj.metadata  # type: ignore[attr-defined]
        if info.namespaced and not meta.namespace:
            meta.namespace = _client.namespace_of(client, args)
        try:
            live = await client.get(type(obj), meta.name, namespace=meta.namespace or None)
        except errors.NotFound:
            live = None
        try:
            _, merged = await apply_object(client, obj, dry_run=True)
        except errors.StatusError as e:
            if isinstance(e, errors.Unavailable) or _client.storage_down(e):
                raise  # the API server or its storage is down: no use trying the rest
            err.write(
                f"Error from server ({e.reason}): {_client.ref(info, meta.name)}: {e.message}\n"
            )
            failed = True
            continue
        text = object_diff(
            codec.encode_object(live) if live is not None else None,
            codec.encode_object(merged),
            name=_file_name(obj),
            tag=tag,
        )
        if text:
            different = True
            out.write(text)
    if failed:
        return ERROR
    return _DIFFERENT if different else 0


def _file_name(obj: Message) -> str:
    """kubectl's name of an object's diff file: group.version.Kind.namespace.name."""
    info = scheme.for_message(type(obj))
    meta = obj.metadata  # type: ignore[attr-defined]
    version = info.api_version.replace("/", ".")
    parts = [version, info.kind, *([meta.namespace] if meta.namespace else []), meta.name]
    return ".".join(parts)


def object_diff(live: Any, merged: Any, *, name: str, tag: int = 0) -> str:
    """The unified diff from `live` to `merged` (None: absent), headed as
    kubectl's; "" when they are the same."""
    before = _yaml(live)
    after = _yaml(merged)
    if before == after:
        return ""
    left, right = f"/tmp/LIVE-{tag}/{name}", f"/tmp/MERGED-{tag}/{name}"
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), left, right
    )
    return f"diff -u -N {left} {right}\n" + "".join(lines)


def _yaml(obj: Any) -> str:
    if obj is None:
        return ""
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, allow_unicode=True)

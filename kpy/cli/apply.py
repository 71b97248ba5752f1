"""`kpyctl apply`: create or update objects from manifests.

Every manifest is first decoded strictly, defaulted and validated exactly
as the API server would; every problem in every file is reported, and
nothing is applied unless all of them are valid. With `--dry-run=client`
that is all: nothing is sent anywhere.

Otherwise each object is created, or updated the way kubectl apply does
(_apply_object.py, shared with `diff`): the manifest as written (not
defaulted) is kept in the `kubectl.kubernetes.io/last-applied-configuration`
annotation, and an update is a three-way JSON merge patch, so a field
removed from the file is removed from the object while fields other
writers set (status, defaults, a controller's annotations) are left alone.
The output is kubectl's: `deployment.apps/web created|configured|unchanged`.
`--dry-run=server` sends everything with dry run: the server checks, and
stores nothing. `-k DIR` applies what `kpyctl kustomize DIR` prints.
Sources with no object at all are refused as kubectl refuses them:
`error: no objects passed to apply`.

Custom kinds: a manifest whose apiVersion/kind is not a kind kpy is built
with is resolved through the server's discovery first (so the codec knows
the kind); its fields are checked by the server against the CRD's schema
(here only its metadata is), and an update is the same JSON merge patch
(Kubernetes has no strategic merge patch for custom resources).
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import TYPE_CHECKING, TextIO

from kpy.api import codec, errors, names
from kpy.api.defaults import set_defaults
from kpy.api.scheme import scheme
from kpy.api.unstructured import is_custom
from kpy.api.validation import validate, validate_object_meta
from kpy.cli import _client, _kustomize
from kpy.cli._apply_object import apply_object
from kpy.cli._manifests import Source, UsageError, read_sources

if TYPE_CHECKING:
    import argparse

    from google.protobuf.message import Message

    from kpy.client import Client

DEFAULT_NAMESPACE = "default"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("apply", help="apply a configuration to a resource by file name or stdin")
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        metavar="FILE",
        help="a file, a directory of manifests, or - for stdin (repeatable)",
    )
    p.add_argument(
        "-k",
        "--kustomize",
        default=None,
        metavar="DIR",
        help="apply the kustomization in DIR (what `kpyctl kustomize DIR` prints)",
    )
    p.add_argument(
        "-R",
        "--recursive",
        action="store_true",
        help="process the directory used in -f recursively",
    )
    p.add_argument(
        "--dry-run",
        choices=["none", "client", "server"],
        default="none",
        help="client: default and validate locally, without a server; server: the server "
        "checks everything and stores nothing",
    )
    p.add_argument("-o", "--output", choices=["yaml", "json", "name"], default=None)
    _client.add_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        sources = _sources(args)
    except UsageError as exc:
        err.write(f"error: {exc}\n")
        return 1
    kinds = _client.manifest_kinds(s.text for s in sources)
    if any(scheme.lookup(api_version, kind) is None for api_version, kind in kinds):
        code = _client.run(args, lambda client, a, o, e: _discover(client, kinds), out, err)
        if code:
            return code
    objects, problems = prepare(sources, namespace=args.namespace)
    if not objects and not problems:
        err.write("error: no objects passed to apply\n")
        return 1
    if problems:
        for problem in problems:
            err.write(f"error: {problem}\n")
        err.write(
            f"{len(problems)} problem(s) found; nothing was applied. "
            "Fix the fields named above and run the command again.\n"
        )
        return 1
    if args.dry_run == "client":
        _print(objects, args.output, out)
        return 0
    # What is sent is the manifest as written: the server defaults it.
    written = [
        o for source in sources for o in codec.load_manifest(source.text, source=source.name)
    ]
    return _client.run(args, lambda client, a, o, e: _apply_all(client, a, written, o, e), out, err)


async def _discover(client: Client, kinds: list[tuple[str, str]]) -> int:
    """Registers the custom kinds the server serves. An unknown kind the
    server does not serve either is left for the decoder to report, with
    its file and line; so is every kind when no server answers (a typo in
    `kind:` must not read as a connection problem)."""
    with contextlib.suppress(errors.Unavailable):
        await _client.discover_kinds(client, kinds)
    return 0


def _sources(args: argparse.Namespace) -> list[Source]:
    if args.kustomize is not None:
        if args.filename:
            raise UsageError("only one of -f or -k can be specified")
        return [_kustomize.build_source(args.kustomize)]
    if not args.filename:
        raise UsageError("must specify one of -f and -k")
    return read_sources(args.filename, recursive=args.recursive)


async def _apply_all(
    client: Client, args: argparse.Namespace, objects: list[Message], out: TextIO, err: TextIO
) -> int:
    failed = 0
    for obj in objects:
        info = scheme.for_message(type(obj))
        meta = obj.metadata  # type: ignore[attr-defined]
        if info.namespaced and not meta.namespace:
            meta.namespace = _client.namespace_of(client, args)
        try:
            outcome = await apply_one(client, obj, dry_run=args.dry_run == "server")
        except errors.StatusError as e:
            if isinstance(e, errors.Unavailable) or _client.storage_down(e):
                raise  # the API server or its storage is down: no use trying the rest
            err.write(f"Error from server ({e.reason}): {_ref(obj)}: {e.message}\n")
            failed += 1
            continue
        suffix = " (server dry run)" if args.dry_run == "server" else ""
        out.write(f"{_ref(obj)}\n" if args.output == "name" else f"{_ref(obj)} {outcome}{suffix}\n")
    return 1 if failed else 0


async def apply_one(client: Client, obj: Message, *, dry_run: bool = False) -> str:
    """Creates or patches one object; "created", "configured" or "unchanged"."""
    outcome, _ = await apply_object(client, obj, dry_run=dry_run)
    return outcome


def _ref(obj: Message) -> str:
    info = scheme.for_message(type(obj))
    suffix = f".{info.group}" if info.group else ""
    return f"{info.singular}{suffix}/{obj.metadata.name}"  # type: ignore[attr-defined]


def prepare(sources: list[Source], *, namespace: str | None) -> tuple[list[Message], list[str]]:
    """Decode, default and validate every object of every source."""
    objects: list[Message] = []
    problems: list[str] = []
    for source in sources:
        try:
            decoded = codec.load_manifest(source.text, source=source.name)
        except codec.ManifestError as exc:
            problems.extend(str(p) for p in exc.problems)
            continue
        for obj in decoded:
            problem = _admit(obj, namespace)
            if problem:
                problems.append(f"{source.name}: {problem}")
            else:
                objects.append(obj)
    return objects, problems


def _admit(obj: Message, namespace: str | None) -> str | None:
    info = scheme.for_message(type(obj))
    meta = obj.metadata  # type: ignore[attr-defined]
    if info.namespaced:
        if namespace and meta.namespace and meta.namespace != namespace:
            return (
                f'the namespace from the provided object "{meta.namespace}" does not match '
                f'the namespace "{namespace}"; pass --namespace={meta.namespace} or remove '
                "metadata.namespace from the file"
            )
        if not meta.namespace:
            meta.namespace = namespace or DEFAULT_NAMESPACE
    if is_custom(type(obj)):  # the server checks the rest against the CRD's schema
        causes = validate_object_meta(
            meta, namespaced=info.namespaced, name_check=names.is_dns1123_subdomain
        )
    else:
        set_defaults(obj)
        causes = validate(obj)
    if causes:
        return str(errors.Invalid(causes, kind=info.kind, name=meta.name or meta.generate_name))
    return None


def _print(objects: list[Message], output: str | None, out: TextIO) -> None:
    if output == "yaml":
        out.write(codec.dump_yaml(objects))
    elif output == "json":
        docs = [codec.encode_object(o) for o in objects]
        body = docs[0] if len(docs) == 1 else {"apiVersion": "v1", "kind": "List", "items": docs}
        out.write(json.dumps(body, indent=4) + "\n")
    else:
        for obj in objects:
            ref = _ref(obj)
            out.write(ref + "\n" if output == "name" else f"{ref} created (dry run)\n")

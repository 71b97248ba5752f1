"""`kpyctl apply`: create or update objects from manifests.

With `--dry-run=client` nothing is sent anywhere: every manifest is decoded
strictly, defaulted and validated exactly as the API server would, and the
result printed. Every problem in every file is reported, and nothing is
applied unless all of them are valid.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, TextIO

from kpy.api import codec, errors
from kpy.api.defaults import set_defaults
from kpy.api.scheme import scheme
from kpy.api.validation import validate
from kpy.cli._manifests import Source, UsageError, read_sources

if TYPE_CHECKING:
    import argparse

    from google.protobuf.message import Message

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
        "-R",
        "--recursive",
        action="store_true",
        help="process the directory used in -f recursively",
    )
    p.add_argument(
        "--dry-run",
        choices=["none", "client", "server"],
        default="none",
        help="client: default and validate locally, without a server",
    )
    p.add_argument("-o", "--output", choices=["yaml", "json", "name"], default=None)
    p.add_argument("-n", "--namespace", default=None)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if args.dry_run != "client":
        err.write(
            "error: kpyctl apply needs an API server, which this kpy version does not "
            "have yet; use --dry-run=client to check manifests offline\n"
        )
        return 1
    try:
        sources = read_sources(args.filename, recursive=args.recursive)
    except UsageError as exc:
        err.write(f"error: {exc}\n")
        return 1
    objects, problems = prepare(sources, namespace=args.namespace)
    if problems:
        for problem in problems:
            err.write(f"error: {problem}\n")
        err.write(
            f"{len(problems)} problem(s) found; nothing was applied. "
            "Fix the fields named above and run the command again.\n"
        )
        return 1
    _print(objects, args.output, out)
    return 0


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
            info = scheme.for_message(type(obj))
            suffix = f".{info.group}" if info.group else ""
            ref = f"{info.singular}{suffix}/{obj.metadata.name}"  # type: ignore[attr-defined]
            out.write(ref + "\n" if output == "name" else f"{ref} created (dry run)\n")

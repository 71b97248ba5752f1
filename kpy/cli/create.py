"""`kpyctl create`: kubectl's create, from manifests or from flags.

    kpyctl create -f FILE...                      objects from manifests (no update)
    kpyctl create namespace NAME
    kpyctl create configmap NAME [--from-literal=K=V] [--from-file=[KEY=]PATH] [--from-env-file=F]
    kpyctl create secret generic NAME [same sources] [--type=TYPE]
    kpyctl create job NAME --image=IMAGE [-- COMMAND...] | --from=cronjob/NAME   (_create_job)
    kpyctl create role|clusterrole|rolebinding|clusterrolebinding|serviceaccount NAME ...
                                                                              (_create_rbac)
    kpyctl create token SA [--audience=A] [--duration=1h] [--bound-object-kind=Pod ...]
                                                                              (_create_token)

Each prints kubectl's `configmap/NAME created`; with `--dry-run=client` the
object is only built (`-o yaml|json` prints it, as users pipe it into a
file). `--from-file` takes a file (key: its base name, or KEY=) or a
directory (each regular file in it); a file that is not UTF-8 goes into a
ConfigMap's binaryData. Secrets carry base64 in `data`, as Kubernetes does.
A key given twice is refused, in kubectl's words.
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from kpy.api import codec, errors
from kpy.api.scheme import scheme
from kpy.cli import _client, _create_job, _create_rbac, _create_token
from kpy.cli._create_object import create_object
from kpy.cli._kustomize import parse_env_file
from kpy.cli._manifests import UsageError, load_objects, read_sources

if TYPE_CHECKING:
    from kpy.client import Client

__all__ = ["add_parser", "data_from_sources"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("create", help="create a resource from a file or from flags")
    p.add_argument("-f", "--filename", action="append", default=[], metavar="FILE")
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _create_from_files))
    what = p.add_subparsers(
        dest="create_what",
        metavar="namespace|configmap|secret|job|role|clusterrole|rolebinding|"
        "clusterrolebinding|serviceaccount|token",
    )

    ns = what.add_parser("namespace", aliases=["ns"], help="create a namespace")
    ns.add_argument("name")
    _output_flags(ns)
    ns.set_defaults(run=lambda args: create_object(args, _namespace(args)))

    cm = what.add_parser("configmap", aliases=["cm"], help="create a configmap")
    cm.add_argument("name")
    _source_flags(cm)
    _output_flags(cm)
    cm.set_defaults(run=lambda args: create_object(args, _configmap(args)))

    secret = what.add_parser("secret", help="create a secret")
    types = secret.add_subparsers(dest="secret_what", metavar="generic", required=True)
    generic = types.add_parser("generic", help="a secret from files, directories or literals")
    generic.add_argument("name")
    generic.add_argument("--type", default="", help="the secret's type (default Opaque)")
    _source_flags(generic)
    _output_flags(generic)
    generic.set_defaults(run=lambda args: create_object(args, _secret(args)))

    _create_job.add_parser(what)
    _create_rbac.add_parsers(what)
    _create_token.add_parser(what)


def _source_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from-literal", action="append", default=[], metavar="KEY=VALUE", help="a key and value"
    )
    p.add_argument(
        "--from-file",
        action="append",
        default=[],
        metavar="[KEY=]PATH",
        help="a file (key: its name) or a directory (each file in it)",
    )
    p.add_argument(
        "--from-env-file", action="append", default=[], metavar="FILE", help="KEY=VALUE lines"
    )


def _output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", choices=["none", "client", "server"], default="none")
    p.add_argument("-o", "--output", choices=["yaml", "json", "name"], default=None)
    # `create -n NS configmap ...` sets them on the parent parser: without a
    # default here the subcommand does not overwrite them.
    p.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="the namespace")
    p.add_argument("--server", default=argparse.SUPPRESS, help="comma-separated API servers")


# -- objects from flags ---------------------------------------------------------------------


def data_from_sources(
    kind: str, name: str, literals: list[str], files: list[str], env_files: list[str]
) -> tuple[dict[str, str], dict[str, bytes]]:
    """(text data, binary data) of `--from-literal`, `--from-file` and
    `--from-env-file`; UsageError in kubectl's words for a bad source or a
    key given twice."""
    text: dict[str, str] = {}
    binary: dict[str, bytes] = {}

    def put(key: str, value: str | bytes) -> None:
        if key in text or key in binary:
            raise UsageError(
                f"cannot add key {key}, another key by that name already exists in "
                f"data for {kind} {name!r}"
            )
        if isinstance(value, bytes):
            binary[key] = value
        else:
            text[key] = value

    for word in literals:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise UsageError(f"invalid literal source {word}, expected key=value")
        put(key, value)
    for word in files:
        key, eq, rel = word.partition("=")
        path = Path(rel if eq else word)
        if path.is_dir():
            if eq:
                raise UsageError(f"cannot give a key for a directory: {word}")
            for child in sorted(p for p in path.iterdir() if p.is_file()):
                put(child.name, _content(child))
        elif path.is_file():
            put(key if eq else path.name, _content(path))
        else:
            raise UsageError(f"error reading {path}: no such file or directory")
    for env_file in env_files:
        path = Path(env_file)
        if not path.is_file():
            raise UsageError(f"error reading {path}: no such file or directory")
        content = _content(path)
        if isinstance(content, bytes):
            raise UsageError(f"{path}: an env file must be UTF-8 text")
        for key, value in parse_env_file(content).items():
            put(key, value)
    return text, binary


def _content(path: Path) -> str | bytes:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UsageError(f"error reading {path}: {e.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _namespace(args: argparse.Namespace) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": args.name}}


def _configmap(args: argparse.Namespace) -> dict[str, Any]:
    text, binary = data_from_sources(
        "ConfigMap", args.name, args.from_literal, args.from_file, args.from_env_file
    )
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": args.name},
    }
    if text:
        body["data"] = text
    if binary:
        body["binaryData"] = {k: _b64(v) for k, v in binary.items()}
    return body


def _secret(args: argparse.Namespace) -> dict[str, Any]:
    text, binary = data_from_sources(
        "Secret", args.name, args.from_literal, args.from_file, args.from_env_file
    )
    data = {k: _b64(v.encode()) for k, v in text.items()} | {k: _b64(v) for k, v in binary.items()}
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": args.name}}
    if args.type:
        body["type"] = args.type
    if data:
        body["data"] = data
    return body


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


# -- objects from manifests -----------------------------------------------------------------


async def _create_from_files(
    client: Client, args: argparse.Namespace, out: TextIO, err: TextIO
) -> int:
    if not args.filename:
        raise UsageError(
            "must specify -f FILE, or what to create: kpyctl create namespace|configmap|"
            "secret generic NAME"
        )
    try:
        objects = load_objects(read_sources(args.filename), verb="create")
    except codec.ManifestError as e:
        for problem in e.problems:
            err.write(f"error: {problem}\n")
        return 1
    failed = 0
    for obj in objects:
        info = scheme.for_message(type(obj))
        meta = obj.metadata  # type: ignore[attr-defined]
        ns = (meta.namespace or _client.namespace_of(client, args)) if info.namespaced else None
        try:
            await client.create(obj, namespace=ns)
        except errors.StatusError as e:
            if isinstance(e, errors.Unavailable) or _client.storage_down(e):
                raise  # the API server or its storage is down: no use trying the rest
            err.write(f"Error from server ({e.reason}): {e.message}\n")
            failed += 1
            continue
        out.write(f"{_client.ref(info, meta.name)} created\n")
    return 1 if failed else 0

"""`kpyctl patch`: kubectl's patch.

    kpyctl patch TYPE NAME | TYPE/NAME -p PATCH [--type strategic|merge|json]
    kpyctl patch TYPE/NAME --patch-file FILE

The patch is JSON or YAML (as kubectl takes it); `strategic` (the default,
as kubectl's) merges lists such as containers element by element, `merge`
is RFC 7386, `json` is an RFC 6902 list of operations. The server applies
it. Output is kubectl's: `deployment.apps/web patched`, or
`... patched (no change)` when the object stayed the same. A patch the
server refuses is `Error from server (...)`, exit 1.

Custom kinds have no strategic merge patch (Kubernetes has no merge keys
for them): without `--type` (or with `--type strategic`) the patch is
refused in kubectl's words before anything is sent; `merge` and `json`
work as for any kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from kpy.api.unstructured import is_custom
from kpy.cli import _client
from kpy.cli._manifests import Source, UsageError, check_bounds, read_file

if TYPE_CHECKING:
    import argparse

    from kpy.api.scheme import ResourceInfo
    from kpy.client import Client

TYPES = ("strategic", "merge", "json")
_MEDIA_TYPES = {
    "strategic": "application/strategic-merge-patch+json",
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
}


def unsupported_patch(info: ResourceInfo, patch_type: str) -> str | None:
    """kubectl's refusal of a patch type the kind does not take (a strategic
    merge patch of a custom kind), or None when it takes it."""
    if patch_type != "strategic" or not is_custom(info.message):
        return None
    return (
        f"{_MEDIA_TYPES[patch_type]} is not supported by {info.api_version}, Kind={info.kind}: "
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/apply-patch+yaml; use --type merge or --type json"
    )


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("patch", help="update fields of a resource with a patch")
    p.add_argument("target", nargs="+", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("-p", "--patch", default=None, help="the patch, as JSON or YAML")
    p.add_argument("--patch-file", default=None, metavar="FILE", help="read the patch from FILE")
    p.add_argument("--type", choices=TYPES, default="strategic", help="the patch's format")
    p.add_argument(
        "--dry-run", choices=["none", "server"], default="none", help="server: store nothing"
    )
    p.add_argument(
        "--subresource",
        choices=["status", "scale"],
        default="",
        help="patch this subresource instead of the object (status: what its controller or "
        "agent reports)",
    )
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _patch))


def parse_patch(text: str, *, name: str = "the patch") -> Any:
    """The patch document of `text` (JSON or YAML); UsageError saying why not."""
    check_bounds(Source(name, text))
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        problem = " ".join(str(e).split())
        raise UsageError(f'unable to parse "{text}": {problem}') from None
    if not isinstance(value, dict | list):
        raise UsageError(
            f"{name} must be a JSON object (or, for --type json, a list of operations); "
            f"got {text!r}"
        )
    return value


def _document(args: argparse.Namespace) -> Any:
    if args.patch is not None and args.patch_file is not None:
        raise UsageError("cannot specify --patch and --patch-file together")
    if args.patch is None and args.patch_file is None:
        raise UsageError(
            "must specify --patch or --patch-file containing the contents of the patch"
        )
    if args.patch_file is not None:
        path = Path(args.patch_file)
        if not path.is_file():
            raise UsageError(f'the patch file "{path}" does not exist')
        return parse_patch(read_file(path).text, name=str(path))
    return parse_patch(args.patch)


async def _patch(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    await _client.discover(client, _client.type_words(args.target[:1]))
    info, name = _client.one_target(args.target)
    document = _document(args)
    refusal = unsupported_patch(info, args.type)
    if refusal:
        raise UsageError(refusal)
    if args.type == "json" and not isinstance(document, list):
        raise UsageError(
            "a --type json patch is a list of operations, e.g. "
            '\'[{"op": "replace", "path": "/spec/replicas", "value": 3}]\''
        )
    ns = _client.namespace_of(client, args) if info.namespaced else None
    kind: Any = info.message
    before = await client.get(kind, name, namespace=ns)
    after = await client.patch(
        kind,
        name,
        document,
        namespace=ns,
        patch_type=args.type,
        subresource=args.subresource,
        dry_run=args.dry_run == "server",
    )
    same = after.metadata.resource_version == before.metadata.resource_version or (
        args.dry_run == "server" and after == before
    )
    suffix = " (no change)" if same else ""
    dry = " (server dry run)" if args.dry_run == "server" else ""
    out.write(f"{_client.ref(info, name)} patched{suffix}{dry}\n")
    return 0

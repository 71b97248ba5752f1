"""Small changes to live objects, as kubectl makes them: `label`,
`annotate`, `cordon`, `uncordon`, `taint`, `set image` and `create -f`.

Each is one patch (or, for taints, a compare-and-swap update of the node's
list), so a concurrent writer's other fields are never lost. Existing
labels, annotations and taints are only replaced with `--overwrite`, as
kubectl insists. Output and errors are kubectl's: `pod/web labeled`,
`node/n1 cordoned`, `error: 'app' already has a value (web), and
--overwrite is false`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from kpy.api import codec, errors
from kpy.api.core.v1 import Node, Taint
from kpy.api.scheme import scheme
from kpy.cli import _client
from kpy.cli._manifests import UsageError, read_sources

if TYPE_CHECKING:
    import argparse

    from kpy.api.scheme import ResourceInfo
    from kpy.client import Client

_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for verb, field, done in (
        ("label", "labels", "labeled"),
        ("annotate", "annotations", "annotated"),
    ):
        p = sub.add_parser(verb, help=f"update the {field} of an object")
        p.add_argument("target", metavar="TYPE/NAME | TYPE NAME")
        p.add_argument("changes", nargs="+", metavar="KEY=VALUE | KEY-")
        p.add_argument("--overwrite", action="store_true", help=f"replace existing {field}")
        _client.add_flags(p)
        p.set_defaults(run=lambda args, f=field, d=done: _client.run(args, _meta_verb(f, d)))
    for verb, value in (("cordon", True), ("uncordon", False)):
        p = sub.add_parser(verb, help=f"mark a node as {'un' if value else ''}schedulable")
        p.add_argument("node")
        _client.add_flags(p)
        p.set_defaults(run=lambda args, v=value: _client.run(args, _cordon(v)))
    p = sub.add_parser("taint", help="update the taints of a node")
    p.add_argument("kind", metavar="nodes")
    p.add_argument("node")
    p.add_argument("taints", nargs="+", metavar="KEY[=VALUE]:EFFECT | KEY[:EFFECT]-")
    p.add_argument("--overwrite", action="store_true")
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _taint))
    setter = sub.add_parser("set", help="set a field of an object")
    kinds = setter.add_subparsers(dest="set_what", metavar="image", required=True)
    p = kinds.add_parser("image", help="update the image of a container")
    p.add_argument("target", metavar="TYPE/NAME")
    p.add_argument("images", nargs="+", metavar="CONTAINER=IMAGE")
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _set_image))
    p = sub.add_parser("create", help="create objects from manifests (no update)")
    p.add_argument("-f", "--filename", action="append", default=[], metavar="FILE")
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _create))


def _one(target: str) -> tuple[ResourceInfo, str]:
    kind, _, name = target.partition("/")
    if not name:
        raise UsageError(f"name the object as TYPE/NAME, e.g. pod/web (got {target!r})")
    return _client.resolve(kind), name


def _ref(info: ResourceInfo, name: str) -> str:
    group = f".{info.group}" if info.group else ""
    return f"{info.singular}{group}/{name}"


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


def _meta_verb(field: str, done: str) -> Any:
    async def run(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        info, name = _one(args.target) if "/" in args.target else (_client.resolve(args.target), "")
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
        out.write(f"{_ref(info, name)} {done}\n")
        return 0

    return run


def _cordon(unschedulable: bool) -> Any:
    async def run(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        node = await client.get(Node, args.node)
        word = "cordoned" if unschedulable else "uncordoned"
        if node.spec.unschedulable == unschedulable:
            out.write(f"node/{args.node} already {word}\n")
            return 0
        await client.patch(Node, args.node, {"spec": {"unschedulable": unschedulable}})
        out.write(f"node/{args.node} {word}\n")
        return 0

    return run


def parse_taint(word: str) -> tuple[str, str, str, bool]:
    """(key, value, effect, remove) of `key=value:Effect`, `key:Effect`,
    `key-` or `key:Effect-`; UsageError naming the problem."""
    remove = word.endswith("-")
    body = word[:-1] if remove else word
    spec, _, effect = body.partition(":")
    key, _, value = spec.partition("=")
    if not key:
        raise UsageError(f"invalid taint {word!r}: the key is empty")
    if effect and effect not in _EFFECTS:
        raise UsageError(f"invalid taint effect {effect!r}: use one of {', '.join(_EFFECTS)}")
    if not remove and not effect:
        raise UsageError(f"invalid taint {word!r}: give KEY[=VALUE]:EFFECT, or KEY- to remove")
    return key, value, effect, remove


async def _taint(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if scheme.resolve(args.kind).kind != "Node":
        raise UsageError("taint works on nodes: kpyctl taint nodes NAME KEY=VALUE:EFFECT")
    wanted = [parse_taint(w) for w in args.taints]
    while True:
        node = await client.get(Node, args.node)
        taints = list(node.spec.taints)
        removed = False
        for key, value, effect, remove in wanted:
            same = [t for t in taints if t.key == key and (not effect or t.effect == effect)]
            if remove:
                if not same:
                    raise errors.NotFound(f"taint {key!r} not found", name=args.node)
                taints = [t for t in taints if t not in same]
                removed = True
                continue
            if same and not args.overwrite:
                raise UsageError(
                    f"node {args.node} already has {key} taint(s) with same effect(s) "
                    "and --overwrite is false"
                )
            taints = [t for t in taints if t not in same] + [
                Taint(key=key, value=value, effect=effect)
            ]
        del node.spec.taints[:]
        node.spec.taints.extend(taints)
        try:
            await client.update(node)
        except errors.Conflict:
            continue
        out.write(f"node/{args.node} {'untainted' if removed else 'tainted'}\n")
        return 0


async def _set_image(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    info, name = _one(args.target)
    ns = _client.namespace_of(client, args) if info.namespaced else None
    live: Any = await client.get(info.message, name, namespace=ns)
    spec = live.spec if info.kind == "Pod" else live.spec.template.spec
    names = {c.name for c in spec.containers}
    images = dict(w.partition("=")[::2] for w in args.images)
    for container, image in images.items():
        if not image:
            raise UsageError(f"give CONTAINER=IMAGE, got {container!r}")
        if container not in names:
            raise UsageError(f'unable to find container named "{container}"')
    containers = [{"name": c, "image": i} for c, i in images.items()]
    body = {"containers": containers}
    patch = {"spec": body} if info.kind == "Pod" else {"spec": {"template": {"spec": body}}}
    await client.patch(info.message, name, patch, namespace=ns)
    out.write(f"{_ref(info, name)} image updated\n")
    return 0


async def _create(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    failed = 0
    for source in read_sources(args.filename):
        for obj in codec.load_manifest(source.text, source=source.name):
            info = scheme.for_message(type(obj))
            meta = obj.metadata  # type: ignore[attr-defined]
            ns = (meta.namespace or _client.namespace_of(client, args)) if info.namespaced else None
            try:
                await client.create(obj, namespace=ns)
            except errors.StatusError as e:
                err.write(f"Error from server ({e.reason}): {e.message}\n")
                failed += 1
                continue
            out.write(f"{_ref(info, meta.name)} created\n")
    return 1 if failed else 0

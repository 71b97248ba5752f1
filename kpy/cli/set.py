"""`kpyctl set image TYPE/NAME CONTAINER=IMAGE...`: kubectl's set image, on
a pod or on the pod template of a workload.

Every container named must exist (kubectl's `unable to find container
named "x"`). The change is one strategic merge patch of those containers'
images, so the rest of the spec is untouched; prints kubectl's
`deployment.apps/web image updated`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from kpy.cli import _client
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    import argparse

    from kpy.client import Client

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    setter = sub.add_parser("set", help="set a field of an object")
    kinds = setter.add_subparsers(dest="set_what", metavar="image", required=True)
    p = kinds.add_parser("image", help="update the image of a container")
    p.add_argument("target", metavar="TYPE/NAME")
    p.add_argument("images", nargs="+", metavar="CONTAINER=IMAGE")
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _set_image))


async def _set_image(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    info, name = _client.slash_target(args.target)
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
    out.write(f"{_client.ref(info, name)} image updated\n")
    return 0

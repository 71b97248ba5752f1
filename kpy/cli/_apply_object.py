"""One object applied the way kubectl apply does it, for `apply` and for
`diff` (which asks the same with dry run, to show the outcome).

The manifest as written (not defaulted) is kept in the
`kubectl.kubernetes.io/last-applied-configuration` annotation; an object
that does not exist is created; otherwise the update is a three-way JSON
merge patch: the new manifest, plus a null for every field the last
applied manifest had and the new one has not, so a field removed from the
file is removed from the object while fields other writers set (status,
defaults, a controller's annotations) are left alone. Lists are replaced
as a whole (merge-patch semantics).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kpy.api import codec, errors

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from kpy.client import Client

__all__ = ["LAST_APPLIED", "apply_object", "three_way_patch"]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


async def apply_object(
    client: Client, obj: Message, *, dry_run: bool = False
) -> tuple[str, Message]:
    """Creates or patches one object: ("created" | "configured" |
    "unchanged", the object as the server has it, or would with `dry_run`)."""
    meta = obj.metadata  # type: ignore[attr-defined]
    config = codec.encode_object(obj)
    config_text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    namespace = meta.namespace or None
    try:
        live = await client.get(type(obj), meta.name, namespace=namespace)
    except errors.NotFound:
        meta.annotations[LAST_APPLIED] = config_text
        made = await client.create(obj, namespace=namespace, dry_run=dry_run)
        return "created", made
    previous_text = live.metadata.annotations.get(LAST_APPLIED)  # type: ignore[attr-defined]
    if previous_text == config_text:
        return "unchanged", live
    previous = json.loads(previous_text) if previous_text else {}
    patch = three_way_patch(previous, config)
    patch.pop("apiVersion", None)  # the path names the kind; the body must not
    patch.pop("kind", None)
    patch.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = config_text
    patched = await client.patch(
        type(obj), meta.name, patch, namespace=namespace, patch_type="merge", dry_run=dry_run
    )
    return "configured", patched


def three_way_patch(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch setting everything in `current` and deleting (null)
    every field of `previous` that `current` no longer has."""
    patch: dict[str, Any] = {}
    for key, value in current.items():
        before = previous.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            patch[key] = three_way_patch(before, value)
        else:
            patch[key] = value
    for key in previous:
        if key not in current:
            patch[key] = None
    return patch

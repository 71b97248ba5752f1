"""Cordoning a node (kubectl's pkg/drain CordonHelper): its
spec.unschedulable set by one patch of that field only, for `cordon`,
`uncordon` and `drain`, each of which prints kubectl's `node/n1 cordoned`
or `node/n1 already cordoned`."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from kpy.api.core.v1 import Node

if TYPE_CHECKING:
    from kpy.client import Client

__all__ = ["set_unschedulable"]


async def set_unschedulable(client: Client, name: str, unschedulable: bool, out: TextIO) -> None:
    """Sets node `name`'s spec.unschedulable, saying so on `out` (flushed,
    so that a drain's progress shows as it goes)."""
    node = await client.get(Node, name)
    word = "cordoned" if unschedulable else "uncordoned"
    if node.spec.unschedulable == unschedulable:
        out.write(f"node/{name} already {word}\n")
    else:
        await client.patch(Node, name, {"spec": {"unschedulable": unschedulable}})
        out.write(f"node/{name} {word}\n")
    out.flush()

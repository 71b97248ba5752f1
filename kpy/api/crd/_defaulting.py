"""Defaulting and pruning of a custom object, in place, as Kubernetes does
them when it decodes one (on write and on read).

Defaulting: a null where the schema is not nullable is dropped, or replaced
by the field's default; a missing field with a default gets a copy of it;
then the walk goes on into every value, defaults included, so defaults
nest. Running it twice changes nothing the second time.

Pruning: a map key that the schema does not know is removed, unless the
node preserves unknown fields or has additionalProperties. The root and
every embedded resource keep apiVersion, kind and metadata (the server
handles those).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from kpy.api.crd._model import META_FIELDS

if TYPE_CHECKING:
    from kpy.api.crd._model import Node


def apply_defaults(node: Node | None, value: Any, *, root: bool = False) -> None:
    if node is None:
        return
    if isinstance(value, dict):
        skip = META_FIELDS if root or node.embedded else frozenset()
        for key, prop in node.properties.items():
            if key not in skip and prop.has_default and key not in value:
                value[key] = copy.deepcopy(prop.default)
        for key in list(value):
            sub = node.child(key)
            if key in skip or sub is None:
                continue
            if value[key] is None and not sub.nullable:
                if not sub.has_default:
                    del value[key]
                    continue
                value[key] = copy.deepcopy(sub.default)
            apply_defaults(sub, value[key])
    elif isinstance(value, list) and node.items is not None:
        items = node.items
        for i, item in enumerate(value):
            if item is None and not items.nullable and items.has_default:
                value[i] = copy.deepcopy(items.default)
            apply_defaults(items, value[i])


def prune(node: Node | None, value: Any, *, root: bool = False) -> None:
    """Drop what `node` does not specify; `node` None (an open map's value) keeps scalars only."""
    if node is not None and node.preserve_unknown:
        _prune_known(node, value, root=root)
        return
    if isinstance(value, dict):
        if node is None:
            value.clear()
            return
        skip = META_FIELDS if root or node.embedded else frozenset()
        for key in list(value):
            if key in skip:
                continue
            if node.keeps(key):
                prune(node.child(key), value[key])
            else:
                del value[key]
    elif isinstance(value, list):
        for item in value:
            prune(node.items if node is not None else None, item)


def _prune_known(node: Node, value: Any, *, root: bool) -> None:
    """Under preserve-unknown-fields: unknown keys stay, known ones are pruned by their schema."""
    if isinstance(value, dict):
        skip = META_FIELDS if root or node.embedded else frozenset()
        for key, item in value.items():
            sub = node.child(key)
            if key not in skip and sub is not None:
                prune(sub, item)
    elif isinstance(value, list) and node.items is not None:
        for item in value:
            _prune_known(node.items, item, root=False)

"""How deeply input may nest, and how to measure it without recursion.

Every reader of untrusted input (the YAML loader, the codec, the patch
functions) refuses a value nested deeper than `MAX_DEPTH` containers, with
an error that says "nesting depth exceeds 100". Kubernetes' JSON decoder
allows 10,000 levels; kpy's readers are recursive Python, where a few
thousand frames end in RecursionError, so its bound sits far lower:

- the deepest built-in object is about 15 levels (a pod template's affinity
  term inside a Deployment), and an openAPIV3Schema of a real CRD rarely
  passes 60, so 100 refuses nothing real;
- the most frame-hungry walk (a strategic merge patch, about 4 frames per
  level, on top of copy.deepcopy's 2) then stays near 500 frames, half of
  Python's default limit of 1000, leaving the rest to the server's own stack
  (asyncio, gRPC, the registry).

`nesting_depth` is iterative, so measuring a value never recurses however
deep it is.
"""

from __future__ import annotations

from typing import Any, Final

MAX_DEPTH: Final = 100
"""The most containers (objects and lists) a value may nest: `{}` and `[]`
are 1 deep, `{"a": [1]}` is 2."""

__all__ = ["MAX_DEPTH", "depth_message", "nesting_depth"]


def nesting_depth(value: Any, *, stop: int = MAX_DEPTH) -> int:
    """How many dicts and lists nest in `value` (a scalar is 0), counted
    without recursion. Counting stops past `stop`: any result above `stop`
    means "too deep" (it is then `stop + 1`), so a huge value that is too
    deep is not walked to its end."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, level = pending.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if level > stop:
            return stop + 1
        deepest = max(deepest, level)
        pending.extend((child, level + 1) for child in children)
    return deepest


def depth_message(limit: int = MAX_DEPTH) -> str:
    """The words every reader uses to refuse a value that is too deep."""
    return (
        f"nesting depth exceeds {limit}; no Kubernetes object nests that deep, so "
        "flatten the data (or check the generator that wrote it)"
    )

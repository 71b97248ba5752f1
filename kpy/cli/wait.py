"""`kpyctl wait --for=condition=NAME[=VALUE] TYPE/NAME... [--timeout=30s]`:
kubectl's wait.

Waits until every named object has the condition (matched without regard
to case, as kubectl does: `complete` is a Job's `Complete`) with the value
(default `True`), or with `--for=delete` until it is gone. Prints
kubectl's `job.batch/pi condition met` (or `pod "x" deleted`) per object;
when the time runs out, `error: timed out waiting for the condition on
jobs/pi` and exit 1. The timeout is a Go duration (`30s`, `2m`, `1h`); 0
checks once. Typical uses: `condition=complete job/NAME`,
`condition=available deployment/NAME`, `condition=ready pod/NAME`.

Objects are read again every half second: a short poll is simpler than a
watch here and bounded by the timeout either way.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TextIO

import anyio

from kpy.api import errors
from kpy.cli import _client
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    import argparse

    from kpy.api.scheme import ResourceInfo
    from kpy.client import Client

__all__ = ["Wanted", "add_parser", "parse_for", "parse_timeout"]

POLL: Final = 0.5
_DURATION: Final = re.compile(r"(\d+(?:\.\d*)?)(ms|s|m|h)")


@dataclass(frozen=True, slots=True)
class Wanted:
    """A condition and its value, or `deleted` for `--for=delete`."""

    condition: str = ""
    value: str = "True"
    deleted: bool = False


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("wait", help="wait for a condition on one or more objects")
    p.add_argument("targets", nargs="+", metavar="TYPE/NAME")
    p.add_argument(
        "--for",
        dest="wait_for",
        required=True,
        metavar="condition=NAME[=VALUE]|delete",
        help="what to wait for, e.g. condition=complete",
    )
    p.add_argument("--timeout", default="30s", help="how long to wait (a Go duration; 0: once)")
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _wait))


def parse_for(text: str) -> Wanted:
    """`condition=NAME[=VALUE]` or `delete`; UsageError otherwise."""
    if text == "delete":
        return Wanted(deleted=True)
    kind, _, rest = text.partition("=")
    if kind != "condition" or not rest:
        raise UsageError(
            f"unrecognized condition: {text!r}; use --for=condition=NAME[=VALUE] or --for=delete"
        )
    name, _, value = rest.partition("=")
    return Wanted(condition=name, value=value or "True")


def parse_timeout(text: str) -> float:
    """Seconds in a Go duration such as `30s` or `1m30s` (a bare number is
    seconds); UsageError otherwise."""
    if re.fullmatch(r"\d+(\.\d*)?", text):
        return float(text)
    total, pos = 0.0, 0
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    while pos < len(text):
        match = _DURATION.match(text, pos)
        if match is None:
            raise UsageError(f"--timeout: invalid duration {text!r}; use e.g. 30s, 2m or 1h")
        total += float(match.group(1)) * units[match.group(2)]
        pos = match.end()
    if not text:
        raise UsageError("--timeout: empty duration; use e.g. 30s")
    return total


def _met(obj: Any, wanted: Wanted) -> bool:
    conditions = getattr(getattr(obj, "status", None), "conditions", ())
    return any(
        c.type.lower() == wanted.condition.lower() and c.status.lower() == wanted.value.lower()
        for c in conditions
    )


async def _wait(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    wanted = parse_for(args.wait_for)
    timeout = parse_timeout(args.timeout)
    targets = [_client.slash_target(t) for t in args.targets]
    ns = _client.namespace_of(client, args)
    deadline = time.monotonic() + timeout
    for info, name in targets:
        if not await _one(client, info, name, ns, wanted, deadline):
            err.write(f"error: timed out waiting for the condition on {info.plural}/{name}\n")
            return 1
        if wanted.deleted:
            out.write(f'{info.singular} "{name}" deleted\n')
        else:
            out.write(f"{_client.ref(info, name)} condition met\n")
    return 0


async def _one(
    client: Client, info: ResourceInfo, name: str, ns: str, wanted: Wanted, deadline: float
) -> bool:
    """Whether the object met `wanted` before `deadline` (checked at least once)."""
    namespace = ns if info.namespaced else None
    while True:
        try:
            obj = await client.get(info.message, name, namespace=namespace)
        except errors.NotFound:
            if wanted.deleted:
                return True
            raise
        if not wanted.deleted and _met(obj, wanted):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await anyio.sleep(min(POLL, left))

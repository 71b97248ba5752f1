"""What every kpyctl verb that talks to a cluster shares: the connection
flags, the client, and kubectl's way of reporting errors.

- `add_flags(p)` adds `-n/--namespace`, `-A/--all-namespaces` (when asked)
  and `--server` (comma-separated API servers; default: ~/.kpy/config or
  KPY_CONFIG, else 127.0.0.1:6443).
- `run(args, verb)` loads the configuration, opens a `Client`, runs
  `verb(client, args, out, err)` and turns errors into kubectl's output and
  exit codes: `Error from server (NotFound): pods "x" not found` and exit 1;
  a configuration or usage problem is exit 1 with what to do; an API
  server that cannot be reached says which address and how to start one.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from kpy.api import errors
from kpy.api.scheme import scheme
from kpy.cli._manifests import UsageError
from kpy.client import Client
from kpy.client.config import ConfigError, load_config

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable

    from kpy.api.scheme import ResourceInfo

__all__ = ["add_flags", "get_named", "namespace_of", "resolve", "run"]


def add_flags(p: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    p.add_argument("-n", "--namespace", default=None, help="the namespace (default: the config's)")
    if all_namespaces:
        p.add_argument(
            "-A", "--all-namespaces", action="store_true", help="list across all namespaces"
        )
    p.add_argument(
        "--server",
        default=None,
        help="comma-separated API servers host:port (default: ~/.kpy/config, else 127.0.0.1:6443)",
    )


def resolve(word: str) -> ResourceInfo:
    """The kind a user means by `pods`, `po`, `deploy`, `deployments.apps`;
    UsageError in kubectl's words when it is unknown."""
    try:
        return scheme.resolve(word)
    except KeyError as e:
        raise UsageError(str(e.args[0])) from None


async def get_named(
    client: Client, info: ResourceInfo, names: list[str], namespace: str | None, err: TextIO
) -> tuple[list[Any], int]:
    """The named objects that exist, and exit code 1 if any did not (each
    missing one reported as kubectl does)."""
    found: list[Any] = []
    code = 0
    kind: Any = info.message
    for name in names:
        try:
            found.append(await client.get(kind, name, namespace=namespace))
        except errors.NotFound as e:
            err.write(f"Error from server (NotFound): {e.message}\n")
            code = 1
    return found, code


def namespace_of(client: Client, args: argparse.Namespace) -> str:
    ns: str = args.namespace or client.namespace
    return ns


def run(
    args: argparse.Namespace,
    verb: Callable[[Client, argparse.Namespace, TextIO, TextIO], Awaitable[int]],
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    servers = [s.strip() for s in args.server.split(",") if s.strip()] if args.server else None
    try:
        config = load_config(servers=servers) if servers else load_config()
    except ConfigError as e:
        err.write(f"error: {e}\n")
        return 1

    async def main() -> int:
        async with Client(config, retry_timeout=5.0) as client:
            return await verb(client, args, out, err)

    try:
        return anyio.run(main)
    except UsageError as e:
        err.write(f"error: {e}\n")
        return 1
    except errors.Unavailable as e:
        where = ", ".join(config.servers)
        err.write(
            f"error: cannot reach the API server at {where}: {e}\n"
            "Is the cluster running? Start one with 'kpy up', or point --server "
            "(or ~/.kpy/config) at a running kpy-apiserver.\n"
        )
        return 1
    except errors.StatusError as e:
        err.write(f"Error from server ({e.reason}): {e.message}\n")
        return 1

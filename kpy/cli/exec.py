"""`kpyctl exec`: a command run in a container, through the API server's
pods/exec (which reaches the pod's node agent).

    kpyctl exec POD|TYPE/NAME [-c CONTAINER] [-i] [-t] -- COMMAND [ARGS...]

Contracts, as kubectl keeps them:
- The pod is named `NAME` or `pod/NAME`, or a workload `TYPE/NAME` means
  one of its pods (_pods.py says which, and says so on stderr).
- The command's stdout and stderr are copied to ours as they come, `-i`
  forwards our stdin until it ends, and kpyctl exits with the command's exit
  code, printing `command terminated with exit code N` on stderr when it is
  not 0.
- main() splits the words after `--` off before parsing, so flags may come
  after POD and the command's own flags stay its own.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, BinaryIO, TextIO

import anyio

from kpy.api import errors
from kpy.cli import _client
from kpy.cli._manifests import UsageError
from kpy.cli._pods import pod_name
from kpy.cli._streams import agent_unavailable, reader_gone, write_bytes

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator

    from kpy.client import Client

__all__ = ["add_parser"]

_READ_SIZE = 64 * 1024


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "exec", help="run a command in a container", usage="kpyctl exec POD [flags] -- COMMAND"
    )
    p.add_argument("pod", metavar="POD | TYPE/NAME")
    p.add_argument("-c", "--container", default="", help="the container (needed if several)")
    p.add_argument("-i", "--stdin", action="store_true", help="pass our stdin to the command")
    p.add_argument("-t", "--tty", action="store_true", help="accepted; kpy has no terminals yet")
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _exec))


async def _exec(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not args.command:
        raise UsageError(
            "you must specify at least one command for the container: "
            "kpyctl exec POD -- COMMAND [ARGS...]"
        )
    if args.tty:
        err.write("Unable to use a TTY - kpy's exec has no terminal support yet; going on\n")
    ns = _client.namespace_of(client, args)
    name = await pod_name(client, args.pod, ns, err)
    stdin = _read_stdin(sys.stdin.buffer) if args.stdin else None
    exit_code: int | None = None
    responses = client.exec(
        name, list(args.command), namespace=ns, container=args.container, stdin=stdin
    )
    try:
        async for response in responses:
            if response.stdout:
                write_bytes(out, response.stdout)
            if response.stderr:
                write_bytes(err, response.stderr)
            if response.HasField("exit_code"):
                exit_code = response.exit_code
    except errors.Unavailable as e:
        return agent_unavailable(e, err)
    except BrokenPipeError:
        return reader_gone()
    if exit_code is None:
        err.write(
            f'error: the exec stream of pod "{name}" ended without an exit code (the node '
            "agent or the API server went away?); run the command again to know its outcome\n"
        )
        return 1
    if exit_code != 0:
        err.write(f"command terminated with exit code {exit_code}\n")
    return exit_code


async def _read_stdin(source: BinaryIO) -> AsyncIterator[bytes]:
    """Chunks of `source` as they arrive, until it ends. A pipe or terminal
    is awaited on the event loop (so the exec can end while nothing is
    typed); a file or /dev/null, which cannot be awaited, is read directly
    (reading them never blocks for long)."""
    fd = source.fileno()
    pollable = True
    while True:
        if pollable:
            try:
                await anyio.wait_readable(fd)
            except PermissionError:  # epoll refuses regular files and /dev/null
                pollable = False
        data = os.read(fd, _READ_SIZE)
        if not data:
            return
        yield data

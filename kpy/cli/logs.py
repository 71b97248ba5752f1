"""`kpyctl logs`: a container's output, through the API server's pods/log
(which reaches the pod's node agent).

    kpyctl logs POD|TYPE/NAME [CONTAINER] [-c CONTAINER] [-f] [-p] [--tail N]
    kpyctl logs -l SELECTOR [-c C | --all-containers] [--prefix] [-f] [--max-log-requests N]

Contracts, as kubectl keeps them:
- The pod is named `NAME` or `pod/NAME`, or a workload `TYPE/NAME` means
  one of its pods (_pods.py says which, and says so on stderr).
- Output is written as the bytes arrive and flushed at once, so `-f` shows
  each line as the container writes it; `-f` ends when the container exits.
- `-l SELECTOR` shows every matching pod's logs, one pod after another
  (all at once with `-f`, refused beyond `--max-log-requests`, 5, in
  kubectl's words); `--tail` then defaults to 10 lines, as kubectl's does,
  a pod's first container is meant unless `-c` or `--all-containers`, and
  `--prefix` starts every line with `[pod/NAME/CONTAINER] `.
- Which container is meant is the API server's rule (the one named, or the
  only one); its refusal comes through in kubectl's form, e.g.
  `Error from server (BadRequest): a container name must be specified for
  pod web, choose one of: [a b]`, exit 1.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from kpy.api import errors
from kpy.api.core.v1 import Pod
from kpy.cli import _client
from kpy.cli._manifests import UsageError
from kpy.cli._pods import pod_name
from kpy.cli._streams import agent_unavailable, reader_gone, write_bytes

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.client import Client

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("logs", help="print the logs of a container in a pod")
    p.add_argument("pod", nargs="?", default="", metavar="POD | TYPE/NAME")
    p.add_argument("positional_container", nargs="?", metavar="CONTAINER", default="")
    p.add_argument("-l", "--selector", default="", help="the pods with these labels")
    p.add_argument("--all-containers", action="store_true", help="every container of each pod")
    p.add_argument(
        "--prefix", action="store_true", help="start each line with [pod/NAME/CONTAINER]"
    )
    p.add_argument(
        "--max-log-requests",
        type=int,
        default=5,
        metavar="N",
        help="with -l and -f: how many logs may be followed at once",
    )
    p.add_argument("-c", "--container", default="", help="the container (needed if several)")
    p.add_argument("-f", "--follow", action="store_true", help="stream until the container exits")
    p.add_argument(
        "-p", "--previous", action="store_true", help="the previous (dead) instance's logs"
    )
    p.add_argument(
        "--tail",
        type=int,
        default=-1,
        action=_Given,
        metavar="N",
        help="only the last N lines (-1: all; the default, or 10 with -l)",
    )
    p.set_defaults(tail_given=False)
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _logs))


class _Given(argparse.Action):
    """Stores the value and notes that the flag was given (as cobra's
    `Changed`): `--tail`'s default depends on whether `-l` is used."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


# -- logs -----------------------------------------------------------------------------------


async def _logs(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.selector or args.all_containers:
        return await _many_logs(client, args, out, err)
    if not args.pod:
        raise UsageError(
            "expected POD or TYPE/NAME, or -l SELECTOR: kpyctl logs POD [-c CONTAINER]"
        )
    if args.positional_container and args.container:
        raise UsageError("give the container once: either -c CONTAINER or POD CONTAINER")
    if args.tail < -1:
        raise UsageError(f"--tail must be -1 (all lines) or a count of lines, not {args.tail}")
    if args.tail == 0 and args.follow:
        raise UsageError(
            "--tail=0 with -f is not supported: kpy's log API cannot ask for no past lines; "
            "use --tail=1"
        )
    ns = _client.namespace_of(client, args)
    name = await pod_name(client, args.pod, ns, err)
    stream = client.logs(
        name,
        namespace=ns,
        container=args.container or args.positional_container,
        follow=args.follow,
        previous=args.previous,
        tail_lines=1 if args.tail == 0 else max(args.tail, 0),
    )
    try:
        async for data in stream:
            if args.tail != 0:  # --tail=0 asks only whether the logs can be read
                write_bytes(out, data)
    except errors.Unavailable as e:
        return agent_unavailable(e, err)
    except BrokenPipeError:
        return reader_gone()
    return 0


async def _many_logs(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`logs -l SELECTOR` (or `--all-containers`): see the module docstring."""
    if args.selector and args.pod:
        raise UsageError("only one of a selector or a pod name may be specified")
    if args.all_containers and (args.container or args.positional_container):
        raise UsageError("--all-containers=true should not be specified with container name")
    tail = args.tail if args.tail_given else 10 if args.selector else -1
    if tail < -1:
        raise UsageError(f"--tail must be -1 (all lines) or a count of lines, not {tail}")
    ns = _client.namespace_of(client, args)
    if args.selector:
        listed = await client.list(Pod, namespace=ns, label_selector=args.selector)
        pods = sorted(listed.items, key=lambda p: p.metadata.name)
        if not pods:
            err.write(f"No resources found in {ns} namespace.\n")
            return 0
    else:
        pods = [await client.get(Pod, await pod_name(client, args.pod, ns, err), namespace=ns)]
    streams = [(pod.metadata.name, c) for pod in pods for c in _containers_of(pod, args)]
    if args.follow and len(streams) > args.max_log_requests:
        raise UsageError(
            f"you are attempting to follow {len(streams)} log streams, but maximum allowed "
            f"concurrency is {args.max_log_requests}, use --max-log-requests to increase the limit"
        )

    async def show(pod: str, container: str) -> None:
        prefix = f"[pod/{pod}/{container}] ".encode() if args.prefix else b""
        lines = _Lines(out, prefix)
        async for data in client.logs(
            pod,
            namespace=ns,
            container=container,
            follow=args.follow,
            previous=args.previous,
            tail_lines=max(tail, 0) or (1 if tail == 0 else 0),
        ):
            if tail != 0:
                lines.feed(data)
        lines.close()

    try:
        if args.follow:
            async with anyio.create_task_group() as tg:
                for pod, container in streams:
                    tg.start_soon(show, pod, container)
        else:
            for pod, container in streams:
                await show(pod, container)
    except errors.Unavailable as e:
        return agent_unavailable(e, err)
    except BrokenPipeError:
        return reader_gone()
    return 0


def _containers_of(pod: Pod, args: argparse.Namespace) -> list[str]:
    names = [c.name for c in pod.spec.containers]
    if args.all_containers:
        return [c.name for c in pod.spec.init_containers] + names
    return [args.container or args.positional_container or names[0]]


class _Lines:
    """Writes whole lines only, each after `prefix`, so that the lines of
    streams followed at once never mix within a line."""

    def __init__(self, out: TextIO, prefix: bytes) -> None:
        self._out = out
        self._prefix = prefix
        self._rest = b""

    def feed(self, data: bytes) -> None:
        *lines, self._rest = (self._rest + data).split(b"\n")
        if lines:
            write_bytes(self._out, b"".join(self._prefix + line + b"\n" for line in lines))

    def close(self) -> None:
        if self._rest:
            write_bytes(self._out, self._prefix + self._rest + b"\n")
            self._rest = b""

"""`kpyctl logs` and `kpyctl exec`: a container's output and commands run in
it, through the API server's pods/log and pods/exec (which reach the pod's
node agent).

    kpyctl logs POD|TYPE/NAME [CONTAINER] [-c CONTAINER] [-f] [-p] [--tail N]
    kpyctl exec POD|TYPE/NAME [-c CONTAINER] [-i] [-t] -- COMMAND [ARGS...]

Contracts, as kubectl keeps them:
- The pod is named `NAME` or `pod/NAME` (`po/`, `pods/`); a workload
  (`deploy/web`, `rs/`, `sts/`, `ds/`, `job/`, `rc/`) means one of its pods,
  the running and ready one first, and logs says which when there are
  several (`Found 3 pods, using pod/web-1`, on stderr).
- Output is written as the bytes arrive and flushed at once, so `-f` shows
  each line as the container writes it; `-f` ends when the container exits.
- Which container is meant is the API server's rule (the one named, or the
  only one); its refusal comes through in kubectl's form, e.g.
  `Error from server (BadRequest): a container name must be specified for
  pod web, choose one of: [a b]`, exit 1.
- exec copies the command's stdout and stderr to ours as they come, `-i`
  forwards our stdin until it ends, and kpyctl exits with the command's exit
  code, printing `command terminated with exit code N` on stderr when it is
  not 0.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

import anyio

from kpy.api import errors
from kpy.api.core.v1 import Pod
from kpy.api.labels import selector_from_label_selector
from kpy.cli import _client
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator

    from kpy.client import Client

__all__ = ["add_parsers", "pick_pod", "pod_name"]

# Kinds whose `spec.selector` names the pods a `TYPE/NAME` means.
_WORKLOADS = (
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "ReplicationController",
)
_READ_SIZE = 64 * 1024


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("logs", help="print the logs of a container in a pod")
    p.add_argument("pod", metavar="POD | TYPE/NAME")
    p.add_argument("positional_container", nargs="?", metavar="CONTAINER", default="")
    p.add_argument("-c", "--container", default="", help="the container (needed if several)")
    p.add_argument("-f", "--follow", action="store_true", help="stream until the container exits")
    p.add_argument(
        "-p", "--previous", action="store_true", help="the previous (dead) instance's logs"
    )
    p.add_argument(
        "--tail", type=int, default=-1, metavar="N", help="only the last N lines (-1: all)"
    )
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _logs))

    # `exec POD [flags] -- COMMAND [ARGS...]`: main() splits the words after
    # `--` off before parsing, so flags may come after POD, as with kubectl.
    p = sub.add_parser(
        "exec", help="run a command in a container", usage="kpyctl exec POD [flags] -- COMMAND"
    )
    p.add_argument("pod", metavar="POD | TYPE/NAME")
    p.add_argument("-c", "--container", default="", help="the container (needed if several)")
    p.add_argument("-i", "--stdin", action="store_true", help="pass our stdin to the command")
    p.add_argument("-t", "--tty", action="store_true", help="accepted; kpy has no terminals yet")
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _exec))


# -- which pod ------------------------------------------------------------------------------


async def pod_name(client: Client, target: str, namespace: str, err: TextIO) -> str:
    """The pod `target` means: `NAME`, `pod/NAME`, or one pod of a workload
    `TYPE/NAME` (see the module docstring). NotFound when the workload is
    missing; UsageError (`error: no pods found ...`) when it has no pods."""
    kind, slash, name = target.partition("/")
    if not slash:
        return target
    info = _client.resolve(kind)
    if info.kind == "Pod":
        return name
    if info.kind not in _WORKLOADS:
        raise UsageError(
            f"cannot find the pods of a {info.kind}: name a pod, or one of "
            "deployment, replicaset, statefulset, daemonset, job, replicationcontroller"
        )
    owner: Any = await client.get(info.message, name, namespace=namespace)
    selector = owner.spec.selector
    if info.kind == "ReplicationController":
        text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    else:
        text = str(selector_from_label_selector(selector))
    pods = (await client.list(Pod, namespace=namespace, label_selector=text)).items
    if not pods:
        raise UsageError(
            f'no pods found for {info.singular} "{name}" (selector {text}); see its status '
            f"with kpyctl describe {info.singular} {name}"
        )
    chosen = pick_pod(pods)
    if len(pods) > 1:
        err.write(f"Found {len(pods)} pods, using pod/{chosen.metadata.name}\n")
    return str(chosen.metadata.name)


def pick_pod(pods: list[Pod]) -> Pod:
    """The pod to show of several: not being deleted, scheduled, running,
    ready, then the oldest (so repeated calls agree)."""

    def rank(pod: Pod) -> tuple[bool, bool, bool, bool, int, str]:
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
        return (
            pod.metadata.HasField("deletion_timestamp"),
            not pod.spec.node_name,
            pod.status.phase != "Running",
            not ready,
            pod.metadata.creation_timestamp.seconds,
            pod.metadata.name,
        )

    return min(pods, key=rank)


# -- logs -----------------------------------------------------------------------------------


async def _logs(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
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
                _write_bytes(out, data)
    except errors.Unavailable as e:
        return _agent_unavailable(e, err)
    except BrokenPipeError:
        return _reader_gone()
    return 0


# -- exec -----------------------------------------------------------------------------------


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
                _write_bytes(out, response.stdout)
            if response.stderr:
                _write_bytes(err, response.stderr)
            if response.HasField("exit_code"):
                exit_code = response.exit_code
    except errors.Unavailable as e:
        return _agent_unavailable(e, err)
    except BrokenPipeError:
        return _reader_gone()
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


# -- output and errors ----------------------------------------------------------------------


def _write_bytes(stream: TextIO, data: bytes) -> None:
    """Writes `data` as is (through the binary buffer under a text stream)
    and flushes, so a follower sees each chunk when it comes."""
    binary = getattr(stream, "buffer", None)
    if binary is None:
        stream.write(data.decode(errors="replace"))
        stream.flush()
        return
    stream.flush()  # text written before goes first
    binary.write(data)
    binary.flush()


def _agent_unavailable(e: errors.Unavailable, err: TextIO) -> int:
    """Reports an unreachable node agent as the API server's answer it is
    (the shared handler would say the API server itself cannot be reached)."""
    if e.kind != "nodes":
        raise e
    err.write(f"Error from server (ServiceUnavailable): {e.message}\n")
    return 1


def _reader_gone() -> int:
    """Ends quietly when whoever reads our output stopped (`| head`): stdout
    goes to /dev/null so that the final flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0

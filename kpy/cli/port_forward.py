"""`kpyctl port-forward TYPE/NAME [LOCAL:]REMOTE ...`: local ports that
reach a pod's ports, through the API server's pods/portforward and the
agent of the pod's node (which connects to the pod's IP), as kubectl's.

Contracts, as kubectl keeps them:
- The target is `NAME` or `pod/NAME`, `svc/NAME` (one pod its selector
  matches, the running and ready one first) or a workload `TYPE/NAME`
  (one of its pods, as `logs` picks it); the pod must be Running.
- Each port is `LOCAL:REMOTE`, `REMOTE` (the same local port) or `:REMOTE`
  / `0:REMOTE` (a free local port). For a pod, REMOTE is a container port,
  by number or name; for a service, REMOTE is a service port (by number or
  name) and the forward goes to its targetPort, resolved against the
  chosen pod's container ports.
- It listens on 127.0.0.1 only and prints `Forwarding from
  127.0.0.1:LOCAL -> REMOTE` per port, then `Handling connection for
  LOCAL` per connection. Each connection is its own stream through the API
  server; an error on one (`connection refused`) is printed as `error:
  ...` and closes that connection only.
- It runs until interrupted (Ctrl-C or SIGTERM), then closes every
  connection and exits 0.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

import anyio
from anyio.abc import SocketAttribute

from kpy.api import errors
from kpy.api.core.v1 import Pod, Service
from kpy.cli import _client
from kpy.cli._manifests import UsageError
from kpy.cli._pods import pick_pod, pod_name

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator, Sequence

    from anyio.abc import SocketStream
    from anyio.streams.stapled import MultiListener

    from kpy.client import Client

__all__ = ["Forward", "add_parser", "forwards_for_pod", "forwards_for_service", "split_port"]

_CHUNK = 64 * 1024
LISTEN_HOST = "127.0.0.1"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "port-forward",
        help="forward local ports to a pod (or a service's or workload's pod)",
        usage="kpyctl port-forward TYPE/NAME [LOCAL_PORT:]REMOTE_PORT [...]",
    )
    p.add_argument("target", metavar="TYPE/NAME")
    p.add_argument("ports", nargs="*", metavar="[LOCAL_PORT:]REMOTE_PORT")
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _port_forward))


@dataclass(frozen=True)
class Forward:
    """One local port (0: any free one) and the pod's port it reaches."""

    local: int
    remote: int


def split_port(spec: str) -> tuple[str, str]:
    """`LOCAL:REMOTE`, `REMOTE` or `:REMOTE` as (local, remote) texts;
    UsageError for anything else."""
    parts = spec.split(":")
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2:
        return parts[0] or "0", parts[1]
    raise UsageError(f"invalid port format '{spec}': use [LOCAL_PORT:]REMOTE_PORT, e.g. 8080:80")


def forwards_for_pod(specs: Sequence[str], pod: Pod) -> list[Forward]:
    """The forwards `specs` mean for `pod`: a named REMOTE is the container
    port of that name (as kubectl's, REMOTE alone keeps the local port's
    text: `http` alone listens on the port it names)."""
    forwards = []
    for spec in specs:
        local, remote = split_port(spec)
        number = remote if remote.isdigit() else str(_container_port(pod, remote))
        forwards.append(_forward(number if local == remote else local, number))
    return forwards


def forwards_for_service(specs: Sequence[str], svc: Service, pod: Pod) -> list[Forward]:
    """The forwards `specs` mean for a service: REMOTE is a service port (by
    number or name), and the forward goes to its targetPort on `pod` (a
    name resolved against the pod's container ports; a headless service's
    port is the pod's port)."""
    forwards = []
    for spec in specs:
        local, remote = split_port(spec)
        if remote.isdigit():
            port = int(remote)
        else:
            port = _service_port_by_name(svc, remote)
            if local == remote:
                local = str(port)
        forwards.append(_forward(local, str(_target_port(svc, pod, port))))
    return forwards


def _service_port_by_name(svc: Service, name: str) -> int:
    for p in svc.spec.ports:
        if p.name == name:
            return int(p.port)
    raise UsageError(f"Service '{svc.metadata.name}' does not have a named port '{name}'")


def _target_port(svc: Service, pod: Pod, port: int) -> int:
    """The container port a service port reaches on `pod` (kubectl's
    LookupContainerPortNumberByServicePort)."""
    for p in svc.spec.ports:
        if p.port != port:
            continue
        if svc.spec.cluster_ip == "None":
            return port
        target = p.target_port
        if target.WhichOneof("value") == "str_val" and target.str_val:
            return _container_port(pod, target.str_val)
        return int(target.int_val) or port
    raise UsageError(f"Service {svc.metadata.name} does not have a service port {port}")


def _container_port(pod: Pod, name: str) -> int:
    for c in pod.spec.containers:
        for p in c.ports:
            if p.name == name:
                return int(p.container_port)
    raise UsageError(f"Pod '{pod.metadata.name}' does not have a named port '{name}'")


def _forward(local: str, remote: str) -> Forward:
    return Forward(_number(local, "local"), _number(remote, "remote"))


def _number(text: str, which: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise UsageError(f"error parsing {which} port '{text}': a port is a number, 0 to 65535")
    if which == "remote" and int(text) == 0:
        raise UsageError("remote port cannot be zero")
    return int(text)


# ------------------------------------------------------------------ the verb


async def _port_forward(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not args.ports:
        raise UsageError(
            "TYPE/NAME and list of ports are required for port-forward, "
            "e.g. kpyctl port-forward pod/web 8080:80"
        )
    for spec in args.ports:
        split_port(spec)  # a malformed port is refused before any request
    ns = _client.namespace_of(client, args)
    pod, forwards = await _resolve(client, args.target, args.ports, ns, err)
    if pod.status.phase != "Running":
        raise UsageError(
            "unable to forward port because pod is not running. Current status="
            f"{pod.status.phase or 'Pending'}"
        )
    # Signals are caught before anything is printed, so that a SIGTERM sent
    # once `Forwarding from` shows always ends us cleanly.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:
            listeners = []
            for forward in forwards:
                listener = await _listen(forward)
                listeners.append(listener)
                port = listener.extra(SocketAttribute.local_port)
                out.write(f"Forwarding from {LISTEN_HOST}:{port} -> {forward.remote}\n")
            out.flush()
            for listener, forward in zip(listeners, forwards, strict=True):
                tg.start_soon(_serve, client, pod, forward, listener, out, err)
            async for _ in signals:
                break
            tg.cancel_scope.cancel()
    return 0


async def _resolve(
    client: Client, target: str, ports: list[str], ns: str, err: TextIO
) -> tuple[Pod, list[Forward]]:
    """The pod `target` means and the forwards `ports` mean on it."""
    kind, slash, name = target.partition("/")
    if slash and _client.resolve(kind).kind == "Service":
        svc = await client.get(Service, name, namespace=ns)
        pod = await _service_pod(client, svc, ns)
        return pod, forwards_for_service(ports, svc, pod)
    pod = await client.get(Pod, await pod_name(client, target, ns, err), namespace=ns)
    return pod, forwards_for_pod(ports, pod)


async def _service_pod(client: Client, svc: Service, ns: str) -> Pod:
    name = svc.metadata.name
    if not svc.spec.selector:
        raise UsageError(
            f"invalid service '{name}': Service is defined without a selector, so it has "
            "no pods to forward to; forward to a pod instead"
        )
    selector = ",".join(f"{k}={v}" for k, v in sorted(svc.spec.selector.items()))
    pods = (await client.list(Pod, namespace=ns, label_selector=selector)).items
    if not pods:
        raise UsageError(
            f'no pods found for service "{name}" (selector {selector}); see which pods '
            f"exist with kpyctl get pods -l {selector}"
        )
    return pick_pod(list(pods))


async def _listen(forward: Forward) -> MultiListener[SocketStream]:
    try:
        return await anyio.create_tcp_listener(
            local_host=LISTEN_HOST, local_port=forward.local, reuse_port=False
        )
    except OSError as e:
        why = e.strerror.lower() if e.strerror else str(e)
        raise UsageError(
            f"unable to listen on port {forward.local}: {LISTEN_HOST}:{forward.local}: {why}; "
            f"choose another local port, or :{forward.remote} for a free one"
        ) from None


async def _serve(
    client: Client,
    pod: Pod,
    forward: Forward,
    listener: MultiListener[SocketStream],
    out: TextIO,
    err: TextIO,
) -> None:
    local = listener.extra(SocketAttribute.local_port)

    async def handle(stream: SocketStream) -> None:
        out.write(f"Handling connection for {local}\n")
        out.flush()
        try:
            await _relay(client, pod, forward.remote, stream)
        except errors.StatusError as e:
            err.write(
                f"error: an error occurred forwarding {local} -> {forward.remote}: {e.message}\n"
            )
            err.flush()
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async with listener:
        await listener.serve(handle)


async def _relay(client: Client, pod: Pod, remote: int, stream: SocketStream) -> None:
    """Copies one local connection to the pod's port and back, until the
    pod's side closes (or the local side goes away)."""

    async def received() -> AsyncIterator[bytes]:
        while True:
            try:
                yield await stream.receive(_CHUNK)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return

    m = pod.metadata
    replies = client.port_forward(m.name, remote, received(), namespace=m.namespace)
    try:
        async for data in replies:
            await stream.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass  # the local client went away: its connection is over

"""floor: how far kpy's create is from what Python and gRPC allow at all.

Two floor servers, each a child process (`python -m bench.floor serve
KIND`) speaking kpy's API service on 127.0.0.1:
- `noop`: a grpc.aio server whose Create answers an empty object at once,
  without even parsing the request: the cost of a gRPC call in Python;
- `create`: a grpc.aio server whose Create parses the Pod, sets its uid
  (the one the SDK proposed), stores it in etcd in one Txn (only if the
  key is absent) and answers the stored Pod: the least a create can do.

Measured, all from `_load.LoadWorkers` child processes (as many as each
side needs to saturate, 1, 2 or 4: see `_pair`), `Sizes.in_flight` calls
in flight in total, two alternating rounds of four sides: raw etcd puts
of a stored pod's bytes (the baseline), `Client.create` of the same
realistic Pod against the no-op server, the minimal create server and kpy's
API server. Rows: each side's calls/s against raw puts, kpy against the
minimal create, and the server CPU per call (from /proc: the server
process's user+system time over its side's rounds, divided by its calls;
etcd's for the put side) from which a machine with more cores can be
estimated on paper.

`python -m bench.floor curve [--workers 1,2,4]` is the scaling curve of
`kpy-apiserver --workers N`: its own etcd, then for each N a fresh API
server with N workers, creates and gets against it from saturating client
processes, interleaved with raw puts; printed, not written to results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from aetcd import rpc

from bench._context import (
    Children,
    Context,
    Progress,
    create_namespace,
    realistic_pod,
    renamed,
)
from bench._load import LoadWorkers, Throughput, round_count, saturating
from bench._report import Result, Row, throughput_row
from kpy.api.core.v1 import Pod
from kpy.client import Client
from kpy.client.client import CREATE_UID_METADATA
from kpy.rpc.apiserver import v1 as api
from kpy.storage import new_client

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.storage import EtcdServer

NAME = "floor"
SERVICE = "kpy.rpc.apiserver.v1.API"
FLOOR_PREFIX = b"/bench-floor/core/v1/pods/"
MAX_CLIENT_PROCESSES = 4
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Sizes:
    total: int  # calls per side, over its rounds
    seconds: float  # per side, over its rounds
    in_flight: int = 32


NORMAL = Sizes(total=6_000, seconds=8.0)
QUICK = Sizes(total=600, seconds=2.0)


# -- the floor servers ------------------------------------------------------------


async def _serve(kind: str, endpoint: str) -> None:
    etcd = new_client(endpoint)
    await etcd.connect()

    async def noop(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return b""  # an empty ObjectResponse

    async def create(
        request: api.CreateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api.ObjectResponse:
        pod = Pod.FromString(request.object)
        proposed = dict(context.invocation_metadata() or ()).get(CREATE_UID_METADATA)
        pod.metadata.uid = str(proposed) if proposed else str(uuid.uuid4())
        key = FLOOR_PREFIX + f"{pod.metadata.namespace}/{pod.metadata.name}".encode()
        value = pod.SerializeToString()
        txn = rpc.TxnRequest(
            compare=[rpc.Compare(key=key, target=rpc.Compare.CREATE, create_revision=0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value))],
        )
        response = await etcd.kvstub.Txn(txn, metadata=etcd.metadata)
        if not response.succeeded:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"{key.decode()} exists")
        pod.metadata.resource_version = str(response.header.revision)
        return api.ObjectResponse(object=pod.SerializeToString())

    handler: grpc.RpcMethodHandler[Any, Any]
    if kind == "noop":
        handler = grpc.unary_unary_rpc_method_handler(noop)
    else:
        handler = grpc.unary_unary_rpc_method_handler(
            create,
            request_deserializer=api.CreateRequest.FromString,
            response_serializer=api.ObjectResponse.SerializeToString,
        )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Create": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"floor serving on 127.0.0.1:{port}", flush=True)
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(None)
        await etcd.close()


async def _start_floor(children: Children, kind: str, endpoint: str) -> tuple[str, int]:
    """Starts a floor server; its address and pid once it serves."""
    process = children.spawn(["-m", "bench.floor", "serve", kind, "--endpoint", endpoint])
    assert process.stdout is not None
    line = await asyncio.to_thread(process.stdout.readline)
    if not line.startswith("floor serving on "):
        children.stop(process)
        raise RuntimeError(f"the {kind} floor server did not start: {line!r}")
    return line.split()[-1], process.pid


# -- measuring --------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(slots=True)
class Side:
    """One thing loaded: its workers, the pids whose CPU it costs, its sum."""

    label: str
    workers: LoadWorkers
    pids: Sequence[int]
    using: int = 1
    done: Throughput | None = None
    cpu: float = 0.0  # the server's CPU seconds over this side's rounds

    def cpu_per_call_ms(self) -> float:
        return 1000 * self.cpu / self.done.ops if self.done and self.done.ops else 0.0


async def measure(
    progress: Progress, sides: list[Side], sizes: Sizes, in_flight: int, rounds: int = 2
) -> None:
    """Starts every side's workers, finds how many each needs, then runs
    `rounds` alternating rounds of all sides, adding up into `Side.done`."""
    for side in sides:
        await side.workers.start(in_flight)
    progress.phase(NAME, "client processes each side needs (1, 2, 4)")
    ramps, counts = [], []
    for side in sides:
        side.using, rates = await saturating(side.workers, seconds=sizes.seconds / 8)
        counts.append(round_count(sizes.total, sizes.seconds, rates[side.using], rounds))
        ramps.append(f"{side.label} {side.using}")
    progress.done(", ".join(ramps))
    progress.phase(NAME, f"{rounds} alternating rounds of {len(sides)} sides")
    for _ in range(rounds):
        for side, count in zip(sides, counts, strict=True):
            before = sum(cpu_seconds(pid) for pid in side.pids)
            done = await side.workers.run(
                count=count, seconds=sizes.seconds / rounds, using=side.using
            )
            side.cpu += sum(cpu_seconds(pid) for pid in side.pids) - before
            side.done = done if side.done is None else side.done + done
    progress.done(", ".join(f"{s.label} {s.done.per_second:,.0f}/s" for s in sides if s.done))


def _load_args(op: str, servers: str, ctx_endpoint: str, namespace: str) -> list[str]:
    return ["--op", op, "--servers", servers, "--endpoint", ctx_endpoint, "--namespace", namespace]


async def _seed(api_address: str, namespace: str) -> None:
    """The namespace, and its pod-0: the stored bytes the raw puts write."""
    async with Client(api_address, retry_timeout=10.0) as client:
        await create_namespace(client, namespace)
        with contextlib.suppress(Exception):  # already there from an earlier round
            await client.create(renamed(realistic_pod(namespace, "template"), "pod-0"))


async def run(ctx: Context) -> Result:
    sizes = QUICK if ctx.quick else NORMAL
    namespace = ctx.namespace(NAME)
    await _seed(ctx.api_address, namespace)
    ctx.progress.phase(NAME, "starting the floor servers and the load processes")
    noop_address, noop_pid = await _start_floor(ctx.children, "noop", ctx.etcd_endpoint)
    create_address, create_pid = await _start_floor(ctx.children, "create", ctx.etcd_endpoint)

    def side(label: str, op: str, servers: str, pids: Sequence[int]) -> Side:
        args = _load_args(op, servers, ctx.etcd_endpoint, namespace)
        return Side(label, LoadWorkers(ctx.children, args, MAX_CLIENT_PROCESSES), pids)

    sides = [
        side("raw put", "put", ctx.api_address, [ctx.etcd_pid]),
        side("no-op gRPC", "create", noop_address, [noop_pid]),
        side("minimal create", "create", create_address, [create_pid]),
        side("kpy create", "create", ctx.api_address, [ctx.api_pid]),
    ]
    try:
        await measure(ctx.progress, sides, sizes, sizes.in_flight)
    finally:
        for s in sides:
            s.workers.stop()
        for process in list(ctx.children.processes):
            if process.pid in (noop_pid, create_pid):
                ctx.children.stop(process)
    raw, noop, minimal, kpy = (s.done or Throughput(0, 0.0, ()) for s in sides)
    label = f"x{sizes.in_flight}"
    result = Result()
    result.rows += [
        throughput_row(NAME, f"no-op gRPC create {label} vs raw put", noop, raw),
        throughput_row(NAME, f"minimal create {label} vs raw put", minimal, raw),
        throughput_row(NAME, f"kpy create {label} vs raw put", kpy, raw),
        throughput_row(NAME, f"kpy create {label} vs minimal create", kpy, minimal),
    ]
    for s in sides:
        what = "etcd" if s.label == "raw put" else "server"
        result.rows.append(Row(NAME, f"{what} CPU per call, {s.label}", "ms", s.cpu_per_call_ms()))
    result.details = {
        "in_flight": sizes.in_flight,
        "client_processes": {s.label: s.using for s in sides},
        "calls": {s.label: s.done.ops if s.done else 0 for s in sides},
        "server_cpu_per_call_ms": {s.label: round(s.cpu_per_call_ms(), 3) for s in sides},
    }
    return result


# -- the scaling curve of kpy-apiserver --workers ---------------------------------


def _curve(workers: list[int], quick: bool) -> None:
    from kpy.storage import EtcdServer

    sizes = QUICK if quick else NORMAL
    children = Children()
    etcd = EtcdServer(unsafe_no_fsync=True)
    etcd.start()
    lines = []
    try:
        for n in workers:
            lines.append(_curve_point(n, etcd, children, Progress(), sizes))
    finally:
        children.stop_all()
        etcd.stop()
    print("\n".join(lines))


def _curve_point(
    n: int, etcd: EtcdServer, children: Children, progress: Progress, sizes: Sizes
) -> str:
    """One point of the curve: `n` workers, measured; its line of the table."""
    import secrets

    from kpy.apiserver.process import APIServerProcess

    server = APIServerProcess(etcd.endpoint, workers=n)
    server.start(timeout=120.0)
    try:
        servers = ",".join(server.addresses)
        pids = list(server.worker_pids.values()) or [server.pid]
        namespace = f"bench-curve-{n}-{secrets.token_hex(3)}"
        asyncio.run(_seed(server.address, namespace))
        sides = [
            Side(
                label,
                LoadWorkers(
                    children,
                    _load_args(op, servers, etcd.endpoint, namespace),
                    MAX_CLIENT_PROCESSES,
                ),
                side_pids,
            )
            for label, op, side_pids in (
                ("raw put", "put", [etcd.pid]),
                ("kpy create", "create", pids),
                ("kpy get", "get", pids),
            )
        ]
        progress.note(f"{n} API server worker(s): {servers}")

        async def go() -> None:
            try:
                await measure(progress, sides, sizes, sizes.in_flight)
            finally:
                for side in sides:
                    side.workers.stop()

        asyncio.run(go())
    finally:
        server.stop()
    raw, create, get = (s.done or Throughput(0, 0.0, ()) for s in sides)
    return (
        f"{n} worker(s): create {create.per_second:6,.0f}/s "
        f"({create.per_second / raw.per_second:.2f}x raw put {raw.per_second:,.0f}/s), "
        f"API CPU {sides[1].cpu_per_call_ms():.2f} ms/create, "
        f"etcd CPU {sides[0].cpu_per_call_ms():.3f} ms/put; "
        f"get {get.per_second:6,.0f}/s, API CPU {sides[2].cpu_per_call_ms():.2f} ms/get; "
        f"client processes {sides[1].using}/{sides[2].using}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a floor server (for the benchmark)")
    serve.add_argument("kind", choices=["noop", "create"])
    serve.add_argument("--endpoint", required=True, help="etcd")
    curve = commands.add_parser("curve", help="the scaling curve of kpy-apiserver --workers")
    curve.add_argument("--workers", default="1,2,4", help="worker counts (default %(default)s)")
    curve.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        if args.command == "serve":
            asyncio.run(_serve(args.kind, args.endpoint))
        else:
            _curve([int(n) for n in args.workers.split(",")], args.quick)


if __name__ == "__main__":
    main()

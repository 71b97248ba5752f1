"""floor: how far kpy's create is from what Python and gRPC allow at all.

Two floor servers, each a child process (`python -m bench.floor serve
KIND`) speaking kpy's API service on 127.0.0.1:
- `noop`: a grpc.aio server whose Create answers an empty object at once,
  without even parsing the request: the cost of a gRPC call in Python;
- `create`: a grpc.aio server whose Create parses the Pod, sets its uid
  (the one the SDK proposed), stores it in etcd in one Txn (only if the
  key is absent) and answers the stored Pod: the least a create can do.

When the run has TLS on (the default), the floor servers serve TLS as kpy's
API server does (the run's serving certificate, client certificates
required, `--tls-cert-file --tls-private-key-file --client-ca-file`) and
a fifth side is measured: the no-op server over plaintext beside the one
over TLS, so that TLS's own cost in a gRPC call shows (row `no-op gRPC
over TLS vs plaintext`). Its clients use the run's plaintext config.

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

`python -m bench.floor curve [--workers 1,2,4] [--insecure]` is the
scaling curve of `kpy-apiserver --workers N` (TLS on, as in `bench.run`):
its own etcd, then for each N a fresh API server with N workers, creates
and gets against it from saturating client processes, interleaved with
raw puts; printed, not written to results.
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

    from bench._security import Security
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


@dataclass(frozen=True, slots=True)
class ServingTLS:
    """The files a floor server serves TLS with (as kpy-apiserver's flags)."""

    cert: str
    key: str
    client_ca: str

    def args(self) -> list[str]:
        return [
            "--tls-cert-file", self.cert,
            "--tls-private-key-file", self.key,
            "--client-ca-file", self.client_ca,
        ]  # fmt: skip

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials requiring a client certificate `client_ca` signed."""
        with open(self.cert, "rb") as c, open(self.key, "rb") as k, open(self.client_ca, "rb") as a:
            return grpc.ssl_server_credentials(
                [(k.read(), c.read())], root_certificates=a.read(), require_client_auth=True
            )


async def _serve(kind: str, endpoint: str, tls: ServingTLS | None) -> None:
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
    if tls is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", tls.credentials())
    await server.start()
    print(f"floor serving on 127.0.0.1:{port}", flush=True)
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(None)
        await etcd.close()


async def _start_floor(
    children: Children, kind: str, endpoint: str, tls: ServingTLS | None
) -> tuple[str, int]:
    """Starts a floor server (serving TLS with `tls`); its address and pid
    once it serves."""
    args = ["-m", "bench.floor", "serve", kind, "--endpoint", endpoint]
    process = children.spawn([*args, *(tls.args() if tls else [])])
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


def _load_args(
    op: str, servers: str, ctx_endpoint: str, namespace: str, config: str | None = None
) -> list[str]:
    args = ["--op", op, "--servers", servers, "--endpoint", ctx_endpoint, "--namespace", namespace]
    return [*args, "--config", config] if config else args


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
    security = ctx.security
    tls = (
        ServingTLS(str(security.serving_cert), str(security.serving_key), str(security.ca_file))
        if security.tls
        else None
    )
    ctx.progress.phase(NAME, "starting the floor servers and the load processes")
    floors = [await _start_floor(ctx.children, "noop", ctx.etcd_endpoint, None)]
    if tls is not None:
        floors.append(await _start_floor(ctx.children, "noop", ctx.etcd_endpoint, tls))
    floors.append(await _start_floor(ctx.children, "create", ctx.etcd_endpoint, tls))
    (noop_address, noop_pid), *_, (create_address, create_pid) = floors
    plaintext = str(security.plaintext_config)

    def side(
        label: str, op: str, servers: str, pids: Sequence[int], config: str | None = None
    ) -> Side:
        args = _load_args(op, servers, ctx.etcd_endpoint, namespace, config)
        return Side(label, LoadWorkers(ctx.children, args, MAX_CLIENT_PROCESSES), pids)

    sides = [
        side("raw put", "put", ctx.api_address, [ctx.etcd_pid]),
        side("no-op gRPC", "create", noop_address, [noop_pid], plaintext),
        side("minimal create", "create", create_address, [create_pid]),
        side("kpy create", "create", ctx.api_address, [ctx.api_pid]),
    ]
    if tls is not None:
        tls_address, tls_pid = floors[1]
        sides.insert(2, side("no-op gRPC TLS", "create", tls_address, [tls_pid]))
    try:
        await measure(ctx.progress, sides, sizes, sizes.in_flight)
    finally:
        for s in sides:
            s.workers.stop()
        floor_pids = {pid for _, pid in floors}
        for process in list(ctx.children.processes):
            if process.pid in floor_pids:
                ctx.children.stop(process)
    done = {s.label: s.done or Throughput(0, 0.0, ()) for s in sides}
    raw, noop = done["raw put"], done["no-op gRPC"]
    minimal, kpy = done["minimal create"], done["kpy create"]
    label = f"x{sizes.in_flight}"
    result = Result()
    result.rows.append(throughput_row(NAME, f"no-op gRPC create {label} vs raw put", noop, raw))
    if tls is not None:
        noop_tls = done["no-op gRPC TLS"]
        result.rows += [
            throughput_row(NAME, f"no-op gRPC over TLS {label} vs raw put", noop_tls, raw),
            throughput_row(NAME, f"no-op gRPC over TLS {label} vs plaintext", noop_tls, noop),
        ]
    result.rows += [
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


def _curve(workers: list[int], quick: bool, insecure: bool) -> None:
    import shutil
    import tempfile
    from pathlib import Path

    from bench._security import Security
    from kpy.storage import EtcdServer

    sizes = QUICK if quick else NORMAL
    scratch = Path(tempfile.mkdtemp(prefix="kpy-bench-curve-"))
    security = Security.create(scratch, tls=not insecure)
    os.environ.update(security.environment())  # this process's clients and its children's
    children = Children()
    etcd = EtcdServer(unsafe_no_fsync=True)
    etcd.start()
    lines = []
    try:
        for n in workers:
            lines.append(_curve_point(n, etcd, children, Progress(), sizes, security))
    finally:
        children.stop_all()
        etcd.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n".join(lines))


def _curve_point(
    n: int,
    etcd: EtcdServer,
    children: Children,
    progress: Progress,
    sizes: Sizes,
    security: Security,
) -> str:
    """One point of the curve: `n` workers, measured; its line of the table."""
    import secrets

    from kpy.apiserver.process import APIServerProcess

    server = APIServerProcess(etcd.endpoint, workers=n, extra_args=security.apiserver_args())
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
    serve.add_argument("--tls-cert-file", help="serve TLS with this certificate (and the next two)")
    serve.add_argument("--tls-private-key-file")
    serve.add_argument("--client-ca-file", help="require client certificates this CA signed")
    curve = commands.add_parser("curve", help="the scaling curve of kpy-apiserver --workers")
    curve.add_argument("--workers", default="1,2,4", help="worker counts (default %(default)s)")
    curve.add_argument("--quick", action="store_true")
    curve.add_argument("--insecure", action="store_true", help="plaintext, as bench.run's")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        if args.command == "serve":
            files = (args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)
            if any(files) and not all(files):
                parser.error(
                    "--tls-cert-file, --tls-private-key-file and --client-ca-file go together"
                )
            tls = ServingTLS(*files) if all(files) else None
            asyncio.run(_serve(args.kind, args.endpoint, tls))
        else:
            _curve([int(n) for n in args.workers.split(",")], args.quick, args.insecure)


if __name__ == "__main__":
    main()

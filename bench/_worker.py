"""Helper processes of the benchmarks: `python -m bench._worker ROLE ...`.

They run apart from the benchmark's own process because one Python process
is itself a limit: the watch benchmark's 100 watchers keep a core busy (a
writer sharing their event loop would neither keep its pace nor stamp its
writes on time, and a raw watcher sharing it would measure that loop's
backlog rather than etcd), and one client process cannot send calls as fast
as etcd or several API server workers answer them (`load`).

Protocol (JSON lines): the worker connects, then prints {"ready": true}; the
parent writes "go" (writer) or "stop" (raw watcher) on stdin; the worker
prints one JSON object with its results and exits. Every loop is bounded in
count and time, and a closed stdin ends a worker too.

- `write`: creates up to `--count` pods at `--rate` per second for at most
  `--seconds`, at most `--in-flight` at a time, each stamped with
  time.time() in the `bench/sent-at` annotation just before its call;
  reports the pods written and each call's latency.
- `raw-watch`: one etcd watch (kpy.storage.Store.watch: the raw etcd watch
  stream, values decoded to Pods) of the namespace's pods, recording
  receive time minus sent-at for every event, and when each pod arrived,
  until "stop" or `--seconds`.
- `load`: one operation (`--op`, see `LOAD_OPS`) from `--in-flight` tasks,
  in rounds: each line "go COUNT SECONDS" runs `_load.concurrent` for at
  most COUNT calls or SECONDS and prints {"ops", "start", "end",
  "latencies", "cpu"} (start and end: time.time(), so that the parent can
  add up several workers' rounds); "stop" or EOF ends it. Names it creates
  carry its pid, so that workers never collide. A failed call ends the
  round with {"error": ...}. Its client reads the config KPY_CONFIG names
  (the run's), or `--config`'s (the floor's plaintext side in a TLS run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import sys
import time
from typing import TYPE_CHECKING, Any

from bench._context import SENT_AT, kpy_key, raw_key, realistic_pod, renamed
from bench._load import concurrent
from kpy.api.core.v1 import Namespace, Pod
from kpy.api.scheme import scheme
from kpy.client import Client
from kpy.client.config import load_config
from kpy.storage import Store, new_client

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from bench._load import Op

LOAD_OPS = {
    "create": "Client.create of a realistic pod named load-<pid>-<n> (through --servers)",
    "get": "Client.get of a pod of the namespace picked at random",
    "put": "etcd put of the stored value of pod-0 under /bench-raw/.../load-<pid>-<n>",
    "raw-get": "etcd get of a raw mirror of a pod picked at random, decoded",
}


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def write(
    address: str, namespace: str, rate: float, count: int, seconds: float, in_flight: int
) -> None:
    stdin = await _stdin_reader()
    template = realistic_pod(namespace, "template")
    async with Client(address, retry_timeout=10.0) as client:
        await client.get(Namespace, namespace)  # opens the channel before the clock starts
        _say({"ready": True})
        if (await stdin.readline()).strip() != b"go":
            return
        written: list[str] = []
        latencies: list[float] = []
        failures: list[str] = []
        slots = asyncio.Semaphore(in_flight)
        cpu, start = time.process_time(), time.monotonic()
        deadline = start + seconds

        async def create(name: str) -> None:
            try:
                pod = renamed(template, name)
                begin = time.time()
                pod.metadata.annotations[SENT_AT] = repr(begin)
                await client.create(pod)
                latencies.append(time.time() - begin)
                written.append(name)
            except Exception as e:
                failures.append(f"{name}: {e}")
            finally:
                slots.release()

        async with asyncio.TaskGroup() as tg:
            for i in range(count):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await slots.acquire()
                if time.monotonic() >= deadline:
                    slots.release()
                    break
                tg.create_task(create(f"w-{i:05d}"))
        _say(
            {
                "written": written,
                "latencies": latencies,
                "failures": failures[:10],
                "failed": len(failures),
                "elapsed": time.monotonic() - start,
                "cpu": time.process_time() - cpu,
            }
        )


async def raw_watch(endpoint: str, namespace: str, seconds: float) -> None:
    stdin = await _stdin_reader()
    latencies: list[float] = []
    seen: dict[str, float] = {}  # name -> when its ADDED arrived
    duplicates = 0
    cpu = time.process_time()
    etcd = new_client(endpoint)
    try:
        store = Store(etcd)
        watch = store.watch(scheme.for_message(Pod), namespace, resource_version=0)
        async with watch as events:
            _say({"ready": True})

            async def consume() -> None:
                nonlocal duplicates
                async for event in events:
                    received = time.time()
                    obj = event.object
                    sent = obj.metadata.annotations.get(SENT_AT)  # type: ignore[attr-defined]
                    if event.type != "ADDED" or sent is None:
                        continue
                    name = obj.metadata.name  # type: ignore[attr-defined]
                    if name in seen:
                        duplicates += 1
                        continue
                    seen[name] = received
                    latencies.append(received - float(sent))

            async with asyncio.timeout(seconds), asyncio.TaskGroup() as tg:
                consumer = tg.create_task(consume())
                await stdin.readline()  # "stop", or EOF when the parent went away
                consumer.cancel()
    except TimeoutError:
        pass  # the time bound: report what arrived
    finally:
        await etcd.close()
    _say(
        {
            "latencies": latencies,
            "received": seen,
            "duplicates": duplicates,
            "cpu": time.process_time() - cpu,
        }
    )


@contextlib.asynccontextmanager
async def _load_op(
    op: str, servers: str, endpoint: str, namespace: str, config: str | None
) -> AsyncIterator[Op]:
    """The operation `op` of `LOAD_OPS`, ready to call (its connections open);
    its client uses `config` (a kpy config file) if given, else KPY_CONFIG's."""
    numbers = itertools.count()
    prefix = f"load-{os.getpid()}"
    picks = random.Random(os.getpid())
    target = load_config(config, servers=servers) if config else servers.split(",")
    async with Client(target, retry_timeout=10.0) as client:
        etcd = new_client(endpoint)
        try:
            if op == "create":
                template = realistic_pod(namespace, "template")

                async def run() -> object:
                    return await client.create(renamed(template, f"{prefix}-{next(numbers)}"))

            elif op == "get":
                listed = await client.list(Pod, namespace=namespace, limit=1000)
                names = [pod.metadata.name for pod in listed.items]

                async def run() -> object:
                    return await client.get(Pod, picks.choice(names), namespace=namespace)

            elif op == "put":
                value = (await etcd.get(kpy_key(namespace, "pod-0"))).value

                async def run() -> object:
                    return await etcd.put(raw_key(namespace, f"{prefix}-{next(numbers)}"), value)

            elif op == "raw-get":
                mirrored = await etcd.get_prefix(raw_key(namespace), keys_only=True)
                keys = [kv.key for kv in mirrored.kvs]

                async def run() -> object:
                    return Pod.FromString((await etcd.get(picks.choice(keys))).value)

            else:
                raise ValueError(f"unknown load op {op!r}; the ops are {', '.join(LOAD_OPS)}")
            await run()  # connects, and proves the op works before the clock starts
            yield run
        finally:
            await etcd.close()


async def load(
    op: str, servers: str, endpoint: str, namespace: str, in_flight: int, config: str | None
) -> None:
    stdin = await _stdin_reader()
    async with _load_op(op, servers, endpoint, namespace, config) as run:
        _say({"ready": True})
        while True:
            words = (await stdin.readline()).split()
            if len(words) != 3 or words[0] != b"go":
                return  # "stop", or EOF when the parent went away
            count, seconds = int(words[1]), float(words[2])
            cpu, start = time.process_time(), time.time()
            try:
                done = await concurrent(run, count=count, seconds=seconds, in_flight=in_flight)
            except Exception as e:
                _say({"error": f"{op}: {type(e).__name__}: {e}"})
                return
            _say(
                {
                    "ops": done.ops,
                    "start": start,
                    "end": start + done.elapsed,
                    "latencies": list(done.latencies),
                    "cpu": time.process_time() - cpu,
                }
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._worker")
    roles = parser.add_subparsers(dest="role", required=True)
    w = roles.add_parser("write")
    w.add_argument("--address", required=True)
    w.add_argument("--namespace", required=True)
    w.add_argument("--rate", type=float, required=True)
    w.add_argument("--count", type=int, required=True)
    w.add_argument("--seconds", type=float, required=True)
    w.add_argument("--in-flight", type=int, default=32)
    r = roles.add_parser("raw-watch")
    r.add_argument("--endpoint", required=True)
    r.add_argument("--namespace", required=True)
    r.add_argument("--seconds", type=float, required=True)
    ld = roles.add_parser("load")
    ld.add_argument("--op", required=True, choices=sorted(LOAD_OPS))
    ld.add_argument("--servers", required=True, help="API server addresses, comma-separated")
    ld.add_argument("--endpoint", required=True, help="etcd")
    ld.add_argument("--namespace", required=True)
    ld.add_argument("--in-flight", type=int, required=True)
    ld.add_argument("--config", help="kpy config file for the client (default: KPY_CONFIG's)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        if args.role == "load":
            asyncio.run(
                load(
                    args.op,
                    args.servers,
                    args.endpoint,
                    args.namespace,
                    args.in_flight,
                    args.config,
                )
            )
        elif args.role == "write":
            asyncio.run(
                write(
                    args.address,
                    args.namespace,
                    args.rate,
                    args.count,
                    args.seconds,
                    args.in_flight,
                )
            )
        else:
            asyncio.run(raw_watch(args.endpoint, args.namespace, args.seconds))


if __name__ == "__main__":
    main()

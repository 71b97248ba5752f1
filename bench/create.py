"""create: pods created through the API vs raw etcd puts of the same bytes.

Measured:
- sequential latency: one call at a time, a kpy create and a raw put in
  turn (interleaved, so both see the same moments of a noisy machine);
  p50 and p99 over `Sizes.sequential` calls each;
- throughput: `Sizes.in_flight` tasks calling at once until
  `Sizes.total` calls or `Sizes.seconds`, in two alternating rounds per
  side (kpy, raw, kpy, raw); ops/s and the p50/p99 latency under that load.

kpy side: `Client.create` of a realistic Pod (`_context.realistic_pod`),
through the API server process: admission, defaulting, validation, a
guarded etcd transaction, the answer decoded by the SDK. Baseline: aetcd
`put` of the exact value kpy stored for one of these pods (read back from
etcd, so the same size and content) under `/bench-raw/core/v1/pods/<ns>/`,
from the same process, with the same concurrency. Ratio = kpy / raw.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench._context import Context, create_namespace, kpy_key, raw_key, realistic_pod, renamed
from bench._load import concurrent
from bench._pair import measure_pair
from bench._report import Aim, Result
from kpy.client import Client
from kpy.storage import new_client

if TYPE_CHECKING:
    import aetcd

NAME = "create"
THROUGHPUT_AIM = 0.25  # issue 22's aim (a minimal grpc.aio create server reaches ~0.30x)


@dataclass(frozen=True, slots=True)
class Sizes:
    sequential: int
    total: int
    seconds: float
    in_flight: int = 32
    warmup: int = 50


NORMAL = Sizes(sequential=300, total=3_000, seconds=10.0)
QUICK = Sizes(sequential=40, total=400, seconds=2.0, warmup=10)


async def run(ctx: Context) -> Result:
    sizes = QUICK if ctx.quick else NORMAL
    namespace = ctx.namespace(NAME)
    etcd = new_client(ctx.etcd_endpoint)
    async with Client(ctx.api_address, retry_timeout=10.0) as client:
        try:
            await etcd.connect()
            return await _measure(ctx, sizes, client, etcd, namespace)
        finally:
            await etcd.close()


async def _measure(
    ctx: Context, sizes: Sizes, client: Client, etcd: aetcd.Client, namespace: str
) -> Result:
    await create_namespace(client, namespace)
    template = realistic_pod(namespace, "template")
    names = itertools.count()

    async def kpy_create() -> None:
        await client.create(renamed(template, f"pod-{next(names)}"))

    ctx.progress.phase(NAME, f"warm-up ({sizes.warmup} creates each)")
    await concurrent(kpy_create, count=sizes.warmup, seconds=10.0, in_flight=4)
    stored = await etcd.get(kpy_key(namespace, "pod-0"))
    value: bytes = stored.value

    async def raw_put() -> None:
        await etcd.put(raw_key(namespace, f"pod-{next(names)}"), value)

    await concurrent(raw_put, count=sizes.warmup, seconds=10.0, in_flight=4)

    pair = await measure_pair(ctx, NAME, kpy_create, raw_put, sizes)
    result, (kpy_seq, raw_seq), kpy_tp, raw_tp = pair.result, pair.sequential, pair.kpy, pair.raw
    ratio = kpy_tp.per_second / raw_tp.per_second if raw_tp.per_second else 0.0
    result.aims.append(
        Aim(
            f"create throughput >= {THROUGHPUT_AIM:g} x raw etcd puts",
            ratio >= THROUGHPUT_AIM,
            f"{ratio:.2f}x ({kpy_tp.per_second:,.0f} vs {raw_tp.per_second:,.0f} ops/s)",
        )
    )
    result.details = {
        "value_bytes": len(value),
        "sequential_calls": [len(kpy_seq), len(raw_seq)],
        "throughput_calls": [kpy_tp.ops, raw_tp.ops],
        "in_flight": sizes.in_flight,
    }
    return result

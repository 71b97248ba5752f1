"""get: one pod read through the API vs a raw etcd get of the same value.

Setup: `Sizes.objects` realistic pods created through the API; each one's
stored value is copied to the same name under `/bench-raw/...`.

Measured, reading pods picked at random (the same seeded sequence on both
sides):
- sequential latency: one call at a time, kpy and raw in turn; p50/p99;
- throughput: `Sizes.in_flight` tasks at once until `Sizes.total` calls or
  `Sizes.seconds`, two alternating rounds per side; ops/s and p50/p99.

kpy side: `Client.get(Pod, name)`; the API server answers from its watch
cache after a consistent-read check (`kpy.apiserver.consistent`: etcd's
current revision, one request shared by the gets in flight) and the SDK
decodes the Pod. Baseline: aetcd
`get` of the raw key plus `Pod.FromString` of its value, so decoding is
included on both sides. Ratio = kpy / raw.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench._context import Context, raw_key
from bench._fixtures import populate
from bench._load import concurrent
from bench._pair import measure_pair
from bench._report import Aim
from kpy.api.core.v1 import Pod
from kpy.client import Client
from kpy.storage import new_client

if TYPE_CHECKING:
    import aetcd

    from bench._report import Result

NAME = "get"
THROUGHPUT_AIM = 0.5  # issue 22's aim: gets at least half of raw etcd gets


@dataclass(frozen=True, slots=True)
class Sizes:
    objects: int
    sequential: int
    total: int
    seconds: float
    in_flight: int = 32
    warmup: int = 50


NORMAL = Sizes(objects=200, sequential=300, total=4_000, seconds=6.0)
QUICK = Sizes(objects=50, sequential=40, total=400, seconds=2.0, warmup=10)


async def run(ctx: Context) -> Result:
    sizes = QUICK if ctx.quick else NORMAL
    namespace = ctx.namespace(NAME)
    etcd = new_client(ctx.etcd_endpoint)
    async with Client(ctx.api_address, retry_timeout=10.0) as client:
        try:
            await etcd.connect()
            ctx.progress.phase(NAME, f"setup ({sizes.objects} pods via the API, mirrored raw)")
            names = await populate(client, etcd, namespace, sizes.objects)
            return await _measure(ctx, sizes, client, etcd, namespace, names)
        finally:
            await etcd.close()


async def _measure(
    ctx: Context,
    sizes: Sizes,
    client: Client,
    etcd: aetcd.Client,
    namespace: str,
    names: list[str],
) -> Result:
    kpy_picks, raw_picks = random.Random(1), random.Random(1)

    async def kpy_get() -> None:
        pod = await client.get(Pod, kpy_picks.choice(names), namespace=namespace)
        assert pod.metadata.name

    async def raw_get() -> None:
        got = await etcd.get(raw_key(namespace, raw_picks.choice(names)))
        pod = Pod.FromString(got.value)
        assert pod.metadata.name

    ctx.progress.phase(NAME, f"warm-up ({sizes.warmup} gets each)")
    for op in (kpy_get, raw_get):
        await concurrent(op, count=sizes.warmup, seconds=10.0, in_flight=4)
    pair = await measure_pair(ctx, NAME, kpy_get, raw_get, sizes)
    result, (kpy_seq, raw_seq), kpy_tp, raw_tp = pair.result, pair.sequential, pair.kpy, pair.raw
    ratio = kpy_tp.per_second / raw_tp.per_second if raw_tp.per_second else 0.0
    result.aims.append(
        Aim(
            f"get throughput >= {THROUGHPUT_AIM:g} x raw etcd gets",
            ratio >= THROUGHPUT_AIM,
            f"{ratio:.2f}x ({kpy_tp.per_second:,.0f} vs {raw_tp.per_second:,.0f} ops/s)",
        )
    )
    result.details = {
        "objects": sizes.objects,
        "sequential_calls": [len(kpy_seq), len(raw_seq)],
        "throughput_calls": [kpy_tp.ops, raw_tp.ops],
        "in_flight": sizes.in_flight,
        "decode": "included on both sides",
    }
    return result

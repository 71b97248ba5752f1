"""list: all pods of one namespace through the API vs one raw etcd range read.

Setup: `Sizes.objects` (1,000) realistic pods created through the API in
one namespace; each one's stored value is copied under `/bench-raw/...`.

Measured, one call at a time, the three in turn (interleaved) for
`Sizes.rounds` rounds or `Sizes.seconds`: p50/p99 latency of
- `Client.list(Pod, namespace=ns)`: a consistent read (resourceVersion
  unset), served from the API server's watch cache once it has caught up
  with etcd's current revision (`kpy.apiserver.consistent`);
- `Client.list(Pod, namespace=ns, resource_version="0")`: served from the
  API server's watch cache as it is, no etcd call;
- baseline: aetcd `get_prefix` of the raw copies plus `Pod.FromString` of
  every value.
Decoding is included on every side: the SDK hands back decoded Pods, so
the baseline decodes too. Every call is checked to return all the objects.
Both kpy figures are reported against the same baseline. Ratio = kpy / raw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench._context import Context, raw_key
from bench._fixtures import populate
from bench._load import interleaved, percentile
from bench._report import Aim, Result, latency_rows
from kpy.api.core.v1 import Pod
from kpy.client import Client
from kpy.storage import new_client

if TYPE_CHECKING:
    import aetcd

NAME = "list"
LATENCY_AIM = 1.0  # issue 22's aim: a consistent list from the cache no slower (p50) than raw


@dataclass(frozen=True, slots=True)
class Sizes:
    objects: int
    rounds: int
    seconds: float
    warmup: int = 3


NORMAL = Sizes(objects=1_000, rounds=60, seconds=15.0)
QUICK = Sizes(objects=200, rounds=10, seconds=3.0, warmup=1)


async def run(ctx: Context) -> Result:
    sizes = QUICK if ctx.quick else NORMAL
    namespace = ctx.namespace(NAME)
    etcd = new_client(ctx.etcd_endpoint)
    async with Client(ctx.api_address, retry_timeout=10.0) as client:
        try:
            await etcd.connect()
            ctx.progress.phase(NAME, f"setup ({sizes.objects} pods via the API, mirrored raw)")
            await populate(client, etcd, namespace, sizes.objects)
            return await _measure(ctx, sizes, client, etcd, namespace)
        finally:
            await etcd.close()


async def _measure(
    ctx: Context, sizes: Sizes, client: Client, etcd: aetcd.Client, namespace: str
) -> Result:
    expected = sizes.objects

    def check(what: str, count: int) -> None:
        if count != expected:
            raise RuntimeError(f"{what} of {namespace} returned {count} pods, not {expected}")

    async def kpy_list() -> None:
        listed = await client.list(Pod, namespace=namespace)
        check("list", len(listed.items))

    async def kpy_list_cached() -> None:
        listed = await client.list(Pod, namespace=namespace, resource_version="0")
        check('list with resourceVersion "0"', len(listed.items))

    async def raw_list() -> None:
        got = await etcd.get_prefix(raw_key(namespace))
        pods = [Pod.FromString(kv.value) for kv in got.kvs]
        check("raw get_prefix", len(pods))

    ops = [kpy_list, kpy_list_cached, raw_list]
    ctx.progress.phase(NAME, f"warm-up ({sizes.warmup} rounds)")
    await interleaved(ops, count=sizes.warmup, seconds=30.0)
    bound = f"<= {sizes.rounds} rounds or {sizes.seconds:g}s"
    ctx.progress.phase(NAME, f"latency of {expected} pods ({bound}, interleaved)")
    kpy_latest, kpy_cache, raw = await interleaved(ops, count=sizes.rounds, seconds=sizes.seconds)
    ctx.progress.done(f"{len(raw)} rounds")

    result = Result()
    result.rows += latency_rows(NAME, f"{expected} pods, latest (cache)", kpy_latest, raw)
    result.rows += latency_rows(NAME, f'{expected} pods, rv="0" (cache)', kpy_cache, raw)
    latest_p50, raw_p50 = percentile(kpy_latest, 50), percentile(raw, 50)
    ratio = latest_p50 / raw_p50 if raw_p50 else math.inf
    result.aims.append(
        Aim(
            f"consistent list of {expected} pods from the cache p50 <= {LATENCY_AIM:g} x raw",
            ratio <= LATENCY_AIM,
            f"{ratio:.2f}x ({latest_p50 * 1e3:.1f} vs {raw_p50 * 1e3:.1f} ms)",
        )
    )
    result.details = {
        "objects": expected,
        "rounds": len(raw),
        "decode": "included on every side",
    }
    return result

"""Data the read benchmarks need: pods created through the API, and a copy
of exactly what kpy stored for them under the raw baseline's prefix."""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

from bench._context import create_namespace, kpy_key, raw_key, realistic_pod, renamed
from bench._load import concurrent

if TYPE_CHECKING:
    import aetcd

    from kpy.client import Client


async def populate(
    client: Client, etcd: aetcd.Client, namespace: str, count: int, *, in_flight: int = 32
) -> list[str]:
    """Creates `count` realistic pods in `namespace` through the API, then
    puts each one's stored etcd value under the same name in the raw
    prefix. Returns the names. Bounded: fails if creating takes over 60 s."""
    await create_namespace(client, namespace)
    template = realistic_pod(namespace, "template")
    numbers = itertools.count()

    async def create() -> None:
        await client.create(renamed(template, f"pod-{next(numbers):05d}"))

    done = await concurrent(create, count=count, seconds=60.0, in_flight=in_flight)
    if done.ops != count:
        raise RuntimeError(f"created only {done.ops} of {count} pods in {namespace} within 60 s")
    prefix = kpy_key(namespace)
    stored = await etcd.get_prefix(prefix)
    if len(stored.kvs) != count:
        raise RuntimeError(f"etcd holds {len(stored.kvs)} pods under {prefix!r}, not {count}")
    pending = list(stored.kvs)
    names: list[str] = []

    async def mirror() -> None:
        while pending:
            kv = pending.pop()
            name = kv.key[len(prefix) :].decode()
            names.append(name)
            await etcd.put(raw_key(namespace, name), kv.value)

    async with asyncio.TaskGroup() as tg:
        for _ in range(in_flight):
            tg.create_task(mirror())
    return sorted(names)

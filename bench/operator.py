"""operator: 1,000 custom objects created at once and reconciled by an
operator written with kpy.operator, next to the same creates and status
writes done directly, in the same run (issue 21).

One CRD (`benchitems.bench.kpy.io`: a `value` in spec, `observed` in
status, the status subresource) and one `kpy-operator` process running
`bench._operator_app:app` (leader election on, `WORKERS` reconciles at
once), leading before the clock starts and running for both sides, so its
informer costs the baseline what it costs the operator side. The sides
alternate `Sizes.rounds` times (baseline, operator, ...); the operator
watches only the one namespace its side's rounds use (`--namespace`), so it
never touches the baseline's objects; the figures are the means.

- Baseline: `IN_FLIGHT` tasks each create an object and then write its
  status (`observed` = `value`) through the status subresource.
- kpy: the same creates, `IN_FLIGHT` at once, with no status writes: the
  operator writes them.
On both sides the clock runs from the first create until a watch (opened
before, the same on both sides) has seen every object's `status.observed`
equal its `spec.value`.

The operator's resident memory (VmRSS, and its peak VmHWM) is read from
/proc after the last round. Aims: the operator side within 1.5x the
baseline's time; the operator under 100 MB resident.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from bench._context import create_namespace
from bench._load import concurrent
from bench._operator_app import GROUP, BenchItem
from bench._report import Aim, Result, Row
from kpy.api import codec, errors
from kpy.api.apiextensions.v1 import CustomResourceDefinition
from kpy.api.meta.v1 import ObjectMeta
from kpy.client import Client

if TYPE_CHECKING:
    import subprocess

    from bench._context import Context
    from kpy.api.unstructured import CustomObject

NAME = "operator"
IN_FLIGHT = 32
WORKERS = 32
AIM_RATIO = 1.5
AIM_MB = 100.0

CRD = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: benchitems.{GROUP}}}
spec:
  group: {GROUP}
  scope: Namespaced
  names: {{kind: BenchItem, plural: benchitems}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              value: {{type: integer}}
          status:
            type: object
            properties:
              observed: {{type: integer}}
"""


@dataclass(frozen=True, slots=True)
class Sizes:
    objects: int
    rounds: int
    seconds: float  # a bound on each side, so a broken operator fails the run


NORMAL = Sizes(objects=1_000, rounds=2, seconds=300.0)
QUICK = Sizes(objects=100, rounds=1, seconds=120.0)


async def run(ctx: Context) -> Result:
    sizes = QUICK if ctx.quick else NORMAL
    async with Client(ctx.api_address, retry_timeout=10.0) as client:
        ctx.progress.phase(NAME, "creating the BenchItem CRD")
        (crd,) = codec.load_manifest(CRD)
        with contextlib.suppress(errors.AlreadyExists):
            await client.create(crd)
        await _served(client)
        ctx.progress.phase(NAME, f"starting kpy-operator ({WORKERS} workers)")
        operator = _start_operator(ctx)
        try:
            await _leading(operator, sizes.seconds)
            directs: list[float] = []
            operated: list[float] = []
            for round_ in range(sizes.rounds):
                directs.append(await _direct(ctx, sizes, client, round_))
                operated.append(await _operated(ctx, sizes, client, round_))
            rss, peak = _memory_mb(operator.pid)
        finally:
            ctx.children.stop(operator)
        with anyio.CancelScope(shield=True):
            await client.delete(CustomResourceDefinition, f"benchitems.{GROUP}")
    through, direct = sum(operated) / len(operated), sum(directs) / len(directs)
    ratio = through / direct
    rows = [
        Row(NAME, f"{sizes.objects} objects reconciled, status written", "s", through, direct),
        Row(
            NAME,
            "objects reconciled/s",
            "ops/s",
            sizes.objects / through,
            sizes.objects / direct,
            "higher",
        ),
        Row(NAME, "kpy-operator resident memory", "MB", rss),
    ]
    aims = [
        Aim(
            f"operator: {sizes.objects} custom objects reconciled within {AIM_RATIO}x "
            "the same creates and status writes done directly",
            ratio <= AIM_RATIO,
            f"{through:.2f} s vs {direct:.2f} s direct (means of {sizes.rounds} rounds): "
            f"{ratio:.2f}x",
        ),
        Aim(
            f"operator: kpy-operator under {AIM_MB:.0f} MB resident",
            rss < AIM_MB,
            f"{rss:.1f} MB resident (peak {peak:.1f} MB) after {sizes.rounds} rounds",
        ),
    ]
    return Result(
        rows=rows,
        aims=aims if not ctx.quick else [],
        details={
            "objects": sizes.objects,
            "in_flight": IN_FLIGHT,
            "workers": WORKERS,
            "rounds": sizes.rounds,
            "operator_s": [round(t, 3) for t in operated],
            "direct_s": [round(t, 3) for t in directs],
            "operator_rss_mb": round(rss, 1),
            "operator_peak_mb": round(peak, 1),
            "baseline": "the same objects created and their status written directly, "
            f"{IN_FLIGHT} in flight",
        },
    )


def _start_operator(ctx: Context) -> subprocess.Popen[str]:
    return ctx.children.spawn(
        [
            "-m",
            "kpy.operator.main",
            "bench._operator_app:app",
            "--server",
            ctx.api_address,
            "--workers",
            str(WORKERS),
            "--metrics-bind-address",
            "127.0.0.1:0",
            "--leader-elect-resource-namespace",
            "default",
            # only the operator side's objects: the baseline's are its own
            "--namespace",
            ctx.namespace(NAME),
        ]
    )


async def _leading(operator: subprocess.Popen[str], seconds: float) -> None:
    """Waits for the operator's `leading as` line (its caches synced)."""
    assert operator.stdout is not None
    stdout = operator.stdout

    def wait() -> None:
        for line in stdout:
            if " leading as " in line:
                return
        raise RuntimeError(f"kpy-operator exited ({operator.wait()}) before it led")

    with anyio.fail_after(seconds):
        await anyio.to_thread.run_sync(wait, abandon_on_cancel=True)


async def _served(client: Client, seconds: float = 30.0, step: float = 0.05) -> None:
    for _ in range(int(seconds / step)):
        if any((r.group, r.resource) == (GROUP, "benchitems") for r in await client.resources()):
            return
        await anyio.sleep(step)
    raise RuntimeError(f"benchitems.{GROUP} was not served within {seconds} s of its CRD")


def _item(namespace: str, name: str, value: int) -> CustomObject:
    return BenchItem(metadata=ObjectMeta(name=name, namespace=namespace), spec={"value": value})


async def _direct(ctx: Context, sizes: Sizes, client: Client, round_: int) -> float:
    namespace = ctx.namespace(f"{NAME}-direct-{round_}")
    await create_namespace(client, namespace)
    ctx.progress.phase(NAME, f"baseline: {sizes.objects} creates + status writes")
    return await _round(sizes, client, namespace, f"item-{round_}", write_status=True)


async def _operated(ctx: Context, sizes: Sizes, client: Client, round_: int) -> float:
    namespace = ctx.namespace(NAME)  # the one the operator watches
    await create_namespace(client, namespace)
    ctx.progress.phase(NAME, f"kpy-operator: {sizes.objects} objects until reconciled")
    return await _round(sizes, client, namespace, f"item-{round_}", write_status=False)


async def _round(
    sizes: Sizes, client: Client, namespace: str, prefix: str, *, write_status: bool
) -> float:
    """Creates `sizes.objects` objects, `IN_FLIGHT` at once, each followed by
    its status write when `write_status` (else the operator writes it); the
    seconds until a watch has seen every object's status written. Both sides
    keep the same watch open, so the server's fan-out costs both alike."""
    names = itertools.count()
    waiting = set(range(sizes.objects))
    all_done = anyio.Event()

    async def one() -> None:
        i = next(names)
        created = await client.create(_item(namespace, f"{prefix}-{i:05d}", i))
        if write_status:
            created.status["observed"] = i
            await client.update_status(created)

    async def follow(events: Any) -> None:
        async for event in events:
            obj = event.object
            value = obj.get("spec", {}).get("value")
            if obj.get("status", {}).get("observed") == value and value in waiting:
                waiting.discard(value)
                if not waiting:
                    all_done.set()
                    return

    start = (await client.list(BenchItem, namespace=namespace)).resource_version
    watch = client.watch(BenchItem, namespace=namespace, resource_version=start, bookmarks=False)
    async with watch as events, anyio.create_task_group() as tg:
        tg.start_soon(follow, events)
        started = time.perf_counter()
        with anyio.fail_after(sizes.seconds):
            done = await concurrent(
                one, count=sizes.objects, seconds=sizes.seconds, in_flight=IN_FLIGHT
            )
            await all_done.wait()
        elapsed = time.perf_counter() - started
        tg.cancel_scope.cancel()
    if done.ops != sizes.objects:
        raise RuntimeError(f"only {done.ops} of {sizes.objects} creates within the bound")
    return elapsed


def _memory_mb(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of `pid`, in MB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]

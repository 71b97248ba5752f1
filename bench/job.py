"""job: a Job of 1,000 completions, parallelism 50, run to Complete on
simulated agents, next to creating and finishing the same 1,000 pods
directly, 50 in flight, in the same run. The ratio is the Job controller's
overhead.

Both sides run on the same cluster: `Sizes.agents` `kpy-agent` processes
(simulated runtime, Ready before the clock starts), one `kpy-scheduler`
process and one `kpy-controller-manager` process running the job
controller alone (default workers, leader election on), both leading
before the clock starts and running for both sides (so the controller's
informers cost the baseline what they cost the Job). The sides alternate,
`Sizes.rounds` times each (baseline, Job, baseline, Job), each round in
namespaces of its own, so a slow patch of a shared machine falls on both;
the figures are the means. Every pod is the same small pod
(one container, 10m CPU, 16Mi) whose simulated container exits 0
`EXIT_AFTER` seconds after it starts (the `sim.kpy.io/<c>.exit-after`
annotation), `restartPolicy: Never`. So each pod goes: created, scheduled,
bound, started by an agent, exits, Succeeded.

- Baseline: 50 tasks each create a pod, wait until a pod watch (opened
  before) sees it Succeeded, and create the next, until 1,000 pods have
  been created; timed from the first create to the last pod Succeeded.
- kpy: one Job (completions 1,000, parallelism 50, the same pod template);
  the clock runs from the Job's create until a Job watch (opened before)
  sees its `Complete` condition. The run then checks the Job counted
  exactly 1,000 succeeded pods, no failed one, and made exactly 1,000 pods.

Finished pods stay on both sides (the Job controller keeps them too), so the
agents and the scheduler carry the same load. The aim (issue 17): the Job
takes at most 1.5 times the baseline's time.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from bench._context import create_namespace, leading
from bench._load import concurrent
from bench._report import Aim, Result, Row
from kpy.agent.process import AgentProcess
from kpy.api.batch.v1 import Job
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Node, Pod
from kpy.client import Client
from kpy.controllers.process import ControllerManagerProcess
from kpy.scheduler.process import SchedulerProcess

if TYPE_CHECKING:
    from bench._context import Context

NAME = "job"
PARALLELISM = 50
EXIT_AFTER = 0.2  # seconds each pod's simulated container runs
AIM_RATIO = 1.5
CONTAINER = "work"


@dataclass(frozen=True, slots=True)
class Sizes:
    agents: int
    completions: int
    rounds: int  # baseline, Job, baseline, Job, ...: a slow patch falls on both
    seconds: float  # a bound on each side, so a broken controller fails the run


NORMAL = Sizes(agents=5, completions=1_000, rounds=2, seconds=600.0)
QUICK = Sizes(agents=2, completions=100, rounds=1, seconds=180.0)


def template() -> dict[str, Any]:
    """The pod template both sides run (a Job's `spec.template`)."""
    return {
        "metadata": {
            "labels": {"app": "bench-job"},
            "annotations": {f"sim.kpy.io/{CONTAINER}.exit-after": str(EXIT_AFTER)},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": CONTAINER,
                    "image": "registry.local/work:1",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ],
        },
    }


async def run(ctx: Context) -> Result:
    sizes = QUICK if ctx.quick else NORMAL
    with tempfile.TemporaryDirectory(prefix="kpy-bench-job-") as root:
        names = [f"bench-{ctx.run_id}-job-agent-{i:02d}" for i in range(sizes.agents)]
        agents = [
            AgentProcess(
                ctx.api_address,
                name,
                Path(root) / name,
                runtime="simulated",
                extra_args=ctx.security.node_args(name),
            )
            for name in names
        ]
        ctx.progress.phase(NAME, f"starting {sizes.agents} agents")
        try:
            # Started from this thread, not a worker thread: a child asks
            # Linux for SIGTERM when the *thread* that started it ends
            # (PR_SET_PDEATHSIG), and idle worker threads end after 10 s.
            for agent in agents:
                agent.start()
            async with Client(ctx.api_address, retry_timeout=10.0) as client:
                await _nodes_ready(client, [a.node_name for a in agents])
                manager = ControllerManagerProcess(
                    ctx.api_address,
                    extra_args=(
                        "--controllers=job",
                        *ctx.security.component_args("controller-manager"),
                    ),
                )
                scheduler = SchedulerProcess(
                    ctx.api_address, extra_args=ctx.security.component_args("scheduler")
                )
                ctx.progress.phase(NAME, "starting kpy-scheduler and kpy-controller-manager")
                async with leading(scheduler), leading(manager):
                    directs: list[float] = []
                    jobs: list[float] = []
                    for round_ in range(sizes.rounds):
                        directs.append(await _direct(ctx, sizes, client, round_))
                        elapsed, job = await _through_job(ctx, sizes, client, round_)
                        jobs.append(elapsed)
        finally:
            for agent in agents:
                agent.stop()
    through, direct = sum(jobs) / len(jobs), sum(directs) / len(directs)
    ratio = through / direct
    rows = [
        Row(NAME, f"{sizes.completions} completions, {PARALLELISM} at once", "s", through, direct),
        Row(
            NAME,
            "pods finished/s",
            "ops/s",
            sizes.completions / through,
            sizes.completions / direct,
            "higher",
        ),
    ]
    aims = [
        Aim(
            f"job: {sizes.completions} completions (parallelism {PARALLELISM}) "
            f"within {AIM_RATIO}x the direct pods' time",
            ratio <= AIM_RATIO,
            f"{through:.1f} s vs {direct:.1f} s direct (means of {sizes.rounds} rounds): "
            f"{ratio:.2f}x",
        )
    ]
    return Result(
        rows=rows,
        aims=aims if not ctx.quick else [],
        details={
            "agents": sizes.agents,
            "completions": sizes.completions,
            "parallelism": PARALLELISM,
            "exit_after_s": EXIT_AFTER,
            "rounds": sizes.rounds,
            "job_s": [round(t, 2) for t in jobs],
            "direct_s": [round(t, 2) for t in directs],
            "job_status": job,
            "baseline": "the same pods created directly, 50 in flight, each until Succeeded",
        },
    )


async def _nodes_ready(client: Client, names: list[str], seconds: float = 60.0) -> None:
    with anyio.fail_after(seconds):
        while True:
            nodes = (await client.list(Node)).items
            ready = {
                n.metadata.name
                for n in nodes
                if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
            }
            if ready.issuperset(names):
                return
            await anyio.sleep(0.2)


async def _direct(ctx: Context, sizes: Sizes, client: Client, round_: int) -> float:
    namespace = ctx.namespace(f"{NAME}-direct-{round_}")
    await create_namespace(client, namespace)
    pod_template = template()
    waiting: dict[str, anyio.Event] = {}
    names = itertools.count()

    async def one() -> None:
        name = f"direct-{next(names):05d}"
        done = waiting[name] = anyio.Event()
        pod = from_dict(Pod, {**pod_template, "metadata": {**pod_template["metadata"]}})
        pod.metadata.name = name
        pod.metadata.namespace = namespace
        await client.create(pod)
        await done.wait()

    ctx.progress.phase(NAME, f"baseline: {sizes.completions} pods, {PARALLELISM} in flight")
    async with client.watch(Pod, namespace=namespace) as events, anyio.create_task_group() as tg:
        tg.start_soon(_finish, events, waiting)
        with anyio.fail_after(sizes.seconds):
            done = await concurrent(
                one, count=sizes.completions, seconds=sizes.seconds, in_flight=PARALLELISM
            )
        tg.cancel_scope.cancel()
    if done.ops != sizes.completions:
        raise RuntimeError(f"only {done.ops} of {sizes.completions} direct pods within the bound")
    return done.elapsed


async def _finish(events: Any, waiting: dict[str, anyio.Event]) -> None:
    """Sets each waiting pod's event once a watch event shows it Succeeded."""
    async for event in events:
        pod = event.object
        if pod.status.phase == "Failed":
            raise RuntimeError(f"pod {pod.metadata.name} failed: {pod.status.message}")
        done = waiting.get(pod.metadata.name)
        if done is not None and pod.status.phase == "Succeeded":
            done.set()


async def _through_job(
    ctx: Context, sizes: Sizes, client: Client, round_: int
) -> tuple[float, dict[str, int]]:
    namespace = ctx.namespace(f"{NAME}-{round_}")
    await create_namespace(client, namespace)
    job = from_dict(
        Job,
        {
            "metadata": {"name": "work", "namespace": namespace},
            "spec": {
                "completions": sizes.completions,
                "parallelism": PARALLELISM,
                "template": template(),
            },
        },
    )
    ctx.progress.phase(NAME, f"a Job of {sizes.completions} completions, parallelism {PARALLELISM}")
    async with client.watch(Job, namespace=namespace) as events:
        started = time.perf_counter()
        await client.create(job)
        with anyio.fail_after(sizes.seconds):
            async for event in events:
                finished = _finished(event.object)
                if finished == "Failed":
                    raise RuntimeError(f"the Job failed: {event.object.status}")
                if finished == "Complete":
                    break
        elapsed = time.perf_counter() - started
    done = await client.get(Job, "work", namespace=namespace)
    pods = (await client.list(Pod, namespace=namespace)).items
    status = {
        "succeeded": done.status.succeeded,
        "failed": done.status.failed,
        "pods": len(pods),
    }
    if status != {"succeeded": sizes.completions, "failed": 0, "pods": sizes.completions}:
        raise RuntimeError(f"the Job miscounted: {status} for {sizes.completions} completions")
    return elapsed, status


def _finished(job: Any) -> str:
    for c in job.status.conditions:
        if c.type in ("Complete", "Failed") and c.status == "True":
            return str(c.type)
    return ""

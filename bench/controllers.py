"""controllers: 100 Deployments of 10 replicas created at once, time until
all 1,000 pods exist, next to creating the same 1,000 pods directly through
the API in the same run. The ratio is the controllers' overhead.

kpy side: one `kpy-controller-manager` process (replicaset and deployment
controllers, default worker counts, leader election on, as a user runs
it) is started and leading before the clock starts. The clock runs from
the first Deployment create until a pod watch, opened before, has seen
`deployments * replicas` pods ADDED in the namespace. Deployments are
created by 32 tasks at once.

Baseline: the same number of pods (the same realistic pod) created through
`Client.create` by 32 tasks at once, timed from the first call to the last
answer, in another namespace of the same API server.

Both sides see the same API server and etcd; the baseline runs first.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import anyio

from bench._context import Context, create_namespace, leading, realistic_pod, renamed
from bench._load import concurrent
from bench._report import Result, Row
from kpy.api.apps.v1 import Deployment
from kpy.api.core.v1 import Pod
from kpy.client import Client
from kpy.controllers.process import ControllerManagerProcess

NAME = "controllers"
IN_FLIGHT = 32


@dataclass(frozen=True, slots=True)
class Sizes:
    deployments: int
    replicas: int
    seconds: float  # a bound on each side, so a broken controller fails the run

    @property
    def pods(self) -> int:
        return self.deployments * self.replicas


NORMAL = Sizes(deployments=100, replicas=10, seconds=300.0)
QUICK = Sizes(deployments=10, replicas=10, seconds=120.0)


async def run(ctx: Context) -> Result:
    sizes = QUICK if ctx.quick else NORMAL
    async with Client(ctx.api_address, retry_timeout=10.0) as client:
        direct = await _direct(ctx, sizes, client)
        through = await _through_controllers(ctx, sizes, client)
    return Result(
        rows=[
            Row(NAME, f"{sizes.pods} pods exist", "s", through, direct, "lower"),
            Row(
                NAME,
                "pods/s",
                "ops/s",
                sizes.pods / through,
                sizes.pods / direct,
                "higher",
            ),
        ],
        details={
            "deployments": sizes.deployments,
            "replicas": sizes.replicas,
            "in_flight": IN_FLIGHT,
            "baseline": "the same number of pods created directly through the API",
        },
    )


async def _direct(ctx: Context, sizes: Sizes, client: Client) -> float:
    namespace = ctx.namespace(f"{NAME}-direct")
    await create_namespace(client, namespace)
    template = realistic_pod(namespace, "template")
    names = itertools.count()

    async def create() -> None:
        await client.create(renamed(template, f"pod-{next(names)}"))

    ctx.progress.phase(NAME, f"baseline: {sizes.pods} pods created directly")
    done = await concurrent(create, count=sizes.pods, seconds=sizes.seconds, in_flight=IN_FLIGHT)
    if done.ops != sizes.pods:
        raise RuntimeError(f"only {done.ops} of {sizes.pods} direct creates within the bound")
    return done.elapsed


async def _through_controllers(ctx: Context, sizes: Sizes, client: Client) -> float:
    namespace = ctx.namespace(NAME)
    await create_namespace(client, namespace)
    manager = ControllerManagerProcess(
        ctx.api_address,
        extra_args=(
            "--controllers=replicaset,deployment",
            *ctx.security.component_args("controller-manager"),
        ),
    )
    ctx.progress.phase(NAME, "starting kpy-controller-manager")
    async with leading(manager):
        return await _time_rollout(ctx, sizes, client, namespace)


async def _time_rollout(ctx: Context, sizes: Sizes, client: Client, namespace: str) -> float:
    template = realistic_pod(namespace, "template")
    ctx.progress.phase(NAME, f"{sizes.deployments} deployments x {sizes.replicas} replicas")
    seen = 0
    async with client.watch(Pod, namespace=namespace) as events:
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_create_deployments, client, namespace, template, sizes)
            with anyio.fail_after(sizes.seconds):
                async for event in events:
                    if event.type == "ADDED":
                        seen += 1
                        if seen == sizes.pods:
                            break
        return time.perf_counter() - started


async def _create_deployments(client: Client, namespace: str, template: Pod, sizes: Sizes) -> None:
    names = itertools.count()

    async def create() -> None:
        name = f"web-{next(names)}"
        deployment = Deployment()
        deployment.metadata.name = name
        deployment.metadata.namespace = namespace
        deployment.spec.replicas = sizes.replicas
        deployment.spec.selector.match_labels["app"] = name
        deployment.spec.template.metadata.labels["app"] = name
        deployment.spec.template.spec.CopyFrom(template.spec)
        await client.create(deployment)

    await concurrent(create, count=sizes.deployments, seconds=sizes.seconds, in_flight=IN_FLIGHT)

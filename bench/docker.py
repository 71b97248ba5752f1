"""Pod start on the Docker runtime, against `docker run -d` of the same thing.

- kpy: one `kpy-agent --runtime docker` process (an AgentProcess, its own
  node). Each pod is bound to that node at creation (no scheduler), one
  container running `kpy.local/busybox:latest`'s shell until stopped, policy
  IfNotPresent. Latency runs from just before the create call to the moment
  a pod watch, opened before, sees the pod Running: the API write, the
  agent's watch, the pause container (the pod's network namespace and IP),
  the container in it, and the status write.
- baseline: `docker run -d` of the same image and command through aiodocker
  (create, then start, which returns once it runs) on Docker's default
  bridge, in the same run against the same engine.
- also shown, the same Docker work the runtime asks for, by hand: a pause
  container on the bridge, then the container in its network namespace.
  kpy ÷ that is what kpy adds over Docker; kpy ÷ `docker run -d` is what a
  user pays for a pod over a bare container (a second container and a
  network namespace of its own cannot be had for free: the aim allows 50%).

Pods go one at a time, kpy and baseline interleaved so that a slow patch of
the machine falls on both. Needs the engine of `deploy/docker-engine.sh`
(`start` and `image`), or DOCKER_HOST. Every container made is removed at
the end: the baseline's by their label, the agent's through the runtime.
"""

from __future__ import annotations

import functools
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiodocker
import anyio
import anyio.to_thread

from bench._context import create_namespace
from bench._load import percentile
from bench._report import Aim, Result, latency_rows
from kpy.agent.process import AgentProcess
from kpy.agent.runtime.docker import (
    PAUSE_COMMAND,
    PAUSE_IMAGE,
    DockerRuntime,
    default_docker_host,
    docker_answers,
)
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod
from kpy.client import Client

if TYPE_CHECKING:
    from bench._context import Context
    from kpy.client.client import Watch

NAME = "docker"
IMAGE = PAUSE_IMAGE
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
LABEL = "io.kpy.bench"
AIM_RATIO = 1.5


@dataclass(frozen=True, slots=True)
class Sizes:
    pods: int
    seconds: float  # bound on the whole measurement


NORMAL = Sizes(pods=30, seconds=240.0)
QUICK = Sizes(pods=10, seconds=120.0)


def pod(namespace: str, name: str, node: str) -> Pod:
    container = {
        "name": "app",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": COMMAND,
    }
    spec = {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [container]}
    return from_dict(Pod, {"metadata": {"name": name, "namespace": namespace}, "spec": spec})


async def run(ctx: Context) -> Result:
    sizes = QUICK if ctx.quick else NORMAL
    host = default_docker_host()
    if not await anyio.to_thread.run_sync(docker_answers, host, 2.0):
        raise RuntimeError(
            f"no Docker engine answers at {host}; start one with `bash deploy/docker-engine.sh "
            "start && bash deploy/docker-engine.sh image`"
        )
    namespace = ctx.namespace(NAME)
    node = f"bench-{ctx.run_id}-docker"
    with tempfile.TemporaryDirectory(prefix="kpy-bench-docker-") as root:
        agent = AgentProcess(
            ctx.api_address,
            node,
            Path(root) / "agent",
            runtime="docker",
            extra_args=("--docker-host", host, *ctx.security.node_args(node)),
        )
        async with (
            Client(ctx.api_address, retry_timeout=10.0) as client,
            aiodocker.Docker(url=host) as docker,
        ):
            await create_namespace(client, namespace)
            ctx.progress.phase(NAME, "starting an agent on the docker runtime")
            try:
                await anyio.to_thread.run_sync(agent.start)
                ctx.progress.phase(NAME, f"{sizes.pods} pods, kpy and docker run -d in turn")
                samples = await _measure(client, docker, namespace, node, sizes, ctx.run_id)
            finally:
                ctx.progress.phase(NAME, "removing the containers")
                agent.stop()
                with anyio.CancelScope(shield=True):
                    await _remove_raw(docker, ctx.run_id)
                    await _remove_node(host, node)
    return _result(samples, sizes, quick=ctx.quick)


@dataclass(slots=True)
class Samples:
    kpy: list[float]
    run: list[float]  # docker run -d
    by_hand: list[float]  # pause, then the container in its namespace


async def _measure(
    client: Client, docker: aiodocker.Docker, namespace: str, node: str, sizes: Sizes, run_id: str
) -> Samples:
    samples = Samples([], [], [])
    async with client.watch(Pod, namespace=namespace) as events:
        with anyio.fail_after(sizes.seconds):
            for i in range(sizes.pods):
                # Alternate which goes first, so neither always follows the other.
                steps = [
                    functools.partial(_kpy_pod, client, events, namespace, f"pod-{i:03d}", node),
                    functools.partial(_docker_run, docker, run_id),
                    functools.partial(_by_hand, docker, run_id),
                ]
                if i % 2:
                    steps.reverse()
                took = {}
                for step in steps:
                    kind, seconds = await step()
                    took[kind] = seconds
                samples.kpy.append(took["kpy"])
                samples.run.append(took["run"])
                samples.by_hand.append(took["by_hand"])
    return samples


async def _kpy_pod(
    client: Client, events: Watch[Pod], namespace: str, name: str, node: str
) -> tuple[str, float]:
    started = time.perf_counter()
    await client.create(pod(namespace, name, node))
    async for event in events:
        obj = event.object
        if obj.metadata.name == name and obj.status.phase == "Running":
            return "kpy", time.perf_counter() - started
    raise RuntimeError(f"the pod watch of {namespace} ended before {name} ran")


async def _docker_run(docker: aiodocker.Docker, run_id: str) -> tuple[str, float]:
    started = time.perf_counter()
    container = await docker.containers.create(_body(run_id))
    await container.start()
    return "run", time.perf_counter() - started


async def _by_hand(docker: aiodocker.Docker, run_id: str) -> tuple[str, float]:
    started = time.perf_counter()
    pause_body = {**_body(run_id), "Entrypoint": [PAUSE_COMMAND[0]], "Cmd": list(PAUSE_COMMAND[1:])}
    pause = await docker.containers.create(pause_body)
    await pause.start()
    app_body = {**_body(run_id), "HostConfig": {"NetworkMode": f"container:{pause.id}"}}
    app = await docker.containers.create(app_body)
    await app.start()
    return "by_hand", time.perf_counter() - started


def _body(run_id: str) -> dict[str, Any]:
    return {"Image": IMAGE, "Cmd": COMMAND, "Labels": {LABEL: run_id}}


async def _remove_raw(docker: aiodocker.Docker, run_id: str) -> None:
    filters = json.dumps({"label": [f"{LABEL}={run_id}"]})
    for container in await docker.containers.list(all=True, filters=filters):
        await container.delete(force=True)


async def _remove_node(host: str, node: str) -> None:
    """Removes what the agent ran, through the runtime (its records are
    Docker's labels), as `kpy down` does."""
    runtime = DockerRuntime(node_name=node, docker_host=host)
    await runtime.start()
    try:
        for sandbox in await runtime.list_pod_sandboxes():
            await runtime.remove_pod_sandbox(sandbox.id)
    finally:
        await runtime.close()


def _result(samples: Samples, sizes: Sizes, *, quick: bool) -> Result:
    rows = [
        *latency_rows(NAME, "pod create to Running vs docker run -d", samples.kpy, samples.run),
        *latency_rows(
            NAME, "pod create to Running vs pause+container", samples.kpy, samples.by_hand
        ),
    ]
    ratio = percentile(samples.kpy, 50) / percentile(samples.run, 50)
    aims = [
        Aim(
            f"docker: a pod's start within {AIM_RATIO:.1f}x of docker run -d (p50, "
            f"{sizes.pods} pods)",
            ratio < AIM_RATIO,
            f"p50 {percentile(samples.kpy, 50) * 1e3:.0f} ms vs "
            f"{percentile(samples.run, 50) * 1e3:.0f} ms: {ratio:.2f}x; Docker's own work "
            f"for a pod (pause + container) {percentile(samples.by_hand, 50) * 1e3:.0f} ms",
        )
    ]
    return Result(
        rows=rows, aims=aims if not quick else [], details={"pods": sizes.pods, "image": IMAGE}
    )

"""Pod workers: the one place that runs a pod's lifecycle, for every runtime.

Each pod bound to this node (or read from the static manifest directory)
gets one worker task. The worker calls `sync` whenever something about the
pod may have changed (the API object, a container event from the runtime,
a probe result, a ConfigMap it uses, a back-off expiring) and never polls:
`sync` looks at the whole state, like a controller's sync, does what is due
and returns when it next wants to run (a back-off deadline) or None.

`sync` follows the kubelet's SyncPod:
1. a sandbox (the pod's IP) and its volumes; a sandbox that died (the
   runtime reports it on its event stream) is replaced, as the kubelet
   does: what is left of the containers is killed, a `SandboxChanged` event
   recorded, and the containers run again in a new sandbox per
   restartPolicy (their attempts, and restartCount, go on from the old
   sandbox's; init containers run again);
2. init containers one at a time, each to success before the next; a failed
   one is restarted per restartPolicy (Never: the pod fails);
3. then every app container; an exited one restarts per restartPolicy,
   after the crash-loop back-off (the first restart is immediate, then
   base, 2 base ... as the kubelet's); a liveness or startup probe failure
   kills it first;
4. the status. The agent owns it: it compares what it computes with what
   the API holds (the pod, or a static pod's mirror, as its informer shows
   it) and patches back whatever differs, whoever wrote it; its own writes
   coming back are recognised, so nothing is written when nothing changed
   (`status.status_update`).

A pod the agent cannot run because of what is stored in it (a quantity that
does not parse, a volume it cannot make sense of) fails on its own: the
error is logged, recorded as a `FailedSync` event and shown as the waiting
reason of its containers, the sync is retried with a back-off, and no other
pod, nor the agent, is affected.

Starting a container pulls its image, resolves its env and mounts (a
missing ConfigMap or Secret holds it in CreateContainerConfigError until the
object appears), creates and starts it, then runs postStart; the container
is not Running until the hook completes, and a failed hook kills it. Before
a pod's volumes are first set up, its sync waits (a bounded time) until the
objects it uses are loaded (`PodObjects.wait_for_pod`), so that what is
only not loaded yet is not reported missing.

Termination (the pod deleted, removed from its source, or finished) runs
preStop and stops every container within the grace period (the delete
request's, else the pod's terminationGracePeriodSeconds, default 30), then
stops the sandbox, writes the final status and removes the API object with
grace 0, as the kubelet does.

Eviction for node pressure (`evict`, from the eviction manager) stops the
containers within the grace period it gives and leaves the API object,
phase Failed with reason Evicted and the manager's message, for its
controller to replace; a pod found so when the agent starts stays so.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import anyio

from kpy.agent.env import ConfigError, Objects, PodContext, container_env, expand
from kpy.agent.probes import ProbeResult, run_action
from kpy.agent.runtime import (
    LABEL_CONTAINER_ATTEMPT,
    LABEL_CONTAINER_INIT,
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    ContainerConfig,
    ContainerState,
    ImageNeverPullError,
    ImagePullError,
    NotFoundError,
    PodSandboxConfig,
    RuntimeError_,
    SandboxState,
)
from kpy.agent.security import container_security, refusal, verify_run_as_non_root
from kpy.agent.status import Observed, newest, pod_status, status_update
from kpy.agent.volumes import VolumeError
from kpy.api import errors
from kpy.api.core.v1 import Pod
from kpy.api.defaults import image_pull_policy_for
from kpy.api.meta.v1 import Preconditions
from kpy.api.quantity import Quantity

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from kpy.agent.backoff import Backoff
    from kpy.agent.dns import PodDNS
    from kpy.agent.probes import ProbeManager
    from kpy.agent.runtime import ContainerStatus, PodSandbox, Runtime, SecurityConfig
    from kpy.agent.volumes import VolumeManager
    from kpy.api.core.v1 import Container, PodStatus
    from kpy.api.core.v1 import ContainerStatus as APIContainerStatus
    from kpy.cache.events import EventRecorder
    from kpy.client import Client

log = logging.getLogger("kpy.agent")

DEFAULT_GRACE = 30
KEEP_INSTANCES = 2  # per container: the newest and the one before (logs --previous)


@dataclass(slots=True)
class PodRecord:
    """The agent's state of one pod; owned by its worker."""

    uid: str
    pod: Pod
    static: bool = False
    gone: bool = False  # removed from its source
    wake: anyio.Event = field(default_factory=anyio.Event)
    sandbox: PodSandbox | None = None
    # Ids of the pod's earlier sandboxes, stopped (one died and was
    # replaced): their containers still count for attempts and restarts.
    retired: list[str] = field(default_factory=list)
    volumes: dict[str, Path] | None = None
    refresh_volumes: bool = False
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    kill: dict[str, str] = field(default_factory=dict)  # container -> why
    probed: set[str] = field(default_factory=set)  # container ids with probe workers
    start_time: float | None = None
    # The API object whose status the agent owns, as its informer last
    # showed it: the pod itself, or a static pod's mirror (None: none yet).
    api: Pod | None = None
    # What the agent last made the API's status say, and the API's status
    # (with its resourceVersion) right after that write.
    written: PodStatus | None = None
    echo: PodStatus | None = None
    echo_version: int = 0
    # Container -> the exited instance whose back-off has been reported.
    backed_off: dict[str, str] = field(default_factory=dict)
    failure: str = ""  # the last unexpected error of a sync, logged once
    # Evicted by the agent for node pressure: (grace period, message); the
    # pod is killed and ends Failed with reason Evicted.
    evicted: tuple[float, str] | None = None
    finished: bool = False
    stopped: bool = False  # terminated and cleaned up: the worker ends
    scope: anyio.CancelScope | None = None

    @property
    def key(self) -> str:
        return f"{self.pod.metadata.namespace}/{self.pod.metadata.name}"

    def must_stop(self) -> bool:
        return self.gone or self.pod.metadata.HasField("deletion_timestamp")


class PodObjects(Objects, Protocol):
    """What the workers need of the caches of the objects pods use (the
    agent's `objects.ObjectManager`): env's and volumes' lookups, and a
    wait until a pod's objects are loaded."""

    async def wait_for_pod(self, uid: str) -> None:
        """Returns once the objects pod `uid` uses are known (found or
        not), or after a bounded wait."""
        ...


@dataclass(frozen=True, slots=True)
class NodeView:
    """What pods need to know of their node."""

    name: str
    host_ip: str
    allocatable: Callable[[], Mapping[str, Quantity]]


class PodWorkers:
    """Runs one worker per pod; see the module docstring."""

    def __init__(
        self,
        *,
        client: Client,
        runtime: Runtime,
        node: NodeView,
        volumes: VolumeManager,
        probes: ProbeManager,
        objects: PodObjects,
        events: EventRecorder,
        backoff: Backoff,
        clock: Callable[[], float] = time.time,
        dns: PodDNS | None = None,
    ) -> None:
        self._client = client
        self._dns = dns  # resolv.conf and service links; None: neither
        self._runtime = runtime
        self._node = node
        self._volumes = volumes
        self._probes = probes
        self._objects = objects
        self._events = events
        self._backoff = backoff
        self._clock = clock
        self._records: dict[str, PodRecord] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        # Static pod uid -> the name of its mirror pod once it exists.
        self.mirrors: dict[str, str] = {}

    # -- what the sources say -----------------------------------------------------

    def records(self) -> list[PodRecord]:
        return list(self._records.values())

    def record(self, uid: str) -> PodRecord | None:
        return self._records.get(uid)

    def update(self, pod: Pod, *, static: bool = False) -> None:
        """The desired pod, new or changed."""
        uid = pod.metadata.uid
        rec = self._records.get(uid)
        if rec is None:
            rec = self._records[uid] = PodRecord(uid=uid, pod=pod, static=static)
            if not static:
                rec.api = pod
                if pod.status.phase == "Failed" and pod.status.reason == "Evicted":
                    # Evicted before this agent started: it stays so, and
                    # what may still run of it is stopped at once.
                    rec.evicted = (0.0, pod.status.message)
            assert self._tg is not None, "PodWorkers.run() is not running"
            self._tg.start_soon(self._worker, rec, name=f"pod {rec.key}")
            return
        if _labels_or_annotations_changed(rec.pod, pod):
            rec.refresh_volumes = True
        rec.pod = pod
        if not rec.static:
            rec.api = pod
        self._wake(rec, stopping=rec.must_stop())

    def remove(self, uid: str) -> None:
        """The pod left its source (deleted from the API, or its manifest
        removed): stop it."""
        rec = self._records.get(uid)
        if rec is not None:
            rec.gone = True
            self._wake(rec, stopping=True)

    def wake(self, uid: str, *, refresh_volumes: bool = False) -> None:
        rec = self._records.get(uid)
        if rec is not None:
            rec.refresh_volumes |= refresh_volumes
            self._wake(rec)

    def mirror_changed(self, uid: str, mirror: Pod | None) -> None:
        """Static pod `uid`'s mirror pod as the API shows it (None: it has
        none, or one being replaced): its status is the worker's to keep."""
        if mirror is None:
            self.mirrors.pop(uid, None)
        else:
            self.mirrors[uid] = mirror.metadata.name
        rec = self._records.get(uid)
        if rec is not None:
            rec.api = mirror
            if mirror is not None:
                self._wake(rec)

    def evict(self, uid: str, grace: float, message: str) -> bool:
        """Stops the pod for node pressure: its containers are killed within
        `grace` seconds and its status says phase Failed, reason Evicted,
        `message`; the API object stays (its controller replaces it). False
        when the pod is unknown, finished or already stopping."""
        rec = self._records.get(uid)
        if rec is None or rec.finished or rec.must_stop() or rec.evicted is not None:
            return False
        rec.evicted = (grace, message)
        self._wake(rec, stopping=True)
        return True

    def probe_failed(self, result: ProbeResult) -> None:
        """One failed probe run: an `Unhealthy` event each time, as the
        kubelet records them (repeats count up on one Event)."""
        rec = self._records.get(result.pod_uid)
        if rec is not None:
            kind = result.kind.capitalize()
            self._events.event(
                rec.pod, "Warning", "Unhealthy", f"{kind} probe failed: {result.message}"
            )

    def probe_result(self, result: ProbeResult) -> None:
        rec = self._records.get(result.pod_uid)
        if rec is None:
            return
        if not result.success and result.kind in ("liveness", "startup"):
            rec.kill[result.container_name] = (
                f"Container {result.container_name} failed {result.kind} probe, will be restarted"
            )
        self._wake(rec)

    def _wake(self, rec: PodRecord, *, stopping: bool = False) -> None:
        rec.wake.set()
        if stopping and rec.scope is not None:
            rec.scope.cancel()  # a sync blocked in a hook must not delay the stop

    # -- workers ---------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Hosts the workers until cancelled. No worker ends it (`_worker`
        contains every failure of its pod); should it end anyway while
        nobody stopped the agent, it raises, so the agent stops and says why
        rather than run on with no pod handled."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class() as e:
            if _cancelled_from_outside():
                raise
            raise PodWorkersStopped() from e
        raise PodWorkersStopped()

    async def adopt_orphans(self) -> None:
        """Stops sandboxes of pods this agent no longer has (deleted while it
        was down). Call once the sources have delivered every pod."""
        for sandbox in await self._runtime.list_pod_sandboxes():
            known = self._records.get(sandbox.uid)
            if known is not None:
                kept = known.sandbox
                if known.gone and kept is not None and kept.id != sandbox.id:
                    known.retired.append(sandbox.id)  # an orphan's earlier sandbox
                continue
            pod = Pod()
            pod.metadata.namespace, pod.metadata.name = sandbox.namespace, sandbox.name
            pod.metadata.uid = sandbox.uid
            pod.spec.termination_grace_period_seconds = 2
            rec = self._records[sandbox.uid] = PodRecord(uid=sandbox.uid, pod=pod, gone=True)
            rec.sandbox = sandbox
            assert self._tg is not None
            self._tg.start_soon(self._worker, rec, name=f"orphan {rec.key}")

    async def _worker(self, rec: PodRecord) -> None:
        """Syncs the pod whenever woken, until it has been stopped. This is
        the boundary no failure of one pod crosses: `_round` retries what
        fails and reports what it did not foresee; anything that escapes it
        all the same is logged with its trace and the pod's key and retried
        after a back-off. Only the agent stopping ends a worker early."""
        try:
            while True:
                rec.wake = anyio.Event()
                try:
                    delay = await self._round(rec)
                except Exception:
                    log.exception("pod worker failed; retrying", extra={"pod": rec.key})
                    now = self._clock()
                    delay = self._backoff.failed_at(_sync_key(rec), now) - now
                if rec.stopped:
                    return
                wait = math.inf if delay is None or math.isnan(delay) else max(delay, 0.0)
                with anyio.move_on_after(wait):
                    await rec.wake.wait()
        finally:
            self._records.pop(rec.uid, None)

    async def _round(self, rec: PodRecord) -> float | None:
        """One sync of the pod, or its stop (then `rec.stopped`); returns
        when to sync again (None: when woken). A failure is retried, and one
        the agent did not foresee (what is stored in the pod makes its code
        raise) is also reported on the pod."""
        try:
            if rec.must_stop():
                await self._terminate(rec)
                rec.stopped = True
                return None
            if rec.evicted is not None and not rec.finished:
                await self._evict(rec)
                return None
            delay = await self._sync_until_stopped(rec)
            if rec.failure:
                rec.failure = ""
                self._backoff.forget(_sync_key(rec))
            return delay
        except errors.Invalid as e:
            # The API refuses what the pod holds: no retry soon will do.
            return await self._sync_crashed(rec, e)
        except (errors.StatusError, RuntimeError_, OSError) as e:
            log.warning("pod sync failed; retrying", extra={"pod": rec.key, "error": str(e)})
            return 1.0
        except Exception as e:
            return await self._sync_crashed(rec, e)
        except anyio.get_cancelled_exc_class() as e:
            if _cancelled_from_outside():
                raise  # the agent is stopping
            # A CancelledError nobody here asked for (a library's own): a
            # failure of this pod's sync like any other.
            return await self._sync_crashed(rec, e)

    async def _sync_until_stopped(self, rec: PodRecord) -> float | None:
        """`sync`, cut short when the pod must stop (`_wake` cancels
        `rec.scope`): a sync blocked in a hook must not delay the stop."""
        scope = rec.scope = anyio.CancelScope()
        try:
            with scope:
                return await self.sync(rec)
            return 0.0  # cut short: the stop is due at once
        except anyio.get_cancelled_exc_class():
            if not scope.cancel_called or _cancelled_from_outside():
                raise
            # The cut asked for, raised by a library that answers the
            # cancellation of its call with a CancelledError of its own
            # (grpc.aio does, for an API call in flight), which the scope
            # cannot tell is its own: the sync was cut short as wanted.
            return 0.0
        finally:
            rec.scope = None

    async def _sync_crashed(self, rec: PodRecord, e: BaseException) -> float:
        """Reports an unforeseen error of one pod's sync (logged with its
        trace the first time, a FailedSync event, the waiting reason of its
        containers not running) and says when to try again (a back-off)."""
        message = (
            f"error syncing pod: {type(e).__name__}: {e}; retrying with a back-off (the "
            "agent's log has the details); if the pod's spec is at fault, recreate the pod"
        )
        if message != rec.failure:
            log.exception("pod sync crashed; retrying", extra={"pod": rec.key}, exc_info=e)
            rec.failure = message
        else:
            log.warning(
                "pod sync crashed again; retrying", extra={"pod": rec.key, "error": message}
            )
        self._events.event(rec.pod, "Warning", "FailedSync", message)
        now = self._clock()
        retry_at = self._backoff.failed_at(_sync_key(rec), now)
        if rec.must_stop() or rec.finished:
            return retry_at - now
        try:
            instances = []
            if rec.sandbox is not None:
                instances = await self._runtime.list_containers(rec.sandbox.id)
            spec = rec.pod.spec
            for c in (*spec.init_containers, *spec.containers):
                if newest(instances, c.name)[0] is None:  # the others show what they did
                    rec.waiting[c.name] = ("CreateContainerError", message)
            await self._write_status(rec, instances)
        except Exception:  # the report is best effort; the retry stands
            log.warning("cannot report the sync error in the pod's status", exc_info=True)
        return retry_at - now

    # -- sync ------------------------------------------------------------------------

    async def sync(self, rec: PodRecord) -> float | None:
        pod = rec.pod
        now = self._clock()
        if rec.start_time is None:
            rec.start_time = now
        if rec.finished:
            return None
        rec.waiting.clear()
        dead = rec.sandbox is not None and not await self._sandbox_ready(rec.sandbox)
        if dead and not await self._replace_sandbox(rec):
            # Not to run again: what its containers did decides its phase.
            status = await self._write_status(rec, await self._instances(rec))
            if status is not None and status.phase in ("Succeeded", "Failed"):
                await self._finish(rec)
            return None
        if rec.volumes is None:
            # Before its first start: not "not found" for what is only not
            # loaded yet (a pod's objects are watched from when it arrives).
            await self._objects.wait_for_pod(rec.uid)
        sandbox = await self._ensure_sandbox(rec)
        if sandbox is None:
            await self._write_status(rec, [])
            return 10.0
        if rec.refresh_volumes and rec.volumes is not None:
            rec.refresh_volumes = False
            self._volumes.refresh(pod, self._objects, self._context(rec))
        instances = await self._instances(rec)
        self._watch_probes(rec, instances)
        wake_at = math.inf
        policy = pod.spec.restart_policy or "Always"
        init_done = True
        for c in pod.spec.init_containers:
            latest, _ = newest(instances, c.name)
            if _succeeded(latest):
                assert latest is not None
                if latest.sandbox_id == sandbox.id:
                    continue
                # Done in a sandbox that died: run again in the new one,
                # as the kubelet runs every init container again.
                init_done = False
                wake_at = min(wake_at, await self._start(rec, c, latest.attempt + 1))
                break
            init_done = False
            if latest is not None and latest.state is ContainerState.RUNNING:
                break
            if latest is not None and policy == "Never":
                break  # failed for good: the pod is Failed
            wake_at = min(wake_at, await self._start_or_wait(rec, c, latest, now))
            break
        if init_done:
            for c in pod.spec.containers:
                latest, _ = newest(instances, c.name)
                if latest is not None and latest.state is ContainerState.RUNNING:
                    why = rec.kill.pop(c.name, None)
                    if why is None:
                        continue
                    await self._kill(rec, c, latest, self._probe_grace(rec, c), why)
                    latest = await self._runtime.container_status(latest.id)
                if latest is not None and not _should_restart(policy, latest):
                    continue
                wake_at = min(wake_at, await self._start_or_wait(rec, c, latest, now))
        instances = await self._instances(rec)
        await self._collect_garbage(instances)
        status = await self._write_status(rec, instances)
        if status is not None and status.phase in ("Succeeded", "Failed"):
            await self._finish(rec)
            return None
        return None if wake_at == math.inf else wake_at - self._clock()

    async def _instances(self, rec: PodRecord) -> list[ContainerStatus]:
        """The pod's containers in its sandbox and in the ones it replaced."""
        instances: list[ContainerStatus] = []
        for sandbox_id in (*rec.retired, *([rec.sandbox.id] if rec.sandbox else [])):
            instances += await self._runtime.list_containers(sandbox_id)
        return instances

    async def _ensure_sandbox(self, rec: PodRecord) -> PodSandbox | None:
        """The pod's ready sandbox (found again after an agent restart, or
        made), with its volumes; None while a volume cannot be prepared."""
        pod = rec.pod
        if rec.sandbox is None:
            for sandbox in await self._runtime.list_pod_sandboxes():
                if sandbox.uid != rec.uid or sandbox.id in rec.retired:
                    continue
                if sandbox.state is SandboxState.READY:
                    if rec.sandbox is not None:
                        rec.retired.append(rec.sandbox.id)
                    rec.sandbox = sandbox
                else:
                    rec.retired.append(sandbox.id)
        if rec.volumes is None:
            try:
                rec.volumes = self._volumes.prepare(pod, self._objects, self._context(rec))
            except (ConfigError, VolumeError) as e:
                for c in (*pod.spec.init_containers, *pod.spec.containers):
                    rec.waiting[c.name] = ("ContainerCreating", str(e))
                self._events.event(pod, "Warning", "FailedMount", str(e))
                return None
        if rec.sandbox is None:
            rec.sandbox = await self._runtime.run_pod_sandbox(self._sandbox_config(rec))
        return rec.sandbox

    async def _sandbox_ready(self, sandbox: PodSandbox) -> bool:
        try:
            return (await self._runtime.pod_sandbox_status(sandbox.id)).state is SandboxState.READY
        except NotFoundError:  # removed behind the agent's back: dead as well
            return False

    async def _replace_sandbox(self, rec: PodRecord) -> bool:
        """The kubelet's answer to a sandbox that is not ready (its pause
        container died: the pod's network is gone): kill what is left of
        the pod's containers and, unless the pod is not to run again (its
        restartPolicy Never and its containers already started once, or no
        container left to restart), make it run in a new sandbox (made by
        `_ensure_sandbox`), its attempt one more. Returns whether it will."""
        dead = rec.sandbox
        assert dead is not None
        with contextlib.suppress(NotFoundError):
            await self._runtime.stop_pod_sandbox(dead.id)  # kills what still runs
        rec.retired.append(dead.id)
        rec.sandbox = None
        self._probes.remove(rec.uid)
        rec.probed.clear()
        instances = await self._instances(rec)
        spec = rec.pod.spec
        policy = spec.restart_policy or "Always"
        if policy == "Never" and instances:
            return False
        if policy == "OnFailure" and all(
            _succeeded(newest(instances, c.name)[0]) for c in spec.containers
        ):
            return False  # nothing left to run
        self._events.event(
            rec.pod,
            "Normal",
            "SandboxChanged",
            "Pod sandbox changed, it will be killed and re-created.",
        )
        return True

    def _sandbox_config(self, rec: PodRecord) -> PodSandboxConfig:
        m = rec.pod.metadata
        return PodSandboxConfig(
            namespace=m.namespace,
            name=m.name,
            uid=rec.uid,
            attempt=len(rec.retired),
            labels={
                LABEL_POD_NAMESPACE: m.namespace,
                LABEL_POD_NAME: m.name,
                LABEL_POD_UID: rec.uid,
            },
            annotations=dict(m.annotations),
            hostname=rec.pod.spec.hostname or m.name,
            log_directory=str(self._volumes.log_dir(m.namespace, m.name, rec.uid)),
            sysctls={s.name: s.value for s in rec.pod.spec.security_context.sysctls},
        )

    def _context(self, rec: PodRecord) -> PodContext:
        return PodContext(
            pod_ip=rec.sandbox.ip if rec.sandbox else "",
            host_ip=self._node.host_ip,
            node_allocatable=self._node.allocatable(),
            service_env=self._dns.service_env(rec.pod) if self._dns else {},
        )

    async def _start_or_wait(
        self, rec: PodRecord, c: Container, latest: ContainerStatus | None, now: float
    ) -> float:
        """Starts the next instance of `c` unless its back-off holds it;
        returns when the pod should be synced again for it (inf: no need)."""
        attempt = 0
        if latest is not None:
            attempt = latest.attempt + 1
            if latest.state is ContainerState.EXITED and latest.finished_at is not None:
                key = f"{rec.uid}/{c.name}"
                at = self._backoff.restart_at(key, latest.started_at, latest.finished_at)
                if now < at:
                    delay = round(at - latest.finished_at)
                    pod = _format_pod(rec)
                    rec.waiting[c.name] = (
                        "CrashLoopBackOff",
                        f"back-off {delay}s restarting failed container={c.name} pod={pod}",
                    )
                    if rec.backed_off.get(c.name) != latest.id:  # once per exit
                        rec.backed_off[c.name] = latest.id
                        self._events.event(
                            rec.pod,
                            "Warning",
                            "BackOff",
                            f"Back-off restarting failed container {c.name} in pod {pod}",
                        )
                    return at
        return await self._start(rec, c, attempt)

    async def _start(self, rec: PodRecord, c: Container, attempt: int) -> float:
        pod, sandbox = rec.pod, rec.sandbox
        assert sandbox is not None
        assert rec.volumes is not None
        policy = c.image_pull_policy or image_pull_policy_for(c.image)
        # As the kubelet: after a failed pull, no new attempt until the pull
        # back-off ends (ImagePullBackOff); each failure doubles it.
        pull_key = f"{rec.uid}/{c.name}/pull"
        held = self._backoff.holding(pull_key, self._clock())
        if held is not None:
            rec.waiting[c.name] = ("ImagePullBackOff", f'Back-off pulling image "{c.image}"')
            return held
        try:
            await self._runtime.pull_image(c.image, policy)
        except ImagePullError as e:
            now = self._clock()
            rec.waiting[c.name] = (e.reason, str(e))
            self._events.event(pod, "Warning", "Failed", f'Failed to pull image "{c.image}": {e}')
            if isinstance(e, ImageNeverPullError):
                # Nothing to back off from: look again later, in case the
                # image has been loaded meanwhile (ErrImageNeverPull stays).
                return now + self._backoff.base
            return self._backoff.failed_at(pull_key, now)
        self._backoff.forget(pull_key)
        try:
            ctx = self._context(rec)
            env = container_env(pod, c, self._objects, ctx)
            mounts = self._volumes.mounts(c, rec.volumes, pod=pod, env=dict(env))
            if self._dns is not None:
                mounts += self._dns.mounts(pod, c, self._volumes.pod_dir(rec.uid))
            cpu_limit = _limit(pod, c, "cpu", milli=True)
            memory_limit = _limit(pod, c, "memory", milli=False)
        except (ConfigError, VolumeError) as e:
            rec.waiting[c.name] = ("CreateContainerConfigError", str(e))
            self._events.event(pod, "Warning", "Failed", f"Error: {e}")
            return math.inf  # a change to the missing object wakes the pod
        security = container_security(pod, c)
        try:
            problem = await self._security_problem(pod, c, security)
        except RuntimeError_ as e:
            problem = str(e)
        if problem:
            rec.waiting[c.name] = ("CreateContainerConfigError", problem)
            self._events.event(pod, "Warning", "Failed", f"Error: {problem}")
            return self._clock() + self._backoff.base
        values = dict(env)
        labels = {
            LABEL_POD_NAMESPACE: pod.metadata.namespace,
            LABEL_POD_NAME: pod.metadata.name,
            LABEL_POD_UID: rec.uid,
            LABEL_CONTAINER_NAME: c.name,
            LABEL_CONTAINER_ATTEMPT: str(attempt),
        }
        if any(x.name == c.name for x in pod.spec.init_containers):
            labels[LABEL_CONTAINER_INIT] = "true"
        config = ContainerConfig(
            name=c.name,
            image=c.image,
            attempt=attempt,
            image_pull_policy=policy,
            command=[expand(word, values) for word in c.command],
            args=[expand(word, values) for word in c.args],
            working_dir=c.working_dir,
            env=env,
            mounts=mounts,
            cpu_limit_millis=cpu_limit,
            memory_limit_bytes=memory_limit,
            stop_signal=c.lifecycle.stop_signal or "SIGTERM",
            labels=labels,
            security=security,
            log_path=str(
                self._volumes.log_dir(pod.metadata.namespace, pod.metadata.name, rec.uid)
                / c.name
                / f"{attempt}.log"
            ),
        )
        try:
            cid = await self._runtime.create_container(
                sandbox.id, config, self._sandbox_config(rec)
            )
        except RuntimeError_ as e:
            rec.waiting[c.name] = (e.reason, str(e))
            self._events.event(pod, "Warning", "Failed", f"Error: {e}")
            return self._clock() + self._backoff.base
        self._events.event(pod, "Normal", "Created", f"Created container {c.name}")
        try:
            await self._runtime.start_container(cid)
        except RuntimeError_ as e:
            self._events.event(pod, "Warning", "Failed", f"Error: {e}")
            return self._clock()  # exited at once: the next sync applies the back-off
        self._events.event(pod, "Normal", "Started", f"Started container {c.name}")
        self._watch_probe(rec, c, cid)
        if c.lifecycle.HasField("post_start"):
            await self._post_start(rec, c, cid)
        return math.inf

    async def _security_problem(self, pod: Pod, c: Container, security: SecurityConfig) -> str:
        """Why `c` must not be created on this runtime (a securityContext
        field it cannot apply; runAsNonRoot with a root user), or ""."""
        path = _container_path(pod, c.name)
        runtime = self._runtime
        problem = refusal(pod, c, path, runtime.name, runtime.security_fields)
        if problem or not security.run_as_non_root:
            return problem
        return verify_run_as_non_root(pod, c, security, await runtime.image_user(c.image))

    async def _post_start(self, rec: PodRecord, c: Container, cid: str) -> None:
        assert rec.sandbox is not None
        outcome = await run_action(
            c.lifecycle.post_start,
            runtime=self._runtime,
            container_id=cid,
            container=c,
            pod_ip=rec.sandbox.ip,
            timeout=None,
        )
        if outcome.success:
            return
        message = f"PostStartHook failed: {outcome.message}"
        self._events.event(rec.pod, "Warning", "FailedPostStartHook", message)
        status = await self._runtime.container_status(cid)
        await self._kill(rec, c, status, self._grace(rec), message, pre_stop=False)

    async def _kill(
        self,
        rec: PodRecord,
        c: Container | None,
        instance: ContainerStatus,
        grace: float,
        why: str,
        *,
        pre_stop: bool = True,
    ) -> None:
        """preStop (within the grace period), then stop: the stop signal,
        the rest of the grace period, SIGKILL."""
        started = time.monotonic()
        if pre_stop and c is not None and c.lifecycle.HasField("pre_stop") and rec.sandbox:
            with anyio.move_on_after(grace):
                outcome = await run_action(
                    c.lifecycle.pre_stop,
                    runtime=self._runtime,
                    container_id=instance.id,
                    container=c,
                    pod_ip=rec.sandbox.ip,
                    timeout=grace,
                )
                if not outcome.success:
                    self._events.event(
                        rec.pod,
                        "Warning",
                        "FailedPreStopHook",
                        f"PreStopHook failed: {outcome.message}",
                    )
        left = max(grace - (time.monotonic() - started), 0.0)
        self._events.event(
            rec.pod,
            "Normal",
            "Killing",
            why,
        )
        self._probes.remove(rec.uid, instance.name)
        rec.probed.discard(instance.id)
        await self._runtime.stop_container(instance.id, left)

    # -- probes ----------------------------------------------------------------------

    def _watch_probes(self, rec: PodRecord, instances: list[ContainerStatus]) -> None:
        """Probe workers for running containers that have none (after an
        agent restart, or a start in another sync)."""
        specs = {c.name: c for c in rec.pod.spec.containers}
        for i in instances:
            if i.state is ContainerState.RUNNING and i.id not in rec.probed and i.name in specs:
                latest, _ = newest(instances, i.name)
                if latest is i:
                    self._watch_probe(rec, specs[i.name], i.id, known=True)

    def _watch_probe(self, rec: PodRecord, c: Container, cid: str, *, known: bool = False) -> None:
        """`known`: the container ran before this worker saw it (an agent
        restart), so the API's started and ready for it still hold."""
        if not any(c.HasField(f) for f in ("liveness_probe", "readiness_probe", "startup_probe")):
            return
        if c.name not in {x.name for x in rec.pod.spec.containers}:
            return  # init containers have no probes
        assert rec.sandbox is not None
        said = _reported(rec.pod, c.name, f"{self._runtime.name}://{cid}") if known else None
        self._probes.remove(rec.uid, c.name)
        self._probes.add(
            rec.uid,
            c,
            cid,
            rec.sandbox.ip,
            on_result=self.probe_result,
            on_failure=self.probe_failed,
            started=said is not None and said.started,
            ready=said is not None and said.ready,
        )
        rec.probed.add(cid)

    # -- status ----------------------------------------------------------------------

    def observed(self, rec: PodRecord, instances: list[ContainerStatus]) -> Observed:
        names = [c.name for c in rec.pod.spec.containers]
        ready = {
            n: self._probes.ready(rec.uid, n) for n in names if _has(rec.pod, n, "readiness_probe")
        }
        started = {
            n: self._probes.started(rec.uid, n) for n in names if _has(rec.pod, n, "startup_probe")
        }
        return Observed(
            runtime=self._runtime.name,
            pod_ip=rec.sandbox.ip if rec.sandbox else "",
            host_ip=self._node.host_ip,
            start_time=rec.start_time,
            instances=instances,
            waiting=dict(rec.waiting),
            ready=ready,
            started=started,
            phase="Failed" if rec.evicted else "",
            reason="Evicted" if rec.evicted else "",
            message=rec.evicted[1] if rec.evicted else "",
        )

    async def _write_status(
        self, rec: PodRecord, instances: list[ContainerStatus]
    ) -> PodStatus | None:
        """Computes the pod's status and makes the API hold it (see the
        module docstring); returns the status computed."""
        held, version = self._held(rec)
        status = pod_status(
            rec.pod, self.observed(rec, instances), self._clock(), rec.written, api=held
        )
        target = self.mirrors.get(rec.uid) if rec.static else rec.pod.metadata.name
        if target is None:
            return status  # no mirror pod yet: nothing to write to
        patch = status_update(status, held, written=rec.written, echo=rec.echo)
        # A second round puts back what a write racing the first one left;
        # no third, in case the server words something its own way.
        for _ in range(2):
            if not patch:
                break
            try:
                written = await self._client.patch(
                    Pod,
                    target,
                    {"status": patch},
                    namespace=rec.pod.metadata.namespace,
                    patch_type="merge",
                    subresource="status",
                )
            except errors.NotFound:
                return status
            held, version = written.status, _version(written)
            patch = status_update(status, held, written=None, echo=None)
        rec.written, rec.echo, rec.echo_version = status, held, version
        return status

    def _held(self, rec: PodRecord) -> tuple[PodStatus | None, int]:
        """The newest status the API is known to hold for the pod, with its
        resourceVersion: the informer's copy, unless the agent's own write
        is newer than it."""
        version = _version(rec.api) if rec.api is not None else 0
        if rec.echo is not None and rec.echo_version > version:
            return rec.echo, rec.echo_version
        return (rec.api.status if rec.api is not None else None), version

    # -- ending ----------------------------------------------------------------------

    async def _finish(self, rec: PodRecord) -> None:
        """A pod that reached Succeeded or Failed keeps its containers (for
        logs) but gives back its sandbox."""
        rec.finished = True
        self._probes.remove(rec.uid)
        if rec.sandbox is not None:
            await self._runtime.stop_pod_sandbox(rec.sandbox.id)

    def _grace(self, rec: PodRecord) -> float:
        m, spec = rec.pod.metadata, rec.pod.spec
        if m.HasField("deletion_grace_period_seconds"):
            return float(m.deletion_grace_period_seconds)
        if spec.HasField("termination_grace_period_seconds"):
            return float(spec.termination_grace_period_seconds)
        return float(DEFAULT_GRACE)

    def _probe_grace(self, rec: PodRecord, c: Container) -> float:
        for probe in (c.liveness_probe, c.startup_probe):
            if probe.HasField("termination_grace_period_seconds"):
                return float(probe.termination_grace_period_seconds)
        return self._grace(rec)

    async def _evict(self, rec: PodRecord) -> None:
        """Kills what runs of an evicted pod, writes its Failed status and
        gives back its sandbox (the kubelet's killPod for an eviction)."""
        assert rec.evicted is not None
        grace = rec.evicted[0]
        if rec.sandbox is None:  # evicted before this agent started: find what is left
            for sandbox in await self._runtime.list_pod_sandboxes():
                if sandbox.uid == rec.uid and sandbox.id not in rec.retired:
                    rec.sandbox = sandbox
        if rec.sandbox is not None:
            specs = {c.name: c for c in (*rec.pod.spec.init_containers, *rec.pod.spec.containers)}
            live = [
                i
                for i in await self._runtime.list_containers(rec.sandbox.id)
                if i.state in (ContainerState.RUNNING, ContainerState.CREATED)
            ]
            async with anyio.create_task_group() as tg:
                for i in live:
                    why = f"Stopping container {i.name}"
                    tg.start_soon(self._kill, rec, specs.get(i.name), i, grace, why)
        await self._write_status(rec, await self._instances(rec))
        await self._finish(rec)

    async def _terminate(self, rec: PodRecord) -> None:
        grace = self._grace(rec)
        sandbox = rec.sandbox
        if sandbox is None:
            for s in await self._runtime.list_pod_sandboxes():
                if s.uid == rec.uid and s.id not in rec.retired:
                    sandbox = rec.sandbox = s
        if sandbox is not None:
            specs = {c.name: c for c in (*rec.pod.spec.init_containers, *rec.pod.spec.containers)}
            live = [
                i
                for i in await self._runtime.list_containers(sandbox.id)
                if i.state in (ContainerState.RUNNING, ContainerState.CREATED)
            ]
            async with anyio.create_task_group() as tg:
                for i in live:
                    why = f"Stopping container {i.name}"
                    tg.start_soon(self._kill, rec, specs.get(i.name), i, grace, why)
            self._probes.remove(rec.uid)
            await self._runtime.stop_pod_sandbox(sandbox.id)
        instances = await self._instances(rec)
        if rec.static:
            await self._delete_mirror(rec)
        elif not rec.gone:
            # A pod whose stored spec the API server refuses gets no status
            # written; it must still go.
            with contextlib.suppress(errors.Invalid):
                await self._write_status(rec, instances)
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                await self._client.delete(
                    Pod,
                    rec.pod.metadata.name,
                    namespace=rec.pod.metadata.namespace,
                    grace_period_seconds=0,
                    preconditions=Preconditions(uid=rec.uid),
                )
        await self._remove_everything(rec, sandbox, instances)

    async def _delete_mirror(self, rec: PodRecord) -> None:
        name = self.mirrors.pop(rec.uid, None)
        if name is None:
            return
        with contextlib.suppress(errors.NotFound):
            await self._client.delete(
                Pod,
                name,
                namespace=rec.pod.metadata.namespace,
                grace_period_seconds=0,
                as_node=self._node.name,
            )

    async def _remove_everything(
        self, rec: PodRecord, sandbox: PodSandbox | None, instances: list[ContainerStatus]
    ) -> None:
        for i in instances:
            with contextlib.suppress(RuntimeError_):
                await self._runtime.remove_container(i.id)
        for sandbox_id in (*rec.retired, *([sandbox.id] if sandbox is not None else [])):
            with contextlib.suppress(RuntimeError_):
                await self._runtime.remove_pod_sandbox(sandbox_id)
        self._volumes.cleanup(rec.uid)
        self._backoff.forget(f"{rec.uid}/")
        m = rec.pod.metadata
        log_dir = self._volumes.log_dir(m.namespace, m.name, rec.uid)
        with contextlib.suppress(OSError):
            _remove_tree(log_dir)

    async def _collect_garbage(self, instances: list[ContainerStatus]) -> None:
        """Keeps the newest KEEP_INSTANCES instances of each container."""
        by_name: dict[str, list[ContainerStatus]] = {}
        for i in instances:
            by_name.setdefault(i.name, []).append(i)
        for group in by_name.values():
            group.sort(key=lambda i: i.attempt, reverse=True)
            for old in group[KEEP_INSTANCES:]:
                if old.state is ContainerState.EXITED:
                    with contextlib.suppress(RuntimeError_):
                        await self._runtime.remove_container(old.id)


class PodWorkersStopped(RuntimeError):
    """The pod workers' task group ended while the agent was not stopping."""

    def __init__(self) -> None:
        super().__init__(
            "the pod workers stopped while the agent runs (a bug: no pod would be "
            "synced any more); the agent stops so that it is restarted"
        )


def _cancelled_from_outside() -> bool:
    """Whether a scope around the current task has been cancelled: the
    agent, or its pod workers, stopping."""
    return anyio.current_effective_deadline() == -math.inf


def _version(obj: Pod) -> int:
    try:
        return int(obj.metadata.resource_version)
    except ValueError:
        return 0


def _sync_key(rec: PodRecord) -> str:
    """The back-off key of a pod's failing syncs ("//": no container's name)."""
    return f"{rec.uid}//sync"


def _succeeded(instance: ContainerStatus | None) -> bool:
    return (
        instance is not None
        and instance.state is ContainerState.EXITED
        and (instance.exit_code or 0) == 0
    )


def _should_restart(policy: str, instance: ContainerStatus) -> bool:
    if instance.state is not ContainerState.EXITED:
        return True  # created but never started: start it
    if policy == "Always":
        return True
    return policy == "OnFailure" and (instance.exit_code or 0) != 0


def _reported(pod: Pod, name: str, container_id: str) -> APIContainerStatus | None:
    """What the pod's API status says of this very container, if anything."""
    for s in pod.status.container_statuses:
        if s.name == name and s.container_id == container_id:
            return s
    return None


def _has(pod: Pod, name: str, probe: Literal["readiness_probe", "startup_probe"]) -> bool:
    return any(c.name == name and c.HasField(probe) for c in pod.spec.containers)


def _limit(pod: Pod, c: Container, resource: str, *, milli: bool) -> int | None:
    """The container's limit of `resource` for the runtime; ConfigError
    naming the field when it is not a quantity (stored before the API server
    checked them)."""
    q = c.resources.limits.get(resource)
    if q is None or not q.string:
        return None
    try:
        value = Quantity(q.string)
    except ValueError as e:
        raise ConfigError(
            f"{_container_path(pod, c.name)}.resources.limits.{resource}: {q.string!r} is "
            f"not a quantity ({e}); fix the pod's spec (delete the pod and create it again)"
        ) from None
    return value.milli_value() if milli else value.value()


def _container_path(pod: Pod, name: str) -> str:
    """The field path of container `name` in the pod's spec."""
    spec = pod.spec
    for kind, containers in (
        ("initContainers", spec.init_containers),
        ("containers", spec.containers),
    ):
        for i, c in enumerate(containers):
            if c.name == name:
                return f"spec.{kind}[{i}]"
    return f"container {name}"


def _format_pod(rec: PodRecord) -> str:
    """A pod as the kubelet names it in messages: name_namespace(uid)."""
    m = rec.pod.metadata
    return f"{m.name}_{m.namespace}({rec.uid})"


def _labels_or_annotations_changed(old: Pod, new: Pod) -> bool:
    return (
        old.metadata.labels != new.metadata.labels
        or old.metadata.annotations != new.metadata.annotations
    )


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)

"""A pod's status, computed from what the runtime and the probes report.

Pure functions, one per piece of PodStatus, following the kubelet's rules
(`getPhase`, `generateAPIPodStatus`, the condition helpers and `qos`):

- a container's state is what its newest runtime instance says, unless the
  agent holds it back (`Observed.waiting`: it could not start it, it is
  in back-off, or its postStart hook still runs);
- the phase counts app containers running, waiting and stopped;
- a condition keeps its lastTransitionTime while its status stays the same,
  so a recomputed status equals the last one when nothing changed and the
  agent writes nothing;
- conditions of types the agent does not own (`AGENT_CONDITIONS`), set by
  other clients, are kept from the API's status, before the agent's own, as
  the kubelet's mergePodStatus keeps them; a pod the agent evicted for node
  pressure (phase Failed, reason Evicted) gets DisruptionTarget=True
  (TerminationByKubelet) among them;
- a spec the agent cannot make sense of (a resource quantity that does not
  parse) never makes the computation raise: the status is what a user needs
  to see that something is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from google.protobuf.timestamp_pb2 import Timestamp

from kpy.agent.eviction.manager import DISRUPTION_TARGET, EVICTED, TERMINATION_BY_KUBELET
from kpy.agent.runtime import ContainerState
from kpy.api import codec
from kpy.api.core.v1 import ContainerState as APIContainerState
from kpy.api.core.v1 import (
    ContainerStateRunning,
    ContainerStateTerminated,
    ContainerStateWaiting,
    HostIP,
    PodCondition,
    PodIP,
    PodStatus,
)
from kpy.api.core.v1 import ContainerStatus as APIContainerStatus
from kpy.api.quantity import Quantity

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from kpy.agent.runtime import ContainerStatus
    from kpy.api.core.v1 import Container, Pod

# The condition types the agent computes; any other is some other client's.
AGENT_CONDITIONS: Final = frozenset(
    {"PodScheduled", "Initialized", "ContainersReady", "Ready", "PodReadyToStartContainers"}
)


@dataclass(slots=True)
class Observed:
    """What the agent knows of one pod besides the API object."""

    runtime: str  # the runtime's name, for containerID ("process://<id>")
    pod_ip: str = ""
    host_ip: str = ""
    start_time: float | None = None
    # Every runtime instance of the pod's containers (newest first is not assumed).
    instances: Sequence[ContainerStatus] = ()
    # Container name -> (reason, message) while the agent holds it waiting.
    waiting: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # Readiness and startup as the probes last said (absent: no probe result yet).
    ready: Mapping[str, bool] = field(default_factory=dict)
    started: Mapping[str, bool] = field(default_factory=dict)
    # The pod was told to stop (deleted, or its deadline passed).
    reason: str = ""
    message: str = ""
    # A phase the agent decided over the containers' (Failed: evicted).
    phase: str = ""


def newest(instances: Sequence[ContainerStatus], name: str) -> tuple[ContainerStatus | None, ...]:
    """(latest, previous) instance of container `name`, by attempt."""
    mine = sorted((i for i in instances if i.name == name), key=lambda i: i.attempt, reverse=True)
    return (mine[0] if mine else None, mine[1] if len(mine) > 1 else None)


def pod_status(
    pod: Pod,
    seen: Observed,
    now: float,
    previous: PodStatus | None = None,
    *,
    api: PodStatus | None = None,
) -> PodStatus:
    """The status the agent would write for `pod` now; `previous` (default:
    the pod's) keeps start time and condition transition times; `api`
    (default: the pod's) is the status the API holds, whose conditions of
    types the agent does not own are kept."""
    old = previous if previous is not None else pod.status
    held = api if api is not None else pod.status
    status = PodStatus()
    status.host_ip = seen.host_ip
    if seen.host_ip:
        status.host_ips.append(HostIP(ip=seen.host_ip))
    if seen.pod_ip:
        status.pod_ip = seen.pod_ip
        status.pod_ips.append(PodIP(ip=seen.pod_ip))
    if old.HasField("start_time"):
        status.start_time.CopyFrom(old.start_time)
    elif seen.start_time is not None:
        status.start_time.CopyFrom(timestamp(seen.start_time))
    status.qos_class = qos_class(pod)
    if old.nominated_node_name:
        status.nominated_node_name = old.nominated_node_name

    init_done = all(_succeeded(newest(seen.instances, c.name)[0]) for c in pod.spec.init_containers)
    has_init = len(pod.spec.init_containers) > 0
    for c in pod.spec.init_containers:
        status.init_container_statuses.append(container_status(c, seen, init=True, has_init=True))
    for c in pod.spec.containers:
        status.container_statuses.append(container_status(c, seen, init=False, has_init=has_init))

    status.phase = seen.phase or phase(pod, status, init_done)
    if seen.reason:
        status.reason, status.message = seen.reason, seen.message
    status.conditions.extend(c for c in held.conditions if c.type not in AGENT_CONDITIONS)
    if seen.phase == "Failed" and seen.reason == EVICTED:
        _mark_disruption_target(status, seen.message, now)
    status.conditions.extend(conditions(old, status, init_done, now))
    return status


def _mark_disruption_target(status: PodStatus, message: str, now: float) -> None:
    """DisruptionTarget=True (TerminationByKubelet) on a pod the agent evicted
    for node pressure, as the kubelet's evictPod sets it, so that a Job's
    podFailurePolicy and the pod's owner can tell why it failed. Kept as it is
    once set (its transition time too)."""
    for c in status.conditions:
        if c.type == DISRUPTION_TARGET:
            if c.status == "True" and c.reason == TERMINATION_BY_KUBELET:
                return
            status.conditions.remove(c)
            break
    c = status.conditions.add(type=DISRUPTION_TARGET, status="True")
    c.reason, c.message = TERMINATION_BY_KUBELET, message
    c.last_transition_time.CopyFrom(timestamp(now))


def container_status(
    spec: Container, seen: Observed, *, init: bool, has_init: bool
) -> APIContainerStatus:
    """`has_init`: the pod has init containers, so every container not made
    yet waits with PodInitializing (the kubelet's default), not ContainerCreating."""
    latest, previous = newest(seen.instances, spec.name)
    out = APIContainerStatus(name=spec.name, image=spec.image)
    out.restart_count = latest.attempt if latest else 0
    if latest is not None:
        out.container_id = f"{seen.runtime}://{latest.id}"
        out.image_id = latest.image_id
    held = seen.waiting.get(spec.name)
    running = latest is not None and latest.state is ContainerState.RUNNING
    if held is not None:
        out.state.waiting.CopyFrom(ContainerStateWaiting(reason=held[0], message=held[1]))
        if latest is not None and latest.state is ContainerState.EXITED:
            out.last_state.CopyFrom(terminated(latest, seen.runtime))
        running = False
    elif latest is None or latest.state is ContainerState.CREATED:
        reason = "PodInitializing" if has_init else "ContainerCreating"
        out.state.waiting.CopyFrom(ContainerStateWaiting(reason=reason))
    elif running:
        out.state.running.CopyFrom(ContainerStateRunning(started_at=timestamp(latest.started_at)))
    else:
        out.state.CopyFrom(terminated(latest, seen.runtime))
    if not out.HasField("last_state") and previous is not None:
        out.last_state.CopyFrom(terminated(previous, seen.runtime))
    started = running and seen.started.get(spec.name, True)
    out.started = started
    out.ready = started and seen.ready.get(spec.name, not spec.HasField("readiness_probe"))
    if init:
        out.ready = _succeeded(latest) and held is None
    return out


def terminated(instance: ContainerStatus, runtime: str) -> APIContainerState:
    code = instance.exit_code if instance.exit_code is not None else 0
    reason = instance.reason or ("Completed" if code == 0 else "Error")
    t = ContainerStateTerminated(
        exit_code=code, reason=reason, container_id=f"{runtime}://{instance.id}"
    )
    if instance.message:
        t.message = instance.message
    if instance.started_at is not None:
        t.started_at.CopyFrom(timestamp(instance.started_at))
    if instance.finished_at is not None:
        t.finished_at.CopyFrom(timestamp(instance.finished_at))
    return APIContainerState(terminated=t)


def phase(pod: Pod, status: PodStatus, init_done: bool) -> str:
    """Kubernetes' getPhase."""
    policy = pod.spec.restart_policy or "Always"
    if not init_done:
        failed_init = any(
            s.state.HasField("terminated") and s.state.terminated.exit_code != 0
            for s in status.init_container_statuses
        )
        return "Failed" if failed_init and policy == "Never" else "Pending"
    running = waiting = stopped = succeeded = 0
    for s in status.container_statuses:
        if s.state.HasField("running"):
            running += 1
        elif s.state.HasField("terminated"):
            stopped += 1
            succeeded += s.state.terminated.exit_code == 0
        elif s.last_state.HasField("terminated"):
            stopped += 1  # waiting to restart
            succeeded += s.last_state.terminated.exit_code == 0
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def conditions(
    old: PodStatus, status: PodStatus, init_done: bool, now: float
) -> list[PodCondition]:
    finished = status.phase in ("Succeeded", "Failed")
    unready = [s.name for s in status.container_statuses if not s.ready]
    pending_init = [s.name for s in status.init_container_statuses if not s.ready]
    wanted: list[tuple[str, bool, str, str]] = [
        ("PodScheduled", True, "", ""),
        (
            "Initialized",
            init_done,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(pending_init)}]",
        ),
    ]
    if finished:
        wanted.append(("ContainersReady", False, "PodCompleted", ""))
        wanted.append(("Ready", False, "PodCompleted", ""))
    else:
        message = f"containers with unready status: [{' '.join(unready)}]"
        wanted.append(("ContainersReady", not unready, "ContainersNotReady", message))
        wanted.append(("Ready", not unready, "ContainersNotReady", message))
    previous = {c.type: c for c in old.conditions}
    out = []
    for kind, ok, reason, message in wanted:
        c = PodCondition(type=kind, status="True" if ok else "False")
        if not ok and reason:
            c.reason = reason
            if message:
                c.message = message
        before = previous.get(kind)
        if before is not None and before.status == c.status and before.last_transition_time:
            c.last_transition_time.CopyFrom(before.last_transition_time)
        else:
            c.last_transition_time.CopyFrom(timestamp(now))
        out.append(c)
    return out


def qos_class(pod: Pod) -> str:
    """Guaranteed: every container limits cpu and memory and requests what
    it limits; BestEffort: nothing requested or limited; else Burstable.

    Only cpu and memory count. A value that is not a quantity (stored before
    the API server checked them) counts as a non-zero amount equal only to
    the same text, so the class is still defined."""
    anything = False
    guaranteed = True
    for c in (*pod.spec.init_containers, *pod.spec.containers):
        req = _amounts(c.resources.requests)
        lim = _amounts(c.resources.limits)
        anything = anything or bool(req) or bool(lim)
        if not {"cpu", "memory"} <= lim.keys():
            guaranteed = False
        if any(k in lim and amount != lim[k] for k, amount in req.items()):
            guaranteed = False
    if not anything:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _amounts(values: Mapping[str, Any]) -> dict[str, Quantity | str]:
    """The non-zero cpu and memory amounts of a requests or limits map; a
    text that does not parse stays text."""
    out: dict[str, Quantity | str] = {}
    for k, v in values.items():
        if k not in ("cpu", "memory"):
            continue
        try:
            q = Quantity(v.string)
        except ValueError:
            out[k] = v.string
            continue
        if not q.is_zero():
            out[k] = q
    return out


def _succeeded(instance: ContainerStatus | None) -> bool:
    return (
        instance is not None
        and instance.state is ContainerState.EXITED
        and (instance.exit_code or 0) == 0
    )


def timestamp(seconds: float | None) -> Timestamp:
    t = Timestamp()
    if seconds is not None:
        # Whole seconds, as Kubernetes' metav1.Time: a re-computed status
        # compares equal, and YAML shows the usual RFC 3339 form.
        t.FromSeconds(int(seconds))
    return t


def status_update(
    computed: PodStatus,
    held: PodStatus | None,
    *,
    written: PodStatus | None,
    echo: PodStatus | None,
) -> dict[str, object]:
    """The merge patch the agent sends to make the API's status `held` say
    what it computed, or {} when nothing is to be written.

    The agent owns its pods' status, as the kubelet does: whatever another
    client wrote there is put back. `written` is what the agent last made
    the API hold and `echo` the API's status right after that write: when
    the agent computes the same again and the API still holds that echo,
    nothing changed on either side and nothing is compared or written, so
    the agent's own writes coming back through its watch cost nothing and
    never start a loop."""
    if written is not None and computed == written and held == echo:
        return {}
    old = codec.to_dict(held) if held is not None else {}
    return status_patch(old, codec.to_dict(computed))


def status_patch(old: Mapping[str, object], new: Mapping[str, object]) -> dict[str, object]:
    """A JSON merge patch taking status `old` to `new` for the fields the
    agent owns: its fields replace, and fields it no longer sets are
    removed (lists are replaced whole by a merge patch)."""
    keep = {"nominatedNodeName", "resize", "resourceClaimStatuses"}
    patch: dict[str, object] = {k: None for k in old if k not in new and k not in keep}
    patch.update({k: v for k, v in new.items() if old.get(k) != v})
    return patch

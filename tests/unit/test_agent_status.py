"""The agent's pure status logic: phase, container states, conditions, QoS
class, the status merge patch, when the agent writes its pods' status back,
and the crash-loop back-off."""

from __future__ import annotations

from typing import Any

import pytest

from kpy.agent.backoff import Backoff
from kpy.agent.runtime import ContainerState, ContainerStatus
from kpy.agent.status import Observed, pod_status, qos_class, status_patch, status_update
from kpy.api.codec import from_dict
from kpy.api.codec import to_dict as codec_dict
from kpy.api.core.v1 import Pod, PodCondition, PodStatus

NOW = 1_800_000_000.0


def pod(policy: str = "Always", init: int = 0, apps: int = 1, **extra: Any) -> Pod:
    spec: dict[str, Any] = {
        "restartPolicy": policy,
        "initContainers": [{"name": f"i{n}", "image": "x"} for n in range(init)],
        "containers": [{"name": f"c{n}", "image": "x"} for n in range(apps)],
        **extra,
    }
    return from_dict(Pod, {"metadata": {"name": "p", "uid": "u"}, "spec": spec})


def running(name: str, attempt: int = 0) -> ContainerStatus:
    return ContainerStatus(
        id=f"{name}-{attempt}", sandbox_id="s", name=name, attempt=attempt, image="x",
        state=ContainerState.RUNNING, created_at=NOW - 10, started_at=NOW - 9,
    )  # fmt: skip


def exited(name: str, code: int, attempt: int = 0) -> ContainerStatus:
    return ContainerStatus(
        id=f"{name}-{attempt}", sandbox_id="s", name=name, attempt=attempt, image="x",
        state=ContainerState.EXITED, created_at=NOW - 10, started_at=NOW - 9,
        finished_at=NOW - 1, exit_code=code,
    )  # fmt: skip


PHASES = [
    # (name, pod, instances, waiting, phase)
    ("nothing started yet", pod(), [], {}, "Pending"),
    ("running", pod(), [running("c0")], {}, "Running"),
    ("one of two running, other creating", pod(apps=2), [running("c0")], {}, "Pending"),
    ("Always: exited 0 restarts", pod("Always"), [exited("c0", 0)], {}, "Running"),
    ("OnFailure: exited 0", pod("OnFailure"), [exited("c0", 0)], {}, "Succeeded"),
    ("OnFailure: exited 1 restarts", pod("OnFailure"), [exited("c0", 1)], {}, "Running"),
    ("Never: exited 1", pod("Never"), [exited("c0", 1)], {}, "Failed"),
    ("Never: one ok one failed", pod("Never", apps=2), [exited("c0", 0), exited("c1", 2)], {},
     "Failed"),
    ("Never: all ok", pod("Never", apps=2), [exited("c0", 0), exited("c1", 0)], {}, "Succeeded"),
    ("crash loop is still Running", pod(), [exited("c0", 1, 3)],
     {"c0": ("CrashLoopBackOff", "back-off")}, "Running"),
    ("init running", pod(init=1), [running("i0")], {}, "Pending"),
    ("init failed, Never", pod("Never", init=1), [exited("i0", 1)], {}, "Failed"),
    ("init failed, Always", pod("Always", init=1), [exited("i0", 1)], {}, "Pending"),
    ("init done, app running", pod(init=1), [exited("i0", 0), running("c0")], {}, "Running"),
    ("image pull error", pod(), [], {"c0": ("ErrImagePull", "no")}, "Pending"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "p", "instances", "waiting", "phase"), PHASES, ids=[c[0] for c in PHASES]
)
def test_phase(
    name: str,
    p: Pod,
    instances: list[ContainerStatus],
    waiting: dict[str, tuple[str, str]],
    phase: str,
) -> None:
    seen = Observed(runtime="process", instances=instances, waiting=waiting)
    assert pod_status(p, seen, NOW).phase == phase, name


def test_container_states_and_counts() -> None:
    p = pod(init=1, apps=2)
    seen = Observed(
        runtime="process",
        pod_ip="127.1.0.9",
        host_ip="127.0.0.1",
        start_time=NOW - 20,
        instances=[exited("i0", 0), running("c0", 2), exited("c0", 137, 1), exited("c1", 1, 4)],
        waiting={"c1": ("CrashLoopBackOff", "back-off 10s")},
    )
    status = pod_status(p, seen, NOW)
    assert status.pod_ip == "127.1.0.9"
    assert [ip.ip for ip in status.pod_ips] == ["127.1.0.9"]
    assert status.host_ip == "127.0.0.1"
    assert status.start_time.seconds == int(NOW - 20)
    init, c0, c1 = status.init_container_statuses[0], *status.container_statuses
    assert init.state.terminated.reason == "Completed"
    assert init.ready
    assert c0.state.HasField("running")
    assert (c0.restart_count, c0.container_id) == (2, "process://c0-2")
    assert (c0.last_state.terminated.exit_code, c0.last_state.terminated.reason) == (137, "Error")
    assert c0.ready
    assert c0.started
    assert c1.state.waiting.reason == "CrashLoopBackOff"
    assert c1.last_state.terminated.exit_code == 1
    assert not c1.ready
    conditions = {c.type: c.status for c in status.conditions}
    assert conditions == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "False",
        "Ready": "False",
    }
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert ready.message == "containers with unready status: [c1]"


def test_waiting_reasons_before_start() -> None:
    status = pod_status(pod(init=1), Observed(runtime="process", instances=[running("i0")]), NOW)
    assert status.container_statuses[0].state.waiting.reason == "PodInitializing"
    status = pod_status(pod(), Observed(runtime="process"), NOW)
    assert status.container_statuses[0].state.waiting.reason == "ContainerCreating"


@pytest.mark.parametrize(
    ("name", "probe_ready", "has_probe", "ready"),
    [
        ("no readiness probe: ready once running", None, False, True),
        ("probe not answered yet", None, True, False),
        ("probe failing", False, True, False),
        ("probe passing", True, True, True),
    ],
)
def test_readiness(name: str, probe_ready: bool | None, has_probe: bool, ready: bool) -> None:
    p = pod()
    if has_probe:
        p.spec.containers[0].readiness_probe.exec.command.append("true")
    probes = {} if probe_ready is None else {"c0": probe_ready}
    seen = Observed(runtime="process", instances=[running("c0")], ready=probes)
    assert pod_status(p, seen, NOW).container_statuses[0].ready is ready, name


def test_unchanged_status_compares_equal_and_keeps_transition_times() -> None:
    p = pod()
    seen = Observed(runtime="process", instances=[running("c0")], start_time=NOW)
    first = pod_status(p, seen, NOW)
    again = pod_status(p, seen, NOW + 100, first)
    assert again == first
    unready = Observed(runtime="process", instances=[exited("c0", 1)], start_time=NOW,
                       waiting={"c0": ("CrashLoopBackOff", "")})  # fmt: skip
    later = pod_status(p, unready, NOW + 200, first)
    times = {c.type: c.last_transition_time.seconds for c in later.conditions}
    assert times["PodScheduled"] == int(NOW)
    assert times["Ready"] == int(NOW + 200)


QOS = [
    ("nothing set", {}, "BestEffort"),
    ("requests only", {"requests": {"cpu": "100m"}}, "Burstable"),
    ("limits equal requests", {"requests": {"cpu": "1", "memory": "1Gi"},
                               "limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
    ("limits only (requests default to them)", {"limits": {"cpu": "1", "memory": "1Gi"}},
     "Guaranteed"),
    ("memory limit only", {"limits": {"memory": "1Gi"}}, "Burstable"),
    ("requests below limits", {"requests": {"cpu": "500m", "memory": "1Gi"},
                               "limits": {"cpu": "1", "memory": "1Gi"}}, "Burstable"),
    ("zero amounts are nothing", {"requests": {"cpu": "0"}, "limits": {"memory": "0"}},
     "BestEffort"),
    ("other resources do not count", {"limits": {"ephemeral-storage": "1Gi"}}, "BestEffort"),
    # Stored before the API server checked quantities: the class stays defined.
    ("a limit that is not a quantity", {"limits": {"cpu": "lots", "memory": "1Gi"}},
     "Guaranteed"),
    ("a request that is not a quantity", {"requests": {"cpu": "lots"}}, "Burstable"),
    ("a request unlike its unparsable limit", {"requests": {"cpu": "1", "memory": "1Gi"},
                                              "limits": {"cpu": "lots", "memory": "1Gi"}},
     "Burstable"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "resources", "qos"), QOS, ids=[c[0] for c in QOS])
def test_qos_class(name: str, resources: dict[str, dict[str, str]], qos: str) -> None:
    p = from_dict(Pod, {"spec": {"containers": [{"name": "c"}]}})
    # Set on the message itself: the codec refuses what is not a quantity,
    # but a pod read from storage is not decoded by it.
    for kind, values in resources.items():
        for resource, text in values.items():
            getattr(p.spec.containers[0].resources, kind)[resource].string = text
    assert qos_class(p) == qos, name


def test_status_patch_removes_what_the_agent_no_longer_sets() -> None:
    old = {"phase": "Pending", "message": "m", "nominatedNodeName": "n", "podIP": "1"}
    new = {"phase": "Running", "podIP": "1"}
    assert status_patch(old, new) == {"phase": "Running", "message": None}
    assert status_patch(new, new) == {}


BACKOFF = [
    # (name, [(started, finished)...], expected delays)
    ("first restart at once, then doubles", [(0, 1), (2, 3), (14, 15), (36, 37), (78, 79)],
     [0, 10, 20, 40, 80]),
    ("capped", [(i * 1000, i * 1000 + 1) for i in range(9)],
     [0, 10, 20, 40, 80, 160, 300, 300, 300]),
    ("reset after a long run: at once again", [(0, 1), (2, 3), (14, 700), (701, 702)],
     [0, 10, 0, 10]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "runs", "delays"), BACKOFF, ids=[c[0] for c in BACKOFF])
def test_backoff(name: str, runs: list[tuple[float, float]], delays: list[float]) -> None:
    backoff = Backoff(base=10, cap=300, reset_after=600)
    got = [backoff.restart_at("k", started, finished) - finished for started, finished in runs]
    assert got == delays, name


def test_failed_attempts_wait_from_the_first() -> None:
    backoff = Backoff(base=10, cap=30, reset_after=600)
    got = [backoff.failed_at("pull", at) - at for at in (0, 10, 30, 60, 90)]
    assert got == [10, 20, 30, 30, 30]


def test_backoff_same_instance_same_answer_and_forget() -> None:
    backoff = Backoff(base=1, cap=8, reset_after=16)
    assert backoff.restart_at("u1/c", 0, 1) == 1
    assert backoff.restart_at("u1/c", 0, 1) == 1
    assert backoff.restart_at("u1/c", 1, 2) == 3
    assert backoff.restart_at("u1/c", 1, 2) == 3
    assert backoff.holding("u1/c", 2.5) == 3
    assert backoff.holding("u1/c", 3) is None
    backoff.forget("u1/")
    assert backoff.restart_at("u1/c", 5, 6) == 6


# -- when the agent writes its status back ------------------------------------------


def _running_status() -> PodStatus:
    seen = Observed(
        runtime="process",
        pod_ip="127.1.0.9",
        host_ip="127.0.0.1",
        start_time=NOW - 20,
        instances=[running("c0")],
    )
    return pod_status(pod(), seen, NOW)


def _changed(status: PodStatus, **fields: Any) -> PodStatus:
    out = PodStatus()
    out.CopyFrom(status)
    for name, value in fields.items():
        if value is None:
            out.ClearField(name)  # type: ignore[arg-type]
        elif isinstance(value, str):
            setattr(out, name, value)
        else:
            getattr(out, name).CopyFrom(value)
    return out


def _evil(status: PodStatus) -> PodStatus:
    return _changed(status, phase="Failed", reason="Evil", message="patched by someone else")


def _waiting(status: PodStatus) -> PodStatus:
    out = _changed(status)
    out.container_statuses[0].state.ClearField("running")
    out.container_statuses[0].state.waiting.reason = "Evil"
    return out


def _unready(status: PodStatus) -> PodStatus:
    out = _changed(status)
    for c in out.conditions:
        if c.type == "Ready":
            c.status = "False"
    return out


RUNNING = _running_status()
# (name, what the API holds, the agent's memory (written, echo), the patch)
STATUS_UPDATES: list[tuple[str, PodStatus, tuple[PodStatus | None, PodStatus | None], Any]] = [
    ("the API holds the agent's last write: nothing", RUNNING, (RUNNING, RUNNING), {}),
    ("first look (agent restarted), the API already agrees: nothing", RUNNING, (None, None), {}),
    ("first look, the API is behind: everything that differs", _changed(RUNNING, phase="Pending"),
     (None, None), {"phase": "Running"}),
    ("another client failed the pod: phase, reason and message put back", _evil(RUNNING),
     (RUNNING, RUNNING), {"phase": "Running", "reason": None, "message": None}),
    ("another client changed a container's state", _waiting(RUNNING), (RUNNING, RUNNING),
     {"containerStatuses": "computed"}),
    ("another client changed a condition", _unready(RUNNING), (RUNNING, RUNNING),
     {"conditions": "computed"}),
    ("podIP and hostIP rewritten", _changed(RUNNING, pod_ip="10.0.0.1", host_ip="10.0.0.2"),
     (RUNNING, RUNNING), {"podIP": "127.1.0.9", "hostIP": "127.0.0.1"}),
    ("qosClass rewritten", _changed(RUNNING, qos_class="Guaranteed"), (RUNNING, RUNNING),
     {"qosClass": "BestEffort"}),
    ("startTime removed", _changed(RUNNING, start_time=None), (RUNNING, RUNNING),
     {"startTime": "computed"}),
    ("the API's status emptied", PodStatus(), (RUNNING, RUNNING), "everything"),
    ("nominatedNodeName is the scheduler's: nothing", _changed(RUNNING, nominated_node_name="n"),
     (RUNNING, RUNNING), {}),
    # The server stored the agent's write its own way (the echo differs from
    # what was written): the agent does not write it again and again.
    ("the echo of the agent's own write: nothing", _changed(RUNNING, message="server's"),
     (RUNNING, _changed(RUNNING, message="server's")), {}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "held", "memory", "want"), STATUS_UPDATES, ids=[c[0] for c in STATUS_UPDATES]
)
def test_status_update(
    name: str, held: PodStatus, memory: tuple[PodStatus | None, PodStatus | None], want: Any
) -> None:
    written, echo = memory
    patch = status_update(RUNNING, held, written=written, echo=echo)
    computed = codec_dict(RUNNING)
    if want == "everything":
        want = computed
    else:
        want = {k: computed[k] if v == "computed" else v for k, v in want.items()}
    assert patch == want, name


def test_the_agent_writes_when_its_own_status_changes() -> None:
    unready = _unready(RUNNING)
    patch = status_update(unready, RUNNING, written=RUNNING, echo=RUNNING)
    assert list(patch) == ["conditions"]


def test_conditions_of_other_owners_are_kept() -> None:
    api = _changed(RUNNING)
    api.conditions.append(PodCondition(type="DisruptionTarget", status="True", reason="Evicted"))
    seen = Observed(
        runtime="process",
        pod_ip="127.1.0.9",
        host_ip="127.0.0.1",
        start_time=NOW - 20,
        instances=[running("c0")],
    )
    computed = pod_status(pod(), seen, NOW + 5, RUNNING, api=api)
    types = [c.type for c in computed.conditions]
    # Before the agent's own, as the kubelet merges them; written once in that order ...
    assert types == ["DisruptionTarget", "PodScheduled", "Initialized", "ContainersReady", "Ready"]
    patch = status_update(computed, api, written=RUNNING, echo=RUNNING)
    assert [c["type"] for c in patch["conditions"]] == types  # type: ignore[attr-defined]
    # ... and then left alone.
    assert status_update(computed, computed, written=computed, echo=api) == {}


def test_an_evicted_pod_is_a_disruption_target() -> None:
    """The kubelet's evictPod: phase Failed, reason Evicted, and the condition
    DisruptionTarget=True (TerminationByKubelet) with the eviction's message,
    kept as it is (and so not written again) once the API holds it."""
    message = "The node was low on resource: memory. "
    seen = Observed(
        runtime="process",
        host_ip="127.0.0.1",
        start_time=NOW - 20,
        instances=[exited("c0", 137)],
        phase="Failed",
        reason="Evicted",
        message=message,
    )
    first = pod_status(pod(), seen, NOW, RUNNING, api=RUNNING)
    target = [c for c in first.conditions if c.type == "DisruptionTarget"]
    assert [(c.status, c.reason, c.message) for c in target] == [
        ("True", "TerminationByKubelet", message)
    ]
    assert (first.phase, first.reason) == ("Failed", "Evicted")
    again = pod_status(pod(), seen, NOW + 30, first, api=first)
    assert again == first
    assert status_update(again, first, written=first, echo=first) == {}


def test_only_an_eviction_makes_a_disruption_target() -> None:
    for name, phase, reason in (
        ("deadline passed", "", "DeadlineExceeded"),
        ("ran to failure", "", ""),
    ):
        seen = Observed(
            runtime="process",
            start_time=NOW - 20,
            instances=[exited("c0", 1)],
            phase=phase,
            reason=reason,
        )
        computed = pod_status(pod(policy="Never"), seen, NOW, RUNNING, api=RUNNING)
        types = [c.type for c in computed.conditions]
        assert "DisruptionTarget" not in types, name

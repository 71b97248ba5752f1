"""Jobs end to end, on one local cluster started as `kpy up` starts one
(kpy.cluster.local.up: simulated runtime, two controller managers electing a
leader through the `kpy-controller-manager` Lease, with shortened lease
timings) but without kpy-supervisor: a killed process stays dead, so the
standby, not the same controller manager restarted, takes the Lease over.
The simulated runtime ends a container when its pod's
`sim.kpy.io/<container>.exit-after` annotation says, with the code of
`sim.kpy.io/<container>.exit-code`, so pods finish fast without a process.

- A 200-completion Job survives a leader change in its middle: the leading
  controller manager is killed (SIGKILL, by the pid `up` recorded) after
  about 50 completions while it is counting some, the standby takes the
  Lease over, and the Job ends Complete with exactly 200 succeeded, none
  lost and none counted twice: the count never passes 200 on the way,
  exactly 200 pods Succeeded, none failed, and none still holds the
  `batch.kubernetes.io/job-tracking` finalizer.
- A Job whose pod always fails stops at backoffLimit 2 with
  BackoffLimitExceeded after exactly 3 failed pods, each created after a
  longer pause than the one before (the controller's back-off: 10 s
  doubling, which kpy, like Kubernetes, does not make configurable; a
  third doubling would add 40 s of an idle cluster and show nothing new).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from kpy.api import codec
from kpy.api.batch.v1 import Job
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import Pod
from kpy.client import Client
from kpy.cluster import local
from kpy.cluster.local import ClusterState, running
from kpy.controllers.job.controller import JOB_TRACKING_FINALIZER
from tests.e2e._ports import cluster_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from kpy.client.config import ClientConfig

pytestmark = [pytest.mark.timeout(300), pytest.mark.cluster]

CONTAINER = "work"
#: Lease timings of the controller managers: a dead leader's Lease expires
#: after 10 s instead of 15 (retry < renew < lease, as kpy-controller-manager
#: requires; a renew deadline of 8 s leaves room on a loaded machine).
CONTROLLER_MANAGER_ARGS = (
    "--leader-elect-lease-duration=10",
    "--leader-elect-renew-deadline=8",
    "--leader-elect-retry-period=1",
)
COMPLETIONS = 200
KILL_AFTER = 50  # completions before the leader is killed


#: `kpy up` without kpy-supervisor, in a process of its own that exits once
#: the cluster is Ready: the cluster's processes outlive it (their own
#: sessions), so nothing of the test's process waits on them or restarts them.
STARTER = """
import sys
from pathlib import Path
from kpy.cluster import local
local.up(
    Path(sys.argv[1]),
    local.Topology(nodes=1, replicas=2),
    runtime="simulated",
    port=int(sys.argv[2]),
    extra_args={"kpy-controller-manager": tuple(sys.argv[3:])},
)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    """One cluster for the module's tests (starting one takes a while)."""
    directory = tmp_path_factory.mktemp("jobs")
    argv = [sys.executable, "-c", STARTER, str(directory), str(cluster_port())]
    try:
        started = subprocess.run(
            [*argv, *CONTROLLER_MANAGER_ARGS],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert started.returncode == 0, started.stdout + started.stderr
        state = ClusterState.load(directory)
        assert state is not None
        yield state
    finally:
        local.down(directory, progress=lambda _: None)
        after = ClusterState.load(directory)
        left = [] if after is None else after.members
        assert not any(running(m) for m in left), [m.name for m in left if running(m)]


def admin(cluster: ClusterState) -> ClientConfig:
    """The cluster's admin config (`kpy up` is secure: its CA and certificate)."""
    return local.client_config(Path(cluster.directory), cluster.api)


def job(name: str, *, completions: int, parallelism: int, exit_code: int, backoff: int) -> Job:
    """A Job whose simulated container exits with `exit_code` 0.2 s after it starts."""
    return codec.from_dict(
        Job,
        {
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "completions": completions,
                "parallelism": parallelism,
                "backoffLimit": backoff,
                "template": {
                    "metadata": {
                        "annotations": {
                            f"sim.kpy.io/{CONTAINER}.exit-after": "0.2",
                            f"sim.kpy.io/{CONTAINER}.exit-code": str(exit_code),
                        }
                    },
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": CONTAINER, "image": "kpy.local/busybox"}],
                    },
                },
            },
        },
    )


async def until(
    client: Client,
    name: str,
    done: Callable[[Job], bool],
    what: str,
    within: float,
) -> Job:
    """Job `name` once `done` says so, polled (each poll also checks that
    no completion was counted twice); fails naming `what` and the Job's
    counts."""
    last: Job | None = None
    with anyio.move_on_after(within):
        while True:
            last = await client.get(Job, name, namespace="default")
            check_counts(last)
            if done(last):
                return last
            await anyio.sleep(0.5)
    pytest.fail(f"{what}: not within {within:.0f} s ({counts(last) if last else 'no Job'})")


def check_counts(job: Job) -> None:
    """Fails if the Job has recorded more completions than it asked for."""
    recorded = job.status.succeeded + len(job.status.uncounted_terminated_pods.succeeded)
    assert recorded <= max(job.spec.completions, 1), f"counted twice: {counts(job)}"


def condition(job: Job, kind: str) -> tuple[str, str]:
    """(status, reason) of the Job's condition `kind`, or ("", "")."""
    found = next((c for c in job.status.conditions if c.type == kind), None)
    return ("", "") if found is None else (found.status, found.reason)


async def job_pods(client: Client, job: Job) -> list[Pod]:
    selector = f"batch.kubernetes.io/controller-uid={job.metadata.uid}"
    return list((await client.list(Pod, namespace="default", label_selector=selector)).items)


def counts(job: Job) -> str:
    s = job.status
    u = s.uncounted_terminated_pods
    return (
        f"active={s.active} succeeded={s.succeeded} failed={s.failed} "
        f"uncounted={len(u.succeeded)}+{len(u.failed)} conditions="
        + ",".join(f"{c.type}={c.status}/{c.reason}" for c in s.conditions)
    )


async def test_a_leader_change_neither_loses_nor_double_counts_a_completion(
    cluster: ClusterState,
) -> None:
    async with Client(admin(cluster), retry_timeout=60.0) as client:
        made = await client.create(
            job("tally", completions=COMPLETIONS, parallelism=10, exit_code=0, backoff=6)
        )

        lease = await client.get(Lease, "kpy-controller-manager", namespace="kube-system")
        leader = cluster.member(lease.spec.holder_identity)
        assert running(leader), f"the leader {leader.name} (pid {leader.pid}) is not running"
        # Killed (from the watch, to be quick) on a status that records some
        # finished pods as uncounted: the leader is then mid-way through
        # counting them, their finalizers maybe not all removed yet. Or
        # anyway well before the end, if no such status comes.
        before = None
        with anyio.fail_after(120):
            async with client.watch(Job, namespace="default") as events:
                async for event in events:
                    got = event.object
                    if got.metadata.name != "tally":
                        continue
                    check_counts(got)
                    succeeded = got.status.succeeded
                    uncounted = bool(got.status.uncounted_terminated_pods.succeeded)
                    if succeeded >= 2 * KILL_AFTER or (succeeded >= KILL_AFTER and uncounted):
                        os.kill(leader.pid, signal.SIGKILL)
                        before = got
                        break
        assert before is not None
        assert before.status.succeeded < COMPLETIONS, "the Job ended before the leader change"
        held = await client.get(Lease, "kpy-controller-manager", namespace="kube-system")
        assert held.spec.holder_identity == leader.name, f"not the leader when killed: {held.spec}"

        done = await until(
            client, "tally", lambda j: condition(j, "Complete")[0] == "True", "Complete", 180
        )
        # The standby led the Job to its end.
        after = await client.get(Lease, "kpy-controller-manager", namespace="kube-system")
        assert after.spec.holder_identity not in ("", leader.name), after.spec
        assert after.spec.lease_transitions == lease.spec.lease_transitions + 1, after.spec
        assert not running(leader)

        status = done.status
        assert status.succeeded == COMPLETIONS, counts(done)
        assert status.failed == 0, counts(done)
        assert status.active == 0, counts(done)
        assert not status.uncounted_terminated_pods.succeeded, counts(done)
        assert not status.uncounted_terminated_pods.failed, counts(done)
        assert status.HasField("completion_time")

        pods = await job_pods(client, made)
        phases: dict[str, int] = {}
        for p in pods:
            phases[p.status.phase] = phases.get(p.status.phase, 0) + 1
        # Every completion is a pod of its own, each counted once: exactly
        # 200 pods Succeeded (a 201st would be a completion too many, one
        # counted twice would leave 199), and all of them released.
        assert phases == {"Succeeded": COMPLETIONS}, phases
        holding = [p.metadata.name for p in pods if JOB_TRACKING_FINALIZER in p.metadata.finalizers]
        assert not holding, f"pods still holding the tracking finalizer: {holding}"


async def test_a_failing_job_stops_at_backoff_limit_with_growing_gaps(
    cluster: ClusterState,
) -> None:
    async with Client(admin(cluster), retry_timeout=60.0) as client:
        made = await client.create(
            job("doomed", completions=1, parallelism=1, exit_code=1, backoff=2)
        )

        # back-off 10 + 20 s between the three pods, plus their runs
        done = await until(
            client, "doomed", lambda j: condition(j, "Failed")[0] == "True", "Failed", 150
        )
        assert condition(done, "Failed") == ("True", "BackoffLimitExceeded"), counts(done)
        assert done.status.failed == 3, counts(done)
        assert done.status.succeeded == 0, counts(done)

        pods = await job_pods(client, made)
        assert [p.status.phase for p in pods] == ["Failed"] * 3, [
            (p.metadata.name, p.status.phase) for p in pods
        ]
        holding = [p.metadata.name for p in pods if JOB_TRACKING_FINALIZER in p.metadata.finalizers]
        assert not holding, f"pods still holding the tracking finalizer: {holding}"
        created = sorted(p.metadata.creation_timestamp.ToNanoseconds() / 1e9 for p in pods)
        gaps = [round(b - a, 1) for a, b in itertools.pairwise(created)]
        # 10 and 20 s of back-off counted from the previous pod's end,
        # plus the time a pod takes to run and the next to be made (on a
        # loaded machine, up to twice the back-off, but not one doubling
        # more); less up to 2 s, as both times are in whole seconds.
        for i, (gap, backoff) in enumerate(zip(gaps, (10, 20), strict=True)):
            assert backoff - 2 <= gap < 2 * backoff - 1, f"gap {i + 1} between pods: {gaps}"
        for i in range(1, len(gaps)):
            assert gaps[i] > gaps[i - 1], f"gap {i + 1} between pods not longer: {gaps}"

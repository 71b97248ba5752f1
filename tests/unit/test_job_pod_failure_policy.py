"""Which podFailurePolicy rule a failed pod matches, ported from Kubernetes'
pkg/controller/job/pod_failure_policy_test.go (JobBackoffLimitPerIndex on,
as kpy always is)."""

from __future__ import annotations

from typing import Any

import pytest

from kpy.api.batch.v1 import PodFailurePolicy
from kpy.api.core.v1 import Pod
from kpy.controllers.job import match_pod_failure_policy


def exit_codes(action: str, operator: str, values: list[int], container: str | None = None) -> Any:
    rule: dict[str, Any] = {
        "action": action,
        "on_exit_codes": {"operator": operator, "values": values},
    }
    if container is not None:
        rule["on_exit_codes"]["container_name"] = container
    return rule


def conditions(action: str, *patterns: tuple[str, str]) -> Any:
    return {"action": action, "on_pod_conditions": [{"type": t, "status": s} for t, s in patterns]}


def policy(*rules: Any) -> PodFailurePolicy:
    return PodFailurePolicy(rules=list(rules))


def pod(
    containers: list[tuple[str, int | None]] = (),  # type: ignore[assignment]
    init: list[tuple[str, int | None]] = (),  # type: ignore[assignment]
    pod_conditions: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> Pod:
    """A failed pod "default/mypod"; a container with code None has no state."""
    p = Pod()
    p.metadata.namespace, p.metadata.name = "default", "mypod"
    p.status.phase = "Failed"
    for statuses, items in (
        (p.status.container_statuses, containers),
        (p.status.init_container_statuses, init),
    ):
        for name, code in items:
            status = statuses.add(name=name)
            if code is not None:
                status.state.terminated.exit_code = code
    for t, s in pod_conditions:
        p.status.conditions.add(type=t, status=s)
    return p


def fail_job_msg(container: str, code: int, index: int) -> str:
    return (
        f"Container {container} for pod default/mypod failed with exit code {code} "
        f"matching FailJob rule at index {index}"
    )


DT = "DisruptionTarget"
CASES: list[tuple[str, PodFailurePolicy | None, Pod, str | None, bool, str | None]] = [
    ("unknown action for rule matching by exit codes - skip rule with unknown action",
     policy(exit_codes("UnknownAction", "In", [1, 2]), exit_codes("FailJob", "In", [2, 3])),
     pod([("main-container", 2)]), fail_job_msg("main-container", 2, 1), True, "FailJob"),
    ("unknown action for rule matching by pod conditions - skip rule with unknown action",
     policy(conditions("UnkonwnAction", (DT, "True")), conditions("Ignore", (DT, "True"))),
     pod(pod_conditions=[(DT, "True")]), None, False, "Ignore"),
    ("unknown operator - rule with unknown action is skipped for onExitCodes",
     policy(exit_codes("Ignore", "UnknownOperator", [1, 2]), exit_codes("FailJob", "In", [2, 3])),
     pod([("main-container", 2)]), fail_job_msg("main-container", 2, 1), True, "FailJob"),
    ("no policy rules", None, pod([("", 2)]), None, True, None),
    ("ignore rule matched for exit codes", policy(exit_codes("Ignore", "In", [1, 2, 3])),
     pod([("", 2)]), None, False, "Ignore"),
    ("FailJob rule matched for exit codes", policy(exit_codes("FailJob", "In", [1, 2, 3])),
     pod([("main-container", 2)]), fail_job_msg("main-container", 2, 0), True, "FailJob"),
    ("successful containers are skipped by the rules",
     policy(exit_codes("FailJob", "NotIn", [111])),
     pod([("main-container", 111), ("suppport-container", 0)], init=[("init-container", 0)]),
     None, True, None),
    ("FailIndex rule matched for exit codes", policy(exit_codes("FailIndex", "In", [1, 2, 3])),
     pod([("", 2)]), None, True, "FailIndex"),
    ("pod failure policy with NotIn operator and value 0",
     policy(exit_codes("FailJob", "NotIn", [0])),
     pod([("main-container", 1), ("suppport-container", 0)]), fail_job_msg("main-container", 1, 0),
     True, "FailJob"),
    ("second jobfail rule matched for exit codes",
     policy(exit_codes("Count", "In", [1, 2, 3]), exit_codes("FailJob", "In", [4, 5, 6])),
     pod([("main-container", 6)]), fail_job_msg("main-container", 6, 1), True, "FailJob"),
    ("count rule matched for exit codes", policy(exit_codes("Count", "In", [1, 2, 3])),
     pod([("foo", None), ("bar", 2)]), None, True, "Count"),
    ("FailIndex rule matched for pod conditions", policy(conditions("FailIndex", (DT, "True"))),
     pod(pod_conditions=[(DT, "True")]), None, True, "FailIndex"),
    ("ignore rule matched for pod conditions", policy(conditions("Ignore", (DT, "True"))),
     pod(pod_conditions=[(DT, "True")]), None, False, "Ignore"),
    ("ignore rule matches by the status=False", policy(conditions("Ignore", (DT, "False"))),
     pod(pod_conditions=[(DT, "False")]), None, False, "Ignore"),
    ("ignore rule matches by the status=Unknown", policy(conditions("Ignore", (DT, "Unknown"))),
     pod(pod_conditions=[(DT, "Unknown")]), None, False, "Ignore"),
    ("ignore rule does not match by the other status", policy(conditions("Ignore", (DT, "False"))),
     pod(pod_conditions=[(DT, "True")]), None, True, None),
    ("FailJob rule matched for pod conditions", policy(conditions("FailJob", (DT, "True"))),
     pod(pod_conditions=[(DT, "True")]),
     "Pod default/mypod has condition DisruptionTarget matching FailJob rule at index 0", True,
     "FailJob"),
    ("count rule matched for pod conditions", policy(conditions("Count", (DT, "True"))),
     pod(pod_conditions=[(DT, "True")]), None, True, "Count"),
    ("no rule matched", policy(exit_codes("Count", "In", [8]), conditions("Ignore", (DT, "True"))),
     pod([("main-container", 2)], pod_conditions=[("Ready", "False")]), None, True, None),
    ("init container exit code matches",
     policy(exit_codes("FailJob", "In", [5])),
     pod([("main-container", None)], init=[("init-container", 5)]),
     fail_job_msg("init-container", 5, 0), True, "FailJob"),
    ("container name restricts the rule",
     policy(exit_codes("FailJob", "In", [5], container="other"), exit_codes("Ignore", "In", [5])),
     pod([("main-container", 5)]), None, False, "Ignore"),
    ("container name matches", policy(exit_codes("FailJob", "In", [5], container="main-container")),
     pod([("main-container", 5)]), fail_job_msg("main-container", 5, 0), True, "FailJob"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "pfp", "failed", "message", "counts", "action"), CASES, ids=[c[0] for c in CASES]
)
def test_match_pod_failure_policy(
    name: str,
    pfp: PodFailurePolicy | None,
    failed: Pod,
    message: str | None,
    counts: bool,
    action: str | None,
) -> None:
    assert match_pod_failure_policy(pfp, failed) == (message, counts, action), name

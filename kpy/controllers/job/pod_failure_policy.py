"""Which rule of a Job's `podFailurePolicy` a failed pod matches (Kubernetes'
pkg/controller/job/pod_failure_policy.go).

Lives in `kpy.controllers.job.pod_failure_policy`; re-exported from
`kpy.controllers.job`.

`match_pod_failure_policy(policy, pod)` walks the rules in order and stops
at the first that matches:
- an `onExitCodes` rule matches when a terminated container (regular ones
  first, then init containers), of the named one if `containerName` is set,
  exited with a non-zero code that is `In` (or `NotIn`) its values;
- an `onPodConditions` rule matches when the pod has a condition of one of
  its patterns' type with that pattern's status.
It returns (the Job's failure message for a FailJob rule or None, whether
the failure counts towards the back-off limits, the action matched or None):
Ignore does not count; Count, FailIndex and FailJob do; no rule (or no
policy) counts, with no action.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kpy.api.batch.v1 import (
        PodFailurePolicy,
        PodFailurePolicyOnExitCodesRequirement,
        PodFailurePolicyOnPodConditionsPattern,
    )
    from kpy.api.core.v1 import ContainerStatus, Pod, PodCondition

__all__ = [
    "ACTION_COUNT",
    "ACTION_FAIL_INDEX",
    "ACTION_FAIL_JOB",
    "ACTION_IGNORE",
    "match_pod_failure_policy",
]

ACTION_FAIL_JOB: Final = "FailJob"
ACTION_FAIL_INDEX: Final = "FailIndex"
ACTION_IGNORE: Final = "Ignore"
ACTION_COUNT: Final = "Count"


def match_pod_failure_policy(
    policy: PodFailurePolicy | None, failed_pod: Pod
) -> tuple[str | None, bool, str | None]:
    """(FailJob message or None, counts towards backoffLimit, action or None);
    see the module docstring."""
    if policy is None:
        return None, True, None
    pod = failed_pod
    for index, rule in enumerate(policy.rules):
        if rule.HasField("on_exit_codes"):
            container = _match_on_exit_codes(pod, rule.on_exit_codes)
            if container is None:
                continue
            reason = (
                f"Container {container.name} for pod {pod.metadata.namespace}/"
                f"{pod.metadata.name} failed with exit code "
                f"{container.state.terminated.exit_code} matching {rule.action} rule at index "
                f"{index}"
            )
        elif rule.on_pod_conditions:
            condition = _match_on_pod_conditions(pod.status.conditions, rule.on_pod_conditions)
            if condition is None:
                continue
            reason = (
                f"Pod {pod.metadata.namespace}/{pod.metadata.name} has condition "
                f"{condition.type} matching {rule.action} rule at index {index}"
            )
        else:
            continue
        if rule.action == ACTION_IGNORE:
            return None, False, ACTION_IGNORE
        if rule.action == ACTION_FAIL_INDEX:
            return None, True, ACTION_FAIL_INDEX
        if rule.action == ACTION_COUNT:
            return None, True, ACTION_COUNT
        if rule.action == ACTION_FAIL_JOB:
            return reason, True, ACTION_FAIL_JOB
        # An action this version does not know: as Kubernetes, on to the next rule.
    return None, True, None


def _match_on_exit_codes(
    pod: Pod, requirement: PodFailurePolicyOnExitCodesRequirement
) -> ContainerStatus | None:
    return _matching_container(pod.status.container_statuses, requirement) or (
        _matching_container(pod.status.init_container_statuses, requirement)
    )


def _matching_container(
    statuses: Iterable[ContainerStatus], requirement: PodFailurePolicyOnExitCodesRequirement
) -> ContainerStatus | None:
    for status in statuses:
        if not status.state.HasField("terminated"):
            continue  # still terminating: no exit code yet
        if requirement.HasField("container_name") and requirement.container_name != status.name:
            continue
        code = status.state.terminated.exit_code
        if code != 0 and _operator_matches(code, requirement):
            return status
    return None


def _operator_matches(code: int, requirement: PodFailurePolicyOnExitCodesRequirement) -> bool:
    if requirement.operator == "In":
        return code in requirement.values
    if requirement.operator == "NotIn":
        return code not in requirement.values
    return False


def _match_on_pod_conditions(
    conditions: Iterable[PodCondition], patterns: Iterable[PodFailurePolicyOnPodConditionsPattern]
) -> PodCondition | None:
    patterns = list(patterns)
    for condition in conditions:
        for pattern in patterns:
            if condition.type == pattern.type and condition.status == pattern.status:
                return condition
    return None

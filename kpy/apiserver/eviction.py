"""pods/eviction: a delete that respects PodDisruptionBudgets.

Contract, as Kubernetes' eviction REST (API-initiated eviction):

- The body is a policy/v1 Eviction naming the pod (or nothing) and carrying
  the DeleteOptions of the delete it asks for.
- A pod that is not running (Pending, Succeeded, Failed) or is already
  terminating is deleted without looking at any budget: its going does not
  lower the availability a budget protects.
- Otherwise the budgets of the pod's namespace whose selector matches the pod
  (a missing selector matches nothing, an empty one everything) decide:
  none, the pod is deleted; more than one, the request fails (500, as
  Kubernetes: which budget would be charged is undefined); one, the eviction
  is charged to it. A charge needs a budget status the controller has
  computed for the current spec (`observedGeneration`) with
  `disruptionsAllowed` above zero; it lowers `disruptionsAllowed` by one and
  records the pod in `disruptedPods` by a compare-and-swap write of the
  budget's status, tried again from a fresh read on a conflict, so that two
  evictions racing for the last allowed disruption cannot both win.
  Otherwise the request is refused with `EvictionRefused` (429
  TooManyRequests) and nothing is deleted.
- A running pod that is not Ready is not counted as healthy by its budget:
  with `unhealthyPodEvictionPolicy: AlwaysAllow`, or while the budget is
  met (`currentHealthy >= desiredHealthy`, IfHealthyBudget, the default),
  it is deleted without a charge.
- Before the delete, the pod gets the condition DisruptionTarget=True
  (EvictionByEvictionAPI), written over the newest version of the pod (the
  Eviction's preconditions checked against it, and a resourceVersion
  precondition moved on past this write), so that its owner can tell it was
  disrupted (a Job's podFailurePolicy matches on it).
- The delete is the pod's ordinary graceful delete with the Eviction's
  options; dry-run charges, marks and deletes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kpy.api import errors
from kpy.api.labels import selector_from_label_selector
from kpy.api.meta.v1 import Condition, DeleteOptions, Status
from kpy.api.policy.v1 import Eviction, PodDisruptionBudget
from kpy.api.selection import parse_predicate
from kpy.apiserver.registry import copy_message, decode_body

if TYPE_CHECKING:
    from collections.abc import Callable

    from google.protobuf.message import Message
    from google.protobuf.timestamp_pb2 import Timestamp

    from kpy.apiserver.registry import Registry

REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."
DISRUPTION_TARGET = "DisruptionTarget"
EVICTION_BY_EVICTION_API = "EvictionByEvictionAPI"
EVICTING = "Eviction API: evicting"
MAX_DISRUPTED_PODS = 2000  # Kubernetes' MaxDisruptedPodSize: the controller has fallen behind
_CHARGE_TRIES = 5


async def evict(
    registry: Registry, body: bytes, *, namespace: str, name: str, dry_run: bool
) -> Message:
    """Serves a create of pods/NAME/eviction on the pods' `registry`; see the
    module docstring. Returns a Success Status."""
    eviction = decode_body(Eviction, body, "policy/v1 Eviction")
    if eviction.metadata.name and eviction.metadata.name != name:
        raise errors.BadRequest(
            f'name in URL does not match name in Eviction object: "{name}" and '
            f'"{eviction.metadata.name}"'
        )
    options = DeleteOptions()
    options.CopyFrom(eviction.delete_options)
    dry_run = dry_run or "All" in options.dry_run
    pod: Any = await registry.get(namespace, name)
    budgets = registry.disruption_budgets
    if not _budget_free(pod) and budgets is not None:
        await _charge(budgets, pod, registry.now(), dry_run)
    return await _delete(registry, pod, options, dry_run)


def _budget_free(pod: Any) -> bool:
    """Whether the pod goes without a budget's say: not running, or terminating."""
    return pod.status.phase in ("Pending", "Succeeded", "Failed") or pod.metadata.HasField(
        "deletion_timestamp"
    )


async def _delete(registry: Registry, pod: Any, options: DeleteOptions, dry_run: bool) -> Message:
    if not dry_run:
        await _mark_disruption_target(registry, pod, options)
    await registry.delete(pod.metadata.namespace, pod.metadata.name, options, dry_run=dry_run)
    return Status(api_version="v1", kind="Status", status="Success", code=201)


async def _mark_disruption_target(registry: Registry, pod: Any, options: DeleteOptions) -> None:
    """DisruptionTarget=True on the newest version of `pod` (Kubernetes'
    addConditionAndDeletePod); a resourceVersion precondition in `options`
    is checked against that version and then set to the one written."""
    pre = options.preconditions if options.HasField("preconditions") else None

    def marked(current: Any) -> Message:
        m = current.metadata
        for label, want, have in (
            ("UID", pre.uid if pre and pre.HasField("uid") else "", m.uid),
            (
                "ResourceVersion",
                pre.resource_version if pre and pre.HasField("resource_version") else "",
                m.resource_version,
            ),
        ):
            if want and want != have:
                raise errors.conflict(
                    "pods",
                    m.name,
                    f"Precondition failed: {label} in precondition: {want}, "
                    f"{label} in object meta: {have}",
                )
        out: Any = copy_message(current)
        _set_condition(out, registry.now())
        return out  # type: ignore[no-any-return]

    written: Any = await registry.write(
        pod.metadata.namespace, pod.metadata.name, marked, expected="", dry_run=False
    )
    if pre is not None and pre.HasField("resource_version"):
        options.preconditions.resource_version = written.metadata.resource_version


def _set_condition(pod: Any, now: Timestamp) -> None:
    """Kubernetes' UpdatePodCondition: the transition time moves only with
    the status."""
    for condition in pod.status.conditions:
        if condition.type == DISRUPTION_TARGET:
            if condition.status != "True":
                condition.status = "True"
                condition.last_transition_time.CopyFrom(now)
            condition.reason, condition.message = EVICTION_BY_EVICTION_API, EVICTING
            return
    pod.status.conditions.add(
        type=DISRUPTION_TARGET,
        status="True",
        reason=EVICTION_BY_EVICTION_API,
        message=EVICTING,
        last_transition_time=now,
    )


async def _charge(budgets: Registry, pod: Any, now: Timestamp, dry_run: bool) -> None:
    """Charges the eviction of `pod` to its one budget, if it has one; raises
    EvictionRefused when the budget allows no disruption now."""
    for _ in range(_CHARGE_TRIES):
        matching = await _budgets_of(budgets, pod)
        if not matching:
            return
        if len(matching) > 1:
            raise errors.Internal(
                "This pod has more than one PodDisruptionBudget, which the eviction "
                f"subresource does not support ({', '.join(b.metadata.name for b in matching)}); "
                "make the budgets' selectors disjoint",
                kind="pods",
                name=pod.metadata.name,
            )
        budget = matching[0]
        if _unhealthy_may_go(pod, budget):
            return
        charged = _charged(budget, pod.metadata.name, now)
        if dry_run:
            return
        try:
            await budgets.write(
                budget.metadata.namespace,
                budget.metadata.name,
                _replacing_with(charged),
                expected=budget.metadata.resource_version,
                dry_run=False,
            )
            return
        except errors.Conflict:
            continue  # another eviction or the controller wrote first: judge again
    raise errors.conflict(
        "pods",
        pod.metadata.name,
        "its PodDisruptionBudget changed under every attempt to charge this eviction; retry",
    )


def _replacing_with(new: Message) -> Callable[[Message], Message]:
    """A registry `build` that writes `new` over the version it was made from."""
    return lambda _current: new


async def _budgets_of(budgets: Registry, pod: Any) -> list[Any]:
    listed = await budgets.list(
        pod.metadata.namespace, parse_predicate("PodDisruptionBudget", "", "")
    )
    found = []
    for budget in listed.items:
        assert isinstance(budget, PodDisruptionBudget)
        if not budget.spec.HasField("selector"):
            continue  # a missing selector selects nothing
        try:
            selector = selector_from_label_selector(budget.spec.selector)
        except ValueError:
            continue
        if selector.matches(pod.metadata.labels):
            found.append(budget)
    return found


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def _unhealthy_may_go(pod: Any, budget: Any) -> bool:
    """A running pod that is not Ready counts for nothing in its budget: it may
    go when the budget says so (AlwaysAllow) or is met anyway (IfHealthyBudget)."""
    if _ready(pod):
        return False
    if budget.spec.unhealthy_pod_eviction_policy == "AlwaysAllow":
        return True
    status = budget.status
    return bool(
        status.observed_generation >= budget.metadata.generation
        and status.desired_healthy > 0
        and status.current_healthy >= status.desired_healthy
    )


def _charged(budget: Any, pod_name: str, now: Timestamp) -> Message:
    """The budget with one disruption spent on `pod_name`; EvictionRefused
    when it has none to spend (or its status is stale)."""
    status = budget.status
    name = budget.metadata.name
    if status.observed_generation < budget.metadata.generation:
        raise _refused(
            budget, f"The disruption budget {name} is still being processed by the server."
        )
    if status.disruptions_allowed < 0:
        raise errors.Forbidden(f"pdb disruptions allowed is negative: {name}", name=name)
    if len(status.disrupted_pods) > MAX_DISRUPTED_PODS:
        raise errors.Forbidden(
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller: "
            f"{name}",
            name=name,
        )
    if status.disruptions_allowed == 0:
        raise _refused(
            budget,
            f"The disruption budget {name} needs {status.desired_healthy} healthy pods and has "
            f"{status.current_healthy} currently",
        )
    out: Any = copy_message(budget)
    out.status.disruptions_allowed -= 1
    out.status.disrupted_pods[pod_name].CopyFrom(now)
    if out.status.disruptions_allowed == 0:
        _set_allowed_condition(out, now)
    return out  # type: ignore[no-any-return]


def _set_allowed_condition(budget: Any, now: Timestamp) -> None:
    """DisruptionAllowed=False (InsufficientPods) once the last disruption is spent,
    as Kubernetes' UpdateDisruptionAllowedCondition."""
    for condition in budget.status.conditions:
        if condition.type == "DisruptionAllowed":
            if condition.status != "False":
                condition.status = "False"
                condition.last_transition_time.CopyFrom(now)
            condition.reason = "InsufficientPods"
            condition.observed_generation = budget.status.observed_generation
            return
    budget.status.conditions.append(
        Condition(
            type="DisruptionAllowed",
            status="False",
            reason="InsufficientPods",
            observed_generation=budget.status.observed_generation,
            last_transition_time=now,
        )
    )


def _refused(budget: Any, cause: str) -> errors.EvictionRefused:
    return errors.EvictionRefused(
        REFUSED,
        kind="poddisruptionbudgets",
        name=budget.metadata.name,
        causes=[errors.FieldError("", errors.DISRUPTION_BUDGET, cause)],
    )

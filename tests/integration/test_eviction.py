"""pods/eviction against a real API server and etcd: a budget with a
disruption to spend lets one pod go and records it; one without refuses with
429 and kubectl's words; pods that are not running go regardless; two
budgets on one pod are an error; racing evictions never overspend.

No disruption controller runs here: each test writes the budget's status
itself, as the controller would have computed it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import codec, errors
from kpy.api.core.v1 import Pod
from kpy.api.policy.v1 import PodDisruptionBudget

if TYPE_CHECKING:
    from kpy.client import Client

REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."


async def running_pod(
    client: Client, name: str, *, ready: bool = True, phase: str = "Running"
) -> Pod:
    pod = codec.decode_object(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "busybox"}]},
        }
    )
    created: Any = await client.create(pod)
    created.status.phase = phase
    created.status.conditions.add(type="Ready", status="True" if ready else "False")
    return await client.update_status(created)  # type: ignore[no-any-return]


async def budget(
    client: Client,
    name: str = "web",
    *,
    allowed: int,
    healthy: int = 2,
    desired: int = 2,
    selector: dict[str, Any] | None = None,
    stale: bool = False,
) -> PodDisruptionBudget:
    pdb: Any = codec.decode_object(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name},
            "spec": {
                "minAvailable": desired,
                "selector": selector or {"matchLabels": {"app": "web"}},
            },
        }
    )
    created: Any = await client.create(pdb)
    status = created.status
    status.observed_generation = created.metadata.generation - (1 if stale else 0)
    status.disruptions_allowed = allowed
    status.current_healthy = healthy
    status.desired_healthy = desired
    status.expected_pods = 3
    return await client.update_status(created)  # type: ignore[no-any-return]


async def terminating(client: Client, name: str) -> bool:
    try:
        pod = await client.get(Pod, name)
    except errors.NotFound:
        return True
    return pod.metadata.HasField("deletion_timestamp")


async def test_eviction_spends_the_budget_then_is_refused(
    client: Client, api_namespace: str
) -> None:
    await running_pod(client, "a")
    await running_pod(client, "b")
    await budget(client, allowed=1, healthy=3)

    await client.evict("a", grace_period_seconds=30)

    assert await terminating(client, "a")
    pdb = await client.get(PodDisruptionBudget, "web")
    assert pdb.status.disruptions_allowed == 0
    assert "a" in pdb.status.disrupted_pods
    allowed = [c for c in pdb.status.conditions if c.type == "DisruptionAllowed"]
    assert [(c.status, c.reason) for c in allowed] == [("False", "InsufficientPods")]

    with pytest.raises(errors.EvictionRefused) as refused:
        await client.evict("b")
    assert str(refused.value) == REFUSED
    assert refused.value.code == 429
    assert [c.detail for c in refused.value.causes] == [
        "The disruption budget web needs 2 healthy pods and has 3 currently"
    ]
    assert not await terminating(client, "b")


@pytest.mark.parametrize("phase", ["Pending", "Succeeded", "Failed"])
async def test_pods_not_running_go_without_a_budget_check(
    client: Client, api_namespace: str, phase: str
) -> None:
    await running_pod(client, "p", phase=phase)
    await budget(client, allowed=0)
    await client.evict("p")
    assert await terminating(client, "p"), phase


async def test_a_terminating_pod_goes_again_without_a_charge(
    client: Client, api_namespace: str
) -> None:
    await running_pod(client, "a")
    await client.delete(Pod, "a", grace_period_seconds=60)
    await budget(client, allowed=0)
    await client.evict("a", grace_period_seconds=0)
    assert await terminating(client, "a")


async def test_a_pod_without_a_budget_is_deleted(client: Client, api_namespace: str) -> None:
    await running_pod(client, "a")
    await budget(client, allowed=0, selector={"matchLabels": {"app": "other"}})
    await client.evict("a")
    assert await terminating(client, "a")


async def test_a_stale_budget_status_refuses(client: Client, api_namespace: str) -> None:
    await running_pod(client, "a")
    await budget(client, allowed=1, stale=True)
    with pytest.raises(errors.EvictionRefused) as refused:
        await client.evict("a")
    assert "still being processed" in refused.value.causes[0].detail


async def test_two_budgets_on_one_pod_are_an_error(client: Client, api_namespace: str) -> None:
    await running_pod(client, "a")
    await budget(client, "one", allowed=1)
    await budget(client, "two", allowed=1, selector={})
    with pytest.raises(errors.Internal, match="more than one PodDisruptionBudget"):
        await client.evict("a")
    assert not await terminating(client, "a")


async def test_an_unready_pod_goes_while_the_budget_is_met(
    client: Client, api_namespace: str
) -> None:
    await running_pod(client, "sick", ready=False)
    await budget(client, allowed=0, healthy=2, desired=2)
    await client.evict("sick")
    assert await terminating(client, "sick")
    pdb = await client.get(PodDisruptionBudget, "web")
    assert "sick" not in pdb.status.disrupted_pods


async def test_an_unready_pod_under_an_unmet_budget_needs_always_allow(
    client: Client, api_namespace: str
) -> None:
    await running_pod(client, "sick", ready=False)
    await budget(client, allowed=0, healthy=1, desired=2)
    with pytest.raises(errors.EvictionRefused):
        await client.evict("sick")
    pdb: Any = await client.get(PodDisruptionBudget, "web")
    pdb.spec.unhealthy_pod_eviction_policy = "AlwaysAllow"
    pdb = await client.update(pdb)
    pdb.status.observed_generation = pdb.metadata.generation
    await client.update_status(pdb)
    await client.evict("sick")
    assert await terminating(client, "sick")


async def test_racing_evictions_spend_one_disruption_once(
    client: Client, api_namespace: str
) -> None:
    names = [f"p{i}" for i in range(4)]
    for name in names:
        await running_pod(client, name)
    await budget(client, allowed=1, healthy=4, desired=3)
    outcomes: dict[str, str] = {}

    async def evict(name: str) -> None:
        try:
            await client.evict(name)
            outcomes[name] = "evicted"
        except errors.EvictionRefused:
            outcomes[name] = "refused"

    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(evict, name)

    assert sorted(outcomes.values()) == ["evicted", "refused", "refused", "refused"], outcomes
    pdb = await client.get(PodDisruptionBudget, "web")
    assert list(pdb.status.disrupted_pods) == [n for n, o in outcomes.items() if o == "evicted"]


async def test_dry_run_spends_and_deletes_nothing(client: Client, api_namespace: str) -> None:
    await running_pod(client, "a")
    await budget(client, allowed=1)
    await client.evict("a", dry_run=True)
    assert not await terminating(client, "a")
    pdb = await client.get(PodDisruptionBudget, "web")
    assert pdb.status.disruptions_allowed == 1


async def disruption_target(client: Client, name: str) -> list[tuple[str, str, str]]:
    pod = await client.get(Pod, name)
    return [
        (c.status, c.reason, c.message)
        for c in pod.status.conditions
        if c.type == "DisruptionTarget"
    ]


EVICTING = [("True", "EvictionByEvictionAPI", "Eviction API: evicting")]


async def test_an_evicted_pod_is_marked_a_disruption_target(
    client: Client, api_namespace: str
) -> None:
    """Charged to a budget, free of one, or not running: every evicted pod
    says why it goes, as Kubernetes' addConditionAndDeletePod writes it."""
    await running_pod(client, "charged")
    await running_pod(client, "pending", phase="Pending")
    await budget(client, allowed=1, healthy=3, selector={"matchLabels": {"app": "web"}})
    await client.evict("charged", grace_period_seconds=30)
    await client.evict("pending", grace_period_seconds=30)
    assert await disruption_target(client, "charged") == EVICTING
    assert await disruption_target(client, "pending") == EVICTING
    pod = await client.get(Pod, "charged")
    assert pod.metadata.HasField("deletion_timestamp")


async def test_refused_and_dry_run_evictions_mark_nothing(
    client: Client, api_namespace: str
) -> None:
    await running_pod(client, "a")
    await budget(client, allowed=0)
    with pytest.raises(errors.EvictionRefused):
        await client.evict("a")
    assert await disruption_target(client, "a") == []
    await client.delete(PodDisruptionBudget, "web")
    await client.evict("a", dry_run=True)
    assert await disruption_target(client, "a") == []
    assert not await terminating(client, "a")

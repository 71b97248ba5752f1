"""The HorizontalPodAutoscaler end to end: the session's API server, the
controller manager (replicaset, deployment, horizontalpodautoscaling) in
this process and a real node agent with the process runtime.

A Deployment whose container keeps busy (a shell loop of 30 ms of work and
200 ms of sleep, about an eighth of a core: over its 100m request however
loaded the machine, so the suite need not burn whole cores; it stops once a
file appears) is scaled up by an HPA with a low CPU target, then back
down once the load stops and the (shortened) scale-down window has passed.
The figures come from the agent through the API server's Stats call, as
`kpyctl top` gets them. Only directions are asserted, with generous
deadlines: the machine may be loaded. Every process the test starts is
stopped by `running_agent` when it ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kpy.api import codec
from kpy.api.apps.v1 import Deployment
from kpy.api.autoscaling.v2 import HorizontalPodAutoscaler
from kpy.api.core.v1 import Pod
from tests.integration._agent import running_agent
from tests.integration._controllers import eventually, running
from tests.integration._kpyctl import kpyctl

if TYPE_CHECKING:
    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client


def burner(node: str, stop: Path) -> Deployment:
    work = "i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done"
    loop = f"while [ ! -e {stop} ]; do {work}; sleep 0.2; done; exec sleep 600"
    made: Deployment = codec.from_dict(
        Deployment,
        {
            "metadata": {"name": "burn"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "burn"}},
                "template": {
                    "metadata": {"labels": {"app": "burn"}},
                    "spec": {
                        "nodeName": node,
                        "terminationGracePeriodSeconds": 1,
                        "containers": [
                            {
                                "name": "burn",
                                "image": "busybox",
                                "command": ["sh", "-c", loop],
                                "resources": {"requests": {"cpu": "100m"}},
                            }
                        ],
                    },
                },
            },
        },
    )
    return made


def autoscaler() -> HorizontalPodAutoscaler:
    made: HorizontalPodAutoscaler = codec.from_dict(
        HorizontalPodAutoscaler,
        {
            "metadata": {"name": "burn"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burn"},
                "minReplicas": 1,
                "maxReplicas": 2,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 50},
                        },
                    }
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}},
            },
        },
    )
    return made


@pytest.mark.timeout(420)
async def test_a_busy_deployment_scales_up_then_down_when_idle(
    client: Client, api_namespace: str, tmp_path: Path
) -> None:
    stop = tmp_path / "stop-burning"
    workloads = ("replicaset", "deployment", "horizontalpodautoscaling")
    try:
        async with (
            running_agent(client, runtime="process", root=tmp_path) as agent,
            running(client, api_namespace, *workloads),
        ):
            await client.create(burner(agent.node_name, stop))
            await client.create(autoscaler())

            async def replicas() -> int:
                return (await client.get(Deployment, "burn")).spec.replicas

            async def scaled_up() -> bool:
                return await replicas() >= 2

            await eventually(scaled_up, timeout=150, what="a scale-up on the busy loop")
            hpa = await client.get(HorizontalPodAutoscaler, "burn")
            conditions = {c.type: c.status for c in hpa.status.conditions}
            assert conditions.get("ScalingActive") == "True", hpa.status
            assert hpa.status.current_metrics[0].resource.current.average_utilization > 50

            stop.touch()  # the load stops; every burner now sleeps

            async def scaled_down() -> bool:
                return await replicas() == 1

            await eventually(scaled_down, timeout=150, what="a scale-down once idle")

            # The controller writes the scale first and its status after, as
            # Kubernetes' does: the status follows the scale-down shortly.
            async def status_says_one() -> bool:
                hpa = await client.get(HorizontalPodAutoscaler, "burn")
                return hpa.status.desired_replicas == 1

            await eventually(status_says_one, timeout=60, what="the status of the scale-down")
            pods = await client.list(Pod, label_selector="app=burn")
            assert pods.items, "the Deployment keeps its one pod"
    finally:
        stop.touch()  # burners the agent's cleanup has not reached yet stop too


async def test_kpyctl_autoscale_get_and_describe(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    await client.create(burner("nowhere", Path("/nonexistent")))
    code, out, err = await kpyctl(
        apiserver, ns, "autoscale", "deployment", "burn", "--cpu-percent=50", "--min=1", "--max=10"
    )
    assert (code, out, err) == (0, "horizontalpodautoscaler.autoscaling/burn autoscaled\n", "")
    code, out, _ = await kpyctl(apiserver, ns, "get", "hpa")
    assert code == 0
    header, row = (line.split() for line in out.splitlines())
    assert header == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert row[:7] == ["burn", "Deployment/burn", "cpu:", "<unknown>/50%", "1", "10", "0"]
    code, out, _ = await kpyctl(apiserver, ns, "describe", "hpa", "burn")
    assert code == 0
    assert ["Reference:", "Deployment/burn"] in [line.split() for line in out.splitlines()], out
    assert "resource cpu on pods  (as a percentage of request):  <unknown> / 50%" in out, out
    code, _, err = await kpyctl(apiserver, ns, "autoscale", "deployment/nosuch", "--max=2")
    assert (code, err) == (
        1,
        'Error from server (NotFound): deployments.apps "nosuch" not found\n',
    )
    code, _, err = await kpyctl(apiserver, ns, "autoscale", "deployment/burn")
    assert (code, err) == (1, "error: --max=MAXPODS is required and must be at least 1, max: -1\n")

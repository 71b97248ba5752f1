"""`kpyctl autoscale`, `get hpa` and `describe hpa`: the object autoscale
builds, its refusals, and the lines `describe` prints, as tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from kpy.api import codec
from kpy.api.autoscaling.v2 import HorizontalPodAutoscaler
from kpy.api.scheme import scheme
from kpy.cli import _printers
from kpy.cli._manifests import UsageError
from kpy.cli.autoscale import autoscaler_for
from kpy.cli.describe import hpa_rows


@dataclass(frozen=True)
class BuildCase:
    name: str
    kind: str
    flags: dict[str, Any]
    want: dict[str, Any] | None = None  # the HPA's spec, as YAML keeps it
    error: str = ""


DEPLOYMENT_REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
BUILD = [
    BuildCase(
        "cpu, min and max",
        "Deployment",
        {"max_replicas": 10, "min_replicas": 1, "cpu_percent": 50},
        want={
            "scaleTargetRef": DEPLOYMENT_REF,
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
        },
    ),
    BuildCase(
        "only max: the server's defaults fill the rest",
        "StatefulSet",
        {"max_replicas": 3},
        want={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web"},
            "maxReplicas": 3,
        },
    ),
    BuildCase(
        "no max",
        "Deployment",
        {"max_replicas": -1},
        error="--max=MAXPODS is required and must be at least 1, max: -1",
    ),
    BuildCase(
        "max below min",
        "Deployment",
        {"max_replicas": 2, "min_replicas": 3},
        error="--max=MAXPODS must be larger or equal to --min=MINPODS, max: 2, min: 3",
    ),
    BuildCase(
        "a pod does not scale",
        "Pod",
        {"max_replicas": 2},
        error="cannot autoscale a Pod: only Deployments, ReplicaSets, StatefulSets and"
        " ReplicationControllers have a scale subresource",
    ),
]


def info_of(kind: str) -> Any:
    return next(i for i in scheme.all() if i.kind == kind)


@pytest.mark.parametrize("case", BUILD, ids=lambda c: c.name)
def test_autoscaler_for(case: BuildCase) -> None:
    if case.error:
        with pytest.raises(UsageError) as raised:
            autoscaler_for(info_of(case.kind), "web", **case.flags)
        assert str(raised.value) == case.error, case.name
        return
    hpa = autoscaler_for(info_of(case.kind), "web", **case.flags)
    encoded = codec.encode_object(hpa)
    assert encoded["metadata"]["name"] == "web", case.name
    assert encoded["spec"] == case.want, case.name


def hpa(status: dict[str, Any] | None = None, **spec: Any) -> HorizontalPodAutoscaler:
    made: HorizontalPodAutoscaler = codec.from_dict(
        HorizontalPodAutoscaler,
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "scaleTargetRef": DEPLOYMENT_REF,
                "minReplicas": 1,
                "maxReplicas": 10,
                **spec,
            },
            "status": status or {},
        },
    )
    return made


CPU_50 = [
    {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
    }
]
MEMORY_100MI = [
    {
        "type": "Resource",
        "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}},
    }
]
MEASURED = {
    "currentReplicas": 1,
    "desiredReplicas": 4,
    "currentMetrics": [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "current": {"averageUtilization": 250, "averageValue": "125m"},
            },
        }
    ],
    "conditions": [
        {
            "type": "AbleToScale",
            "status": "True",
            "reason": "SucceededRescale",
            "message": "the HPA controller was able to update the target scale to 4",
        }
    ],
}


@dataclass(frozen=True)
class DescribeCase:
    name: str
    hpa: HorizontalPodAutoscaler
    want: list[list[str]]  # rows that must appear, in this order


DESCRIBE = [
    DescribeCase(
        "measured, on cpu",
        hpa(MEASURED, metrics=CPU_50),
        [
            ["Reference:", "Deployment/web"],
            ["Metrics:", "( current / target )"],
            ["  resource cpu on pods  (as a percentage of request):", "250% (125m) / 50%"],
            ["Min replicas:", "1"],
            ["Max replicas:", "10"],
            ["Deployment pods:", "1 current / 4 desired"],
            ["Conditions:"],
            [
                "  AbleToScale",
                "True",
                "SucceededRescale",
                "the HPA controller was able to update the target scale to 4",
            ],
        ],
    ),
    DescribeCase(
        "not yet measured, on an average memory value",
        hpa(metrics=MEMORY_100MI),
        [["  resource memory on pods:", "<unknown> / 100Mi"]],
    ),
    DescribeCase(
        "with behavior",
        hpa(
            metrics=CPU_50,
            behavior={
                "scaleDown": {
                    "stabilizationWindowSeconds": 5,
                    "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
                }
            },
        ),
        [
            ["Behavior:"],
            ["  Scale Down:"],
            ["    Stabilization Window: 5 seconds"],
            ["    Select Policy: Max"],
            ["    Policies:"],
            ["      - Type: Percent  Value: 100  Period: 15 seconds"],
        ],
    ),
]


@pytest.mark.parametrize("case", DESCRIBE, ids=lambda c: c.name)
def test_describe_rows(case: DescribeCase) -> None:
    rows = hpa_rows(case.hpa)
    positions = [rows.index(row) if row in rows else -1 for row in case.want]
    assert -1 not in positions, f"{case.name}: missing {case.want[positions.index(-1)]} in {rows}"
    assert positions == sorted(positions), f"{case.name}: out of order: {rows}"


def test_get_hpa_shows_unknown_until_an_average_value_is_measured() -> None:
    failed = {"currentMetrics": [{"type": "Resource", "resource": {"name": "memory"}}]}
    assert _printers.hpa_targets(hpa(failed, metrics=MEMORY_100MI)) == "memory: <unknown>/100Mi"
    measured = {
        "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}
        ]
    }
    assert _printers.hpa_targets(hpa(measured, metrics=CPU_50)) == "cpu: 40%/50%"

"""`kpyctl describe pdb`: the text kubectl 1.3x prints (kpy.cli._describe_pdb
through describe.describe, events from a fake client)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from kpy.api.codec import from_dict
from kpy.api.policy.v1 import PodDisruptionBudget
from kpy.cli import _client, describe
from kpy.client.fake import FakeClient

ZK: dict[str, Any] = {
    "metadata": {"name": "zk-pdb", "namespace": "default", "uid": "u-1", "generation": 1},
    "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "zookeeper"}}},
    "status": {
        "observedGeneration": 1,
        "disruptionsAllowed": 1,
        "currentHealthy": 3,
        "desiredHealthy": 2,
        "expectedPods": 3,
    },
}
# As kubernetes.io's "Specifying a Disruption Budget" shows it.
ZK_TEXT = """\
Name:           zk-pdb
Namespace:      default
Min available:  2
Selector:       app=zookeeper
Status:
    Allowed disruptions:  1
    Current:              3
    Desired:              2
    Total:                3
Events:                   <none>
"""


async def _text(body: dict[str, Any]) -> str:
    pdb = from_dict(PodDisruptionBudget, body)
    client: Any = FakeClient()
    return await describe.describe(
        client, _client.resolve("poddisruptionbudgets.policy"), pdb, scheduler=""
    )


async def test_describe_pdb_as_kubectl_prints_it() -> None:
    text = await _text(ZK)
    assert text == ZK_TEXT, text


@dataclass(frozen=True)
class Case:
    name: str
    spec: dict[str, Any]
    lines: tuple[str, ...]
    absent: tuple[str, ...] = field(default=())


CASES = [
    Case(
        "a percentage",
        {"minAvailable": "50%", "selector": {"matchLabels": {"app": "zookeeper"}}},
        ("Min available: 50%",),
        ("Max unavailable:",),
    ),
    Case(
        "max unavailable",
        {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "zookeeper"}}},
        ("Max unavailable: 1",),
        ("Min available:",),
    ),
    Case("no bound", {"selector": {}}, ("Selector: <none>",), ("Min available:", "Max un")),
    Case("no selector", {"minAvailable": 1}, ("Selector: <unset>",)),
    Case(
        "an expression",
        {
            "maxUnavailable": "10%",
            "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]},
        },
        ("Selector: tier in (a)", "Max unavailable: 10%"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_describe_pdb(case: Case) -> None:
    text = await _text({**ZK, "spec": case.spec})
    lines = [" ".join(line.split()) for line in text.splitlines()]
    for want in case.lines:
        assert want in lines, f"{case.name}: no line {want!r} in:\n{text}"
    for prefix in case.absent:
        found = [line for line in lines if line.startswith(prefix)]
        assert not found, f"{case.name}: unexpected {found} in:\n{text}"

"""`kpyctl describe` of a workload whose pod template takes environment
variables from the Downward API: a template is no pod, so, as kubectl does,
the value is left blank and only the field is named (it used to crash)."""

from __future__ import annotations

from typing import Any

import pytest

from kpy.api.apps.v1 import Deployment, ReplicaSet
from kpy.api.codec import from_dict
from kpy.cli import _client, describe
from kpy.client.fake import FakeClient

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {
        "containers": [
            {
                "name": "web",
                "image": "busybox",
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {
                        "name": "MEM",
                        "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}},
                    },
                ],
                "resources": {"limits": {"memory": "64Mi"}},
            }
        ]
    },
}

CASES: list[tuple[str, type[Any], str]] = [
    ("deployment", Deployment, "deployments.apps"),
    ("replica set", ReplicaSet, "replicasets.apps"),
]


@pytest.mark.parametrize(("kind", "resource"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_template_env_from_the_downward_api(kind: type[Any], resource: str) -> None:
    obj = from_dict(
        kind,
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
        },
    )
    text = await describe.describe(
        FakeClient(),  # type: ignore[arg-type]
        _client.resolve(resource),
        obj,
        scheduler="",
    )
    lines = [" ".join(line.split()) for line in text.splitlines()]
    for want in (
        "POD_NAME: (v1:metadata.name)",
        "POD_IP: (v1:status.podIP)",
        "MEM: 67108864 (limits.memory)",  # bytes: the divisor is 1
    ):
        assert want in lines, f"{kind.__name__}: no line {want!r} in:\n{text}"

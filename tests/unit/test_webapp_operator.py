"""The example WebApp operator (examples/webapp/operator.py) on the operator
test harness: what it creates, when it reports Ready, what its finalizer does."""

from __future__ import annotations

from typing import Any

import pytest

from examples.webapp.operator import WebApp, app
from kpy.api.apps.v1 import Deployment
from kpy.api.core.v1 import Service
from kpy.api.meta.v1 import ObjectMeta
from kpy.operator.testing import Harness


def webapp(replicas: int = 2) -> Any:
    return WebApp(
        metadata=ObjectMeta(name="shop", namespace="default"),
        spec={"image": "nginx:1.27", "replicas": replicas, "port": 8080},
    )


def ready_condition(h: Harness) -> dict[str, Any]:
    web = h.get(WebApp, "shop")
    assert web is not None
    [condition] = [c for c in web.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
    return condition  # type: ignore[no-any-return]


async def test_a_webapp_gets_its_deployment_and_service() -> None:
    async with Harness(app, webapp(replicas=2)) as h:
        assert not h.failures
        deployment = h.get(Deployment, "shop")
        service = h.get(Service, "shop")
        assert deployment is not None
        assert service is not None
        for obj in (deployment, service):
            [owner] = obj.metadata.owner_references
            assert (owner.api_version, owner.kind, owner.name, owner.controller) == (
                "apps.example.com/v1",
                "WebApp",
                "shop",
                True,
            )
        assert deployment.spec.replicas == 2
        [container] = deployment.spec.template.spec.containers
        assert (container.image, container.ports[0].container_port) == ("nginx:1.27", 8080)
        [port] = service.spec.ports
        assert (port.port, port.target_port.int_val) == (80, 8080)
        assert dict(service.spec.selector) == dict(deployment.spec.selector.match_labels)
        condition = ready_condition(h)
        assert (condition["status"], condition["message"]) == ("False", "0/2 replicas ready")


READINESS: list[tuple[str, int, int, str]] = [
    # name, deployment status observedGeneration, readyReplicas, Ready
    ("no replica ready", 1, 0, "False"),
    ("some replicas ready", 1, 1, "False"),
    ("every replica ready", 1, 2, "True"),
    ("ready but the deployment's status is for an older spec", 0, 2, "False"),
]


@pytest.mark.parametrize(
    ("name", "observed", "ready", "expected"), READINESS, ids=[r[0] for r in READINESS]
)
async def test_a_webapp_is_ready_when_its_deployment_status_says_so(
    name: str, observed: int, ready: int, expected: str
) -> None:
    async with Harness(app, webapp(replicas=2)) as h:
        deployment = h.get(Deployment, "shop")
        assert deployment is not None
        deployment.status.observed_generation = observed
        deployment.status.replicas = 2
        deployment.status.ready_replicas = ready
        await h.update_status(deployment)  # as the deployment controller would
        assert ready_condition(h)["status"] == expected, name
        web = h.get(WebApp, "shop")
        assert web is not None
        assert web["status"]["readyReplicas"] == ready, name


async def test_scaling_a_webapp_scales_its_deployment() -> None:
    async with Harness(app, webapp(replicas=2)) as h:
        web = h.get(WebApp, "shop")
        assert web is not None
        web.spec["replicas"] = 5
        await h.update(web)
        deployment = h.get(Deployment, "shop")
        assert deployment is not None
        assert deployment.spec.replicas == 5
        assert ready_condition(h)["message"] == "0/5 replicas ready"


async def test_deleting_a_webapp_runs_its_finalizer() -> None:
    async with Harness(app, webapp()) as h:
        web = h.get(WebApp, "shop")
        assert web is not None
        assert list(web.metadata.finalizers) == [app.finalizer(WebApp)]
        await h.delete(WebApp, "shop")
        assert h.get(WebApp, "shop") is None
        assert h.get(Deployment, "shop") is None
        assert h.get(Service, "shop") is None
        assert [e.message for e in h.events("CleanedUp")] == ["deleted its Deployment and Service"]
        assert not h.failures

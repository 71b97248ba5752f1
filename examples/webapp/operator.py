"""The WebApp operator, on kpy's operator SDK.

A `WebApp` (apps.example.com/v1, see crd.yaml) names an image, a replica
count and a port. For each one the operator keeps a Deployment and a Service
of the same name, owned by the WebApp, and reports in the WebApp's status
how many replicas are ready, with a `Ready` condition. Deleting a WebApp
runs `cleanup` (its finalizer) first.

Run it on a cluster: `kpy-operator examples.webapp.operator:app`.
"""

from __future__ import annotations

import contextlib

from kpy.api import errors
from kpy.api.apps.v1 import Deployment, DeploymentSpec
from kpy.api.core.v1 import (
    Container,
    ContainerPort,
    EmptyDirVolumeSource,
    EnvVar,
    EnvVarSource,
    HTTPGetAction,
    ObjectFieldSelector,
    PodSpec,
    PodTemplateSpec,
    Probe,
    Service,
    ServicePort,
    ServiceSpec,
    Volume,
    VolumeMount,
)
from kpy.api.intstr import from_value
from kpy.api.meta.v1 import LabelSelector, ObjectMeta
from kpy.api.unstructured import CustomObject, custom_kind
from kpy.operator import Context, Operator, set_condition

WebApp = custom_kind("apps.example.com/v1", "WebApp", plural="webapps", status_subresource=True)

app = Operator("webapp-operator")


@app.reconcile(WebApp, owns=[Deployment, Service])
async def reconcile(ctx: Context, web: CustomObject) -> None:
    name, spec = web.metadata.name, web.get("spec", {})
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": app.name}
    replicas, port = spec.get("replicas", 1), spec.get("port", 8080)
    deployment = await ctx.apply_owned(
        Deployment(
            metadata=ObjectMeta(name=name, labels=labels),
            spec=DeploymentSpec(
                replicas=replicas,
                selector=LabelSelector(match_labels=labels),
                template=PodTemplateSpec(
                    metadata=ObjectMeta(labels=labels),
                    spec=PodSpec(
                        containers=[
                            Container(
                                name="web",
                                image=spec["image"],
                                command=spec.get("command", []),
                                env=[
                                    _field_env("POD_NAME", "metadata.name"),
                                    _field_env("POD_IP", "status.podIP"),
                                ],
                                ports=[ContainerPort(container_port=port)],
                                volume_mounts=[VolumeMount(name="www", mount_path="/tmp/www")],
                                readiness_probe=Probe(
                                    http_get=HTTPGetAction(path="/", port=from_value(port)),
                                    period_seconds=2,
                                ),
                            )
                        ],
                        volumes=[Volume(name="www", empty_dir=EmptyDirVolumeSource())],
                    ),
                ),
            ),
        )
    )
    await ctx.apply_owned(
        Service(
            metadata=ObjectMeta(name=name, labels=labels),
            spec=ServiceSpec(
                selector=labels,
                ports=[ServicePort(name="http", port=80, target_port=from_value(port))],
            ),
        )
    )
    ready = deployment.status.ready_replicas
    current = deployment.status.observed_generation >= deployment.metadata.generation
    done = current and ready >= replicas
    await ctx.set_status(
        web,
        {
            "observedGeneration": web.metadata.generation,
            "replicas": replicas,
            "readyReplicas": ready,
            "conditions": set_condition(
                web.get("status", {}).get("conditions"),
                type="Ready",
                status=done,
                reason="ReplicasReady" if done else "ReplicasNotReady",
                message=f"{ready}/{replicas} replicas ready",
                observed_generation=web.metadata.generation,
            ),
        },
    )


def _field_env(name: str, field: str) -> EnvVar:
    """An environment variable holding one of the pod's own fields."""
    return EnvVar(
        name=name, value_from=EnvVarSource(field_ref=ObjectFieldSelector(field_path=field))
    )


@app.on_delete(WebApp)
async def cleanup(ctx: Context, web: CustomObject) -> None:
    # The garbage collector would delete them after the WebApp; deleting
    # them here means they are gone when the WebApp is.
    for kind in (Service, Deployment):
        with contextlib.suppress(errors.NotFound):
            await ctx.client.delete(kind, web.metadata.name, namespace=web.metadata.namespace)
    ctx.event(web, "Normal", "CleanedUp", "deleted its Deployment and Service")

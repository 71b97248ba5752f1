"""The WebApp operator of operator.py, written for kopf, for comparison.

Not run here and not imported by kpy's tests (kopf is not a kpy dependency);
it uses the official `kubernetes` client, as kopf's examples do. Run it with
`kopf run examples/webapp/kopf_operator.py` against a Kubernetes cluster.
docs/operators.md compares the two line by line.
"""

# ruff: noqa
# mypy: ignore-errors

import datetime

import kopf
import kubernetes


def _labels(name):
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "webapp-operator"}


def _deployment(name, spec):
    labels = _labels(name)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": spec.get("replicas", 1),
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": spec["image"],
                            "command": spec.get("command", []),
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                                {
                                    "name": "POD_IP",
                                    "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                                },
                            ],
                            "ports": [{"containerPort": spec.get("port", 8080)}],
                            "volumeMounts": [{"name": "www", "mountPath": "/tmp/www"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": spec.get("port", 8080)},
                                "periodSeconds": 2,
                            },
                        }
                    ],
                    "volumes": [{"name": "www", "emptyDir": {}}],
                },
            },
        },
    }


def _service(name, spec):
    labels = _labels(name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": 80, "targetPort": spec.get("port", 8080)}],
        },
    }


def _apply(read, create, patch, name, namespace, body):
    # kopf has no create-or-update: read, then create or patch (which writes
    # even when nothing differs).
    try:
        read(name, namespace)
    except kubernetes.client.ApiException as e:
        if e.status != 404:
            raise
        return create(namespace, body)
    return patch(name, namespace, body)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    kubernetes.config.load_config()
    # kopf's own finalizer and its "last handled" annotation on every object
    settings.persistence.finalizer = "apps.example.com/webapp-operator"


# Level-based in effect: kopf's on.create/on.update/on.resume handlers see a
# diff, so the same function is registered for all three, plus a timer that
# polls the Deployment's readiness (kopf cannot map a Deployment event back
# to its WebApp owner without an index and a second handler).
@kopf.on.create("apps.example.com", "v1", "webapps")
@kopf.on.update("apps.example.com", "v1", "webapps", field="spec")
@kopf.on.resume("apps.example.com", "v1", "webapps")
def reconcile(spec, name, namespace, body, patch, **_):
    apps = kubernetes.client.AppsV1Api()
    core = kubernetes.client.CoreV1Api()
    deployment = _deployment(name, spec)
    service = _service(name, spec)
    kopf.adopt(deployment, owner=body)
    kopf.adopt(service, owner=body)
    _apply(
        apps.read_namespaced_deployment,
        apps.create_namespaced_deployment,
        apps.patch_namespaced_deployment,
        name,
        namespace,
        deployment,
    )
    _apply(
        core.read_namespaced_service,
        core.create_namespaced_service,
        core.patch_namespaced_service,
        name,
        namespace,
        service,
    )
    _report(spec, name, namespace, body, patch)


@kopf.timer("apps.example.com", "v1", "webapps", interval=5.0)
def readiness(spec, name, namespace, body, patch, **_):
    _report(spec, name, namespace, body, patch)


def _report(spec, name, namespace, body, patch):
    apps = kubernetes.client.AppsV1Api()
    try:
        d = apps.read_namespaced_deployment_status(name, namespace)
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return
        raise
    replicas = spec.get("replicas", 1)
    ready = d.status.ready_replicas or 0
    done = (d.status.observed_generation or 0) >= d.metadata.generation and ready >= replicas
    status = "True" if done else "False"
    old = [c for c in body.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
    if old and old[0]["status"] == status:
        transition = old[0]["lastTransitionTime"]
    else:
        transition = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch.status["observedGeneration"] = body["metadata"].get("generation")
    patch.status["replicas"] = replicas
    patch.status["readyReplicas"] = ready
    patch.status["conditions"] = [
        {
            "type": "Ready",
            "status": status,
            "observedGeneration": body["metadata"].get("generation"),
            "lastTransitionTime": transition,
            "reason": "ReplicasReady" if done else "ReplicasNotReady",
            "message": f"{ready}/{replicas} replicas ready",
        }
    ]


@kopf.on.delete("apps.example.com", "v1", "webapps")
def cleanup(name, namespace, body, **_):
    apps = kubernetes.client.AppsV1Api()
    core = kubernetes.client.CoreV1Api()
    for delete in (core.delete_namespaced_service, apps.delete_namespaced_deployment):
        try:
            delete(name, namespace)
        except kubernetes.client.ApiException as e:
            if e.status != 404:
                raise
    kopf.info(body, reason="CleanedUp", message="deleted its Deployment and Service")

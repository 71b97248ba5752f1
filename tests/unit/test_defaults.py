"""Kubernetes' defaults, checked on the manifest a user would read back."""

from __future__ import annotations

from typing import Any

import pytest

from kpy.api import codec
from kpy.api.defaults import image_pull_policy_for, set_defaults

CONTAINER = {"name": "c", "image": "nginx:1.25"}
POD_SPEC = {"containers": [CONTAINER]}
TEMPLATE = {"metadata": {"labels": {"app": "a"}}, "spec": POD_SPEC}
SELECTOR = {"matchLabels": {"app": "a"}}


def _defaulted(api_version: str, kind: str, **body: Any) -> dict[str, Any]:
    obj = codec.decode_object(
        {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, **body}
    )
    return codec.encode_object(set_defaults(obj))


def _at(doc: Any, path: str) -> Any:
    for part in path.split("."):
        doc = doc[int(part)] if isinstance(doc, list) else doc.get(part, "<unset>")
        if doc == "<unset>":
            return doc
    return doc


CASES = [
    # (name, apiVersion, kind, body, path, expected)
    ("pod restartPolicy", "v1", "Pod", {"spec": POD_SPEC}, "spec.restartPolicy", "Always"),
    ("pod grace period", "v1", "Pod", {"spec": POD_SPEC}, "spec.terminationGracePeriodSeconds", 30),
    ("pod dnsPolicy", "v1", "Pod", {"spec": POD_SPEC}, "spec.dnsPolicy", "ClusterFirst"),
    (
        "pod schedulerName",
        "v1",
        "Pod",
        {"spec": POD_SPEC},
        "spec.schedulerName",
        "default-scheduler",
    ),
    (
        "explicit grace period kept",
        "v1",
        "Pod",
        {"spec": {**POD_SPEC, "terminationGracePeriodSeconds": 0}},
        "spec.terminationGracePeriodSeconds",
        0,
    ),
    (
        "tagged image IfNotPresent",
        "v1",
        "Pod",
        {"spec": POD_SPEC},
        "spec.containers.0.imagePullPolicy",
        "IfNotPresent",
    ),
    (
        "untagged image Always",
        "v1",
        "Pod",
        {"spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        "spec.containers.0.imagePullPolicy",
        "Always",
    ),
    (
        "explicit pull policy kept",
        "v1",
        "Pod",
        {"spec": {"containers": [{**CONTAINER, "imagePullPolicy": "Never"}]}},
        "spec.containers.0.imagePullPolicy",
        "Never",
    ),
    (
        "termination message path",
        "v1",
        "Pod",
        {"spec": POD_SPEC},
        "spec.containers.0.terminationMessagePath",
        "/dev/termination-log",
    ),
    (
        "container port protocol",
        "v1",
        "Pod",
        {"spec": {"containers": [{**CONTAINER, "ports": [{"containerPort": 80}]}]}},
        "spec.containers.0.ports.0.protocol",
        "TCP",
    ),
    (
        "probe timings",
        "v1",
        "Pod",
        {"spec": {"containers": [{**CONTAINER, "livenessProbe": {"httpGet": {"port": 80}}}]}},
        "spec.containers.0.livenessProbe",
        {
            "httpGet": {"path": "/", "port": 80, "scheme": "HTTP"},
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
    ),
    (
        "requests default to limits on pods",
        "v1",
        "Pod",
        {"spec": {"containers": [{**CONTAINER, "resources": {"limits": {"cpu": "1"}}}]}},
        "spec.containers.0.resources.requests",
        {"cpu": "1"},
    ),
    (
        "explicit request kept",
        "v1",
        "Pod",
        {
            "spec": {
                "containers": [
                    {
                        **CONTAINER,
                        "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "100m"}},
                    }
                ]
            }
        },
        "spec.containers.0.resources.requests",
        {"cpu": "100m"},
    ),
    (
        "sourceless volume is emptyDir",
        "v1",
        "Pod",
        {"spec": {**POD_SPEC, "volumes": [{"name": "v"}]}},
        "spec.volumes.0",
        {"name": "v", "emptyDir": {}},
    ),
    (
        "configMap volume mode",
        "v1",
        "Pod",
        {"spec": {**POD_SPEC, "volumes": [{"name": "v", "configMap": {"name": "c"}}]}},
        "spec.volumes.0.configMap.defaultMode",
        0o644,
    ),
    (
        "fieldRef apiVersion",
        "v1",
        "Pod",
        {
            "spec": {
                "containers": [
                    {
                        **CONTAINER,
                        "env": [
                            {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                        ],
                    }
                ]
            }
        },
        "spec.containers.0.env.0.valueFrom.fieldRef.apiVersion",
        "v1",
    ),
    (
        "service type",
        "v1",
        "Service",
        {"spec": {"ports": [{"port": 80}]}},
        "spec.type",
        "ClusterIP",
    ),
    (
        "service targetPort = port",
        "v1",
        "Service",
        {"spec": {"ports": [{"port": 80}]}},
        "spec.ports.0",
        {"protocol": "TCP", "port": 80, "targetPort": 80},
    ),
    ("service sessionAffinity", "v1", "Service", {"spec": {}}, "spec.sessionAffinity", "None"),
    ("secret type", "v1", "Secret", {}, "type", "Opaque"),
    ("namespace phase", "v1", "Namespace", {}, "status.phase", "Active"),
    (
        "pvc volumeMode",
        "v1",
        "PersistentVolumeClaim",
        {"spec": {}},
        "spec.volumeMode",
        "Filesystem",
    ),
    (
        "pv reclaim policy",
        "v1",
        "PersistentVolume",
        {"spec": {}},
        "spec.persistentVolumeReclaimPolicy",
        "Retain",
    ),
    (
        "rc selector from template",
        "v1",
        "ReplicationController",
        {"spec": {"template": TEMPLATE}},
        "spec.selector",
        {"app": "a"},
    ),
    (
        "rc replicas",
        "v1",
        "ReplicationController",
        {"spec": {"template": TEMPLATE}},
        "spec.replicas",
        1,
    ),
    (
        "replicaset replicas",
        "apps/v1",
        "ReplicaSet",
        {"spec": {"selector": SELECTOR, "template": TEMPLATE}},
        "spec.replicas",
        1,
    ),
    (
        "replicas 0 kept",
        "apps/v1",
        "ReplicaSet",
        {"spec": {"replicas": 0, "selector": SELECTOR, "template": TEMPLATE}},
        "spec.replicas",
        0,
    ),
    (
        "deployment strategy",
        "apps/v1",
        "Deployment",
        {"spec": {"selector": SELECTOR, "template": TEMPLATE}},
        "spec.strategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
    ),
    (
        "deployment surge kept",
        "apps/v1",
        "Deployment",
        {"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}},
        "spec.strategy.rollingUpdate",
        {"maxUnavailable": "25%", "maxSurge": 1},
    ),
    (
        "deployment recreate has no rollingUpdate",
        "apps/v1",
        "Deployment",
        {"spec": {"strategy": {"type": "Recreate"}}},
        "spec.strategy",
        {"type": "Recreate"},
    ),
    ("deployment history", "apps/v1", "Deployment", {"spec": {}}, "spec.revisionHistoryLimit", 10),
    (
        "deployment deadline",
        "apps/v1",
        "Deployment",
        {"spec": {}},
        "spec.progressDeadlineSeconds",
        600,
    ),
    (
        "deployment template pod spec",
        "apps/v1",
        "Deployment",
        {"spec": {"template": TEMPLATE}},
        "spec.template.spec.restartPolicy",
        "Always",
    ),
    (
        "statefulset policy",
        "apps/v1",
        "StatefulSet",
        {"spec": {}},
        "spec.podManagementPolicy",
        "OrderedReady",
    ),
    (
        "statefulset update strategy",
        "apps/v1",
        "StatefulSet",
        {"spec": {}},
        "spec.updateStrategy",
        {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
    ),
    (
        "statefulset claim template",
        "apps/v1",
        "StatefulSet",
        {"spec": {"volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {}}]}},
        "spec.volumeClaimTemplates.0.spec.volumeMode",
        "Filesystem",
    ),
    (
        "daemonset update strategy",
        "apps/v1",
        "DaemonSet",
        {"spec": {}},
        "spec.updateStrategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
    ),
    ("job neither set", "batch/v1", "Job", {"spec": {}}, "spec.completions", 1),
    (
        "job parallelism only: work queue",
        "batch/v1",
        "Job",
        {"spec": {"parallelism": 3}},
        "spec.completions",
        "<unset>",
    ),
    (
        "job completions only",
        "batch/v1",
        "Job",
        {"spec": {"completions": 5}},
        "spec.parallelism",
        1,
    ),
    ("job backoffLimit", "batch/v1", "Job", {"spec": {}}, "spec.backoffLimit", 6),
    (
        "job per-index backoff",
        "batch/v1",
        "Job",
        {"spec": {"backoffLimitPerIndex": 1}},
        "spec.backoffLimit",
        2**31 - 1,
    ),
    ("cronjob policy", "batch/v1", "CronJob", {"spec": {}}, "spec.concurrencyPolicy", "Allow"),
    ("cronjob history", "batch/v1", "CronJob", {"spec": {}}, "spec.successfulJobsHistoryLimit", 3),
    (
        "cronjob failed history",
        "batch/v1",
        "CronJob",
        {"spec": {}},
        "spec.failedJobsHistoryLimit",
        1,
    ),
    (
        "cronjob job template",
        "batch/v1",
        "CronJob",
        {"spec": {"jobTemplate": {"spec": {}}}},
        "spec.jobTemplate.spec.backoffLimit",
        6,
    ),
    (
        "hpa min replicas",
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        {"spec": {}},
        "spec.minReplicas",
        1,
    ),
    (
        "hpa cpu 80%",
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        {"spec": {}},
        "spec.metrics",
        [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ],
    ),
    (
        "hpa scale down window",
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        {"spec": {"behavior": {}}},
        "spec.behavior.scaleDown.stabilizationWindowSeconds",
        300,
    ),
    (
        "storageclass binding mode",
        "storage.k8s.io/v1",
        "StorageClass",
        {"provisioner": "p"},
        "volumeBindingMode",
        "Immediate",
    ),
]


@pytest.mark.parametrize(
    ("name", "api_version", "kind", "body", "path", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_defaults(
    name: str, api_version: str, kind: str, body: dict[str, Any], path: str, expected: Any
) -> None:
    assert _at(_defaulted(api_version, kind, **body), path) == expected, name


def test_defaulting_twice_changes_nothing() -> None:
    once = _defaulted("apps/v1", "Deployment", spec={"template": TEMPLATE})
    obj = codec.decode_object(once)
    assert codec.encode_object(set_defaults(obj)) == once


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("busybox", "Always"),
        ("busybox:latest", "Always"),
        ("busybox:1.36", "IfNotPresent"),
        ("registry.local:5000/busybox", "Always"),
        ("registry.local:5000/busybox:1.0", "IfNotPresent"),
        ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    assert image_pull_policy_for(image) == policy

"""Validation of the workload kinds and the smaller groups: each case is a
manifest, decoded and defaulted as the API server would, and the exact field
paths of the errors it must produce (none for the valid ones)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api import codec
from kpy.api.defaults import set_defaults
from kpy.api.validation import validate, validate_update

if TYPE_CHECKING:
    from kpy.api.errors import FieldError

DELETE = object()
Manifest = dict[str, Any]


def edit(manifest: Manifest, changes: dict[str, Any]) -> Manifest:
    """A copy of `manifest` with each dotted path set (or removed, for DELETE);
    numeric segments index lists (one past the end appends)."""
    result = copy.deepcopy(manifest)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = result
        for key in parents:
            node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
        index: Any = int(last) if last.isdigit() else last
        if value is DELETE:
            del node[index]
        elif isinstance(node, list) and index == len(node):
            node.append(copy.deepcopy(value))
        else:
            node[index] = copy.deepcopy(value)
    return result


def _errors(manifest: Manifest) -> list[FieldError]:
    return validate(set_defaults(codec.decode_object(manifest)))


def _update_errors(new: Manifest, old: Manifest) -> list[FieldError]:
    decoded_old = set_defaults(codec.decode_object(old))
    return validate_update(set_defaults(codec.decode_object(new)), decoded_old)


@dataclass(frozen=True)
class Case:
    name: str
    manifest: Manifest
    paths: tuple[str, ...] = ()
    detail: str = ""  # a phrase one of the errors must contain


@dataclass(frozen=True)
class UpdateCase:
    name: str
    old: Manifest
    new: Manifest
    paths: tuple[str, ...] = ()
    detail: str = ""


# ------------------------------------------------------------------ manifests


def template(labels: dict[str, str] | None = None, **spec: Any) -> Manifest:
    return {
        "metadata": {"labels": {"app": "web"} if labels is None else labels},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}], **spec},
    }


def _object(api_version: str, kind: str, body: Manifest, name: str = "web") -> Manifest:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": "default"},
        **body,
    }


SELECTOR = {"matchLabels": {"app": "web"}}

RS = _object(
    "apps/v1",
    "ReplicaSet",
    {"spec": {"replicas": 2, "selector": SELECTOR, "template": template()}},
)
RC = _object("v1", "ReplicationController", {"spec": {"replicas": 2, "template": template()}})
DEPLOYMENT = _object(
    "apps/v1",
    "Deployment",
    {"spec": {"replicas": 3, "selector": SELECTOR, "template": template()}},
)
DATA_MOUNT = [{"name": "data", "mountPath": "/data"}]
STS = _object(
    "apps/v1",
    "StatefulSet",
    {
        "spec": {
            "replicas": 3,
            "serviceName": "web",
            "selector": SELECTOR,
            "template": edit(template(), {"spec.containers.0.volumeMounts": DATA_MOUNT}),
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        }
    },
)
DS = _object("apps/v1", "DaemonSet", {"spec": {"selector": SELECTOR, "template": template()}})
REVISION = _object(
    "apps/v1",
    "ControllerRevision",
    {"data": {"spec": {"template": template()}}, "revision": 1},
    name="web-5d8f7c",
)
JOB = _object(
    "batch/v1",
    "Job",
    {"spec": {"template": template({"job": "pi"}, restartPolicy="Never")}},
    name="pi",
)
CRON_JOB = _object(
    "batch/v1",
    "CronJob",
    {
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": template({}, restartPolicy="OnFailure")}},
        }
    },
    name="report",
)
CPU_50: Manifest = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
}
HPA = _object(
    "autoscaling/v2",
    "HorizontalPodAutoscaler",
    {
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 5,
            "metrics": [CPU_50],
        }
    },
)
LEASE = _object(
    "coordination.k8s.io/v1",
    "Lease",
    {"spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40, "leaseTransitions": 0}},
    name="node-1",
)
STORAGE_CLASS: Manifest = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "local"},
    "provisioner": "kpy.io/local-path",
    "parameters": {"root": "/var/lib/kpy/volumes"},
}
CRD_SCHEMA: Manifest = {
    "openAPIV3Schema": {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
    }
}
CRD: Manifest = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "scope": "Namespaced",
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": CRD_SCHEMA}],
    },
}


# ------------------------------------------------------------------ create


REPLICA_SETS = [
    Case("rs valid", RS),
    Case(
        "rs set-based selector",
        edit(
            RS,
            {
                "spec.selector": {
                    "matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]
                }
            },
        ),
    ),
    Case("rs no selector", edit(RS, {"spec.selector": DELETE}), ("spec.selector",)),
    Case(
        "rs empty selector",
        edit(RS, {"spec.selector": {}}),
        ("spec.selector",),
        "empty selector is invalid for replicaset",
    ),
    Case(
        "rs bad selector operator",
        edit(RS, {"spec.selector.matchExpressions": [{"key": "app", "operator": "Is"}]}),
        ("spec.selector.matchExpressions[0].operator",),
    ),
    Case(
        "rs template labels do not match",
        edit(RS, {"spec.template.metadata.labels": {"app": "api"}}),
        ("spec.template.metadata.labels",),
        "`selector` does not match template `labels`",
    ),
    Case("rs negative replicas", edit(RS, {"spec.replicas": -1}), ("spec.replicas",)),
    Case(
        "rs negative minReadySeconds",
        edit(RS, {"spec.minReadySeconds": -1}),
        ("spec.minReadySeconds",),
    ),
    Case(
        "rs restartPolicy OnFailure",
        edit(RS, {"spec.template.spec.restartPolicy": "OnFailure"}),
        ("spec.template.spec.restartPolicy",),
    ),
    Case(
        "rs activeDeadlineSeconds",
        edit(RS, {"spec.template.spec.activeDeadlineSeconds": 30}),
        ("spec.template.spec.activeDeadlineSeconds",),
    ),
    Case("rs no template", edit(RS, {"spec.template": DELETE}), ("spec.template",)),
    Case(
        "rs pod spec is validated",
        edit(RS, {"spec.template.spec.containers.0.image": ""}),
        ("spec.template.spec.containers[0].image",),
    ),
]

REPLICATION_CONTROLLERS = [
    Case("rc valid, selector from template labels", RC),
    Case("rc valid, explicit selector", edit(RC, {"spec.selector": {"app": "web"}})),
    Case(
        "rc selector does not match",
        edit(RC, {"spec.selector": {"app": "api"}}),
        ("spec.template.metadata.labels",),
    ),
    Case(
        "rc no selector and no template labels",
        edit(RC, {"spec.template.metadata.labels": {}}),
        ("spec.selector",),
    ),
    Case(
        "rc bad selector key",
        edit(RC, {"spec.selector": {"bad key": "web"}, "spec.template.metadata.labels": {}}),
        ("spec.selector",),
    ),
    Case(
        "rc restartPolicy Never",
        edit(RC, {"spec.template.spec.restartPolicy": "Never"}),
        ("spec.template.spec.restartPolicy",),
    ),
    Case("rc negative replicas", edit(RC, {"spec.replicas": -2}), ("spec.replicas",)),
    Case("rc no template", edit(RC, {"spec.template": DELETE}), ("spec.selector", "spec.template")),
]

ROLLING = "spec.strategy.rollingUpdate"
DEPLOYMENTS = [
    Case("deploy valid", DEPLOYMENT),
    Case("deploy recreate", edit(DEPLOYMENT, {"spec.strategy": {"type": "Recreate"}})),
    Case(
        "deploy int surge and unavailable",
        edit(DEPLOYMENT, {ROLLING: {"maxSurge": 1, "maxUnavailable": 0}}),
    ),
    Case("deploy surge over 100%", edit(DEPLOYMENT, {ROLLING: {"maxSurge": "200%"}})),
    Case("deploy no selector", edit(DEPLOYMENT, {"spec.selector": DELETE}), ("spec.selector",)),
    Case(
        "deploy template labels do not match",
        edit(DEPLOYMENT, {"spec.template.metadata.labels": {"tier": "web"}}),
        ("spec.template.metadata.labels",),
    ),
    Case(
        "deploy recreate with rollingUpdate",
        edit(DEPLOYMENT, {"spec.strategy": {"type": "Recreate", "rollingUpdate": {}}}),
        (ROLLING,),
        "may not be specified when strategy `type` is 'Recreate'",
    ),
    Case(
        "deploy unknown strategy",
        edit(DEPLOYMENT, {"spec.strategy.type": "BlueGreen"}),
        ("spec.strategy.type",),
    ),
    Case(
        "deploy surge and unavailable both 0",
        edit(DEPLOYMENT, {ROLLING: {"maxSurge": 0, "maxUnavailable": "0%"}}),
        (f"{ROLLING}.maxUnavailable",),
        "may not be 0 when `maxSurge` is 0",
    ),
    Case(
        "deploy unavailable over 100%",
        edit(DEPLOYMENT, {ROLLING: {"maxUnavailable": "150%"}}),
        (f"{ROLLING}.maxUnavailable",),
        "must not be greater than 100%",
    ),
    Case(
        "deploy negative surge",
        edit(DEPLOYMENT, {ROLLING: {"maxSurge": -1}}),
        (f"{ROLLING}.maxSurge",),
    ),
    Case(
        "deploy surge not a percentage",
        edit(DEPLOYMENT, {ROLLING: {"maxSurge": "25"}}),
        (f"{ROLLING}.maxSurge",),
    ),
    Case(
        "deploy progress deadline not above minReadySeconds",
        edit(DEPLOYMENT, {"spec.minReadySeconds": 30, "spec.progressDeadlineSeconds": 30}),
        ("spec.progressDeadlineSeconds",),
        "must be greater than minReadySeconds",
    ),
    Case(
        "deploy negative revisionHistoryLimit",
        edit(DEPLOYMENT, {"spec.revisionHistoryLimit": -1}),
        ("spec.revisionHistoryLimit",),
    ),
    Case("deploy negative replicas", edit(DEPLOYMENT, {"spec.replicas": -3}), ("spec.replicas",)),
    Case(
        "deploy restartPolicy Never",
        edit(DEPLOYMENT, {"spec.template.spec.restartPolicy": "Never"}),
        ("spec.template.spec.restartPolicy",),
    ),
    Case(
        "deploy bad podReplacementPolicy",
        edit(DEPLOYMENT, {"spec.podReplacementPolicy": "Eventually"}),
        ("spec.podReplacementPolicy",),
    ),
]

STS_ROLLING = "spec.updateStrategy.rollingUpdate"
CLAIM = "spec.volumeClaimTemplates[0]"
STATEFUL_SETS = [
    Case("sts valid, containers mount the claim", STS),
    Case("sts parallel", edit(STS, {"spec.podManagementPolicy": "Parallel"})),
    Case("sts on delete", edit(STS, {"spec.updateStrategy": {"type": "OnDelete"}})),
    Case("sts partition", edit(STS, {STS_ROLLING: {"partition": 2, "maxUnavailable": "50%"}})),
    Case("sts no serviceName", edit(STS, {"spec.serviceName": DELETE})),
    Case(
        "sts unknown podManagementPolicy",
        edit(STS, {"spec.podManagementPolicy": "Random"}),
        ("spec.podManagementPolicy",),
    ),
    Case(
        "sts unknown update strategy",
        edit(STS, {"spec.updateStrategy.type": "Canary"}),
        ("spec.updateStrategy.type",),
    ),
    Case(
        "sts on delete with rollingUpdate",
        edit(STS, {"spec.updateStrategy": {"type": "OnDelete", "rollingUpdate": {}}}),
        (STS_ROLLING,),
    ),
    Case(
        "sts negative partition",
        edit(STS, {STS_ROLLING: {"partition": -1}}),
        (f"{STS_ROLLING}.partition",),
    ),
    Case(
        "sts maxUnavailable 0",
        edit(STS, {STS_ROLLING: {"maxUnavailable": 0}}),
        (f"{STS_ROLLING}.maxUnavailable",),
    ),
    Case(
        "sts claim without access modes",
        edit(STS, {"spec.volumeClaimTemplates.0.spec.accessModes": []}),
        (f"{CLAIM}.spec.accessModes",),
    ),
    Case(
        "sts claim without storage request",
        edit(STS, {"spec.volumeClaimTemplates.0.spec.resources": {}}),
        (f"{CLAIM}.spec.resources[storage]",),
    ),
    Case(
        "sts claim without name: nothing to mount",
        edit(STS, {"spec.volumeClaimTemplates.0.metadata": {}}),
        (f"{CLAIM}.metadata.name", "spec.template.spec.containers[0].volumeMounts[0].name"),
    ),
    Case(
        "sts duplicate claim names",
        edit(STS, {"spec.volumeClaimTemplates.1": STS["spec"]["volumeClaimTemplates"][0]}),
        ("spec.volumeClaimTemplates[1].metadata.name",),
    ),
    Case("sts bad serviceName", edit(STS, {"spec.serviceName": "web_svc"}), ("spec.serviceName",)),
    Case("sts name is not a DNS label", edit(STS, {"metadata.name": "web.v2"}), ("metadata.name",)),
    Case(
        "sts bad retention policy",
        edit(STS, {"spec.persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep"}}),
        ("spec.persistentVolumeClaimRetentionPolicy.whenDeleted",),
    ),
    Case(
        "sts negative ordinal start",
        edit(STS, {"spec.ordinals.start": -1}),
        ("spec.ordinals.start",),
    ),
    Case("sts negative replicas", edit(STS, {"spec.replicas": -1}), ("spec.replicas",)),
    Case(
        "sts template labels do not match",
        edit(STS, {"spec.template.metadata.labels": {"app": "db"}}),
        ("spec.template.metadata.labels",),
    ),
    Case(
        "sts restartPolicy OnFailure",
        edit(STS, {"spec.template.spec.restartPolicy": "OnFailure"}),
        ("spec.template.spec.restartPolicy",),
    ),
]

DS_ROLLING = "spec.updateStrategy.rollingUpdate"
DAEMON_SETS = [
    Case("ds valid", DS),
    Case("ds on delete", edit(DS, {"spec.updateStrategy": {"type": "OnDelete"}})),
    Case("ds surge instead", edit(DS, {DS_ROLLING: {"maxSurge": "10%", "maxUnavailable": 0}})),
    Case(
        "ds surge and unavailable both set",
        edit(DS, {DS_ROLLING: {"maxSurge": 1, "maxUnavailable": 1}}),
        (f"{DS_ROLLING}.maxSurge",),
        "may not be set when maxUnavailable is non-zero",
    ),
    Case(
        "ds surge and unavailable both 0",
        edit(DS, {DS_ROLLING: {"maxSurge": 0, "maxUnavailable": 0}}),
        (f"{DS_ROLLING}.maxUnavailable",),
    ),
    Case(
        "ds unavailable over 100%",
        edit(DS, {DS_ROLLING: {"maxUnavailable": "101%"}}),
        (f"{DS_ROLLING}.maxUnavailable",),
    ),
    Case(
        "ds unknown update strategy",
        edit(DS, {"spec.updateStrategy.type": "Rolling"}),
        ("spec.updateStrategy.type",),
    ),
    Case("ds no selector", edit(DS, {"spec.selector": DELETE}), ("spec.selector",)),
    Case(
        "ds restartPolicy OnFailure",
        edit(DS, {"spec.template.spec.restartPolicy": "OnFailure"}),
        ("spec.template.spec.restartPolicy",),
    ),
    Case(
        "ds negative minReadySeconds",
        edit(DS, {"spec.minReadySeconds": -5}),
        ("spec.minReadySeconds",),
    ),
]

CONTROLLER_REVISIONS = [
    Case("revision valid", REVISION),
    Case("revision without data", edit(REVISION, {"data": DELETE}), ("data",)),
    Case("revision negative", edit(REVISION, {"revision": -1}), ("revision",)),
]

JOBS = [
    Case("job valid", JOB),
    Case(
        "job valid manual selector",
        edit(JOB, {"spec.manualSelector": True, "spec.selector": {"matchLabels": {"job": "pi"}}}),
    ),
    Case(
        "job indexed",
        edit(JOB, {"spec.completionMode": "Indexed", "spec.completions": 5, "spec.parallelism": 2}),
    ),
    Case(
        "job selector does not match",
        edit(JOB, {"spec.selector": {"matchLabels": {"job": "other"}}}),
        ("spec.template.metadata.labels",),
    ),
    Case(
        "job restartPolicy defaults to Always",
        edit(JOB, {"spec.template.spec.restartPolicy": DELETE}),
        ("spec.template.spec.restartPolicy",),
        'Unsupported value: "Always": supported values: "OnFailure", "Never"',
    ),
    Case("job negative parallelism", edit(JOB, {"spec.parallelism": -1}), ("spec.parallelism",)),
    Case("job negative completions", edit(JOB, {"spec.completions": -1}), ("spec.completions",)),
    Case("job negative backoffLimit", edit(JOB, {"spec.backoffLimit": -1}), ("spec.backoffLimit",)),
    Case(
        "job zero activeDeadlineSeconds",
        edit(JOB, {"spec.activeDeadlineSeconds": 0}),
        ("spec.activeDeadlineSeconds",),
    ),
    Case(
        "job negative ttlSecondsAfterFinished",
        edit(JOB, {"spec.ttlSecondsAfterFinished": -1}),
        ("spec.ttlSecondsAfterFinished",),
    ),
    Case(
        "job unknown completionMode",
        edit(JOB, {"spec.completionMode": "Sometimes"}),
        ("spec.completionMode",),
    ),
    Case(
        "job indexed without completions",
        edit(JOB, {"spec.completionMode": "Indexed", "spec.parallelism": 3}),
        ("spec.completions",),
    ),
    Case(
        "job backoffLimitPerIndex needs indexed",
        edit(JOB, {"spec.backoffLimitPerIndex": 1}),
        ("spec.backoffLimitPerIndex",),
    ),
    Case(
        "job pod failure policy",
        edit(
            JOB,
            {
                "spec.podFailurePolicy.rules": [
                    {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
        ),
        ("spec.podFailurePolicy.rules[1].onPodConditions[0].status",),
    ),
    Case(
        "job pod failure policy needs restartPolicy Never",
        edit(
            JOB,
            {
                "spec.template.spec.restartPolicy": "OnFailure",
                "spec.podFailurePolicy.rules": [
                    {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [0]}}
                ],
            },
        ),
        ("spec.template.spec.restartPolicy",),
    ),
    Case(
        "job pod failure rule with both sources and exit code 0",
        edit(
            JOB,
            {
                "spec.podFailurePolicy.rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"operator": "In", "values": [0]},
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    }
                ]
            },
        ),
        ("spec.podFailurePolicy.rules[0]", "spec.podFailurePolicy.rules[0].onExitCodes.values[0]"),
    ),
    Case(
        "job success policy needs indexed",
        edit(JOB, {"spec.successPolicy.rules": [{"succeededCount": 1}]}),
        ("spec.successPolicy",),
    ),
    Case(
        "job success policy indexes beyond completions",
        edit(
            JOB,
            {
                "spec.completionMode": "Indexed",
                "spec.completions": 5,
                "spec.successPolicy.rules": [
                    {"succeededIndexes": "0-2,4"},
                    {"succeededIndexes": "3,9"},
                ],
            },
        ),
        ("spec.successPolicy.rules[1].succeededIndexes",),
    ),
]

CRON_JOBS = [
    Case("cronjob valid", CRON_JOB),
    Case("cronjob @hourly", edit(CRON_JOB, {"spec.schedule": "@hourly"})),
    Case("cronjob weekdays", edit(CRON_JOB, {"spec.schedule": "30 9 * * MON-FRI"})),
    Case(
        "cronjob lists and steps", edit(CRON_JOB, {"spec.schedule": "0,30 */2 1-15/7 JAN,jul 0-7"})
    ),
    Case("cronjob time zone", edit(CRON_JOB, {"spec.timeZone": "Europe/Paris"})),
    Case("cronjob no schedule", edit(CRON_JOB, {"spec.schedule": DELETE}), ("spec.schedule",)),
    Case(
        "cronjob four fields",
        edit(CRON_JOB, {"spec.schedule": "* * * *"}),
        ("spec.schedule",),
        "expected exactly 5 fields, found 4",
    ),
    Case(
        "cronjob minute out of range",
        edit(CRON_JOB, {"spec.schedule": "60 * * * *"}),
        ("spec.schedule",),
        "end of range (60) above maximum (59)",
    ),
    Case(
        "cronjob unknown macro",
        edit(CRON_JOB, {"spec.schedule": "@fortnightly"}),
        ("spec.schedule",),
    ),
    Case("cronjob @every (robfig/cron accepts it)", edit(CRON_JOB, {"spec.schedule": "@every 5m"})),
    Case(
        "cronjob TZ in schedule",
        edit(CRON_JOB, {"spec.schedule": "CRON_TZ=UTC 0 * * * *"}),
        ("spec.schedule",),
        "use timeZone field instead",
    ),
    Case(
        "cronjob unknown time zone",
        edit(CRON_JOB, {"spec.timeZone": "Mars/Olympus"}),
        ("spec.timeZone",),
    ),
    Case("cronjob Local time zone", edit(CRON_JOB, {"spec.timeZone": "Local"}), ("spec.timeZone",)),
    Case("cronjob empty time zone", edit(CRON_JOB, {"spec.timeZone": ""}), ("spec.timeZone",)),
    Case(
        "cronjob unknown concurrencyPolicy",
        edit(CRON_JOB, {"spec.concurrencyPolicy": "Sometimes"}),
        ("spec.concurrencyPolicy",),
    ),
    Case(
        "cronjob negative deadline and limits",
        edit(
            CRON_JOB,
            {
                "spec.startingDeadlineSeconds": -1,
                "spec.successfulJobsHistoryLimit": -1,
                "spec.failedJobsHistoryLimit": -1,
            },
        ),
        (
            "spec.startingDeadlineSeconds",
            "spec.successfulJobsHistoryLimit",
            "spec.failedJobsHistoryLimit",
        ),
    ),
    Case("cronjob name too long", edit(CRON_JOB, {"metadata.name": "r" * 53}), ("metadata.name",)),
    Case("cronjob name of 52", edit(CRON_JOB, {"metadata.name": "r" * 52})),
    Case(
        "cronjob job restartPolicy Always",
        edit(CRON_JOB, {"spec.jobTemplate.spec.template.spec.restartPolicy": "Always"}),
        ("spec.jobTemplate.spec.template.spec.restartPolicy",),
    ),
    Case(
        "cronjob job negative backoffLimit",
        edit(CRON_JOB, {"spec.jobTemplate.spec.backoffLimit": -1}),
        ("spec.jobTemplate.spec.backoffLimit",),
    ),
    Case(
        "cronjob job selector",
        edit(CRON_JOB, {"spec.jobTemplate.spec.selector": {"matchLabels": {"a": "b"}}}),
        ("spec.jobTemplate.spec.selector",),
    ),
    Case(
        "cronjob job template bad label",
        edit(CRON_JOB, {"spec.jobTemplate.metadata.labels": {"team": "a b"}}),
        ("spec.jobTemplate.metadata.labels[team]",),
    ),
    Case(
        "cronjob no job template",
        edit(CRON_JOB, {"spec.jobTemplate": DELETE}),
        ("spec.jobTemplate.spec.template",),
    ),
]

METRIC = "spec.metrics[0]"
HPAS = [
    Case("hpa valid", HPA),
    Case("hpa default metric", edit(HPA, {"spec.metrics": DELETE})),
    Case(
        "hpa memory average value",
        edit(
            HPA,
            {
                "spec.metrics.0.resource": {
                    "name": "memory",
                    "target": {"type": "AverageValue", "averageValue": "500Mi"},
                }
            },
        ),
    ),
    Case(
        "hpa pods, object and external metrics",
        edit(
            HPA,
            {
                "spec.metrics": [
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": "qps"},
                            "target": {"type": "AverageValue", "averageValue": "10"},
                        },
                    },
                    {
                        "type": "Object",
                        "object": {
                            "describedObject": {"kind": "Service", "name": "web"},
                            "metric": {"name": "rps"},
                            "target": {"type": "Value", "value": "100"},
                        },
                    },
                    {
                        "type": "External",
                        "external": {
                            "metric": {"name": "queue", "selector": {"matchLabels": {"q": "a"}}},
                            "target": {"type": "AverageValue", "averageValue": "30"},
                        },
                    },
                ]
            },
        ),
    ),
    Case("hpa behavior", edit(HPA, {"spec.behavior.scaleDown.stabilizationWindowSeconds": 60})),
    Case(
        "hpa no target kind",
        edit(HPA, {"spec.scaleTargetRef.kind": DELETE}),
        ("spec.scaleTargetRef.kind",),
    ),
    Case(
        "hpa no target name",
        edit(HPA, {"spec.scaleTargetRef.name": DELETE}),
        ("spec.scaleTargetRef.name",),
    ),
    Case("hpa minReplicas 0", edit(HPA, {"spec.minReplicas": 0}), ("spec.minReplicas",)),
    Case("hpa maxReplicas 0", edit(HPA, {"spec.maxReplicas": 0}), ("spec.maxReplicas",)),
    Case("hpa no maxReplicas", edit(HPA, {"spec.maxReplicas": DELETE}), ("spec.maxReplicas",)),
    Case(
        "hpa maxReplicas below minReplicas",
        edit(HPA, {"spec.minReplicas": 4, "spec.maxReplicas": 3}),
        ("spec.maxReplicas",),
    ),
    Case("hpa unknown metric type", edit(HPA, {"spec.metrics.0.type": "Cpu"}), (f"{METRIC}.type",)),
    Case(
        "hpa metric type without its source",
        edit(HPA, {"spec.metrics.0.type": "Pods"}),
        (f"{METRIC}.pods", f"{METRIC}.resource"),
    ),
    Case(
        "hpa utilization target without utilization",
        edit(HPA, {"spec.metrics.0.resource.target": {"type": "Utilization", "averageValue": "1"}}),
        (f"{METRIC}.resource.target.averageUtilization",),
    ),
    Case(
        "hpa zero utilization",
        edit(HPA, {"spec.metrics.0.resource.target.averageUtilization": 0}),
        (f"{METRIC}.resource.target.averageUtilization",),
    ),
    Case(
        "hpa resource compared to a value",
        edit(HPA, {"spec.metrics.0.resource.target": {"type": "Value", "value": "1"}}),
        (f"{METRIC}.resource.target.type",),
    ),
    Case(
        "hpa pods metric without name",
        edit(
            HPA,
            {
                "spec.metrics.0": {
                    "type": "Pods",
                    "pods": {"metric": {}, "target": {"type": "AverageValue", "averageValue": "1"}},
                }
            },
        ),
        (f"{METRIC}.pods.metric.name",),
    ),
    Case(
        "hpa bad scaling policies",
        edit(
            HPA,
            {
                "spec.behavior.scaleUp": {
                    "stabilizationWindowSeconds": 3601,
                    "selectPolicy": "Avg",
                    "policies": [
                        {"type": "Nodes", "value": 0, "periodSeconds": 1801},
                    ],
                }
            },
        ),
        (
            "spec.behavior.scaleUp.stabilizationWindowSeconds",
            "spec.behavior.scaleUp.selectPolicy",
            "spec.behavior.scaleUp.policies[0].type",
            "spec.behavior.scaleUp.policies[0].value",
            "spec.behavior.scaleUp.policies[0].periodSeconds",
        ),
    ),
]

LEASES = [
    Case("lease valid", LEASE),
    Case(
        "lease zero duration",
        edit(LEASE, {"spec.leaseDurationSeconds": 0}),
        ("spec.leaseDurationSeconds",),
    ),
    Case(
        "lease negative transitions",
        edit(LEASE, {"spec.leaseTransitions": -1}),
        ("spec.leaseTransitions",),
    ),
    Case(
        "lease preferred holder without strategy",
        edit(LEASE, {"spec.preferredHolder": "node-2"}),
        ("spec.preferredHolder",),
    ),
]

STORAGE_CLASSES = [
    Case("storageclass valid", STORAGE_CLASS),
    Case(
        "storageclass wait for consumer",
        edit(
            STORAGE_CLASS, {"volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Retain"}
        ),
    ),
    Case(
        "storageclass no provisioner",
        edit(STORAGE_CLASS, {"provisioner": DELETE}),
        ("provisioner",),
    ),
    Case(
        "storageclass bad provisioner",
        edit(STORAGE_CLASS, {"provisioner": "local path!"}),
        ("provisioner",),
    ),
    Case(
        "storageclass reclaim Recycle",
        edit(STORAGE_CLASS, {"reclaimPolicy": "Recycle"}),
        ("reclaimPolicy",),
    ),
    Case(
        "storageclass unknown binding mode",
        edit(STORAGE_CLASS, {"volumeBindingMode": "Later"}),
        ("volumeBindingMode",),
    ),
]

VERSION_V1 = CRD["spec"]["versions"][0]
SPEC_SCHEMA = "spec.versions.0.schema.openAPIV3Schema.properties.spec"
CRDS = [
    Case("crd valid", CRD),
    Case(
        "crd two versions",
        edit(CRD, {"spec.versions.1": {**VERSION_V1, "name": "v2beta1", "storage": False}}),
    ),
    Case(
        "crd scale subresource",
        edit(
            CRD,
            {
                "spec.versions.0.subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                    },
                }
            },
        ),
    ),
    Case(
        "crd name is not plural.group",
        edit(CRD, {"metadata.name": "widget.example.com"}),
        ("metadata.name",),
        'must be spec.names.plural+"."+spec.group',
    ),
    Case(
        "crd group without a dot",
        edit(CRD, {"metadata.name": "widgets.example", "spec.group": "example"}),
        ("spec.group",),
    ),
    Case("crd no group", edit(CRD, {"spec.group": DELETE}), ("metadata.name", "spec.group")),
    Case(
        "crd plural not lowercase",
        edit(CRD, {"metadata.name": "wIdgets.example.com", "spec.names.plural": "wIdgets"}),
        ("metadata.name", "spec.names.plural"),
    ),
    Case(
        "crd no plural",
        edit(CRD, {"metadata.name": ".example.com", "spec.names.plural": DELETE}),
        ("metadata.name", "spec.names.plural"),
    ),
    Case("crd no kind", edit(CRD, {"spec.names.kind": DELETE}), ("spec.names.kind",)),
    Case("crd unknown scope", edit(CRD, {"spec.scope": "Global"}), ("spec.scope",)),
    Case("crd no versions", edit(CRD, {"spec.versions": []}), ("spec.versions",)),
    Case(
        "crd two storage versions",
        edit(CRD, {"spec.versions.1": {**VERSION_V1, "name": "v2"}}),
        ("spec.versions",),
        "must have exactly one version marked as storage version",
    ),
    Case(
        "crd no storage version", edit(CRD, {"spec.versions.0.storage": False}), ("spec.versions",)
    ),
    Case(
        "crd duplicate version names",
        edit(CRD, {"spec.versions.1": {**VERSION_V1, "storage": False}}),
        ("spec.versions[1].name",),
    ),
    Case(
        "crd schema not an object",
        edit(CRD, {"spec.versions.0.schema.openAPIV3Schema": {"type": "array"}}),
        (
            "spec.versions[0].schema.openAPIV3Schema.items",
            "spec.versions[0].schema.openAPIV3Schema.type",
        ),
        "must be object at the root",
    ),
    Case(
        "crd schema not structural",
        edit(
            CRD,
            {SPEC_SCHEMA: {"properties": {"tags": {"type": "array"}}}},
        ),
        (
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].type",
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[tags].items",
        ),
        "must not be empty for specified object fields",
    ),
    Case(
        "crd rule does not compile",
        edit(
            CRD,
            {f"{SPEC_SCHEMA}.x-kubernetes-validations": [{"rule": "self.size >"}]},
        ),
        (
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule",
        ),
        "compilation failed",
    ),
    Case(
        "crd default of the wrong type",
        edit(
            CRD,
            {f"{SPEC_SCHEMA}.properties.size.default": "big"},
        ),
        ("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].default",),
        "must be of type integer",
    ),
    Case(
        "crd no schema",
        edit(CRD, {"spec.versions.0.schema": DELETE}),
        ("spec.versions[0].schema.openAPIV3Schema",),
    ),
    Case(
        "crd scale path outside spec",
        edit(
            CRD,
            {
                "spec.versions.0.subresources.scale": {
                    "specReplicasPath": ".status.replicas",
                    "statusReplicasPath": ".status.replicas",
                }
            },
        ),
        ("spec.versions[0].subresources.scale.specReplicasPath",),
    ),
]

CREATE_CASES = [
    *REPLICA_SETS,
    *REPLICATION_CONTROLLERS,
    *DEPLOYMENTS,
    *STATEFUL_SETS,
    *DAEMON_SETS,
    *CONTROLLER_REVISIONS,
    *JOBS,
    *CRON_JOBS,
    *HPAS,
    *LEASES,
    *STORAGE_CLASSES,
    *CRDS,
]


@pytest.mark.parametrize("case", CREATE_CASES, ids=[c.name for c in CREATE_CASES])
def test_validate(case: Case) -> None:
    errs = _errors(case.manifest)
    shown = [str(e) for e in errs]
    assert sorted(e.path for e in errs) == sorted(case.paths), f"{case.name}: {shown}"
    if case.detail:
        assert any(case.detail in e.detail for e in errs), f"{case.name}: {shown}"


# ------------------------------------------------------------------ update


def _sts_claims(size: str) -> list[Manifest]:
    return [edit(STS["spec"]["volumeClaimTemplates"][0], {"spec.resources.requests.storage": size})]


NEW_IMAGE = "nginx:1.27"
SUSPENDED_JOB = edit(JOB, {"spec.suspend": True})
INDEXED_JOB = edit(
    JOB, {"spec.completionMode": "Indexed", "spec.completions": 4, "spec.parallelism": 4}
)
UPDATE_CASES = [
    UpdateCase("rs scale", RS, edit(RS, {"spec.replicas": 5})),
    UpdateCase(
        "rs selector",
        RS,
        edit(
            RS, {"spec.selector.matchLabels.tier": "a", "spec.template.metadata.labels.tier": "a"}
        ),
        ("spec.selector",),
        "field is immutable",
    ),
    UpdateCase(
        "rc selector may change",
        RC,
        edit(
            RC, {"spec.selector": {"app": "api"}, "spec.template.metadata.labels": {"app": "api"}}
        ),
    ),
    UpdateCase(
        "deploy new image",
        DEPLOYMENT,
        edit(DEPLOYMENT, {"spec.template.spec.containers.0.image": NEW_IMAGE}),
    ),
    UpdateCase(
        "deploy selector",
        DEPLOYMENT,
        edit(
            DEPLOYMENT,
            {
                "spec.selector": {"matchLabels": {"app": "web", "v": "2"}},
                "spec.template.metadata.labels.v": "2",
            },
        ),
        ("spec.selector",),
    ),
    UpdateCase(
        "sts mutable fields",
        STS,
        edit(
            STS,
            {
                "spec.replicas": 5,
                "spec.template.spec.containers.0.image": NEW_IMAGE,
                "spec.updateStrategy": {"type": "OnDelete"},
                "spec.minReadySeconds": 10,
                "spec.revisionHistoryLimit": 3,
                "spec.persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"},
                "spec.ordinals.start": 1,
            },
        ),
    ),
    UpdateCase(
        "sts serviceName",
        STS,
        edit(STS, {"spec.serviceName": "web2"}),
        ("spec",),
        "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
        "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
        "'minReadySeconds' are forbidden",
    ),
    UpdateCase(
        "sts claim size",
        STS,
        edit(STS, {"spec.volumeClaimTemplates": _sts_claims("2Gi")}),
        ("spec",),
    ),
    UpdateCase(
        "sts podManagementPolicy",
        STS,
        edit(STS, {"spec.podManagementPolicy": "Parallel"}),
        ("spec",),
    ),
    UpdateCase(
        "sts selector",
        STS,
        edit(STS, {"spec.selector.matchLabels.v": "2", "spec.template.metadata.labels.v": "2"}),
        ("spec",),
    ),
    UpdateCase("ds new image", DS, edit(DS, {"spec.template.spec.containers.0.image": NEW_IMAGE})),
    UpdateCase(
        "ds selector",
        DS,
        edit(DS, {"spec.selector.matchLabels.v": "2", "spec.template.metadata.labels.v": "2"}),
        ("spec.selector",),
    ),
    UpdateCase("revision renumbered", REVISION, edit(REVISION, {"revision": 7})),
    UpdateCase("revision data", REVISION, edit(REVISION, {"data.spec.x": 1}), ("data",)),
    UpdateCase(
        "job parallelism",
        edit(JOB, {"spec.completions": 4}),
        edit(JOB, {"spec.completions": 4, "spec.parallelism": 3}),
    ),
    UpdateCase("job suspend", JOB, SUSPENDED_JOB),
    UpdateCase(
        "job template while running",
        JOB,
        edit(JOB, {"spec.template.spec.containers.0.image": NEW_IMAGE}),
        ("spec.template",),
    ),
    UpdateCase(
        "job template while suspended",
        SUSPENDED_JOB,
        edit(SUSPENDED_JOB, {"spec.template.spec.containers.0.image": NEW_IMAGE}),
    ),
    UpdateCase(
        "job completions while running",
        JOB,
        edit(JOB, {"spec.completions": 3}),
        ("spec.completions",),
    ),
    UpdateCase(
        "job completions while suspended",
        SUSPENDED_JOB,
        edit(SUSPENDED_JOB, {"spec.completions": 3}),
    ),
    UpdateCase(
        "job indexed completions with parallelism",
        INDEXED_JOB,
        edit(INDEXED_JOB, {"spec.completions": 6, "spec.parallelism": 6}),
    ),
    UpdateCase(
        "job indexed completions alone",
        INDEXED_JOB,
        edit(INDEXED_JOB, {"spec.completions": 6}),
        ("spec.completions",),
        "can only be modified in tandem with spec.parallelism",
    ),
    UpdateCase(
        "job selector",
        edit(JOB, {"spec.manualSelector": True, "spec.selector": {"matchLabels": {"job": "pi"}}}),
        edit(
            JOB,
            {
                "spec.manualSelector": True,
                "spec.selector": {"matchLabels": {"job": "pi", "x": "y"}},
                "spec.template.metadata.labels.x": "y",
            },
        ),
        ("spec.selector", "spec.template"),
    ),
    UpdateCase(
        "job completionMode",
        SUSPENDED_JOB,
        edit(SUSPENDED_JOB, {"spec.completionMode": "Indexed"}),
        ("spec.completionMode",),
    ),
    UpdateCase("cronjob schedule", CRON_JOB, edit(CRON_JOB, {"spec.schedule": "@daily"})),
    UpdateCase("hpa bounds", HPA, edit(HPA, {"spec.maxReplicas": 10})),
    UpdateCase(
        "storageclass expansion", STORAGE_CLASS, edit(STORAGE_CLASS, {"allowVolumeExpansion": True})
    ),
    UpdateCase(
        "storageclass parameters",
        STORAGE_CLASS,
        edit(STORAGE_CLASS, {"parameters.root": "/srv"}),
        ("parameters",),
    ),
    UpdateCase(
        "storageclass provisioner and binding mode",
        STORAGE_CLASS,
        edit(
            STORAGE_CLASS,
            {"provisioner": "kpy.io/other", "volumeBindingMode": "WaitForFirstConsumer"},
        ),
        ("provisioner", "volumeBindingMode"),
    ),
    UpdateCase(
        "crd new version",
        CRD,
        edit(CRD, {"spec.versions.1": {**VERSION_V1, "name": "v2", "storage": False}}),
    ),
    UpdateCase("crd scope", CRD, edit(CRD, {"spec.scope": "Cluster"}), ("spec.scope",)),
]


@pytest.mark.parametrize("case", UPDATE_CASES, ids=[c.name for c in UPDATE_CASES])
def test_validate_update(case: UpdateCase) -> None:
    assert _errors(case.old) == [], f"{case.name}: the old object must be valid"
    errs = _update_errors(case.new, case.old)
    shown = [str(e) for e in errs]
    assert sorted(e.path for e in errs) == sorted(case.paths), f"{case.name}: {shown}"
    if case.detail:
        assert any(case.detail in e.detail for e in errs), f"{case.name}: {shown}"


def test_every_kind_has_a_valid_case() -> None:
    valid_kinds = {c.manifest["kind"] for c in CREATE_CASES if not c.paths}
    assert valid_kinds == {
        "ReplicaSet",
        "ReplicationController",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ControllerRevision",
        "Job",
        "CronJob",
        "HorizontalPodAutoscaler",
        "Lease",
        "StorageClass",
        "CustomResourceDefinition",
    }

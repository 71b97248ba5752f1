"""The fields kpy accepts but cannot honour are refused, and only those.

Every row of `_unsupported.REFUSALS` has a case here that sets the field to
a value kpy cannot honour and expects a Forbidden error naming the field,
the reason and the fix; the same field unset, at its default or at its
"off" value is accepted. The manifests users start from (the seed
manifests and examples/) must all still be accepted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kpy.api import codec, errors
from kpy.api.apps.v1 import Deployment, ReplicaSet
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import PersistentVolume, PersistentVolumeClaim, Pod, ReplicationController
from kpy.api.defaults import set_defaults
from kpy.api.validation import validate, validate_update
from kpy.api.validation._unsupported import REFUSALS, Refusal
from kpy.cli._manifests import read_file
from kpy.cli.apply import prepare

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "tests" / "data" / "seed-manifests"
# Seeds that must be refused when decoded (see their README): not manifests
# kpy should accept.
SEEDS_REFUSED_BY_DESIGN = {"deployment-apiversion-v1.yaml", "pod-bad-indent.yaml"}

CONTAINER = {"name": "app", "image": "kpy.local/busybox:latest"}


def pod(spec: dict[str, Any] | None = None, **container: Any) -> dict[str, Any]:
    """A valid Pod manifest, with `spec` merged into its spec and
    `container` into its one container."""
    body: dict[str, Any] = {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{**CONTAINER, **container}]},
    }
    body["spec"].update(spec or {})
    return body


def init(**container: Any) -> dict[str, Any]:
    """A Pod whose init container has `container` merged in."""
    body = pod()
    body["spec"]["initContainers"] = [{**CONTAINER, "name": "setup", **container}]
    return body


def volume(source: dict[str, Any], **mount: Any) -> dict[str, Any]:
    """A Pod with one volume `v` of `source`, mounted at /v."""
    return pod(
        {"volumes": [{"name": "v", **source}]},
        volumeMounts=[{"name": "v", "mountPath": "/v", **mount}],
    )


def decode(kind: type[Any], body: dict[str, Any]) -> Any:
    return set_defaults(codec.from_dict(kind, copy.deepcopy(body)))


def _pv(spec: dict[str, Any]) -> dict[str, Any]:
    base = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}
    return {"metadata": {"name": "pv"}, "spec": {**base, **spec}}


def _pvc(**spec: Any) -> dict[str, Any]:
    base = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    return {"metadata": {"name": "c", "namespace": "default"}, "spec": {**base, **spec}}


@dataclass(frozen=True)
class Case:
    name: str
    body: dict[str, Any]
    refused: str = ""  # the error's path; "" if accepted
    rule: tuple[str, str] = ("", "")  # (within, path) of the Refusal expected
    kind: type[Any] = Pod
    others: tuple[str, ...] = ()  # the paths of other errors expected too


SC = "spec.securityContext"
C0 = "spec.containers[0]"
CSC = f"{C0}.securityContext"

REFUSED = [
    Case(
        "ephemeral containers",
        pod({"ephemeralContainers": [{**CONTAINER, "name": "dbg"}]}),
        "spec.ephemeralContainers",
        ("PodSpec", "ephemeralContainers"),
    ),
    Case(
        "activeDeadlineSeconds",
        pod({"activeDeadlineSeconds": 30}),
        "spec.activeDeadlineSeconds",
        ("PodSpec", "activeDeadlineSeconds"),
    ),
    Case("hostNetwork", pod({"hostNetwork": True}), "spec.hostNetwork", ("PodSpec", "hostNetwork")),
    Case("hostPID", pod({"hostPID": True}), "spec.hostPID", ("PodSpec", "hostPID")),
    Case("hostIPC", pod({"hostIPC": True}), "spec.hostIPC", ("PodSpec", "hostIPC")),
    Case(
        "shareProcessNamespace",
        pod({"shareProcessNamespace": True}),
        "spec.shareProcessNamespace",
        ("PodSpec", "shareProcessNamespace"),
    ),
    Case(
        "serviceAccount alone",
        pod({"serviceAccount": "robot"}),
        "spec.serviceAccount",
        ("PodSpec", "serviceAccount"),
    ),
    Case("dnsPolicy None", pod({"dnsPolicy": "None"}), "spec.dnsPolicy", ("PodSpec", "dnsPolicy")),
    Case(
        "dnsConfig",
        pod({"dnsConfig": {"searches": ["corp"]}}),
        "spec.dnsConfig",
        ("PodSpec", "dnsConfig"),
    ),
    Case(
        "hostAliases",
        pod({"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db"]}]}),
        "spec.hostAliases",
        ("PodSpec", "hostAliases"),
    ),
    Case(
        "imagePullSecrets",
        pod({"imagePullSecrets": [{"name": "regcred"}]}),
        "spec.imagePullSecrets",
        ("PodSpec", "imagePullSecrets"),
    ),
    Case(
        "readinessGates",
        pod({"readinessGates": [{"conditionType": "example.com/lb"}]}),
        "spec.readinessGates",
        ("PodSpec", "readinessGates"),
    ),
    Case(
        "runtimeClassName",
        pod({"runtimeClassName": "gvisor"}),
        "spec.runtimeClassName",
        ("PodSpec", "runtimeClassName"),
    ),
    Case(
        "setHostnameAsFQDN",
        pod({"setHostnameAsFQDN": True}),
        "spec.setHostnameAsFQDN",
        ("PodSpec", "setHostnameAsFQDN"),
    ),
    Case("os windows", pod({"os": {"name": "windows"}}), "spec.os.name", ("PodSpec", "os.name")),
    Case("hostUsers false", pod({"hostUsers": False}), "spec.hostUsers", ("PodSpec", "hostUsers")),
    Case(
        "schedulingGates",
        pod({"schedulingGates": [{"name": "wait"}]}),
        "spec.schedulingGates",
        ("PodSpec", "schedulingGates"),
    ),
    Case(
        "resourceClaims",
        pod({"resourceClaims": [{"name": "gpu", "resourceClaimName": "g"}]}),
        "spec.resourceClaims",
        ("PodSpec", "resourceClaims"),
    ),
    # the pod's securityContext
    Case(
        "pod supplementalGroupsPolicy Strict",
        pod({"securityContext": {"supplementalGroupsPolicy": "Strict"}}),
        f"{SC}.supplementalGroupsPolicy",
        ("PodSecurityContext", "supplementalGroupsPolicy"),
    ),
    Case(
        "pod sysctls outside the safe set",
        pod(
            {
                "securityContext": {
                    "sysctls": [
                        {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                        {"name": "net.core.somaxconn", "value": "1024"},
                    ]
                }
            }
        ),
        f"{SC}.sysctls",
        ("PodSecurityContext", "sysctls"),
    ),
    Case(
        "pod seLinuxOptions",
        pod({"securityContext": {"seLinuxOptions": {"level": "s0:c123"}}}),
        f"{SC}.seLinuxOptions",
        ("PodSecurityContext", "seLinuxOptions"),
    ),
    Case(
        "pod windowsOptions",
        pod({"securityContext": {"windowsOptions": {"runAsUserName": "u"}}}),
        f"{SC}.windowsOptions",
        ("PodSecurityContext", "windowsOptions"),
    ),
    Case(
        "pod seccomp Localhost",
        pod(
            {
                "securityContext": {
                    "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}
                }
            }
        ),
        f"{SC}.seccompProfile",
        ("PodSecurityContext", "seccompProfile"),
    ),
    Case(
        "pod appArmor Unconfined",
        pod({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
        f"{SC}.appArmorProfile",
        ("PodSecurityContext", "appArmorProfile"),
    ),
    # containers
    Case(
        "sidecar",
        init(restartPolicy="Always"),
        "spec.initContainers[0].restartPolicy",
        ("Container", "restartPolicy"),
    ),
    Case(
        "restartPolicyRules",
        pod(
            restartPolicyRules=[
                {"action": "Restart", "exitCodes": {"operator": "In", "values": [42]}}
            ]
        ),
        f"{C0}.restartPolicyRules",
        ("Container", "restartPolicyRules"),
    ),
    Case(
        "volumeDevices",
        pod(volumeDevices=[{"name": "blk", "devicePath": "/dev/xvda"}]),
        f"{C0}.volumeDevices",
        ("Container", "volumeDevices"),
    ),
    Case(
        "terminationMessagePath",
        pod(terminationMessagePath="/tmp/why"),
        f"{C0}.terminationMessagePath",
        ("Container", "terminationMessagePath"),
    ),
    Case(
        "FallbackToLogsOnError",
        pod(terminationMessagePolicy="FallbackToLogsOnError"),
        f"{C0}.terminationMessagePolicy",
        ("Container", "terminationMessagePolicy"),
    ),
    Case("stdin", pod(stdin=True), f"{C0}.stdin", ("Container", "stdin")),
    Case("stdinOnce", pod(stdinOnce=True), f"{C0}.stdinOnce", ("Container", "stdinOnce")),
    Case("tty", pod(tty=True), f"{C0}.tty", ("Container", "tty")),
    Case(
        "tty in an init container",
        init(tty=True),
        "spec.initContainers[0].tty",
        ("Container", "tty"),
    ),
    Case(
        "resources.claims",
        pod(resources={"claims": [{"name": "gpu"}]}),
        f"{C0}.resources.claims",
        ("Container", "resources.claims"),
    ),
    # a container's securityContext
    Case(
        "procMount Unmasked",
        pod(securityContext={"procMount": "Unmasked"}),
        f"{CSC}.procMount",
        ("SecurityContext", "procMount"),
    ),
    Case(
        "seLinuxOptions",
        pod(securityContext={"seLinuxOptions": {"type": "spc_t"}}),
        f"{CSC}.seLinuxOptions",
        ("SecurityContext", "seLinuxOptions"),
    ),
    Case(
        "windowsOptions",
        pod(securityContext={"windowsOptions": {"hostProcess": True}}),
        f"{CSC}.windowsOptions",
        ("SecurityContext", "windowsOptions"),
    ),
    Case(
        "seccomp Localhost",
        pod(securityContext={"seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}),
        f"{CSC}.seccompProfile",
        ("SecurityContext", "seccompProfile"),
    ),
    Case(
        "appArmor Localhost",
        pod(
            securityContext={"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-x"}}
        ),
        f"{CSC}.appArmorProfile",
        ("SecurityContext", "appArmorProfile"),
    ),
    # probes, env, mounts
    Case(
        "grpc liveness probe",
        pod(livenessProbe={"grpc": {"port": 9000}}),
        f"{C0}.livenessProbe.grpc",
        ("Probe", "grpc"),
    ),
    Case(
        "grpc readiness probe",
        pod(readinessProbe={"grpc": {"port": 9000}}),
        f"{C0}.readinessProbe.grpc",
        ("Probe", "grpc"),
    ),
    Case(
        "fileKeyRef",
        pod(
            env=[
                {
                    "name": "K",
                    "valueFrom": {"fileKeyRef": {"volumeName": "v", "path": "e", "key": "k"}},
                }
            ]
        ),
        f"{C0}.env[0].valueFrom.fileKeyRef",
        ("EnvVarSource", "fileKeyRef"),
    ),
    Case(
        "mountPropagation",
        volume({"emptyDir": {}}, mountPropagation="HostToContainer"),
        f"{C0}.volumeMounts[0].mountPropagation",
        ("VolumeMount", "mountPropagation"),
    ),
    Case(
        "recursiveReadOnly Enabled",
        volume({"emptyDir": {}}, readOnly=True, recursiveReadOnly="Enabled"),
        f"{C0}.volumeMounts[0].recursiveReadOnly",
        ("VolumeMount", "recursiveReadOnly"),
    ),
    # volumes
    Case(
        "nfs volume",
        volume({"nfs": {"server": "nfs.local", "path": "/export"}}),
        "spec.volumes[0].nfs",
        ("Volume", "nfs"),
    ),
    Case(
        "csi volume",
        volume({"csi": {"driver": "inline.example.com"}}),
        "spec.volumes[0].csi",
        ("Volume", "csi"),
    ),
    Case(
        "image volume",
        volume({"image": {"reference": "quay.io/data:1"}}),
        "spec.volumes[0].image",
        ("Volume", "image"),
    ),
    Case(
        "hugepages emptyDir",
        volume({"emptyDir": {"medium": "HugePages-2Mi"}}),
        "spec.volumes[0].emptyDir.medium",
        ("EmptyDirVolumeSource", "medium"),
    ),
    Case(
        "clusterTrustBundle",
        volume(
            {"projected": {"sources": [{"clusterTrustBundle": {"name": "b", "path": "ca.pem"}}]}}
        ),
        "spec.volumes[0].projected.sources[0].clusterTrustBundle",
        ("VolumeProjection", "clusterTrustBundle"),
    ),
    # workloads and the rest
    Case(
        "Deployment TerminationComplete",
        {
            "metadata": {"name": "d", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "podReplacementPolicy": "TerminationComplete",
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [CONTAINER]},
                },
            },
        },
        "spec.podReplacementPolicy",
        ("DeploymentSpec", "podReplacementPolicy"),
        Deployment,
    ),
    Case(
        "Lease strategy",
        {
            "metadata": {"name": "l", "namespace": "default"},
            "spec": {"strategy": "OldestEmulationVersion"},
        },
        "spec.strategy",
        ("LeaseSpec", "strategy"),
        Lease,
    ),
    Case(
        "Lease preferredHolder",
        {
            "metadata": {"name": "l", "namespace": "default"},
            "spec": {"strategy": "OldestEmulationVersion", "preferredHolder": "node-2"},
        },
        "spec.preferredHolder",
        ("LeaseSpec", "preferredHolder"),
        Lease,
        ("spec.strategy",),
    ),
    # persistent volumes
    Case(
        "PV nfs",
        _pv({"nfs": {"server": "nfs.example", "path": "/export"}}),
        "spec.nfs",
        ("PersistentVolumeSpec", "nfs"),
        PersistentVolume,
    ),
    Case(
        "PV csi",
        _pv({"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-1"}}),
        "spec.csi",
        ("PersistentVolumeSpec", "csi"),
        PersistentVolume,
    ),
    Case(
        "PV Recycle",
        _pv({"hostPath": {"path": "/tmp/pv"}, "persistentVolumeReclaimPolicy": "Recycle"}),
        "spec.persistentVolumeReclaimPolicy",
        ("PersistentVolumeSpec", "persistentVolumeReclaimPolicy"),
        PersistentVolume,
    ),
    Case(
        "PV Block",
        _pv({"hostPath": {"path": "/tmp/pv"}, "volumeMode": "Block"}),
        "spec.volumeMode",
        ("PersistentVolumeSpec", "volumeMode"),
        PersistentVolume,
    ),
    Case(
        "PVC Block",
        _pvc(volumeMode="Block"),
        "spec.volumeMode",
        ("PersistentVolumeClaimSpec", "volumeMode"),
        PersistentVolumeClaim,
    ),
    Case(
        "PVC dataSource",
        _pvc(dataSource={"kind": "PersistentVolumeClaim", "name": "other"}),
        "spec.dataSource",
        ("PersistentVolumeClaimSpec", "dataSource"),
        PersistentVolumeClaim,
    ),
    Case(
        "PVC dataSourceRef",
        _pvc(dataSourceRef={"kind": "PersistentVolumeClaim", "name": "other"}),
        "spec.dataSourceRef",
        ("PersistentVolumeClaimSpec", "dataSourceRef"),
        PersistentVolumeClaim,
    ),
    # a pod template is checked like a pod
    Case(
        "Deployment template hostNetwork",
        {
            "metadata": {"name": "d", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"hostNetwork": True, "containers": [CONTAINER]},
                },
            },
        },
        "spec.template.spec.hostNetwork",
        ("PodSpec", "hostNetwork"),
        Deployment,
    ),
    Case(
        "ReplicaSet template tty",
        {
            "metadata": {"name": "r", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{**CONTAINER, "tty": True}]},
                },
            },
        },
        "spec.template.spec.containers[0].tty",
        ("Container", "tty"),
        ReplicaSet,
    ),
    Case(
        "ReplicationController template procMount",
        {
            "metadata": {"name": "rc", "namespace": "default"},
            "spec": {
                "selector": {"a": "b"},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {
                        "containers": [{**CONTAINER, "securityContext": {"procMount": "Unmasked"}}]
                    },
                },
            },
        },
        "spec.template.spec.containers[0].securityContext.procMount",
        ("SecurityContext", "procMount"),
        ReplicationController,
    ),
]

ACCEPTED = [
    Case("plain pod", pod()),
    Case("hostNetwork false", pod({"hostNetwork": False})),
    Case(
        "hostPID/hostIPC/shareProcessNamespace false",
        pod({"hostPID": False, "hostIPC": False, "shareProcessNamespace": False}),
    ),
    Case(
        "serviceAccount equal to serviceAccountName",
        pod({"serviceAccount": "robot", "serviceAccountName": "robot"}),
    ),
    Case("dnsPolicy ClusterFirst", pod({"dnsPolicy": "ClusterFirst"})),
    Case("dnsPolicy Default", pod({"dnsPolicy": "Default"})),
    Case(
        "empty lists",
        pod(
            {
                "hostAliases": [],
                "imagePullSecrets": [],
                "readinessGates": [],
                "schedulingGates": [],
                "resourceClaims": [],
                "ephemeralContainers": [],
            }
        ),
    ),
    Case("setHostnameAsFQDN false", pod({"setHostnameAsFQDN": False})),
    Case("os linux", pod({"os": {"name": "linux"}})),
    Case("hostUsers true", pod({"hostUsers": True})),
    Case("enableServiceLinks either way", pod({"enableServiceLinks": False})),
    Case("automountServiceAccountToken false", pod({"automountServiceAccountToken": False})),
    Case("empty pod securityContext", pod({"securityContext": {}})),
    Case(
        "pod securityContext at its defaults",
        pod(
            {
                "securityContext": {
                    "runAsNonRoot": False,
                    "supplementalGroupsPolicy": "Merge",
                    "seccompProfile": {"type": "RuntimeDefault"},
                    "appArmorProfile": {"type": "RuntimeDefault"},
                    "fsGroupChangePolicy": "Always",
                }
            }
        ),
    ),
    Case(
        "container securityContext at its defaults",
        pod(
            securityContext={
                "privileged": False,
                "runAsNonRoot": False,
                "readOnlyRootFilesystem": False,
                "allowPrivilegeEscalation": True,
                "procMount": "Default",
                "capabilities": {},
                "seccompProfile": {"type": "RuntimeDefault"},
            }
        ),
    ),
    # Honoured by kpy-agent (docs/fields.md says on which runtimes).
    Case(
        "pod securityContext kpy's runtimes apply",
        pod(
            {
                "securityContext": {
                    "runAsUser": 1000,
                    "runAsGroup": 3000,
                    "runAsNonRoot": True,
                    "supplementalGroups": [4000],
                    "fsGroup": 2000,
                    "seccompProfile": {"type": "Unconfined"},
                    "sysctls": [
                        {"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"},
                        {"name": "kernel/shm_rmid_forced", "value": "1"},
                    ],
                }
            }
        ),
    ),
    Case(
        "a hardened container securityContext",
        pod(
            securityContext={
                "runAsUser": 1000,
                "runAsGroup": 3000,
                "runAsNonRoot": True,
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            }
        ),
    ),
    Case(
        "a privileged container, unconfined",
        pod(securityContext={"privileged": True, "seccompProfile": {"type": "Unconfined"}}),
    ),
    Case("stdin/stdinOnce/tty false", pod(stdin=False, stdinOnce=False, tty=False)),
    Case(
        "termination message defaults",
        pod(terminationMessagePath="/dev/termination-log", terminationMessagePolicy="File"),
    ),
    Case(
        "workingDir and stopSignal are honoured",
        pod(workingDir="/tmp", lifecycle={"stopSignal": "SIGINT"}),
    ),
    Case(
        "exec, httpGet and tcpSocket probes",
        pod(
            ports=[{"name": "http", "containerPort": 8080}],
            livenessProbe={"exec": {"command": ["true"]}},
            readinessProbe={"httpGet": {"port": "http"}},
            startupProbe={"tcpSocket": {"port": 8080}},
        ),
    ),
    Case(
        "mount defaults",
        volume({"emptyDir": {}}, mountPropagation="None", recursiveReadOnly="Disabled"),
    ),
    Case(
        "recursiveReadOnly IfPossible",
        volume({"emptyDir": {}}, readOnly=True, recursiveReadOnly="IfPossible"),
    ),
    Case("emptyDir Memory", volume({"emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}})),
    Case("hostPath", volume({"hostPath": {"path": "/tmp", "type": "Directory"}})),
    Case(
        "projected without clusterTrustBundle",
        volume(
            {
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"path": "token"}},
                        {
                            "downwardAPI": {
                                "items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]
                            }
                        },
                    ]
                }
            }
        ),
    ),
    Case(
        "Deployment TerminationStarted",
        {
            "metadata": {"name": "d", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "podReplacementPolicy": "TerminationStarted",
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [CONTAINER]},
                },
            },
        },
        kind=Deployment,
    ),
    Case(
        "Lease as kpy's electors write it",
        {
            "metadata": {"name": "l", "namespace": "default"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 1},
        },
        kind=Lease,
    ),
]


def _rule(case: Case) -> Refusal:
    (rule,) = [r for r in REFUSALS if (r.within, r.path) == case.rule]
    return rule


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.name)
def test_refused_field_is_named_with_its_reason(case: Case) -> None:
    errs = validate(decode(case.kind, case.body))
    shown = [str(e) for e in errs]
    assert sorted(e.path for e in errs) == sorted([case.refused, *case.others]), (
        f"{case.name}: {shown}"
    )
    (err,) = [e for e in errs if e.path == case.refused]
    rule = _rule(case)
    assert err.reason == errors.FORBIDDEN, f"{case.name}: {shown}"
    assert "not supported by kpy" in err.detail, f"{case.name}: {shown}"
    assert rule.reason in err.detail, f"{case.name}: {shown}"
    assert rule.fix in err.detail, f"{case.name}: {shown}"


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda c: c.name)
def test_field_at_its_default_is_accepted(case: Case) -> None:
    errs = validate(decode(case.kind, case.body))
    assert errs == [], f"{case.name}: {[str(e) for e in errs]}"


def test_every_refusal_has_a_case() -> None:
    covered = {c.rule for c in REFUSED}
    missing = [f"{r.within}.{r.path}" for r in REFUSALS if (r.within, r.path) not in covered]
    assert missing == [], f"refusals without a test case: {missing}"


def test_error_reads_as_the_user_sees_it() -> None:
    (err,) = validate(decode(Pod, pod({"hostNetwork": True})))
    assert str(err) == (
        "spec.hostNetwork: Forbidden: not supported by kpy (kpy-agent gives every pod its own "
        "network namespace); remove the field"
    )
    (err,) = validate(decode(Pod, pod({"os": {"name": "windows"}})))
    assert '"windows" is not supported by kpy' in str(err)


@dataclass(frozen=True)
class UpdateCase:
    name: str
    old: dict[str, Any]
    new: dict[str, Any]
    refused: tuple[str, ...]


UPDATES = [
    UpdateCase("newly set: refused", pod(), pod(tty=True), (f"{C0}.tty",)),
    UpdateCase("already stored: let through (ratchet)", pod(tty=True), pod(tty=True), ()),
    UpdateCase(
        "value changed: refused",
        pod({"os": {"name": "windows"}}),
        pod({"os": {"name": "plan9"}}),
        ("spec.os.name",),
    ),
    UpdateCase("removed: accepted", pod(tty=True), pod(), ()),
]


@pytest.mark.parametrize("case", UPDATES, ids=lambda c: c.name)
def test_update(case: UpdateCase) -> None:
    old = decode(Pod, case.old)
    old.metadata.uid, old.metadata.resource_version = "u1", "5"
    new = decode(Pod, case.new)
    new.metadata.uid, new.metadata.resource_version = "u1", "5"
    new.spec.containers[0].image = old.spec.containers[0].image  # pod updates may change image
    errs = [e for e in validate_update(new, old) if "not supported by kpy" in e.detail]
    assert tuple(e.path for e in errs) == case.refused, f"{case.name}: {[str(e) for e in errs]}"


def test_a_field_reported_elsewhere_gets_one_error() -> None:
    """ReplicaSet templates refuse activeDeadlineSeconds in `_apps` already."""
    rs = {
        "metadata": {"name": "r", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"activeDeadlineSeconds": 5, "containers": [CONTAINER]},
            },
        },
    }
    errs = validate(decode(ReplicaSet, rs))
    assert [e.path for e in errs] == ["spec.template.spec.activeDeadlineSeconds"]


def _manifests() -> list[Path]:
    seeds = [p for p in sorted(SEEDS.glob("*.yaml")) if p.name not in SEEDS_REFUSED_BY_DESIGN]
    return [*seeds, *sorted((ROOT / "examples").glob("*.yaml"))]


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: p.name)
def test_users_manifests_are_still_accepted(path: Path) -> None:
    """Decoded, defaulted and validated as `kpyctl apply --dry-run=client`
    does: no problem."""
    objects, problems = prepare([read_file(path)], namespace=None)
    assert problems == [], f"{path.name}: {problems}"
    assert objects, f"{path.name}: no object decoded"


def test_docs_list_every_refusal() -> None:
    """docs/fields.md's refused table is the table in the code, row for row."""
    doc = (ROOT / "docs" / "fields.md").read_text().splitlines()
    missing = [
        f"{r.within}.{r.path}"
        for r in REFUSALS
        if f"| {r.within} | `{r.path}` | {r.when} | {r.reason} | {r.fix} |" not in doc
    ]
    assert missing == [], f"docs/fields.md does not list (or words differently): {missing}"

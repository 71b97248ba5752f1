"""securityContext from pod to runtime: Kubernetes' precedence, the
per-runtime refusals, the kubelet's runAsNonRoot check, what Docker is asked
to create, what the process runtime's shim is told, and fsGroup on volumes.
All pure, or real files under tmp_path."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from kpy.agent.env import PodContext
from kpy.agent.runtime import (
    SECURITY_FIELDS,
    ContainerConfig,
    ContainerConfigError,
    PodSandboxConfig,
    SecurityConfig,
)
from kpy.agent.runtime._records import config_to_json, container_config_from_json
from kpy.agent.runtime.docker import DockerRuntime, _container_body, _sandbox_body
from kpy.agent.runtime.process import ProcessRuntime, _check_config, _identity
from kpy.agent.runtime.simulated import SimulatedRuntime
from kpy.agent.security import container_security, refusal, verify_run_as_non_root
from kpy.agent.volumes import VolumeManager
from kpy.api.codec import from_dict
from kpy.api.core.v1 import ConfigMap, Pod

if TYPE_CHECKING:
    from pathlib import Path

C0 = "spec.containers[0]"


def make_pod(pod_sc: dict[str, Any] | None = None, **container_sc: Any) -> Pod:
    """Pod p (uid u1) in ns, one container "app", with these securityContexts."""
    c: dict[str, Any] = {"name": "app", "image": "img"}
    if container_sc:
        c["securityContext"] = container_sc
    spec: dict[str, Any] = {"containers": [c]}
    if pod_sc is not None:
        spec["securityContext"] = pod_sc
    return from_dict(Pod, {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec})


# -- precedence ------------------------------------------------------------------


@dataclass(frozen=True)
class PrecedenceCase:
    name: str
    pod: Pod
    want: SecurityConfig


PRECEDENCE_CASES = [
    PrecedenceCase("nothing set asks nothing", make_pod(), SecurityConfig()),
    PrecedenceCase(
        "the pod's user, group and runAsNonRoot reach the container",
        make_pod({"runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": True}),
        SecurityConfig(run_as_user=1000, run_as_group=3000, run_as_non_root=True),
    ),
    PrecedenceCase(
        "the container's override the pod's",
        make_pod(
            {"runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": True},
            runAsUser=2000,
            runAsGroup=0,
            runAsNonRoot=False,
        ),
        SecurityConfig(run_as_user=2000, run_as_group=0, run_as_non_root=False),
    ),
    PrecedenceCase(
        "runAsUser 0 in the container overrides the pod's",
        make_pod({"runAsUser": 1000}, runAsUser=0),
        SecurityConfig(run_as_user=0),
    ),
    PrecedenceCase(
        "supplementalGroups then fsGroup, once",
        make_pod({"supplementalGroups": [4000, 2000], "fsGroup": 2000}),
        SecurityConfig(supplemental_groups=(4000, 2000)),
    ),
    PrecedenceCase(
        "fsGroup joins the groups",
        make_pod({"supplementalGroups": [4000], "fsGroup": 2000}),
        SecurityConfig(supplemental_groups=(4000, 2000)),
    ),
    PrecedenceCase(
        "seccomp: the container's over the pod's",
        make_pod(
            {"seccompProfile": {"type": "RuntimeDefault"}}, seccompProfile={"type": "Unconfined"}
        ),
        SecurityConfig(seccomp_profile="Unconfined"),
    ),
    PrecedenceCase(
        "seccomp: the pod's when the container sets none",
        make_pod({"seccompProfile": {"type": "Unconfined"}}),
        SecurityConfig(seccomp_profile="Unconfined"),
    ),
    PrecedenceCase(
        "container-only fields",
        make_pod(
            None,
            privileged=True,
            capabilities={"add": ["NET_ADMIN"], "drop": ["ALL"]},
            readOnlyRootFilesystem=True,
            allowPrivilegeEscalation=False,
        ),
        SecurityConfig(
            privileged=True,
            capabilities_add=("NET_ADMIN",),
            capabilities_drop=("ALL",),
            read_only_root_filesystem=True,
            no_new_privileges=True,
        ),
    ),
    PrecedenceCase(
        "allowPrivilegeEscalation true asks nothing",
        make_pod(None, allowPrivilegeEscalation=True),
        SecurityConfig(),
    ),
]


@pytest.mark.parametrize("case", PRECEDENCE_CASES, ids=lambda c: c.name)
def test_effective_security_follows_kubernetes_precedence(case: PrecedenceCase) -> None:
    got = container_security(case.pod, case.pod.spec.containers[0])

    assert got == case.want, case.name


# -- what each runtime refuses ---------------------------------------------------


@dataclass(frozen=True)
class RefusalCase:
    name: str
    pod: Pod
    runtime: str
    # The start of the message; "" when the container may be created.
    want: str


PROCESS = "process"
PROCESS_MESSAGE = "not supported by kpy's process runtime; run it on a Docker node"
HONOURED = {
    "docker": DockerRuntime.security_fields,
    "process": ProcessRuntime.security_fields,
    "simulated": SimulatedRuntime.security_fields,
}

REFUSAL_CASES = [
    RefusalCase(
        "docker applies capabilities", make_pod(None, capabilities={"drop": ["ALL"]}), "docker", ""
    ),
    RefusalCase(
        "process: capabilities",
        make_pod(None, capabilities={"drop": ["ALL"]}),
        PROCESS,
        f"{C0}.securityContext.capabilities: {PROCESS_MESSAGE}",
    ),
    RefusalCase(
        "process: readOnlyRootFilesystem",
        make_pod(None, readOnlyRootFilesystem=True),
        PROCESS,
        f"{C0}.securityContext.readOnlyRootFilesystem: {PROCESS_MESSAGE}",
    ),
    RefusalCase(
        "process: privileged",
        make_pod(None, privileged=True),
        PROCESS,
        f"{C0}.securityContext.privileged: {PROCESS_MESSAGE}",
    ),
    RefusalCase(
        "process: the pod's sysctls",
        make_pod({"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]}),
        PROCESS,
        f"spec.securityContext.sysctls: {PROCESS_MESSAGE}",
    ),
    RefusalCase(
        "process: user, groups, fsGroup, runAsNonRoot and no_new_privs",
        make_pod(
            {"runAsUser": 1000, "supplementalGroups": [5], "fsGroup": 6, "runAsNonRoot": True},
            runAsGroup=7,
            allowPrivilegeEscalation=False,
        ),
        PROCESS,
        "",
    ),
    RefusalCase(
        "process: off values ask nothing",
        make_pod(None, privileged=False, readOnlyRootFilesystem=False, capabilities={}),
        PROCESS,
        "",
    ),
    RefusalCase(
        "simulated records everything",
        make_pod({"sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}]}, privileged=True),
        "simulated",
        "",
    ),
    RefusalCase(
        "Localhost seccomp on every runtime",
        make_pod(None, seccompProfile={"type": "Localhost", "localhostProfile": "p.json"}),
        "docker",
        f"{C0}.securityContext.seccompProfile: type Localhost is not supported by kpy's runtimes",
    ),
    RefusalCase(
        "Localhost seccomp of the pod",
        make_pod({"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}),
        "simulated",
        "spec.securityContext.seccompProfile: type Localhost",
    ),
]


@pytest.mark.parametrize("case", REFUSAL_CASES, ids=lambda c: c.name)
def test_a_runtime_refuses_what_it_cannot_apply(case: RefusalCase) -> None:
    c = case.pod.spec.containers[0]

    got = refusal(case.pod, c, C0, case.runtime, HONOURED[case.runtime])

    if case.want:
        assert got.startswith(case.want), f"{case.name}: {got!r}"
    else:
        assert got == "", f"{case.name}: {got!r}"


def test_every_runtime_declares_known_fields_and_docker_all() -> None:
    for name, fields in HONOURED.items():
        assert fields <= SECURITY_FIELDS, name
    assert DockerRuntime.security_fields == SECURITY_FIELDS
    assert {"capabilities", "readOnlyRootFilesystem", "privileged", "sysctls"}.isdisjoint(
        ProcessRuntime.security_fields
    )


# -- runAsNonRoot ----------------------------------------------------------------


@dataclass(frozen=True)
class NonRootCase:
    name: str
    pod: Pod
    image_user: str | None
    want: str


WHERE = '(pod: "p_ns(u1)", container: app)'
NON_ROOT_CASES = [
    NonRootCase("not asked", make_pod(), "", ""),
    NonRootCase(
        "root image, no runAsUser",
        make_pod(None, runAsNonRoot=True),
        "",
        f"container has runAsNonRoot and image will run as root {WHERE}",
    ),
    NonRootCase(
        "image user 0:0",
        make_pod({"runAsNonRoot": True}),
        "0:0",
        f"container has runAsNonRoot and image will run as root {WHERE}",
    ),
    NonRootCase("image user 1000", make_pod(None, runAsNonRoot=True), "1000", ""),
    NonRootCase("image user 65534:65534", make_pod(None, runAsNonRoot=True), "65534:65534", ""),
    NonRootCase(
        "image user by name",
        make_pod(None, runAsNonRoot=True),
        "nobody",
        "container has runAsNonRoot and image has non-numeric user (nobody), cannot verify "
        f"user is non-root {WHERE}",
    ),
    NonRootCase(
        "runAsUser 1000 on a root image", make_pod({"runAsUser": 1000}, runAsNonRoot=True), "", ""
    ),
    NonRootCase(
        "runAsUser 0",
        make_pod({"runAsNonRoot": True}, runAsUser=0),
        "1000",
        f"container's runAsUser breaks non-root policy {WHERE}",
    ),
    NonRootCase(
        "the container allows root", make_pod({"runAsNonRoot": True}, runAsNonRoot=False), "", ""
    ),
    NonRootCase("a runtime that cannot tell", make_pod(None, runAsNonRoot=True), None, ""),
]


@pytest.mark.parametrize("case", NON_ROOT_CASES, ids=lambda c: c.name)
def test_run_as_non_root_is_the_kubelets_check(case: NonRootCase) -> None:
    c = case.pod.spec.containers[0]

    got = verify_run_as_non_root(case.pod, c, container_security(case.pod, c), case.image_user)

    assert got == case.want, case.name


# -- Docker ----------------------------------------------------------------------


@dataclass(frozen=True)
class DockerCase:
    name: str
    security: SecurityConfig
    want: dict[str, Any]  # HostConfig fields, and "User" (None: absent)
    image_user: str = ""
    absent: tuple[str, ...] = ()


DOCKER_CASES = [
    DockerCase(
        "the defaults ask nothing",
        SecurityConfig(),
        {"User": None},
        absent=("GroupAdd", "Privileged", "CapAdd", "CapDrop", "ReadonlyRootfs", "SecurityOpt"),
    ),
    DockerCase("runAsUser", SecurityConfig(run_as_user=1000), {"User": "1000"}),
    DockerCase("runAsUser 0", SecurityConfig(run_as_user=0), {"User": "0"}),
    DockerCase(
        "runAsUser and runAsGroup",
        SecurityConfig(run_as_user=1000, run_as_group=3000),
        {"User": "1000:3000"},
    ),
    DockerCase(
        "runAsGroup alone keeps the image's user",
        SecurityConfig(run_as_group=3000),
        {"User": "nobody:3000"},
        image_user="nobody:nogroup",
    ),
    DockerCase(
        "runAsGroup alone on a root image", SecurityConfig(run_as_group=3000), {"User": "0:3000"}
    ),
    DockerCase(
        "groups", SecurityConfig(supplemental_groups=(4000, 2000)), {"GroupAdd": ["4000", "2000"]}
    ),
    DockerCase("privileged", SecurityConfig(privileged=True), {"Privileged": True}),
    DockerCase(
        "capabilities",
        SecurityConfig(capabilities_add=("NET_BIND_SERVICE",), capabilities_drop=("ALL",)),
        {"CapAdd": ["NET_BIND_SERVICE"], "CapDrop": ["ALL"]},
    ),
    DockerCase(
        "readOnlyRootFilesystem",
        SecurityConfig(read_only_root_filesystem=True),
        {"ReadonlyRootfs": True},
    ),
    DockerCase(
        "allowPrivilegeEscalation false",
        SecurityConfig(no_new_privileges=True),
        {"SecurityOpt": ["no-new-privileges"]},
    ),
    DockerCase(
        "seccomp RuntimeDefault is Docker's default",
        SecurityConfig(seccomp_profile="RuntimeDefault"),
        {},
        absent=("SecurityOpt",),
    ),
    DockerCase(
        "seccomp Unconfined, no new privileges",
        SecurityConfig(seccomp_profile="Unconfined", no_new_privileges=True),
        {"SecurityOpt": ["no-new-privileges", "seccomp=unconfined"]},
    ),
]


@pytest.mark.parametrize("case", DOCKER_CASES, ids=lambda c: c.name)
def test_docker_create_body_carries_the_security_settings(case: DockerCase) -> None:
    config = ContainerConfig(name="app", image="img", security=case.security)

    body = _container_body(config, "sandbox-id", {}, 4, case.image_user)

    host = body["HostConfig"]
    for key, value in case.want.items():
        got = body.get(key) if key == "User" else host.get(key)
        assert got == value, f"{case.name}: {key}"
    for key in case.absent:
        assert key not in host, f"{case.name}: {key} set"
    # What every container has stays.
    assert host["NetworkMode"] == "container:sandbox-id", case.name


def test_docker_refuses_a_localhost_seccomp_profile() -> None:
    config = ContainerConfig(
        name="app", image="img", security=SecurityConfig(seccomp_profile="Localhost")
    )

    with pytest.raises(ContainerConfigError, match="Localhost"):
        _container_body(config, "sandbox-id", {}, 4)


def test_docker_sandbox_carries_the_pods_sysctls() -> None:
    plain = PodSandboxConfig(namespace="ns", name="p", uid="u")
    tuned = PodSandboxConfig(
        namespace="ns", name="p", uid="u", sysctls={"net.ipv4.tcp_syncookies": "1"}
    )

    assert "Sysctls" not in _sandbox_body(plain, {}, "pause")["HostConfig"]
    assert _sandbox_body(tuned, {}, "pause")["HostConfig"]["Sysctls"] == {
        "net.ipv4.tcp_syncookies": "1"
    }


# -- the process runtime ---------------------------------------------------------


@dataclass(frozen=True)
class IdentityCase:
    name: str
    security: SecurityConfig
    want: dict[str, Any]


IDENTITY_CASES = [
    IdentityCase(
        "nothing changes",
        SecurityConfig(),
        {"uid": None, "gid": None, "groups": None, "no_new_privs": False},
    ),
    IdentityCase(
        "an unknown uid gets group 0",
        SecurityConfig(run_as_user=54321),
        {"uid": 54321, "gid": 0, "groups": [], "no_new_privs": False},
    ),
    IdentityCase(
        "user, group and groups",
        SecurityConfig(run_as_user=1000, run_as_group=3000, supplemental_groups=(4000,)),
        {"uid": 1000, "gid": 3000, "groups": [4000], "no_new_privs": False},
    ),
    IdentityCase(
        "groups alone",
        SecurityConfig(supplemental_groups=(2000,)),
        {"uid": None, "gid": None, "groups": [2000], "no_new_privs": False},
    ),
    IdentityCase(
        "no new privileges",
        SecurityConfig(no_new_privileges=True),
        {"uid": None, "gid": None, "groups": None, "no_new_privs": True},
    ),
]


@pytest.mark.parametrize("case", IDENTITY_CASES, ids=lambda c: c.name)
def test_the_shim_is_told_the_containers_identity(case: IdentityCase) -> None:
    assert _identity(case.security) == case.want, case.name


@pytest.mark.parametrize(
    ("security", "field_name"),
    [
        (SecurityConfig(privileged=True), "privileged"),
        (SecurityConfig(capabilities_drop=("ALL",)), "capabilities"),
        (SecurityConfig(read_only_root_filesystem=True), "readOnlyRootFilesystem"),
        (SecurityConfig(seccomp_profile="Localhost"), "seccompProfile"),
    ],
)
def test_the_process_runtime_refuses_what_a_host_process_cannot_have(
    security: SecurityConfig, field_name: str
) -> None:
    config = ContainerConfig(name="app", image="img", command=["true"], security=security)

    with pytest.raises(ContainerConfigError) as raised:
        _check_config(config, "ns/p")

    assert raised.value.reason == "CreateContainerConfigError"
    assert f"securityContext.{field_name} is not supported by kpy's process runtime" in str(
        raised.value
    )
    assert str(raised.value).endswith("; run it on a Docker node")


def test_security_survives_the_json_a_runtime_keeps() -> None:
    config = ContainerConfig(
        name="app",
        image="img",
        security=SecurityConfig(
            run_as_user=1000,
            supplemental_groups=(4000, 2000),
            capabilities_drop=("ALL",),
            no_new_privileges=True,
            seccomp_profile="Unconfined",
        ),
    )

    assert container_config_from_json(config_to_json(config)) == config
    older = config_to_json(ContainerConfig(name="app", image="img"))
    del older["security"]
    assert container_config_from_json(older).security == SecurityConfig()


# -- fsGroup on volumes ----------------------------------------------------------


@dataclass
class _Objects:
    config_maps: dict[tuple[str, str], ConfigMap] = field(default_factory=dict)

    def config_map(self, namespace: str, name: str) -> ConfigMap | None:
        return self.config_maps.get((namespace, name))

    def secret(self, namespace: str, name: str) -> None:
        return None

    def persistent_volume_claim(self, namespace: str, name: str) -> None:
        return None

    def persistent_volume(self, name: str) -> None:
        return None


CTX = PodContext(pod_ip="10.0.0.5", host_ip="192.168.1.5", node_allocatable={})


def _volume_pod(fs_group: int | None) -> Pod:
    spec: dict[str, Any] = {
        "containers": [{"name": "app", "image": "img"}],
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "app", "defaultMode": 0o600}},
        ],
    }
    if fs_group is not None:
        spec["securityContext"] = {"fsGroup": fs_group}
    return from_dict(Pod, {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec})


@pytest.mark.parametrize("fs_group", [None, 2000], ids=["no fsGroup", "fsGroup 2000"])
def test_fs_group_owns_the_volumes_the_agent_makes(tmp_path: Path, fs_group: int | None) -> None:
    objects = _Objects({("ns", "app"): from_dict(ConfigMap, {"data": {"k": "v"}})})
    manager = VolumeManager(tmp_path)
    pod = _volume_pod(fs_group)

    paths = manager.prepare(pod, objects, CTX)

    scratch = paths["scratch"].stat()
    conf_file = (paths["conf"] / "k").stat()
    if fs_group is None:
        assert scratch.st_gid == os.getgid()
        assert stat.S_IMODE(scratch.st_mode) == 0o777
        assert stat.S_IMODE(conf_file.st_mode) == 0o600
        return
    assert scratch.st_gid == fs_group
    assert stat.S_IMODE(scratch.st_mode) == 0o777 | stat.S_ISGID
    assert conf_file.st_gid == fs_group
    assert stat.S_IMODE(conf_file.st_mode) == 0o640, "the group reads it"
    assert paths["conf"].stat().st_gid == fs_group
    # Nothing to rewrite on a refresh: the modes on disk are the ones asked for.
    assert manager.refresh(pod, objects, CTX) is False

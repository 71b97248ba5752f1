"""A container's environment: $(VAR) expansion, the Downward API, env and
envFrom sources and their errors, after the kubelet's makeEnvironmentVariables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from kpy.agent.env import (
    ConfigError,
    PodContext,
    container_env,
    expand,
    field_value,
    references,
    resolve_env,
    resource_value,
)
from kpy.api.codec import from_dict
from kpy.api.core.v1 import (
    ConfigMap,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
    Secret,
)
from kpy.api.quantity import Quantity


@dataclass
class Objects:
    """The agent's caches, as plain dicts keyed by (namespace, name)."""

    config_maps: dict[tuple[str, str], ConfigMap] = field(default_factory=dict)
    secrets: dict[tuple[str, str], Secret] = field(default_factory=dict)

    def config_map(self, namespace: str, name: str) -> ConfigMap | None:
        return self.config_maps.get((namespace, name))

    def secret(self, namespace: str, name: str) -> Secret | None:
        return self.secrets.get((namespace, name))

    def persistent_volume_claim(self, namespace: str, name: str) -> PersistentVolumeClaim | None:
        return None

    def persistent_volume(self, name: str) -> PersistentVolume | None:
        return None


def _objects() -> Objects:
    objects = Objects()
    objects.config_maps[("ns", "app-config")] = from_dict(
        ConfigMap,
        {"data": {"level": "debug", "B_KEY": "b", "A_KEY": "a", "1bad": "x", "bad key": "y"}},
    )
    objects.secrets[("ns", "db")] = from_dict(
        Secret,
        {"data": {"password": "czNjcjN0", "USER": "YWRtaW4="}},  # s3cr3t, admin
    )
    return objects


def _pod(containers: list[dict[str, Any]], **spec: Any) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {
                "name": "web",
                "namespace": "ns",
                "uid": "uid-1",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {"note": 'say "hi"\n'},
            },
            "spec": {
                "nodeName": "node-a",
                "serviceAccountName": "robot",
                "containers": containers,
                **spec,
            },
            "status": {"podIP": "10.0.0.9", "hostIP": "192.168.1.9"},
        },
    )


CTX = PodContext(
    pod_ip="10.0.0.5",
    host_ip="192.168.1.5",
    node_allocatable={"cpu": "4", "memory": Quantity("8Gi"), "ephemeral-storage": "100Gi"},
)


# --- $(VAR) expansion: Kubernetes' expansion table, then kpy's own cases ---

EXPANSION_ENV = {
    "VAR_A": "A",
    "VAR_B": "B",
    "VAR_C": "C",
    "VAR_REF": "$(VAR_A)",
    "VAR_EMPTY": "",
}

EXPANSION_CASES = [
    ("whole string", "$(VAR_A)", "A"),
    ("repeat", "$(VAR_A)-$(VAR_A)", "A-A"),
    ("beginning", "$(VAR_A)-1", "A-1"),
    ("middle", "___$(VAR_B)___", "___B___"),
    ("end", "___$(VAR_C)", "___C"),
    ("compound", "$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
    ("escape and expand", "$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
    ("compound escape", "$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
    ("mixed in escapes", "f000-$$VAR_A", "f000-$VAR_A"),
    ("backslash is no escape", "foo\\$(VAR_C)bar", "foo\\Cbar"),
    ("two backslashes", "foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
    ("nested reference", "$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
    ("nested reference, unclosed", "$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
    ("a value that is a reference is not expanded again", "$(VAR_REF)", "$(VAR_A)"),
    ("reference twice", "%%$(VAR_REF)--$(VAR_REF)%%", "%%$(VAR_A)--$(VAR_A)%%"),
    ("empty value", "foo$(VAR_EMPTY)bar", "foobar"),
    ("unterminated", "foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
    ("no operator", "f00__(VAR_A)__", "f00__(VAR_A)__"),
    ("shell specials pass through", "$?_boo_$!", "$?_boo_$!"),
    ("bare operator", "$VAR_A", "$VAR_A"),
    ("unknown name stays", "$(VAR_DNE)", "$(VAR_DNE)"),
    ("even dollars, unknown", "$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
    ("even dollars, known", "$$$$$$(VAR_A)", "$$$(VAR_A)"),
    ("odd dollars, unknown", "$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
    ("odd dollars, known", "$$$$$$$(VAR_A)", "$$$A"),
    ("missing opener", "$VAR_A)", "$VAR_A)"),
    ("shell braces ignored", "${VAR_A}", "${VAR_A}"),
    ("trailing incomplete", "$(VAR_B)_______$(A", "B_______$(A"),
    ("trailing bare opener", "$(VAR_C)_______$(", "C_______$("),
    ("operator at the end", "$(VAR_A)foobarzab$", "Afoobarzab$"),
    ("many openers", "--$($($($($--", "--$($($($($--"),
    ("escaped operator inside a name", "$(foo$$var)", "$(foo$$var)"),
    ("newline", "\n", "\n"),
    # kpy's own
    ("empty input", "", ""),
    ("lone dollar", "$", "$"),
    ("two dollars", "$$", "$"),
    ("three dollars", "$$$", "$$"),
    ("empty name", "$()", "$()"),
    ("adjacent references", "$(VAR_A)$(VAR_B)", "AB"),
    ("non-ascii around", "é$(VAR_A)ü", "éAü"),
    ("escape then reference", "$$$(VAR_A)", "$A"),
]


@pytest.mark.parametrize(
    ("name", "text", "want"), EXPANSION_CASES, ids=[c[0] for c in EXPANSION_CASES]
)
def test_expand(name: str, text: str, want: str) -> None:
    assert expand(text, EXPANSION_ENV) == want, name


# --- the Downward API: fields ---

FIELD_CASES = [
    ("metadata.name", "web"),
    ("metadata.namespace", "ns"),
    ("metadata.uid", "uid-1"),
    ("metadata.labels['app']", "web"),
    ("metadata.labels['missing']", ""),
    ("metadata.annotations['note']", 'say "hi"\n'),
    ("metadata.labels", 'app="web"\ntier="front"'),
    ("metadata.annotations", 'note="say \\"hi\\"\\n"'),
    ("spec.nodeName", "node-a"),
    ("spec.serviceAccountName", "robot"),
    ("status.podIP", "10.0.0.5"),
    ("status.hostIP", "192.168.1.5"),
    ("status.podIPs", "10.0.0.5"),
    ("status.hostIPs", "192.168.1.5"),
]


@pytest.mark.parametrize(("path", "want"), FIELD_CASES, ids=[c[0] for c in FIELD_CASES])
def test_field_value(path: str, want: str) -> None:
    assert field_value(_pod([]), path, CTX) == want, path


IP_CASES = [
    # (name, context, field path, want)
    ("dual stack from the agent", PodContext(pod_ips=("10.0.0.5", "fd00::5")), "status.podIPs",
     "10.0.0.5,fd00::5"),
    ("first of several is podIP", PodContext(pod_ips=("10.0.0.5", "fd00::5")), "status.podIP",
     "10.0.0.5"),
    ("host IPs from the agent", PodContext(host_ips=("192.168.1.5", "fd01::5")), "status.hostIPs",
     "192.168.1.5,fd01::5"),
    ("status when the agent knows none", PodContext(), "status.podIP", "10.0.0.9"),
    ("host status when the agent knows none", PodContext(), "status.hostIPs", "192.168.1.9"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "ctx", "path", "want"), IP_CASES, ids=[c[0] for c in IP_CASES])
def test_ip_fields(name: str, ctx: PodContext, path: str, want: str) -> None:
    assert field_value(_pod([]), path, ctx) == want, name


@pytest.mark.parametrize("path", ["metadata.generateName", "spec.hostname", "status.phase", ""])
def test_unsupported_field_path_is_named(path: str) -> None:
    with pytest.raises(ConfigError, match=f"unsupported fieldPath: {path}$") as info:
        field_value(_pod([]), path, CTX)
    assert info.value.reason == "CreateContainerConfigError"


# --- the Downward API: resources ---


@dataclass(frozen=True)
class ResourceCase:
    name: str
    declared: str  # "limits.cpu=250m requests.memory=1Mi": the container's resources
    resource: str
    divisor: Quantity | str
    want: str
    ctx: PodContext = CTX


def _resources(declared: str) -> dict[str, dict[str, str]]:
    resources: dict[str, dict[str, str]] = {}
    for item in declared.split():
        key, value = item.split("=")
        kind, name = key.split(".", 1)
        resources.setdefault(kind, {})[name] = value
    return resources


RESOURCE_CASES = [
    ResourceCase("cpu limit rounds up to a core", "limits.cpu=250m", "limits.cpu", "", "1"),
    ResourceCase("cpu limit in millicores", "limits.cpu=250m", "limits.cpu", "1m", "250"),
    ResourceCase("cpu 1.5 cores rounds up", "limits.cpu=1500m", "limits.cpu", "1", "2"),
    ResourceCase("cpu whole cores", "limits.cpu=2", "limits.cpu", "1", "2"),
    ResourceCase("cpu divisor as Quantity", "limits.cpu=2", "limits.cpu", Quantity("1m"), "2000"),
    ResourceCase("cpu request", "requests.cpu=100m", "requests.cpu", "1m", "100"),
    ResourceCase("unset cpu request is the limit", "limits.cpu=500m", "requests.cpu", "1m", "500"),
    ResourceCase("unset cpu request, no limit", "", "requests.cpu", "1m", "0"),
    ResourceCase("unset cpu limit is node allocatable", "", "limits.cpu", "1m", "4000"),
    ResourceCase("memory limit in Mi", "limits.memory=64Mi", "limits.memory", "1Mi", "64"),
    ResourceCase("memory in bytes by default", "limits.memory=1Ki", "limits.memory", "", "1024"),
    ResourceCase("memory rounds up", "limits.memory=1000", "limits.memory", "1Ki", "1"),
    ResourceCase("memory decimal divisor", "limits.memory=1G", "limits.memory", "1M", "1000"),
    ResourceCase("unset memory limit is node allocatable", "", "limits.memory", "1Gi", "8"),
    ResourceCase("unset memory request is not allocatable", "", "requests.memory", "", "0"),
    ResourceCase("memory request", "requests.memory=32Mi", "requests.memory", "1Mi", "32"),
    ResourceCase(
        "ephemeral-storage limit",
        "limits.ephemeral-storage=2Gi",
        "limits.ephemeral-storage",
        "1Mi",
        "2048",
    ),
    ResourceCase(
        "unset ephemeral-storage limit is allocatable", "", "limits.ephemeral-storage", "1Gi", "100"
    ),
    ResourceCase(
        "unset ephemeral-storage request is the limit",
        "limits.ephemeral-storage=1Gi",
        "requests.ephemeral-storage",
        "1Mi",
        "1024",
    ),
    ResourceCase("no allocatable known", "", "limits.memory", "", "0", PodContext()),
]


@pytest.mark.parametrize("case", RESOURCE_CASES, ids=[c.name for c in RESOURCE_CASES])
def test_resource_value(case: ResourceCase) -> None:
    pod = _pod([{"name": "app", "resources": _resources(case.declared)}])
    got = resource_value(pod, "app", case.resource, case.divisor, case.ctx)
    assert got == case.want, case.name


def test_resource_value_of_another_container() -> None:
    pod = _pod(
        [{"name": "app"}],
        initContainers=[{"name": "setup", "resources": {"limits": {"memory": "16Mi"}}}],
    )
    assert resource_value(pod, "setup", "limits.memory", "1Mi", CTX) == "16"


RESOURCE_ERRORS = [
    ("unknown resource", "app", "limits.nvidia.com/gpu", "unsupported container resource"),
    ("not limits or requests", "app", "usage.cpu", "unsupported container resource"),
    ("unknown container", "sidecar", "limits.cpu", "container sidecar not found in pod ns/web"),
    ("no container name", "", "limits.cpu", "containerName is required"),
]


@pytest.mark.parametrize(
    ("name", "container", "resource", "message"),
    RESOURCE_ERRORS,
    ids=[c[0] for c in RESOURCE_ERRORS],
)
def test_resource_value_errors(name: str, container: str, resource: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resource_value(_pod([{"name": "app"}]), container, resource, "", CTX)


# --- env and envFrom ---


def _env(
    container: dict[str, Any], objects: Objects | None = None, ctx: PodContext = CTX
) -> list[tuple[str, str]]:
    pod = _pod([{"name": "app", **container}])
    return container_env(pod, pod.spec.containers[0], objects or _objects(), ctx)


def test_env_from_then_env_in_first_appearance_order() -> None:
    env = _env(
        {
            "envFrom": [{"configMapRef": {"name": "app-config"}}],
            "env": [
                {"name": "Z_FIRST", "value": "z"},
                {"name": "A_KEY", "value": "override"},
                {"name": "Z_FIRST", "value": "again"},
            ],
        }
    )
    assert env == [
        ("A_KEY", "override"),
        ("B_KEY", "b"),
        ("level", "debug"),
        ("Z_FIRST", "again"),
    ]


def test_env_from_prefix_and_secret() -> None:
    env = _env(
        {
            "envFrom": [
                {"prefix": "CFG_", "configMapRef": {"name": "app-config"}},
                {"secretRef": {"name": "db"}},
            ]
        }
    )
    assert dict(env) == {
        "CFG_A_KEY": "a",
        "CFG_B_KEY": "b",
        "CFG_level": "debug",
        "CFG_1bad": "x",  # the prefix makes it a valid name
        "USER": "admin",
        "password": "s3cr3t",
    }


def test_env_from_invalid_keys_are_skipped_and_reported() -> None:
    pod = _pod([{"name": "app", "envFrom": [{"configMapRef": {"name": "app-config"}}]}])
    resolved = resolve_env(pod, pod.spec.containers[0], _objects(), CTX)
    assert "1bad" not in dict(resolved.env)
    assert "bad key" not in dict(resolved.env)
    (skipped,) = resolved.skipped
    assert skipped.keys == ("1bad", "bad key")
    assert skipped.reason == "InvalidEnvironmentVariableNames"
    assert skipped.message == (
        "Keys [1bad, bad key] from the EnvFrom configMap ns/app-config were skipped "
        "since they are considered invalid environment variable names."
    )


EXPANDED_ENV_CASES = [
    # (name, env entries, service env, the value of OUT)
    ("earlier entry", [{"name": "A", "value": "1"}, {"name": "OUT", "value": "$(A)-x"}], {}, "1-x"),
    ("later entry is not visible yet", [{"name": "OUT", "value": "$(LATER)"},
                                        {"name": "LATER", "value": "2"}], {}, "$(LATER)"),
    ("envFrom variable", [{"name": "OUT", "value": "$(level)"}], {}, "debug"),
    ("service variable", [{"name": "OUT", "value": "$(DB_SERVICE_HOST)"}],
     {"DB_SERVICE_HOST": "10.96.0.7"}, "10.96.0.7"),
    ("entry shadows service variable", [{"name": "DB_SERVICE_HOST", "value": "mine"},
                                        {"name": "OUT", "value": "$(DB_SERVICE_HOST)"}],
     {"DB_SERVICE_HOST": "10.96.0.7"}, "mine"),
    ("escaped", [{"name": "A", "value": "1"}, {"name": "OUT", "value": "$$(A)"}], {}, "$(A)"),
    ("unknown stays", [{"name": "OUT", "value": "$(NOPE)"}], {}, "$(NOPE)"),
    ("a source value is not expanded",
     [{"name": "A", "value": "1"},
      {"name": "OUT", "valueFrom": {"configMapKeyRef": {"name": "raw", "key": "k"}}}], {}, "$(A)"),
    ("references the overridden value", [{"name": "level", "value": "info"},
                                         {"name": "OUT", "value": "$(level)"}], {}, "info"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "entries", "service", "want"),
    EXPANDED_ENV_CASES,
    ids=[c[0] for c in EXPANDED_ENV_CASES],
)
def test_env_value_expansion(
    name: str, entries: list[dict[str, Any]], service: dict[str, str], want: str
) -> None:
    objects = _objects()
    objects.config_maps[("ns", "raw")] = from_dict(ConfigMap, {"data": {"k": "$(A)"}})
    ctx = PodContext(service_env=service)
    env = _env(
        {"envFrom": [{"configMapRef": {"name": "app-config"}}], "env": entries}, objects, ctx
    )
    assert dict(env)["OUT"] == want, name


def test_service_variables_not_defined_come_last_sorted() -> None:
    ctx = PodContext(service_env={"Z_PORT": "1", "A_PORT": "2", "MINE": "svc"})
    env = _env({"env": [{"name": "MINE", "value": "own"}]}, ctx=ctx)
    assert env == [("MINE", "own"), ("A_PORT", "2"), ("Z_PORT", "1")]


def test_value_from_sources() -> None:
    env = _env(
        {
            "resources": {"limits": {"memory": "64Mi"}},
            "env": [
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {
                    "name": "MEM",
                    "valueFrom": {
                        "resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}
                    },
                },
                {
                    "name": "LEVEL",
                    "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "level"}},
                },
                {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                {"name": "EMPTY"},
            ],
        }
    )
    assert env == [
        ("POD", "web"),
        ("IP", "10.0.0.5"),
        ("MEM", "64"),
        ("LEVEL", "debug"),
        ("PASS", "s3cr3t"),
        ("EMPTY", ""),
    ]


def test_secret_bytes_that_are_not_utf8_survive() -> None:
    objects = _objects()
    objects.secrets[("ns", "bin")] = Secret(data={"k": b"\xff\x00ok"})
    env = _env(
        {"env": [{"name": "B", "valueFrom": {"secretKeyRef": {"name": "bin", "key": "k"}}}]},
        objects,
    )
    value = dict(env)["B"]
    assert value.encode("utf-8", "surrogateescape") == b"\xff\x00ok"


def _ref(kind: str, name: str, key: str, optional: bool = False) -> dict[str, Any]:
    return {"name": "V", "valueFrom": {kind: {"name": name, "key": key, "optional": optional}}}


ERROR_CASES = [
    ("missing configmap", {"env": [_ref("configMapKeyRef", "nope", "level")]},
     'configmap "nope" not found'),
    ("missing configmap key", {"env": [_ref("configMapKeyRef", "app-config", "colour")]},
     "couldn't find key colour in ConfigMap ns/app-config"),
    ("missing secret", {"env": [_ref("secretKeyRef", "nope", "password")]},
     'secret "nope" not found'),
    ("missing secret key", {"env": [_ref("secretKeyRef", "db", "token")]},
     "couldn't find key token in Secret ns/db"),
    ("envFrom missing configmap", {"envFrom": [{"configMapRef": {"name": "nope"}}]},
     'configmap "nope" not found'),
    ("envFrom missing secret", {"envFrom": [{"secretRef": {"name": "nope"}}]},
     'secret "nope" not found'),
    ("unsupported field",
     {"env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "spec.x"}}}]},
     "unsupported fieldPath: spec.x"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "container", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_env_errors(name: str, container: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _env(container)
    assert str(info.value) == message, name
    assert info.value.reason == "CreateContainerConfigError"


OPTIONAL_CASES = [
    ("optional missing configmap", {"env": [_ref("configMapKeyRef", "nope", "level", True)]}),
    ("optional missing configmap key", {"env": [_ref("configMapKeyRef", "app-config", "x", True)]}),
    ("optional missing secret", {"env": [_ref("secretKeyRef", "nope", "password", True)]}),
    ("optional missing secret key", {"env": [_ref("secretKeyRef", "db", "token", True)]}),
    ("optional envFrom configmap",
     {"envFrom": [{"configMapRef": {"name": "no", "optional": True}}]}),
    ("optional envFrom secret", {"envFrom": [{"secretRef": {"name": "no", "optional": True}}]}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "container"), OPTIONAL_CASES, ids=[c[0] for c in OPTIONAL_CASES])
def test_optional_missing_sources_are_skipped(name: str, container: dict[str, Any]) -> None:
    container.setdefault("env", []).append({"name": "KEPT", "value": "yes"})
    assert _env(container) == [("KEPT", "yes")], name


def test_references_cover_env_env_from_and_volumes() -> None:
    pod = _pod(
        [
            {
                "name": "app",
                "envFrom": [
                    {"configMapRef": {"name": "cm-from"}},
                    {"secretRef": {"name": "s-from"}},
                ],
                "env": [
                    _ref("configMapKeyRef", "cm-key", "k"),
                    _ref("secretKeyRef", "s-key", "k"),
                    {"name": "PLAIN", "value": "x"},
                ],
            }
        ],
        initContainers=[{"name": "init", "env": [_ref("configMapKeyRef", "cm-init", "k")]}],
        volumes=[
            {"name": "v1", "configMap": {"name": "cm-vol"}},
            {"name": "v2", "secret": {"secretName": "s-vol"}},
            {
                "name": "v3",
                "projected": {
                    "sources": [
                        {"configMap": {"name": "cm-proj"}},
                        {"secret": {"name": "s-proj"}},
                        {"downwardAPI": {"items": []}},
                    ]
                },
            },
            {"name": "v4", "emptyDir": {}},
        ],
    )
    assert references(pod) == {
        ("ConfigMap", "ns", "cm-from"),
        ("Secret", "ns", "s-from"),
        ("ConfigMap", "ns", "cm-key"),
        ("Secret", "ns", "s-key"),
        ("ConfigMap", "ns", "cm-init"),
        ("ConfigMap", "ns", "cm-vol"),
        ("Secret", "ns", "s-vol"),
        ("ConfigMap", "ns", "cm-proj"),
        ("Secret", "ns", "s-proj"),
    }

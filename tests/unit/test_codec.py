"""The strict codec: manifests in, messages out, and back without loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kpy.api import codec, errors
from kpy.api.apiextensions.v1 import CustomResourceDefinition
from kpy.api.apps.v1 import ControllerRevision, Deployment, DeploymentSpec
from kpy.api.core.v1 import ConfigMap, Pod, PodSpec, Secret
from kpy.api.meta.v1 import IntOrString

SEEDS = Path(__file__).resolve().parents[1] / "data" / "seed-manifests"  # copied from shared/


def _one(text: str) -> Any:
    (obj,) = codec.load_manifest(text, source="test.yaml")
    return obj


def _problems(text: str) -> list[str]:
    with pytest.raises(codec.ManifestError) as info:
        codec.load_manifest(text, source="test.yaml")
    return [str(p) for p in info.value.problems]


POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: web
    image: nginx:1.25
    ports: [{containerPort: 80, name: http}]
    resources:
      requests: {cpu: 0.5, memory: 1Gi}
      limits: {cpu: "1", memory: 1.5Gi}
    readinessProbe:
      httpGet: {path: /healthz, port: http}
    livenessProbe:
      tcpSocket: {port: 80}
  tolerations:
  - {key: k3, operator: Exists, effect: NoExecute, tolerationSeconds: 3600}
"""


def test_decode_fills_the_message_with_kubernetes_names() -> None:
    pod = _one(POD)
    assert isinstance(pod, Pod)
    container = pod.spec.containers[0]
    assert container.ports[0].container_port == 80
    assert container.readiness_probe.http_get.port == IntOrString(str_val="http")
    assert container.liveness_probe.tcp_socket.port == IntOrString(int_val=80)
    assert pod.spec.tolerations[0].toleration_seconds == 3600
    # Quantities are kept in canonical form.
    assert container.resources.requests["cpu"].string == "500m"
    assert container.resources.limits["memory"].string == "1536Mi"


def test_encode_gives_back_exactly_the_fields_that_were_set() -> None:
    pod = _one(POD)
    out = codec.encode_object(pod)
    assert out["apiVersion"] == "v1"
    assert out["kind"] == "Pod"
    assert "status" not in out
    assert out["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert out["spec"]["tolerations"][0]["tolerationSeconds"] == 3600  # a number, not "3600"
    assert codec.decode_object(out) == pod


def test_zero_and_unset_stay_distinct() -> None:
    zero = _one("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 0}\n")
    unset = _one("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n")
    assert zero.spec.HasField("replicas")
    assert zero.spec.replicas == 0
    assert not unset.spec.HasField("replicas")
    assert codec.encode_object(zero)["spec"] == {"replicas": 0}


def test_secret_data_is_base64_and_time_is_rfc3339() -> None:
    text = """\
apiVersion: v1
kind: Secret
metadata: {name: s, creationTimestamp: "2026-11-23T08:00:00Z"}
data: {password: cGFzc3dvcmQ=}
"""
    secret = _one(text)
    assert isinstance(secret, Secret)
    assert secret.data["password"] == b"password"
    assert secret.metadata.creation_timestamp.seconds == 1795420800
    assert codec.encode_object(secret) == yaml.safe_load(text)


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        (
            "typo in a field",
            "spec: {containers: [], contaienrs: []}",
            'spec.contaienrs: unknown field "contaienrs" (did you mean "containers"?)',
        ),
        (
            "number for a string",
            "spec: {containers: [{name: a, image: b, env: [{name: X, value: 8080}]}]}",
            "spec.containers[0].env[0].value: expected string, got integer 8080 "
            "(put it in quotes to make it a string)",
        ),
        (
            "string for an integer",
            "spec: {terminationGracePeriodSeconds: ten}",
            'spec.terminationGracePeriodSeconds: expected an integer, got string "ten"',
        ),
        (
            "object for a list",
            "spec: {containers: {name: a}}",
            'spec.containers: expected a list, got object {"name": "a"}',
        ),
        ("list for an object", "spec: [1]", "spec: expected an object, got list [1]"),
        (
            "int32 overflow",
            "spec: {priority: 3000000000}",
            "spec.priority: 3000000000 is out of range (-2147483648 to 2147483647)",
        ),
        (
            "bad quantity",
            "spec: {containers: [{name: a, image: b, resources: {limits: {cpu: lots}}}]}",
            "spec.containers[0].resources.limits[cpu]:",
        ),
        (
            "bad time",
            "metadata: {name: p, creationTimestamp: yesterday}",
            'metadata.creationTimestamp: "yesterday" is not an RFC 3339 time',
        ),
        (
            "lone surrogate",  # an internal error before (found by the fuzzer)
            'metadata: {name: p, labels: {"\\ud800": "\\udc00x"}}',
            "metadata.labels[\ud800]: not valid Unicode text: '\\ud800' at position 0 "
            "is a lone surrogate",
        ),
        (
            "bool for int-or-string",
            "spec: {containers: [{name: a, image: b, livenessProbe: {tcpSocket: {port: true}}}]}",
            "spec.containers[0].livenessProbe.tcpSocket.port: expected an integer or a string",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and " " in v and len(v) < 30 else "",
)
def test_bad_fields_are_named(name: str, body: str, expected: str) -> None:
    problems = _problems(f"apiVersion: v1\nkind: Pod\n{body}\n")
    assert any(expected in p for p in problems), f"{name}: {problems}"


def test_every_problem_is_reported_with_its_line() -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labls: {}\nspec:\n  contaners: []\n"
    problems = _problems(text)
    assert problems == [
        'test.yaml (line 5): Pod "p" is invalid: metadata.labls: unknown field "labls" '
        '(did you mean "labels"?)',
        'test.yaml (line 7): Pod "p" is invalid: spec.contaners: unknown field "contaners" '
        '(did you mean "containers"?)',
    ]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("no apiVersion", "kind: Pod\n", "apiVersion: Required value"),
        ("no kind", "apiVersion: v1\n", "kind: Required value"),
        (
            "unknown kind",
            "apiVersion: v1\nkind: Pdo\n",
            'no matches for kind "Pdo" in version "v1"',
        ),
        (
            "wrong group",
            "apiVersion: v1\nkind: Deployment\n",
            "Deployment is served by apps/v1; set apiVersion to apps/v1",
        ),
        (
            "old group",
            "apiVersion: extensions/v1beta1\nkind: Deployment\n",
            'no matches for kind "Deployment" in version "extensions/v1beta1"',
        ),
        ("not an object", "- a\n- b\n", "a manifest must be an object, got list"),
        ("malformed yaml", "a: b\n  c: d\n", "(line 2): mapping values are not allowed here"),
        ("duplicate key", "apiVersion: v1\nkind: Pod\nkind: Pod\n", 'duplicate field "kind"'),
    ],
    ids=lambda v: v if isinstance(v, str) and "\n" not in v and len(v) < 20 else "",
)
def test_bad_documents_are_refused(name: str, text: str, expected: str) -> None:
    problems = _problems(text)
    assert any(expected in p for p in problems), f"{name}: {problems}"


def test_multi_document_streams_and_lists() -> None:
    text = """\
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a}
---
# an empty document is skipped
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}, data: {k: v}}
- {apiVersion: apps/v1, kind: Deployment, metadata: {name: c}}
"""
    objs = codec.load_manifest(text)
    assert [type(o) for o in objs] == [ConfigMap, ConfigMap, Deployment]
    assert [o.metadata.name for o in objs] == ["a", "b", "c"]


def test_one_bad_document_returns_nothing() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Nope\n"
    problems = _problems(text)
    assert problems == [
        'test.yaml (document 2, line 6): kind: no matches for kind "Nope" in version "v1"; '
        "`kpyctl api-resources` lists the kinds kpy serves"
    ]


def test_json_manifests_decode_too() -> None:
    obj = _one('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}, "data": {}}')
    assert obj.metadata.name == "j"


def test_free_form_json_round_trips() -> None:
    text = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, kind: CronTab}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              replicas: {type: integer, minimum: 1}
              tags: {type: array, items: {type: string}}
    subresources: {status: {}}
"""
    crd = _one(text)
    assert codec.encode_object(crd) == yaml.safe_load(text)


# ------------------------------------------------------------ seed manifests

VALID_SEEDS = [
    "pod-myapp.yaml",
    "replicaset-frontend.yaml",
    "daemonset-fluentd.yaml",
    "job-pi.yaml",
    "cronjob-hello.yaml",
    "statefulset-web-with-service.yaml",
]


@pytest.mark.parametrize("name", VALID_SEEDS)
def test_valid_seed_manifests_round_trip_unchanged(name: str) -> None:
    text = (SEEDS / name).read_text()
    objs = codec.load_manifest(text, source=name)
    docs = list(yaml.safe_load_all(text))
    assert [codec.encode_object(o) for o in objs] == docs


def test_seed_with_wrong_api_version_is_refused_with_the_right_one() -> None:
    with pytest.raises(codec.ManifestError) as info:
        codec.load_manifest((SEEDS / "deployment-apiversion-v1.yaml").read_text())
    (problem,) = info.value.problems
    assert problem.line == 1
    assert 'no matches for kind "Deployment" in version "v1"' in str(problem)
    assert "set apiVersion to apps/v1" in str(problem)


def test_seed_with_bad_indentation_points_at_the_line() -> None:
    with pytest.raises(codec.ManifestError) as info:
        codec.load_manifest((SEEDS / "pod-bad-indent.yaml").read_text())
    (problem,) = info.value.problems
    assert problem.line == 3  # "  metadata:" indented under "kind: Pod"
    assert "mapping values are not allowed here" in str(problem)


@pytest.mark.parametrize("name", ["probes-typo-contaienrs.yaml", "lifecycle-typo-contaienrs.yaml"])
def test_fragments_with_a_typo_are_refused_by_name(name: str) -> None:
    with pytest.raises(codec.ManifestError) as info:
        codec.load_fragment((SEEDS / "fragments" / name).read_text(), PodSpec, source=name)
    messages = [str(p) for p in info.value.problems]
    assert any(
        'contaienrs: unknown field "contaienrs" (did you mean "containers"?)' in m
        and "(line 1)" in m
        for m in messages
    ), messages


def test_fragment_with_a_repeated_probe_names_the_duplicate() -> None:
    text = (SEEDS / "fragments" / "probes-typo-contaienrs.yaml").read_text()
    with pytest.raises(codec.ManifestError) as info:
        codec.load_fragment(text, PodSpec)
    assert any('duplicate field "livenessProbe"' in str(p) for p in info.value.problems)


@pytest.mark.parametrize(
    ("name", "message_type"),
    [("node-affinity.yaml", Pod), ("tolerations.yaml", Pod), ("selector.yaml", DeploymentSpec)],
)
def test_valid_fragments_decode(name: str, message_type: Any) -> None:
    text = (SEEDS / "fragments" / name).read_text()
    (obj,) = codec.load_fragment(text, message_type)
    assert codec.to_dict(obj) == yaml.safe_load(text)


def test_fragment_tolerations_keep_every_field() -> None:
    (pod,) = codec.load_fragment((SEEDS / "fragments" / "tolerations.yaml").read_text(), Pod)
    t = pod.spec.tolerations
    assert [(x.key, x.operator, x.effect) for x in t] == [
        ("k1", "Equal", "NoSchedule"),
        ("k2", "Exists", "PreferNoSchedule"),
        ("k3", "Exists", "NoExecute"),
    ]
    assert t[2].toleration_seconds == 3600
    assert not t[0].HasField("toleration_seconds")


def test_errors_are_status_errors() -> None:
    with pytest.raises(codec.ManifestError) as info:
        codec.load_manifest("kind: Pod\n")
    assert isinstance(info.value, errors.BadRequest)
    assert isinstance(info.value.problems[0].error, errors.Invalid)


# ------------------------------------------------------------ nesting and aliases


def _deep_yaml(depth: int) -> str:
    """A ConfigMap whose (unknown) field `x` nests `depth - 1` flow lists."""
    return "apiVersion: v1\nkind: ConfigMap\nx: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n"


def _laughs(levels: int) -> str:
    """The "billion laughs": each anchor is a list of ten of the one before."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "apiVersion: v1\nkind: ConfigMap\n" + "\n".join(lines) + "\n"


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("depth 101", _deep_yaml(101), "test.yaml (line 3): nesting depth exceeds 100"),
        ("depth 100000", _deep_yaml(100_000), "test.yaml (line 3): nesting depth exceeds 100"),
        ("json depth 5000", "[" * 5000 + "]" * 5000, "(line 1): nesting depth exceeds 100"),
        ("anchor in itself", "a: &a [*a]\n", "test.yaml (line 1): nesting depth exceeds 100"),
        ("billion laughs", _laughs(9), "aliases expand to more than 100000 values"),
        ("mapping as a key", "{[a]: 1}\n", "a mapping key must be a string, not a mapping"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else "",
)
def test_documents_too_deep_or_too_aliased_are_refused(name: str, text: str, expected: str) -> None:
    """These raised RecursionError (an Internal error at the server) or ran
    for minutes before; each is a BadRequest naming the line now."""
    problems = _problems(text)
    assert any(expected in p for p in problems), f"{name}: {problems}"


def test_depth_100_and_a_few_aliases_still_decode() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: &d {a: b}\n"
    assert dict(_one(text).data) == {"a": "b"}
    assert list(codec.load_documents(_deep_yaml(100))[0].value) == ["apiVersion", "kind", "x"]


@pytest.mark.parametrize(
    ("name", "message_type", "data", "error", "expected"),
    [
        (
            "value too deep",
            ConfigMap,
            {"metadata": _nested(101)},
            errors.BadRequest,
            "ConfigMap: nesting depth exceeds 100",
        ),
        (
            "struct too deep for protobuf",
            ControllerRevision,
            {"data": _nested(34)},
            errors.Invalid,
            "data: nesting depth exceeds 33: free-form JSON here can nest at most 33 levels",
        ),
        (
            "crd schema too deep for protobuf",
            CustomResourceDefinition,
            {"spec": {"versions": [{"schema": {"openAPIV3Schema": _nested(33)}}]}},
            errors.Invalid,
            "spec.versions[0].schema.openAPIV3Schema: nesting depth exceeds 32",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "",
)
def test_values_too_deep_are_refused(
    name: str, message_type: Any, data: Any, error: type[errors.StatusError], expected: str
) -> None:
    with pytest.raises(error) as info:
        codec.from_dict(message_type, data)
    assert type(info.value) is error, name
    assert expected in str(info.value), f"{name}: {info.value}"


def test_free_form_json_as_deep_as_protobuf_reads_round_trips() -> None:
    """Stored objects must parse again: a Struct one level deeper serialized
    fine but failed every later read ("Exceeded upb_DecodeOptions_MaxDepth")."""
    for message_type, data in (
        (ControllerRevision, {"data": _nested(33)}),
        (
            CustomResourceDefinition,
            {"spec": {"versions": [{"schema": {"openAPIV3Schema": _nested(32)}}]}},
        ),
    ):
        obj = codec.from_dict(message_type, data)
        assert message_type.FromString(obj.SerializeToString()) == obj
        assert codec.to_dict(obj) == data


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("negative zero", -0.0),  # came back as 0: the fuzzer found it
        ("negative whole", -5),
        ("whole float", 2.0),
        ("fraction", 0.5),
        ("big", 2.0**60),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_free_form_numbers_round_trip(name: str, value: float) -> None:
    obj = codec.from_dict(ControllerRevision, {"data": {"n": value}})
    back = codec.to_dict(obj)["data"]["n"]
    assert codec.from_dict(ControllerRevision, {"data": {"n": back}}) == obj, name
    assert back == value, name


@pytest.mark.parametrize(
    "text",
    ["\x85", "a\x85b", "\u2028", "é", "\x00", "\t", " a", "a\nb\n", "yes", "1.5", ""],
    ids=repr,
)
def test_dumped_yaml_loads_back_to_the_same_string(text: str) -> None:
    """NEL came back as a space (found by the codec fuzzer): `kpyctl get -o
    yaml` followed by apply would have changed the object."""
    cm = codec.from_dict(ConfigMap, {"metadata": {"name": "c"}, "data": {"k": text}})
    (back,) = codec.load_manifest(codec.dump_yaml([cm]))
    assert back == cm

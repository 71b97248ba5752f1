"""Hypothesis strategies shared by the fuzzers (tests/unit/test_fuzz_*.py).

The fuzzers feed structured input, not random text: JSON values, real
manifests with one field mutated, patch operations that point at paths the
target has, selector strings from the selector alphabet. Every fuzzer runs
derandomized (the same examples on every run, so CI is reproducible) without
the example database, and all of them together stay within about 30 seconds;
KPY_FUZZ_EXAMPLES=N in the environment runs N examples each instead of 300.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(
    # KPY_FUZZ_EXAMPLES=5000 hunts longer, still derandomized.
    max_examples=int(os.environ.get("KPY_FUZZ_EXAMPLES", "300")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""The settings of every fuzz test; a heavier one lowers max_examples."""

# Keys a manifest has, keys a directive uses, and a few odd ones.
KEYS = st.sampled_from(
    [
        "name",
        "image",
        "metadata",
        "spec",
        "status",
        "labels",
        "containers",
        "ports",
        "containerPort",
        "replicas",
        "selector",
        "matchLabels",
        "template",
        "data",
        "finalizers",
        "$patch",
        "$retainKeys",
        "$setElementOrder/containers",
        "$deleteFromPrimitiveList/finalizers",
        "",
        "~1",
        "a/b",
    ]
) | st.text(max_size=8)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["500m", "1Gi", "25%", "http", "2026-01-02T15:04:05Z", "Always", "delete"])
)

JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=16,
)
"""Any JSON value (NaN and huge integers too: YAML can produce them)."""

FINITE_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
FINITE_JSON = st.recursive(
    FINITE_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=16,
)
"""JSON values that `json.loads` can produce."""


def deep(depth: int, leaf: Any = 1) -> Any:
    """`leaf` inside `depth` alternating objects and lists."""
    value = leaf
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


DEPTHS = st.sampled_from([1, 30, 33, 34, 60, 99, 100, 101, 150, 1000, 5000])
"""Nesting depths around every limit (Struct's 33, MAX_DEPTH's 100) and far past them."""


SEED_MANIFESTS: list[dict[str, Any]] = [
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a/b"]},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.25",
                    "ports": [{"containerPort": 80, "name": "http"}],
                    "env": [{"name": "A", "value": "1"}],
                    "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                }
            ],
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute"}],
            "restartPolicy": "Always",
        },
    },
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
            },
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "annotations": {"a": "b"}},
        "data": {"k": "v"},
    },
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"k": "dmFsdWU="},
        "stringData": {"p": "plain"},
    },
    {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "hello"},
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "OnFailure",
                            "containers": [{"name": "c", "image": "busybox"}],
                        }
                    }
                }
            },
        },
    },
    {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "replicas": 3,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "postgres"}]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    },
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    },
    {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 5,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
        },
    },
]


def _places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indexes) inside `value`, the root first; not
    below 20 levels, so that deep values stay cheap to mutate."""
    found = [path]
    if len(path) >= 20:
        return found
    if isinstance(value, dict):
        for key, child in value.items():
            found += _places(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _places(child, (*path, index))
    return found


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """`base` with one to three mutations: a value replaced by any JSON value
    (or by one nested to a limit), a member removed, a member added."""
    value = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_places(value)))
        replacement = draw(JSON_VALUES | DEPTHS.map(deep))
        how = draw(st.sampled_from(["replace", "remove", "add"]))
        if not path:
            if how == "replace":
                value = replacement
            continue
        parent = _at(value, path[:-1])
        if how == "replace":
            parent[path[-1]] = replacement
        elif how == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(KEYS)] = replacement
        else:
            parent.insert(path[-1], replacement)
    return value


NEAR_VALID_MANIFESTS = st.sampled_from(SEED_MANIFESTS).flatmap(mutated)
"""A real manifest of one of several kinds, with a few fields mutated."""


def pointer(path: tuple[Any, ...]) -> str:
    """The RFC 6901 pointer of a path."""
    return "".join("/" + str(step).replace("~", "~0").replace("/", "~1") for step in path)


@st.composite
def pointers_into(draw: st.DrawFn, target: Any) -> str:
    """A pointer at something in `target`, next to it, or malformed."""
    path = draw(st.sampled_from(_places(target)))
    text = pointer(path)
    return draw(
        st.sampled_from(
            [
                text,
                text + "/-",
                text + "/0",
                text + "/new",
                text + "/~2",
                text.lstrip("/"),
                text + "/01",
            ]
        )
    )


@st.composite
def json_patch_operations(draw: st.DrawFn, target: Any) -> list[Any]:
    """A list of RFC 6902 operations aimed at `target`'s paths, some malformed."""
    operations: list[Any] = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        op = draw(st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bad"]))
        operation: dict[str, Any] = {"op": op, "path": draw(pointers_into(target))}
        if draw(st.integers(0, 9)) or op in ("move", "copy"):
            operation["from"] = draw(pointers_into(target))
        if draw(st.integers(0, 9)) or op in ("add", "replace", "test"):
            operation["value"] = draw(FINITE_JSON | DEPTHS.map(deep))
        if not draw(st.integers(0, 19)):
            operation = draw(st.sampled_from([{}, {"op": op}, [operation], "add", None]))
        operations.append(operation)
    return operations


# Values of the right type but at the edges: what validation must judge.
EDGE_STRINGS = st.sampled_from(
    [
        "",
        "-",
        "a" * 64,
        "a" * 254,
        "A",
        "a_b",
        "a.b",
        "-a",
        "0",
        "-1",
        "1e3",
        "1.5",
        "500m",
        "1Gi",
        "0.1m",
        "1e400",
        "9223372036854775808",
        "25%",
        "101%",
        "%",
        "http",
        "*/0 * * * *",
        "@every 1m",
        "Always",
        "Exists",
        "NoExecute",
        "TCP",
        "é",
        "a/b/c",
        "example.com/x",
        "\x00",
        " ",
        "\n",
    ]
) | st.text(max_size=10)
EDGE_INTS = st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63), 65535, 65536])


@st.composite
def retyped(draw: st.DrawFn, base: Any) -> Any:
    """`base` with one to four values changed to others of the same JSON type
    (edge strings, edge integers, flipped booleans, emptied or doubled lists,
    members removed), so the result usually decodes and reaches validation."""
    value = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        places = _places(value)[1:]
        if not places:
            break  # everything was removed
        path = draw(st.sampled_from(places))
        parent, last = _at(value, path[:-1]), path[-1]
        current = parent[last]
        if isinstance(current, bool):
            parent[last] = not current
        elif isinstance(current, int):
            parent[last] = draw(EDGE_INTS)
        elif isinstance(current, str):
            parent[last] = draw(EDGE_STRINGS)
        elif isinstance(current, list):
            parent[last] = draw(st.sampled_from([[], current + copy.deepcopy(current)]))
        elif draw(st.booleans()):
            del parent[last]
        else:
            parent[last] = {}
    return value


RETYPED_MANIFESTS = st.sampled_from(SEED_MANIFESTS).flatmap(retyped)
"""A real manifest with values changed within their types: mostly decodable."""

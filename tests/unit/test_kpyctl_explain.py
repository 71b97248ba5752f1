"""kpyctl on custom resources, the pure parts: `explain` for built-in and
custom kinds, a CRD's printer columns, the generic describe of a custom
object, the patch type refused for custom kinds, and the names discovery
registers."""

from __future__ import annotations

from typing import Any

import pytest

from kpy.api.meta.v1 import ObjectMeta
from kpy.api.scheme import ResourceInfo, Scheme, scheme
from kpy.api.unstructured import custom_kind
from kpy.cli import _client, _columns, explain, get, patch
from kpy.cli._describe_custom import custom_rows, smart_label
from kpy.cli._manifests import UsageError
from kpy.cli._printers import tabulate
from kpy.client.discovery import register_served, version_priority
from kpy.rpc.apiserver import v1 as api

NOW = 1_700_000_000.0

WEBAPP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "WebApp runs a web application.",
    "properties": {
        "spec": {
            "type": "object",
            "description": "What the user wants.",
            "required": ["image"],
            "properties": {
                "replicas": {"type": "integer", "description": "How many pods run the app."},
                "image": {"type": "string", "description": "The container image."},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "items": {"type": "string"}},
                "env": {"type": "object", "additionalProperties": {"type": "string"}},
                "routes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["path"],
                        "properties": {"path": {"type": "string", "description": "URL prefix."}},
                    },
                },
            },
        },
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    },
}

WebApp = custom_kind("explain.test.kpy.io/v1", "WebApp", plural="webapps", using=Scheme())
WEBAPP = ResourceInfo("explain.test.kpy.io", "v1", "WebApp", "webapps", True, WebApp)


def _explain(info: ResourceInfo, target: str, *, recursive: bool = False) -> str:
    root = (
        explain.schema_node(WEBAPP_SCHEMA) if info is WEBAPP else explain.builtin_node(info.message)
    )
    return explain.explain_text(info, root, target.split(".")[1:], recursive=recursive)


EXPLAIN_CASES = [
    pytest.param(
        "deployments",
        "deployment.spec.strategy",
        True,
        "KIND:     Deployment\n"
        "VERSION:  apps/v1\n"
        "\n"
        "RESOURCE: strategy <Object>\n"
        "\n"
        "DESCRIPTION:\n"
        '     `type` is "RollingUpdate" (default) or "Recreate".\n'
        "\n"
        "FIELDS:\n"
        "   rollingUpdate\t<Object>\n"
        "      maxSurge\t<IntOrString>\n"
        "      maxUnavailable\t<IntOrString>\n"
        "   type\t<string>\n",
        id="built-in object field, recursive",
    ),
    pytest.param(
        "deployments",
        "deployment.spec.replicas",
        False,
        "KIND:     Deployment\n"
        "VERSION:  apps/v1\n"
        "\n"
        "FIELD:    replicas <integer>\n"
        "\n"
        "DESCRIPTION:\n"
        "     Defaults to 1.\n",
        id="built-in leaf with its comment",
    ),
    pytest.param(
        "pods",
        "pods.metadata.creationTimestamp",
        False,
        "KIND:     Pod\nVERSION:  v1\n\nFIELD:    creationTimestamp <Time>\n\nDESCRIPTION:\n"
        "     <empty>\n",
        id="built-in Time without a comment",
    ),
    pytest.param(
        "webapps",
        "webapps.spec.replicas",
        False,
        "KIND:     WebApp\n"
        "VERSION:  explain.test.kpy.io/v1\n"
        "\n"
        "FIELD:    replicas <integer>\n"
        "\n"
        "DESCRIPTION:\n"
        "     How many pods run the app.\n",
        id="custom leaf",
    ),
    pytest.param(
        "webapps",
        "webapps.spec",
        False,
        "KIND:     WebApp\n"
        "VERSION:  explain.test.kpy.io/v1\n"
        "\n"
        "RESOURCE: spec <Object>\n"
        "\n"
        "DESCRIPTION:\n"
        "     What the user wants.\n"
        "\n"
        "FIELDS:\n"
        "   env\t<map[string]string>\n"
        "\n"
        "   image\t<string> -required-\n"
        "     The container image.\n"
        "\n"
        "   port\t<IntOrString>\n"
        "\n"
        "   replicas\t<integer>\n"
        "     How many pods run the app.\n"
        "\n"
        "   routes\t<[]Object>\n"
        "\n"
        "   tags\t<[]string>\n",
        id="custom object: sorted fields, types, -required-",
    ),
    pytest.param(
        "webapps",
        "webapps.spec.routes",
        True,
        "KIND:     WebApp\n"
        "VERSION:  explain.test.kpy.io/v1\n"
        "\n"
        "RESOURCE: routes <[]Object>\n"
        "\n"
        "DESCRIPTION:\n"
        "     <empty>\n"
        "\n"
        "FIELDS:\n"
        "   path\t<string>\n",
        id="custom list of objects, recursive",
    ),
]


@pytest.mark.parametrize(("resource", "target", "recursive", "expected"), EXPLAIN_CASES)
def test_explain_text(resource: str, target: str, recursive: bool, expected: str) -> None:
    info = WEBAPP if resource == "webapps" else scheme.resolve(resource)
    assert _explain(info, target, recursive=recursive) == expected


@pytest.mark.parametrize(
    ("resource", "target", "lines"),
    [
        pytest.param(
            "pods",
            "pods.spec.containers",
            [
                "RESOURCE: containers <[]Object>",
                "     Container is one container of a pod (app, init or sidecar).",
                "   name\t<string> -required-",
                "   resources\t<Object>",
                "   env\t<[]Object>",
            ],
            id="built-in list of objects, required name",
        ),
        pytest.param(
            "pods",
            "pods",
            [
                "KIND:     Pod",
                "   apiVersion\t<string>",
                "   kind\t<string>",
                "   metadata\t<Object>",
                "   spec\t<Object>",
            ],
            id="built-in kind: apiVersion and kind are fields",
        ),
        pytest.param(
            "pods",
            "pods.spec.containers.resources",
            ["   limits\t<map[string]Quantity>", "   requests\t<map[string]Quantity>"],
            id="built-in map of quantities",
        ),
        pytest.param(
            "webapps",
            "webapps",
            [
                "     WebApp runs a web application.",
                "   apiVersion\t<string>",
                "   metadata\t<Object>",
                "   spec\t<Object>",
                "     What the user wants.",
            ],
            id="custom kind: apiVersion, kind, metadata added",
        ),
        pytest.param(
            "webapps",
            "webapps.metadata.labels",
            ["FIELD:    labels <map[string]string>"],
            id="custom kind's metadata is ObjectMeta",
        ),
    ],
)
def test_explain_contains(resource: str, target: str, lines: list[str]) -> None:
    info = WEBAPP if resource == "webapps" else scheme.resolve(resource)
    text = _explain(info, target).splitlines()
    for line in lines:
        assert line in text, (target, line, text)


@pytest.mark.parametrize(
    ("resource", "target", "message"),
    [
        ("pods", "pods.spec.nope", 'field "nope" does not exist'),
        ("webapps", "webapps.spec.replicas.deeper", 'field "deeper" does not exist'),
    ],
)
def test_explain_unknown_field(resource: str, target: str, message: str) -> None:
    info = WEBAPP if resource == "webapps" else scheme.resolve(resource)
    with pytest.raises(UsageError, match=message):
        _explain(info, target)


def test_explain_wraps_long_descriptions_at_80_columns() -> None:
    long = {"type": "object", "description": "word " * 60}
    text = explain.render("X", "x.io/v1", "", explain.schema_node(long), recursive=False)
    described = [line for line in text.splitlines() if line.startswith("     word")]
    assert len(described) > 3
    assert all(len(line) <= 80 for line in described), described


# ------------------------------------------------------------------ printer columns


def _iso(seconds_ago: float) -> str:
    import datetime

    at = datetime.datetime.fromtimestamp(NOW - seconds_ago, tz=datetime.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("column_type", "value", "cell"),
    [
        pytest.param("integer", 3, "3", id="integer"),
        pytest.param("integer", 3.9, "3", id="integer from a float is truncated"),
        pytest.param("integer", "3", "<none>", id="integer column, string value"),
        pytest.param("number", 0.5, "0.5", id="number"),
        pytest.param("number", 2, "2", id="whole number"),
        pytest.param("number", 1e21, "1e+21", id="large number as Go prints it"),
        pytest.param("boolean", True, "true", id="boolean"),
        pytest.param("boolean", "yes", "<none>", id="boolean column, string value"),
        pytest.param("string", "nginx", "nginx", id="string"),
        pytest.param("string", 7, "7", id="string column prints any value"),
        pytest.param("string", {"a": 1}, "map[a:1]", id="string column, a map as Go prints it"),
        pytest.param("date", _iso(90), "90s", id="date as an age"),
        pytest.param("date", _iso(3 * 3600), "3h", id="date hours"),
        pytest.param("date", "yesterday", "<invalid>", id="date that does not parse"),
        pytest.param("integer", None, "<none>", id="missing value"),
        pytest.param("date", None, "<none>", id="missing date"),
    ],
)
def test_printer_cell(column_type: str, value: Any, cell: str) -> None:
    assert _columns.printer_cell(column_type, value, NOW) == cell


COLUMNS = [
    _columns.PrinterColumn("Replicas", "integer", ".spec.replicas"),
    _columns.PrinterColumn("Ratio", "number", ".spec.ratio", priority=1),
    _columns.PrinterColumn("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
    _columns.PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
]


def _webapp(name: str, content: dict[str, Any]) -> Any:
    meta = ObjectMeta(name=name)
    meta.creation_timestamp.FromJsonString(_iso(120))
    return WebApp(metadata=meta, **content)


@pytest.mark.parametrize(
    ("columns", "wide", "header", "row"),
    [
        pytest.param(
            COLUMNS,
            False,
            ["NAME", "REPLICAS", "READY", "AGE"],
            ["shop", "2", "True", "2m"],
            id="priority 0 columns only",
        ),
        pytest.param(
            COLUMNS,
            True,
            ["NAME", "REPLICAS", "RATIO", "READY", "AGE"],
            ["shop", "2", "0.5", "True", "2m"],
            id="-o wide adds priority > 0 in the CRD's order",
        ),
        pytest.param([], False, ["NAME", "AGE"], ["shop", "2m"], id="no columns: NAME AGE"),
        pytest.param(
            COLUMNS[:1],
            False,
            ["NAME", "REPLICAS"],
            ["shop", "2"],
            id="columns without a date: no AGE",
        ),
    ],
)
def test_crd_printer(
    columns: list[_columns.PrinterColumn], wide: bool, header: list[str], row: list[str]
) -> None:
    obj = _webapp(
        "shop",
        {
            "spec": {"replicas": 2, "ratio": 0.5},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        },
    )
    printer = _columns.crd_printer(columns, lambda o: o.to_object())
    assert printer.header(wide=wide) == header
    assert printer.cells(obj, NOW, wide=wide) == row


def test_crd_printer_missing_values_are_none() -> None:
    printer = _columns.crd_printer(COLUMNS, lambda o: o.to_object())
    assert printer.cells(_webapp("bare", {}), NOW, wide=True) == [
        "bare",
        "<none>",
        "<none>",
        "<none>",
        "2m",
    ]


# ------------------------------------------------------------------ describe


@pytest.mark.parametrize(
    ("field", "label"),
    [
        ("replicas", "Replicas"),
        ("readyReplicas", "Ready Replicas"),
        ("apiVersion", "API Version"),
        ("uid", "UID"),
        ("podIP", "Pod IP"),
        ("HTTPServer", "HTTP Server"),
        ("v1beta1", "v1beta1"),
        ("a_b", "a_b"),
    ],
)
def test_smart_label(field: str, label: str) -> None:
    assert smart_label(field) == label, field


def test_describe_custom_object_nests_fields_as_kubectl() -> None:
    meta = ObjectMeta(name="shop", namespace="default", uid="u-1", generation=2)
    meta.labels["app"] = "shop"
    obj = WebApp(
        metadata=meta,
        spec={"replicas": 2, "image": "nginx", "tags": ["a", "b"], "routes": [{"path": "/"}]},
        status={"readyReplicas": 1},
    )
    assert tabulate(custom_rows(obj), padding=2, min_width=0) == (
        "Name:         shop\n"
        "Namespace:    default\n"
        "Labels:       app=shop\n"
        "Annotations:  <none>\n"
        "API Version:  explain.test.kpy.io/v1\n"
        "Kind:         WebApp\n"
        "Metadata:\n"
        "  Generation:  2\n"
        "  UID:         u-1\n"
        "Spec:\n"
        "  Image:     nginx\n"
        "  Replicas:  2\n"
        "  Routes:\n"
        "    Path:  /\n"
        "  Tags:\n"
        "    a\n"
        "    b\n"
        "Status:\n"
        "  Ready Replicas:  1\n"
    )


# ------------------------------------------------------------------ patch, discovery


@pytest.mark.parametrize(
    ("info", "patch_type", "refusal"),
    [
        pytest.param(
            WEBAPP,
            "strategic",
            "application/strategic-merge-patch+json is not supported by "
            "explain.test.kpy.io/v1, Kind=WebApp: the body of the request was in an unknown "
            "format - accepted media types include: application/json-patch+json, "
            "application/merge-patch+json, application/apply-patch+yaml; "
            "use --type merge or --type json",
            id="custom kind, strategic",
        ),
        pytest.param(WEBAPP, "merge", None, id="custom kind, merge"),
        pytest.param(WEBAPP, "json", None, id="custom kind, json"),
        pytest.param(scheme.resolve("deployments"), "strategic", None, id="built-in, strategic"),
    ],
)
def test_unsupported_patch(info: ResourceInfo, patch_type: str, refusal: str | None) -> None:
    assert patch.unsupported_patch(info, patch_type) == refusal


def test_register_served_prefers_the_preferred_version() -> None:
    group = "discovery.test.kpy.io"
    resources = [
        api.APIResource(
            group=group,
            version=version,
            kind="Gadget",
            resource="gadgets",
            namespaced=False,
            short_names=["gdg"],
            singular_name="gadget",
            subresources=["status"],
        )
        for version in ("v1alpha1", "v1", "v2beta1", "v1beta2")
    ] + [api.APIResource(group="", version="v1", kind="Pod", resource="pods", namespaced=True)]
    try:
        register_served(resources)
        for word in ("gadgets", "gadget", "gdg", f"gadgets.{group}", "Gadget", f"gadget.{group}"):
            info = _client.resolve(word)
            assert (info.api_version, info.namespaced) == (f"{group}/v1", False), word
        assert scheme.lookup(f"{group}/v2beta1", "Gadget") is not None
        assert scheme.resolve("pods").kind == "Pod"  # a built-in kind stays as it is
    finally:
        for version in ("v1alpha1", "v1", "v2beta1", "v1beta2"):
            scheme.unregister(f"{group}/{version}", "Gadget")


@pytest.mark.parametrize(
    ("versions", "ordered"),
    [
        (
            ["v1beta1", "v1", "v2", "v1alpha1", "v11alpha2"],
            ["v2", "v1", "v1beta1", "v11alpha2", "v1alpha1"],
        ),
        (["foo", "v1", "bar"], ["v1", "bar", "foo"]),
    ],
)
def test_version_priority(versions: list[str], ordered: list[str]) -> None:
    assert sorted(versions, key=version_priority) == ordered


def test_unknown_type_is_refused_in_kubectls_words() -> None:
    with pytest.raises(UsageError, match='the server doesn\'t have a resource type "foo"'):
        _client.resolve("foo")


def test_manifest_kinds_reads_lists_and_skips_what_does_not_parse() -> None:
    texts = [
        "apiVersion: a.io/v1\nkind: A\n---\napiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: b.io/v1, kind: B}\n",
        "{not: [yaml",
    ]
    assert _client.manifest_kinds(texts) == [("a.io/v1", "A"), ("b.io/v1", "B")]


def test_get_all_and_a_crds_categories_include_custom_kinds() -> None:
    group = "category.test.kpy.io"
    resources = [
        api.APIResource(
            group=group,
            version="v1",
            kind=kind,
            resource=kind.lower() + "s",
            namespaced=True,
            categories=categories,
        )
        for kind, categories in (("Toy", ["all", "playthings"]), ("Puzzle", ["playthings"]))
    ]
    try:
        register_served(resources)
        every, multiple = get.requests_of("all", [])
        kinds = [r.info.kind for r in every]
        assert (kinds[0], "Toy" in kinds, multiple) == ("Pod", True, True)
        assert "Puzzle" not in kinds
        toys, multiple = get.requests_of("playthings", [])
        assert ([r.info.kind for r in toys], multiple) == (["Puzzle", "Toy"], True)
        with pytest.raises(UsageError, match='resource type "games"'):
            get.requests_of("games", [])
    finally:
        for kind in ("Toy", "Puzzle"):
            scheme.unregister(f"{group}/v1", kind)

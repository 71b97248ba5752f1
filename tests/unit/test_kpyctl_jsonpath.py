"""kpyctl's JSONPath against kubectl's documented examples
(kubernetes.io/docs/reference/kubectl/jsonpath/) and the cheat sheet's."""

from __future__ import annotations

from typing import Any

import pytest

from kpy.cli import _jsonpath as jsonpath

# The document of kubectl's JSONPath reference page.
DOC: dict[str, Any] = {
    "kind": "List",
    "items": [
        {
            "kind": "None",
            "metadata": {
                "name": "127.0.0.1",
                "labels": {"kubernetes.io/hostname": "127.0.0.1"},
            },
            "status": {
                "capacity": {"cpu": "4"},
                "addresses": [{"type": "LegacyHostIP", "address": "127.0.0.1"}],
            },
        },
        {
            "kind": "None",
            "metadata": {"name": "127.0.0.2"},
            "status": {
                "capacity": {"cpu": "8"},
                "addresses": [
                    {"type": "LegacyHostIP", "address": "127.0.0.2"},
                    {"type": "another", "address": "127.0.0.3"},
                ],
            },
        },
    ],
    "users": [
        {"name": "myself", "user": {}},
        {"name": "e2e", "user": {"username": "admin", "password": "secret"}},
    ],
}

PODS: dict[str, Any] = {
    "kind": "List",
    "items": [
        {
            "metadata": {"name": "web-0", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b"}]},
            "status": {
                "podIP": "10.0.0.1",
                "restarts": 2,
                "ready": True,
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "False"},
                ],
            },
        },
        {
            "metadata": {"name": "web-1"},
            "spec": {"containers": [{"name": "a", "image": "redis"}]},
            "status": {
                "restarts": 0,
                "ready": False,
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        },
    ],
}

CASES: list[tuple[str, str, Any, str]] = [
    # name, template, data, output
    ("text", "kind is {.kind}", DOC, "kind is List"),
    ("current object", "{@.kind}", DOC, "List"),
    ("root", "{$.kind}", DOC, "List"),
    ("bracket child", "{['kind']}", DOC, "List"),
    ("bare field", "{kind}", DOC, "List"),
    ("recursive descent", "{..name}", DOC, "127.0.0.1 127.0.0.2 myself e2e"),
    ("wildcard", "{.items[*].metadata.name}", DOC, "127.0.0.1 127.0.0.2"),
    ("subscript", "{.users[0].name}", DOC, "myself"),
    (
        "union of paths",
        "{.items[*]['metadata.name', 'status.capacity']}",
        DOC,
        '127.0.0.1 127.0.0.2 {"cpu":"4"} {"cpu":"8"}',
    ),
    ("filter", '{.users[?(@.name=="e2e")].user.password}', DOC, "secret"),
    (
        "range",
        "{range .items[*]}[{.metadata.name}, {.status.capacity}] {end}",
        DOC,
        '[127.0.0.1, {"cpu":"4"}] [127.0.0.2, {"cpu":"8"}] ',
    ),
    (
        "quoted tab",
        "{range .items[*]}{.metadata.name}{'\\t'}{end}",
        DOC,
        "127.0.0.1\t127.0.0.2\t",
    ),
    (
        "escaped dot",
        "{.items[0].metadata.labels.kubernetes\\.io/hostname}",
        DOC,
        "127.0.0.1",
    ),
    (
        "escaped dot in a quoted key",
        "{.items[0].metadata.labels['kubernetes\\.io/hostname']}",
        DOC,
        "127.0.0.1",
    ),
    ("name", "{.metadata.name}", PODS["items"][0], "web-0"),
    ("index into a list", "{.items[0].status.podIP}", PODS, "10.0.0.1"),
    ("negative index", "{.items[-1].metadata.name}", PODS, "web-1"),
    ("slice from the end", "{.items[-1:].metadata.name}", PODS, "web-1"),
    ("slice", "{.items[0:1].metadata.name}", PODS, "web-0"),
    ("slice with a step", "{.users[::2].name}", DOC, "myself"),
    ("index union", "{.items[1,0].metadata.name}", PODS, "web-1 web-0"),
    ("index out of range", "{.items[5].metadata.name}", PODS, ""),
    (
        "range with newlines",
        '{range .items[*]}{.metadata.name}{"\\n"}{end}',
        PODS,
        "web-0\nweb-1\n",
    ),
    (
        "nested range",
        "{range .items[*]}{.metadata.name}:{range .spec.containers[*]} {.name}{end};{end}",
        PODS,
        "web-0: a b;web-1: a;",
    ),
    (
        "filter inside range",
        '{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}',
        PODS,
        "web-0=False web-1=True ",
    ),
    (
        "filter on a list of objects",
        '{.items[*].status.addresses[?(@.type=="LegacyHostIP")].address}',
        DOC,
        "127.0.0.1 127.0.0.2",
    ),
    ("filter not equal", '{.users[?(@.name!="e2e")].name}', DOC, "myself"),
    ("filter numeric", "{.items[?(@.status.restarts>1)].metadata.name}", PODS, "web-0"),
    ("filter boolean", "{.items[?(@.status.ready==true)].metadata.name}", PODS, "web-0"),
    ("filter exists", "{.items[?(@.status.podIP)].metadata.name}", PODS, "web-0"),
    ("filter single quotes", "{.users[?(@.name=='myself')].name}", DOC, "myself"),
    ("missing key prints nothing", "{.items[*].status.podIP}", PODS, "10.0.0.1"),
    ("missing everywhere", "x{.nothing.here}y", PODS, "xy"),
    ("map as json", "{.items[0].status.capacity}", DOC, '{"cpu":"4"}'),
    ("several values", "{.items[0].spec.containers[*].name}", PODS, "a b"),
    (
        "list as json",
        "{.items[0].spec.containers}",
        PODS,
        '[{"image":"nginx","name":"a"},{"name":"b"}]',
    ),
    ("whole list", "{.users[0]}", DOC, '{"name":"myself","user":{}}'),
    (
        "numbers and booleans",
        "{.items[0].status.restarts} {.items[1].status.ready}",
        PODS,
        "2 false",
    ),
    ("wildcard over a map", "{.items[0].status.capacity.*}", DOC, "4"),
    ("text only", "hello", DOC, "hello"),
]


@pytest.mark.parametrize(
    ("template", "data", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_template(template: str, data: Any, want: str) -> None:
    assert jsonpath.parse(template).execute(data) == want, template


ERRORS: list[tuple[str, str, str]] = [
    ("unclosed action", "{.metadata.name", "unclosed action"),
    ("end without range", "{.a}{end}", "not in range, nothing to end"),
    ("range without end", "{range .items[*]}{.a}", "unclosed range"),
    ("bad index", "{.items[x]}", "invalid array index x"),
    ("unclosed bracket", "{.items[0}", "unclosed array expect ]"),
]


@pytest.mark.parametrize(
    ("template", "message"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS]
)
def test_parse_errors(template: str, message: str) -> None:
    with pytest.raises(jsonpath.JSONPathError, match=message.replace("[", r"\[")):
        jsonpath.parse(template)


RELAXED = [
    (".metadata.name", "{.metadata.name}"),
    ("metadata.name", "{.metadata.name}"),
    ("{.metadata.name}", "{.metadata.name}"),
    ("{metadata.name}", "{.metadata.name}"),
    (".spec.containers[0].image", "{.spec.containers[0].image}"),
]


@pytest.mark.parametrize(("expression", "want"), RELAXED, ids=[c[0] for c in RELAXED])
def test_relaxed_expression(expression: str, want: str) -> None:
    assert jsonpath.relaxed(expression) == want

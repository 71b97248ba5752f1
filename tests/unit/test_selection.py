"""Which objects a list or watch selects: label + field selectors per kind."""

from __future__ import annotations

from typing import Any

import pytest

from kpy.api import codec, errors
from kpy.api.core.v1 import ConfigMap, Event, Node, Pod, Secret
from kpy.api.selection import object_fields, parse_predicate, supported_fields

POD = codec.from_dict(
    Pod,
    {
        "metadata": {"name": "web-1", "namespace": "prod", "labels": {"app": "web", "tier": "fe"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": "127.0.0.5"},
    },
)

MATCH_CASES: list[tuple[str, Any, str, str, bool]] = [
    ("everything", POD, "", "", True),
    ("label equality", POD, "app=web", "", True),
    ("label inequality", POD, "app!=web", "", False),
    ("label set", POD, "tier in (fe,be)", "", True),
    ("label notin", POD, "tier notin (fe)", "", False),
    ("label exists", POD, "app", "", True),
    ("label absent", POD, "!canary", "", True),
    ("node name", POD, "", "spec.nodeName=node-a", True),
    ("other node", POD, "", "spec.nodeName=node-b", False),
    ("unscheduled pods", POD, "", "spec.nodeName=", False),
    ("phase not", POD, "", "status.phase!=Running", False),
    ("name and namespace", POD, "", "metadata.name=web-1,metadata.namespace=prod", True),
    ("both selectors", POD, "app=web", "status.podIP=127.0.0.5", True),
    ("labels hold, fields do not", POD, "app=web", "metadata.namespace=dev", False),
    (
        "node unschedulable",
        codec.from_dict(Node, {"metadata": {"name": "n"}, "spec": {"unschedulable": True}}),
        "",
        "spec.unschedulable=true",
        True,
    ),
    (
        "secret type",
        codec.from_dict(Secret, {"metadata": {"name": "s"}, "type": "Opaque"}),
        "",
        "type=Opaque",
        True,
    ),
    (
        "event involved object",
        codec.from_dict(
            Event, {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "web-1"}}
        ),
        "",
        "involvedObject.kind=Pod,involvedObject.name=web-1",
        True,
    ),
]


@pytest.mark.parametrize(
    ("obj", "label", "field", "want"),
    [case[1:] for case in MATCH_CASES],
    ids=[case[0] for case in MATCH_CASES],
)
def test_predicate_matches(obj: Any, label: str, field: str, want: bool) -> None:
    predicate = parse_predicate(type(obj).__name__, label, field)
    assert predicate.matches(obj) is want
    assert predicate(obj) is want


ERROR_CASES = [
    (
        "unknown pod field",
        "Pod",
        "",
        "spec.hostname=x",
        'field label not supported for Pod: "spec.hostname"',
    ),
    ("pod field on a configmap", "ConfigMap", "", "spec.nodeName=a", "ConfigMap"),
    ("bad label syntax", "Pod", "app in (", "", "unable to parse labelSelector"),
    ("bad field escape", "Pod", "", "metadata.name=a\\x", "unable to parse fieldSelector"),
    (
        "label selector too long to parse",
        "Pod",
        ",".join(f"k{i}=v" for i in range(20_000)),
        "",
        "labelSelector is 168889 characters long, more than the 65536",
    ),
    (
        "field selector too long to parse",
        "Pod",
        "",
        "metadata.name=" + "a" * 70_000,
        "fieldSelector is 70014 characters long",
    ),
]


@pytest.mark.parametrize(
    ("kind", "label", "field", "message"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_bad_selectors_are_refused(kind: str, label: str, field: str, message: str) -> None:
    with pytest.raises(errors.BadRequest, match=r".*") as caught:
        parse_predicate(kind, label, field)
    assert message in str(caught.value)


def test_the_refusal_lists_the_supported_fields() -> None:
    with pytest.raises(errors.BadRequest) as caught:
        parse_predicate("Pod", "", "spec.foo=1")
    for name in supported_fields("Pod"):
        assert name in str(caught.value)


def test_object_fields_of_a_pod_and_a_kind_with_only_metadata() -> None:
    fields = object_fields(POD)
    assert fields["spec.nodeName"] == "node-a"
    assert fields["status.phase"] == "Running"
    cm = codec.from_dict(ConfigMap, {"metadata": {"name": "c", "namespace": "x"}})
    assert object_fields(cm) == {"metadata.name": "c", "metadata.namespace": "x"}


def test_empty_predicate() -> None:
    assert parse_predicate("Pod").empty
    assert not parse_predicate("Pod", "a=b").empty

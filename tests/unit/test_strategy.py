"""Per-kind strategies of the API server and the subresource table, each
table-driven over plain objects (no storage: the registry's write path is
covered by tests/integration/test_apiserver.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api import codec, errors
from kpy.api.apps.v1 import Deployment
from kpy.api.core.v1 import (
    ConfigMap,
    Namespace,
    Node,
    PersistentVolumeClaim,
    Pod,
    ReplicationController,
    Secret,
)
from kpy.api.meta.v1 import DeleteOptions
from kpy.api.scheme import scheme
from kpy.apiserver.strategy import NamespacesBeingDeleted, Strategy, strategy_for
from kpy.apiserver.subresources import SUBRESOURCES, handler_for

if TYPE_CHECKING:
    from google.protobuf.message import Message


def strategy(message: type[Message]) -> Strategy:
    return strategy_for(scheme.for_message(message), NamespacesBeingDeleted())


def obj(message: type[Message], body: dict[str, Any]) -> Any:
    return codec.from_dict(message, {"metadata": {"name": "x"}, **body})


# -- which kinds have which subresources -----------------------------------------------


SUBRESOURCE_CASES = [
    ("Pod", ("status", "binding", "eviction", "log", "exec")),
    ("PodDisruptionBudget", ("status",)),
    ("Namespace", ("status", "finalize")),
    ("Deployment", ("status", "scale")),
    ("ReplicationController", ("status", "scale")),
    ("Node", ("status",)),
    ("Job", ("status",)),
    ("ConfigMap", ()),
    ("Secret", ()),
    ("PriorityClass", ()),
]


@pytest.mark.parametrize(("kind", "want"), SUBRESOURCE_CASES, ids=[c[0] for c in SUBRESOURCE_CASES])
def test_subresources_of_each_kind(kind: str, want: tuple[str, ...]) -> None:
    (info,) = [i for i in scheme.all() if i.kind == kind]
    got = strategy_for(info, NamespacesBeingDeleted()).subresources()
    assert got == want, kind
    assert set(got) <= set(SUBRESOURCES), kind  # every one listed has a handler


# -- create -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateCase:
    name: str
    message: type[Message]
    body: dict[str, Any]
    want: dict[str, Any]  # the fields that matter, as JSON, after prepare_for_create


CREATE_CASES = [
    CreateCase(
        "a pod's status is reset and Pending",
        Pod,
        {"status": {"phase": "Running", "podIP": "10.0.0.9"}},
        {"status": {"phase": "Pending"}},
    ),
    CreateCase(
        "a node keeps the status its agent registers",
        Node,
        {"status": {"capacity": {"cpu": "4"}}},
        {"status": {"capacity": {"cpu": "4"}}},
    ),
    CreateCase(
        "a namespace is Active with the kubernetes finalizer",
        Namespace,
        {"spec": {"finalizers": ["mine"]}, "status": {"phase": "Terminating"}},
        {"spec": {"finalizers": ["mine", "kubernetes"]}, "status": {"phase": "Active"}},
    ),
    CreateCase(
        "a claim is Pending",
        PersistentVolumeClaim,
        {"status": {"phase": "Bound"}},
        {"status": {"phase": "Pending"}},
    ),
    CreateCase(
        "a secret's stringData goes into data, and wins",
        Secret,
        {"data": {"a": "b2xk", "b": "Yg=="}, "stringData": {"a": "new"}},
        {"data": {"a": "bmV3", "b": "Yg=="}},
    ),
    CreateCase(
        "a deployment's status is reset",
        Deployment,
        {"status": {"replicas": 3}},
        {},
    ),
    CreateCase(
        "a configmap, with no rules of its own, is untouched",
        ConfigMap,
        {"data": {"k": "v"}},
        {"data": {"k": "v"}},
    ),
]


@pytest.mark.parametrize("case", CREATE_CASES, ids=lambda c: c.name)
def test_prepare_for_create(case: CreateCase) -> None:
    new = obj(case.message, case.body)
    strategy(case.message).prepare_for_create(new)
    got = codec.to_dict(new)
    got.pop("metadata")
    assert got == case.want, case.name


# -- update -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateCase:
    name: str
    message: type[Message]
    old: dict[str, Any]
    new: dict[str, Any]
    want: dict[str, Any]


UPDATE_CASES = [
    UpdateCase(
        "the main path keeps the stored status",
        Pod,
        {"status": {"phase": "Running"}},
        {"status": {"phase": "Failed"}},
        {"status": {"phase": "Running"}},
    ),
    UpdateCase(
        "a namespace's finalizers change only through finalize",
        Namespace,
        {"spec": {"finalizers": ["kubernetes"]}},
        {"spec": {"finalizers": []}},
        {"spec": {"finalizers": ["kubernetes"]}},
    ),
    UpdateCase(
        "a secret's stringData is merged on update too",
        Secret,
        {"data": {"a": "b2xk"}},
        {"stringData": {"a": "new"}},
        {"data": {"a": "bmV3"}},
    ),
    UpdateCase(
        "a kind without a status subresource writes what it is sent",
        ConfigMap,
        {"data": {"k": "v"}},
        {"data": {"k": "w"}},
        {"data": {"k": "w"}},
    ),
]


@pytest.mark.parametrize("case", UPDATE_CASES, ids=lambda c: c.name)
def test_prepare_for_update(case: UpdateCase) -> None:
    new, old = obj(case.message, case.new), obj(case.message, case.old)
    strategy(case.message).prepare_for_update(new, old)
    got = codec.to_dict(new)
    got.pop("metadata")
    assert got == case.want, case.name


# -- delete -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeleteCase:
    name: str
    message: type[Message]
    body: dict[str, Any]
    grace: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    as_node: str = ""
    forbidden: str = ""  # the start of the Forbidden message, if refused
    pending: bool = False  # whether finalizers hold it back


DELETE_CASES = [
    DeleteCase("an unscheduled pod goes at once", Pod, {"spec": {}}),
    DeleteCase("a pod on a node waits 30 s", Pod, {"spec": {"nodeName": "n1"}}, grace=30),
    DeleteCase(
        "a pod's own grace period",
        Pod,
        {"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 5}},
        grace=5,
    ),
    DeleteCase(
        "the request's grace period wins",
        Pod,
        {"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 5}},
        grace=0,
        options={"gracePeriodSeconds": 0},
    ),
    DeleteCase(
        "a finished pod goes at once",
        Pod,
        {"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}},
    ),
    DeleteCase(
        "a node agent deletes only its own node's pods",
        Pod,
        {"spec": {"nodeName": "n1"}},
        grace=30,
        as_node="n2",
        forbidden='pods "x" is forbidden: node "n2" can only delete pods bound to itself',
    ),
    DeleteCase(
        "a namespace waits for its spec.finalizers",
        Namespace,
        {"spec": {"finalizers": ["kubernetes"]}},
        pending=True,
    ),
    DeleteCase(
        "default may not be deleted",
        Namespace,
        {"metadata": {"name": "default"}},
        forbidden='namespaces "default" is forbidden',
    ),
    DeleteCase(
        "anything else waits only for metadata.finalizers",
        ConfigMap,
        {"metadata": {"name": "x", "finalizers": ["f"]}},
        pending=True,
    ),
]


@pytest.mark.parametrize("case", DELETE_CASES, ids=lambda c: c.name)
def test_delete_rules(case: DeleteCase) -> None:
    target = obj(case.message, case.body)
    rules = strategy(case.message)
    options = codec.from_dict(DeleteOptions, case.options)
    assert rules.grace_period(target, options) == case.grace, case.name
    assert rules.pending_finalizers(target) == case.pending, case.name
    if case.forbidden:
        with pytest.raises(errors.Forbidden, match=case.forbidden):
            rules.check_delete(target, case.as_node)
    else:
        rules.check_delete(target, case.as_node)


def test_a_namespace_delete_is_recorded_and_marks_it_terminating() -> None:
    deleting = NamespacesBeingDeleted(ttl=30)
    rules = strategy_for(scheme.for_message(Namespace), deleting)
    ns = obj(Namespace, {"metadata": {"name": "x", "uid": "u1"}})
    rules.mark_deleting(ns)
    rules.after_delete(ns, now=100.0)
    assert ns.status.phase == "Terminating"
    assert deleting.seen("u1", now=129.0)
    assert not deleting.seen("u1", now=130.0)


# -- scale --------------------------------------------------------------------------------


SCALE_CASES = [
    (Deployment, {"spec": {"selector": {"matchLabels": {"app": "web"}}}}, "app=web"),
    (
        ReplicationController,
        {"spec": {"selector": {"app": "web", "tier": "db"}}},
        "app=web,tier=db",
    ),
]


@pytest.mark.parametrize(("message", "body", "want"), SCALE_CASES, ids=lambda c: str(c))
def test_scale_selector(message: type[Message], body: dict[str, Any], want: str) -> None:
    scalable = strategy(message)
    assert scalable.scale_selector(obj(message, body)) == want, message.__name__  # type: ignore[attr-defined]


# -- routing --------------------------------------------------------------------------------


ROUTE_CASES = [
    ("status", Pod, "get", ""),
    ("scale", Deployment, "get", ""),
    ("binding", Pod, "get", "get is not supported on pods/binding"),
    ("finalize", Namespace, "get", "get is not supported on namespaces/finalize"),
    ("log", Pod, "update", "update is not supported on pods/log"),
    ("status", Pod, "delete", "delete is not supported on pods/status"),
    ("status", ConfigMap, "get", "configmaps has no 'status' subresource"),
    ("scale", ConfigMap, "get", "configmaps has no 'scale' subresource"),
    ("binding", Deployment, "create", "deployments.apps has no 'binding' subresource"),
    ("frobnicate", Pod, "get", "pods has no 'frobnicate' subresource"),
]


@pytest.mark.parametrize(
    ("name", "message", "verb", "refused"),
    ROUTE_CASES,
    ids=[f"{c[1].__name__}/{c[0]}" for c in ROUTE_CASES],
)
async def test_routing(name: str, message: type[Message], verb: str, refused: str) -> None:
    """A subresource the kind lacks, or a verb it does not serve, is
    MethodNotAllowed before any read; the others reach the registry."""
    info = scheme.for_message(message)
    reached: list[str] = []

    async def get(namespace: str, obj_name: str) -> Any:
        reached.append("get")
        return obj(message, {})

    registry: Any = SimpleNamespace(info=info, strategy=strategy(message), get=get)

    async def call() -> Message:
        handler = handler_for(registry, name)
        if verb == "get":
            return await handler.get(registry, namespace="", name="x")
        if verb == "delete":
            handler.refuse_delete(registry)
        method = getattr(handler, verb)
        return await method(registry, b"{}", namespace="", name="x", dry_run=False)  # type: ignore[no-any-return]

    if refused:
        with pytest.raises(errors.MethodNotAllowed, match=refused):
            await call()
        assert reached == [], name
    else:
        await call()
        assert reached == ["get"], name

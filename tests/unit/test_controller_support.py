"""The pieces controllers are made of, without a server: expectations, pod
ranking and availability, --controllers selection, the metrics endpoint."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import pytest

from kpy.api.apps.v1 import ReplicaSet
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod
from kpy.cache.expectations import ControllerExpectations
from kpy.cache.workqueue import RateLimitingQueue
from kpy.clock import FakeClock
from kpy.controllers.manager import ControllerSpec, select_controllers
from kpy.controllers.ownership import (
    deletion_order,
    is_pod_available,
    new_controller_ref,
    pod_from_template,
)
from kpy.metrics import Metrics, _respond

# -- expectations ----------------------------------------------------------------------


@dataclass
class ExpectCase:
    name: str
    steps: list[tuple[str, Any]]
    satisfied: bool
    advance: float = 0.0


EXPECT_CASES = [
    ExpectCase("no record", [], True),
    ExpectCase("creations pending", [("create", 3), ("observe_add", None)], False),
    ExpectCase(
        "all creations observed",
        [("create", 2), ("observe_add", None), ("observe_add", None)],
        True,
    ),
    ExpectCase("failed creations lowered", [("create", 3), ("lower", 3)], True),
    ExpectCase("deletions pending", [("delete", ["ns/a", "ns/b"]), ("observe_del", "ns/a")], False),
    ExpectCase(
        "a pod observed deleted twice counts once",
        [("delete", ["ns/a", "ns/b"]), ("observe_del", "ns/a"), ("observe_del", "ns/a")],
        False,
    ),
    ExpectCase(
        "all deletions observed",
        [("delete", ["ns/a", "ns/b"]), ("observe_del", "ns/a"), ("observe_del", "ns/b")],
        True,
    ),
    ExpectCase("expired after the TTL", [("create", 1)], True, advance=301.0),
    ExpectCase("not expired before the TTL", [("create", 1)], False, advance=299.0),
    ExpectCase("forgotten key", [("create", 5), ("forget", None)], True),
]


@pytest.mark.parametrize("case", EXPECT_CASES, ids=lambda c: c.name)
def test_expectations(case: ExpectCase) -> None:
    clock = FakeClock()
    exp = ControllerExpectations(clock=clock)
    key = "ns/rs"
    actions = {
        "create": lambda arg: exp.expect_creations(key, arg),
        "delete": lambda arg: exp.expect_deletions(key, arg),
        "observe_add": lambda _: exp.creation_observed(key),
        "observe_del": lambda arg: exp.deletion_observed(key, arg),
        "lower": lambda arg: exp.lower_creations(key, arg),
        "forget": lambda _: exp.delete(key),
    }
    for action, arg in case.steps:
        actions[action](arg)
    clock.advance(case.advance)
    assert exp.satisfied(key) is case.satisfied, case.name


def test_expectations_for_one_key_leave_others_alone() -> None:
    exp = ControllerExpectations(clock=FakeClock())
    exp.expect_creations("ns/a", 1)
    exp.creation_observed("ns/b")  # a key with no record: nothing to count
    assert not exp.satisfied("ns/a")
    assert exp.satisfied("ns/b")
    assert exp.pending("ns/a") == (1, 0)
    exp.delete("ns/a")
    assert len(exp) == 0


# -- pods ------------------------------------------------------------------------------


def pod(
    name: str,
    *,
    node: str = "",
    phase: str = "Running",
    ready_since: float | None = None,
    restarts: int = 0,
    created: int = 1000,
) -> Pod:
    conditions = []
    if ready_since is not None:
        conditions.append(
            {"type": "Ready", "status": "True", "lastTransitionTime": _rfc3339(ready_since)}
        )
    return from_dict(
        Pod,
        {
            "metadata": {"name": name, "creationTimestamp": _rfc3339(created)},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            "status": {
                "phase": phase,
                "conditions": conditions,
                "containerStatuses": [{"name": "c", "restartCount": restarts}],
            },
        },
    )


def _rfc3339(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RankCase:
    name: str
    pods: list[Pod]
    first: str


RANK_CASES = [
    RankCase(
        "unscheduled before scheduled",
        [pod("on-node", node="n1", ready_since=10), pod("nowhere", phase="Pending")],
        "nowhere",
    ),
    RankCase(
        "pending before running",
        [pod("running", node="n1"), pod("pending", node="n1", phase="Pending")],
        "pending",
    ),
    RankCase(
        "not ready before ready",
        [pod("ready", node="n1", ready_since=10), pod("unready", node="n2")],
        "unready",
    ),
    RankCase(
        "crowded node before a node of its own",
        [
            pod("alone", node="n1", ready_since=10),
            pod("crowd-1", node="n2", ready_since=10),
            pod("crowd-2", node="n2", ready_since=10, created=999),
        ],
        "crowd-1",
    ),
    RankCase(
        "ready more recently first",
        [pod("old", node="n1", ready_since=10), pod("new", node="n2", ready_since=20)],
        "new",
    ),
    RankCase(
        "more restarts first",
        [
            pod("steady", node="n1", ready_since=10),
            pod("flaky", node="n2", ready_since=10, restarts=4),
        ],
        "flaky",
    ),
    RankCase(
        "newer first",
        [
            pod("older", node="n1", ready_since=10, created=100),
            pod("newer", node="n2", ready_since=10, created=200),
        ],
        "newer",
    ),
]


@pytest.mark.parametrize("case", RANK_CASES, ids=lambda c: c.name)
def test_deletion_order(case: RankCase) -> None:
    assert deletion_order(case.pods)[0].metadata.name == case.first, case.name


@dataclass
class AvailableCase:
    name: str
    ready_since: float | None
    min_ready: int
    now: float
    want: bool


AVAILABLE_CASES = [
    AvailableCase("not ready", None, 0, 100, False),
    AvailableCase("ready, no minReadySeconds", 99, 0, 100, True),
    AvailableCase("ready too briefly", 95, 10, 100, False),
    AvailableCase("ready long enough", 90, 10, 100, True),
]


@pytest.mark.parametrize("case", AVAILABLE_CASES, ids=lambda c: c.name)
def test_is_pod_available(case: AvailableCase) -> None:
    p = pod("p", ready_since=case.ready_since)
    assert is_pod_available(p, case.min_ready, case.now) is case.want, case.name


def test_pod_from_template_copies_the_template_and_names_the_owner() -> None:
    rs = from_dict(
        ReplicaSet,
        {
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {
                "template": {
                    "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                }
            },
        },
    )
    made = pod_from_template(rs.spec.template, rs, new_controller_ref(rs, "apps/v1", "ReplicaSet"))
    assert made.metadata.generate_name == "web-"
    assert made.metadata.namespace == "ns"
    assert dict(made.metadata.labels) == {"app": "web"}
    assert dict(made.metadata.annotations) == {"a": "b"}
    [ref] = made.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == (
        "ReplicaSet",
        "web",
        "u1",
        True,
        True,
    )
    assert made.spec == rs.spec.template.spec


# -- --controllers ---------------------------------------------------------------------

KNOWN = {n: ControllerSpec(n, lambda ctx: None, 1) for n in ("a", "b", "c")}  # type: ignore[arg-type,return-value]


@dataclass
class SelectCase:
    name: str
    flag: str
    want: list[str] = field(default_factory=list)
    error: str = ""


SELECT_CASES = [
    SelectCase("all", "*", ["a", "b", "c"]),
    SelectCase("all but one", "*,-b", ["a", "c"]),
    SelectCase("just one", "a", ["a"]),
    SelectCase("order does not matter", "-b,*", ["a", "c"]),
    SelectCase("unknown name", "a,zz", error="unknown controller 'zz'"),
    SelectCase("unknown exclusion", "*,-zz", error="unknown controller 'zz'"),
    SelectCase("empty", "", []),
]


@pytest.mark.parametrize("case", SELECT_CASES, ids=lambda c: c.name)
def test_select_controllers(case: SelectCase) -> None:
    if case.error:
        with pytest.raises(ValueError, match=case.error):
            select_controllers(case.flag.split(","), KNOWN)
    else:
        assert select_controllers(case.flag.split(","), KNOWN) == case.want


# -- metrics ---------------------------------------------------------------------------


def test_metrics_exposition_reads_queues_at_scrape_time() -> None:
    metrics = Metrics()
    queue: RateLimitingQueue[str] = RateLimitingQueue(clock=FakeClock())
    metrics.add_queue("demo", queue)
    queue.add("a")
    queue.add("b")
    queue.add_rate_limited("c")
    metrics.observe_sync("demo", 0.01, ok=False)
    text = metrics.exposition().decode()
    assert 'workqueue_depth{name="demo"} 2.0' in text
    assert 'workqueue_adds_total{name="demo"} 2.0' in text
    assert 'workqueue_retries_total{name="demo"} 1.0' in text
    assert 'kpy_controller_syncs_total{controller="demo",result="error"} 1.0' in text


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"GET /metrics HTTP/1.1", "200 OK"),
        (b"GET /healthz HTTP/1.0", "200 OK"),
        (b"GET /metrics?x=1 HTTP/1.0", "200 OK"),
        (b"GET /other HTTP/1.0", "404 Not Found"),
        (b"POST /metrics HTTP/1.0", "405 Method Not Allowed"),
        (b"", "405 Method Not Allowed"),
    ],
)
def test_metrics_endpoint_answers(request_line: bytes, status: str) -> None:
    answer = _respond(Metrics(), request_line + b"\r\n\r\n")
    assert answer.startswith(f"HTTP/1.0 {status}\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(body)}".encode() in head

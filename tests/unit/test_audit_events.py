"""Audit events (kpy.apiserver.audit): what a call's event says (requestURI,
verb, objectRef, status, objects by level, Secrets never), the audit-id
returned to the client, and the log writer (bounded buffer, rotation)."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import grpc
import pytest

from kpy.api import errors
from kpy.api.apps.v1 import Deployment
from kpy.api.core.v1 import ConfigMap, Pod, Secret
from kpy.api.meta.v1 import DeleteOptions
from kpy.apiserver import audit, authentication
from kpy.apiserver.audit import AuditLog, AuditOptions, Auditor, parse_policy
from kpy.auth.attributes import UserInfo
from kpy.rpc import status
from kpy.rpc.apiserver import v1 as api

if TYPE_CHECKING:
    from pathlib import Path

T0 = datetime.datetime(2026, 12, 7, 12, 0, 0, tzinfo=datetime.UTC)
JANE = UserInfo("jane", ("dev", "system:authenticated"), uid="u-1")


def policy_at(level: str) -> audit.Policy:
    return parse_policy(
        {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": level}]}
    )


class Aborted(Exception):
    pass


@dataclass
class FakeContext:
    """The parts of a grpc.aio ServicerContext the auditor uses."""

    metadata: tuple[tuple[str, str], ...] = (("user-agent", "kpyctl/1.0 grpc-python"),)
    trailing: tuple[tuple[str, Any], ...] = ()
    status_code: grpc.StatusCode | None = None
    status_details: str = ""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def peer(self) -> str:
        return "ipv4:10.1.2.3:50000"

    def set_trailing_metadata(self, md: tuple[tuple[str, Any], ...]) -> None:
        self.trailing = md

    def trailing_metadata(self) -> tuple[tuple[str, Any], ...]:
        return self.trailing

    def code(self) -> grpc.StatusCode | None:
        return self.status_code

    def details(self) -> str:
        return self.status_details

    async def abort(self, error: errors.StatusError) -> None:
        """What service._abort does: the status, the audit-id kept."""
        self.status_code = status.code_for(error)
        self.status_details = error.message
        self.trailing = status.trailing_metadata(error) + audit.trailer()
        raise Aborted


@dataclass
class Recorded:
    events: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)


async def call(
    method: str,
    request: Any,
    response: Any = None,
    *,
    level: str = "Metadata",
    fail: errors.StatusError | None = None,
    user: UserInfo = JANE,
) -> tuple[dict[str, Any], FakeContext]:
    """One unary call through an auditor; its one event and its context."""
    recorded = Recorded()
    auditor = Auditor(policy_at(level), recorded, now=lambda: T0)
    context = FakeContext()

    async def handler(request: Any, context: FakeContext) -> Any:
        authentication.current_user.set(user)
        if fail is not None:
            await context.abort(fail)
        return response

    wrapped = auditor.wrap(method, grpc.unary_unary_rpc_method_handler(handler))
    with contextlib.suppress(Aborted):
        await wrapped.unary_unary(request, context)
    assert len(recorded.events) == 1, recorded.events
    return recorded.events[0], context


def ref(
    resource: str,
    *,
    group: str = "",
    version: str = "v1",
    ns: str = "",
    name: str = "",
    sub: str = "",
) -> api.ResourceRef:
    return api.ResourceRef(
        group=group, version=version, resource=resource, namespace=ns, name=name, subresource=sub
    )


def pod(name: str) -> Pod:
    p = Pod()
    p.metadata.name = name
    p.spec.containers.add(name="app", image="nginx")
    return p


@dataclass(frozen=True)
class EventCase:
    name: str
    method: str
    request: Any
    uri: str
    verb: str
    object_ref: dict[str, str] | None
    code: int = 200


EVENTS = [
    EventCase(
        "get a pod in the default namespace",
        "Get",
        api.GetRequest(ref=ref("pods", name="web")),
        "/api/v1/namespaces/default/pods/web",
        "get",
        {"resource": "pods", "namespace": "default", "name": "web", "apiVersion": "v1"},
    ),
    EventCase(
        "get a node (cluster-scoped)",
        "Get",
        api.GetRequest(ref=ref("nodes", name="n1")),
        "/api/v1/nodes/n1",
        "get",
        {"resource": "nodes", "name": "n1", "apiVersion": "v1"},
    ),
    EventCase(
        "list deployments everywhere, by label",
        "List",
        api.ListRequest(ref=ref("deployments", group="apps"), label_selector="app=web", limit=50),
        "/apis/apps/v1/deployments?labelSelector=app%3Dweb&limit=50",
        "list",
        {"resource": "deployments", "apiGroup": "apps", "apiVersion": "v1"},
    ),
    EventCase(
        "watch pods in a namespace",
        "Watch",
        api.WatchRequest(
            ref=ref("pods", ns="dev"), resource_version="5", allow_watch_bookmarks=True
        ),
        "/api/v1/namespaces/dev/pods?watch=true&resourceVersion=5&allowWatchBookmarks=true",
        "watch",
        {"resource": "pods", "namespace": "dev", "apiVersion": "v1"},
    ),
    EventCase(
        "create a pod: the name is the object's",
        "Create",
        api.CreateRequest(ref=ref("pods", ns="dev"), object=pod("web").SerializeToString()),
        "/api/v1/namespaces/dev/pods",
        "create",
        {"resource": "pods", "namespace": "dev", "name": "web", "apiVersion": "v1"},
        201,
    ),
    EventCase(
        "patch a deployment's scale",
        "Patch",
        api.PatchRequest(
            ref=ref("deployments", group="apps", ns="prod", name="api", sub="scale"),
            patch_type="merge",
            patch=b'{"spec":{"replicas":3}}',
        ),
        "/apis/apps/v1/namespaces/prod/deployments/api/scale",
        "patch",
        {
            "resource": "deployments",
            "namespace": "prod",
            "name": "api",
            "apiGroup": "apps",
            "apiVersion": "v1",
            "subresource": "scale",
        },
    ),
    EventCase(
        "delete, dry run",
        "Delete",
        api.DeleteRequest(
            ref=ref("configmaps", ns="dev", name="c"), options=DeleteOptions(dry_run=["All"])
        ),
        "/api/v1/namespaces/dev/configmaps/c",
        "delete",
        {"resource": "configmaps", "namespace": "dev", "name": "c", "apiVersion": "v1"},
    ),
    EventCase(
        "update with dryRun",
        "Update",
        api.UpdateRequest(
            ref=ref("pods", ns="dev", name="web"),
            object=pod("web").SerializeToString(),
            dry_run=True,
        ),
        "/api/v1/namespaces/dev/pods/web?dryRun=All",
        "update",
        {"resource": "pods", "namespace": "dev", "name": "web", "apiVersion": "v1"},
    ),
    EventCase(
        "delete a collection",
        "DeleteCollection",
        api.DeleteCollectionRequest(ref=ref("pods", ns="dev"), label_selector="a=b"),
        "/api/v1/namespaces/dev/pods?labelSelector=a%3Db",
        "deletecollection",
        {"resource": "pods", "namespace": "dev", "apiVersion": "v1"},
    ),
    EventCase(
        "pod logs",
        "Logs",
        api.LogRequest(ref=ref("pods", ns="dev", name="web"), container="app", follow=True),
        "/api/v1/namespaces/dev/pods/web/log?container=app&follow=true",
        "get",
        {
            "resource": "pods",
            "namespace": "dev",
            "name": "web",
            "apiVersion": "v1",
            "subresource": "log",
        },
    ),
    EventCase(
        "a batch of events: one entry for the call",
        "CreateEvents",
        api.CreateEventsRequest(events=[b"", b""]),
        "/api/v1/events",
        "create",
        {"resource": "events", "apiVersion": "v1"},
    ),
    EventCase("discovery", "Resources", api.ResourcesRequest(), "/apis", "get", None),
    EventCase(
        "who am I",
        "SelfSubjectReview",
        api.SelfSubjectReviewRequest(),
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        "create",
        {"resource": "selfsubjectreviews", "apiGroup": "authentication.k8s.io", "apiVersion": "v1"},
    ),
]


@pytest.mark.parametrize("case", EVENTS, ids=lambda c: c.name)
async def test_event_fields(case: EventCase) -> None:
    event, context = await call(case.method, case.request)
    assert event["requestURI"] == case.uri, case.name
    assert event["verb"] == case.verb, case.name
    assert event.get("objectRef") == case.object_ref, case.name
    assert event["responseStatus"] == {"metadata": {}, "code": case.code}, case.name
    assert event["kind"] == "Event", case.name
    assert event["apiVersion"] == "audit.k8s.io/v1", case.name
    assert event["stage"] == "ResponseComplete", case.name
    assert event["level"] == "Metadata", case.name
    assert event["user"] == {
        "username": "jane",
        "uid": "u-1",
        "groups": ["dev", "system:authenticated"],
    }
    assert event["sourceIPs"] == ["10.1.2.3"]
    assert event["userAgent"] == "kpyctl/1.0 grpc-python"
    assert event["requestReceivedTimestamp"] == "2026-12-07T12:00:00.000000Z"
    assert "requestObject" not in event, case.name
    assert "responseObject" not in event, case.name
    assert context.trailing == ((audit.AUDIT_ID_KEY, event["auditID"]),), case.name


async def test_a_failure_has_its_status_and_keeps_the_audit_id() -> None:
    missing = errors.NotFound('pods "web" not found', kind="pods", name="web")
    event, context = await call("Get", api.GetRequest(ref=ref("pods", name="web")), fail=missing)
    assert event["responseStatus"] == {
        "metadata": {},
        "status": "Failure",
        "message": 'pods "web" not found',
        "reason": "NotFound",
        "code": 404,
    }
    assert (audit.AUDIT_ID_KEY, event["auditID"]) in context.trailing


async def test_request_and_response_objects_by_level() -> None:
    cm = ConfigMap()
    cm.metadata.name = "settings"
    cm.data["mode"] = "fast"
    request = api.CreateRequest(ref=ref("configmaps", ns="dev"), object=cm.SerializeToString())
    response = api.ObjectResponse(object=cm.SerializeToString())
    metadata, _ = await call("Create", request, response, level="Metadata")
    assert "requestObject" not in metadata
    req, _ = await call("Create", request, response, level="Request")
    assert req["requestObject"]["data"] == {"mode": "fast"}
    assert req["requestObject"]["kind"] == "ConfigMap"
    assert "responseObject" not in req
    full, _ = await call("Create", request, response, level="RequestResponse")
    assert full["responseObject"]["metadata"]["name"] == "settings"
    listed, _ = await call(
        "List",
        api.ListRequest(ref=ref("configmaps", ns="dev")),
        api.ListResponse(items=[cm.SerializeToString()], resource_version="7"),
        level="RequestResponse",
    )
    assert listed["responseObject"]["kind"] == "ConfigMapList"
    assert listed["responseObject"]["items"][0]["data"] == {"mode": "fast"}
    patched, _ = await call(
        "Patch",
        api.PatchRequest(
            ref=ref("deployments", group="apps", ns="dev", name="d"), patch=b'{"a":1}'
        ),
        api.ObjectResponse(object=Deployment().SerializeToString()),
        level="Request",
    )
    assert patched["requestObject"] == {"a": 1}


async def test_secret_values_never_appear_at_any_level() -> None:
    secret = Secret()
    secret.metadata.name = "db"
    secret.data["password"] = b"s3cret-plaintext"
    secret.string_data["token"] = "t0ken-plaintext"
    body = secret.SerializeToString()
    calls: list[tuple[str, Any, Any]] = [
        (
            "Create",
            api.CreateRequest(ref=ref("secrets", ns="dev"), object=body),
            api.ObjectResponse(object=body),
        ),
        (
            "Update",
            api.UpdateRequest(ref=ref("secrets", ns="dev", name="db"), object=body),
            api.ObjectResponse(object=body),
        ),
        (
            "Patch",
            api.PatchRequest(
                ref=ref("secrets", ns="dev", name="db"),
                patch=b'{"stringData":{"k":"t0ken-plaintext"}}',
            ),
            api.ObjectResponse(object=body),
        ),
        (
            "Get",
            api.GetRequest(ref=ref("secrets", ns="dev", name="db")),
            api.ObjectResponse(object=body),
        ),
        ("List", api.ListRequest(ref=ref("secrets", ns="dev")), api.ListResponse(items=[body])),
        (
            "Delete",
            api.DeleteRequest(ref=ref("secrets", ns="dev", name="db")),
            api.DeleteResponse(object=body),
        ),
    ]
    for method, request, response in calls:
        event, _ = await call(method, request, response, level="RequestResponse")
        text = json.dumps(event)
        assert "plaintext" not in text, f"{method}: {text}"
        assert "czNjcmV0" not in text, f"{method}: {text}"  # base64 of s3cret
        assert "requestObject" not in event, method
        assert "responseObject" not in event, method
        assert event["objectRef"]["resource"] == "secrets", method


async def test_annotations_and_a_none_level() -> None:
    recorded = Recorded()
    auditor = Auditor(policy_at("Metadata"), recorded)

    async def handler(request: Any, context: FakeContext) -> Any:
        audit.annotate("authorization.k8s.io/decision", "allow")
        return api.ObjectResponse()

    wrapped = auditor.wrap("Get", grpc.unary_unary_rpc_method_handler(handler))
    await wrapped.unary_unary(api.GetRequest(ref=ref("pods", name="w")), FakeContext())
    assert recorded.events[0]["annotations"] == {"authorization.k8s.io/decision": "allow"}
    silent = Recorded()
    quiet = Auditor(policy_at("None"), silent).wrap(
        "Get", grpc.unary_unary_rpc_method_handler(handler)
    )
    await quiet.unary_unary(api.GetRequest(ref=ref("pods", name="w")), FakeContext())
    assert silent.events == []
    audit.annotate("outside", "a call")  # no current call: nothing, no error


async def test_a_stream_has_started_and_complete_events() -> None:
    recorded = Recorded()
    auditor = Auditor(policy_at("Metadata"), recorded)

    async def watch(request: Any, context: FakeContext) -> Any:
        yield b"one"
        yield b"two"

    wrapped = auditor.wrap("Watch", grpc.unary_stream_rpc_method_handler(watch))
    got = [
        r
        async for r in wrapped.unary_stream(
            api.WatchRequest(ref=ref("pods", ns="dev")), FakeContext()
        )
    ]
    assert got == [b"one", b"two"]
    assert [e["stage"] for e in recorded.events] == ["ResponseStarted", "ResponseComplete"]
    assert recorded.events[0]["auditID"] == recorded.events[1]["auditID"]
    omitting = Recorded()
    policy = parse_policy(
        {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["ResponseStarted"],
            "rules": [{"level": "Metadata"}],
        }
    )
    wrapped = Auditor(policy, omitting).wrap("Watch", grpc.unary_stream_rpc_method_handler(watch))
    _ = [r async for r in wrapped.unary_stream(api.WatchRequest(ref=ref("pods")), FakeContext())]
    assert [e["stage"] for e in omitting.events] == ["ResponseComplete"]


# --- the log ----------------------------------------------------------------------------


def test_a_full_buffer_drops_and_warns_at_powers_of_ten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = AuditOptions(
        policy=policy_at("Metadata"), path=str(tmp_path / "a.log"), buffer_size=2
    )
    log = AuditLog(options)
    with caplog.at_level(logging.WARNING, logger="kpy.apiserver.audit"):
        for i in range(2 + 120):
            log.record({"n": i})
    assert log.dropped == 120
    warned = [r.dropped for r in caplog.records if "dropped" in r.getMessage()]  # type: ignore[attr-defined]
    assert warned == [1, 10, 100]


async def test_the_writer_writes_json_lines_and_flushes_on_stop(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "audit.log"
    log = AuditLog(AuditOptions(policy=policy_at("Metadata"), path=str(path)))
    async with anyio.create_task_group() as tg:
        await tg.start(log.run)
        log.record({"n": 1})
        with anyio.fail_after(10):
            while not path.read_text():  # noqa: ASYNC110  (the writer's thread sets no event)
                await anyio.sleep(0.01)
        log.record({"n": 2})
        tg.cancel_scope.cancel()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"n": 1}, {"n": 2}]


def test_rotation_by_size_keeps_max_backups_and_drops_old_ones(tmp_path: Path) -> None:
    clock = [T0]
    path = tmp_path / "audit.log"
    options = AuditOptions(
        policy=policy_at("Metadata"), path=str(path), max_size_mb=1, max_backups=2
    )
    log = AuditLog(options, now=lambda: clock[0])
    log._open()
    big = {"pad": "x" * (600 * 1024)}
    for i in range(5):  # two events pass a megabyte: every write after the first rotates
        log._write([{**big, "n": i}])
        clock[0] += datetime.timedelta(days=1)
    log._close()
    backups = log.backups()
    assert [p.name for p in backups] == [
        "audit-2026-12-11T12-00-00.000.log",
        "audit-2026-12-10T12-00-00.000.log",
    ]
    assert path.stat().st_size < 1024 * 1024
    assert json.loads(path.read_text())["n"] == 4
    aged = AuditLog(
        AuditOptions(policy=policy_at("Metadata"), path=str(path), max_size_mb=1, max_age_days=2),
        now=lambda: T0 + datetime.timedelta(days=13),
    )
    aged._remove_old_backups()
    assert aged.backups() == [], "backups older than max_age_days are removed"


async def test_an_unwritable_log_fails_at_start_naming_the_flag(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    log = AuditLog(
        AuditOptions(policy=policy_at("Metadata"), path=str(tmp_path / "file" / "a.log"))
    )
    with pytest.raises(OSError, match=r"--audit-log-path .*a\.log: cannot open it for writing"):
        await log.run()

"""The API server's audit log (issue 23, part 6), against a real etcd: a
private API server in this process with TLS, a token for a named user, an
audit policy and a log file; calls through the SDK (create, get, list, a
watch, a failing get, a Secret) and raw gRPC (the audit-id metadata), then
the log read back: one event per call, with its level, user, verb, URI and
code, and no Secret value anywhere in the file."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import TYPE_CHECKING, Any

import anyio
import grpc
import grpc.aio
import pytest

from kpy import pki
from kpy.api import errors
from kpy.api.core.v1 import ConfigMap, Namespace, Secret
from kpy.apiserver import main as apiserver_main
from kpy.apiserver.audit import AUDIT_ID_KEY, AuditOptions, load_policy
from kpy.apiserver.authentication import TLSConfig
from kpy.auth.attributes import UserInfo
from kpy.auth.authentication import Chain, TokenAuthenticator
from kpy.client import Client
from kpy.client.config import load_config
from kpy.rpc.apiserver import v1 as api
from tests.integration._apiserver import serving

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from kpy.apiserver.server import APIServer
    from kpy.storage import EtcdServer

pytestmark = pytest.mark.etcd

CA = pki.new_ca("audit-ca")
SERVING = pki.issue_server(CA)
TOKEN = "jane-token"
JANE = UserInfo("jane", ("system:masters", "system:authenticated"), uid="u-jane")
NS = "audited"
PLAINTEXT = "hunter2-plaintext"

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    resources: [{group: coordination.k8s.io}]
  - level: RequestResponse
    resources: [{group: "", resources: [secrets]}]
  - level: Request
    verbs: [create]
  - level: Metadata
"""


@contextlib.asynccontextmanager
async def audited_server(etcd_server: EtcdServer, tmp_path: Path) -> AsyncIterator[APIServer]:
    """A TLS API server taking TOKEN as JANE, auditing by POLICY into
    tmp_path/audit.log; stopped (and its log flushed) on exit."""
    (tmp_path / "policy.yaml").write_text(POLICY)
    async with serving(
        etcd_server,
        "audit",
        tls=TLSConfig(SERVING.cert_pem, SERVING.key_pem),
        authenticators=Chain([TokenAuthenticator({TOKEN: JANE})]),
        audit=AuditOptions(
            policy=load_policy(tmp_path / "policy.yaml"), path=str(tmp_path / "audit.log")
        ),
    ) as server:
        yield server


def client_config(tmp_path: Path, port: int) -> Path:
    (tmp_path / "ca.crt").write_bytes(CA.cert_pem)
    path = tmp_path / "kpy-config"
    path.write_text(
        f"servers: [127.0.0.1:{port}]\ncertificate-authority: {tmp_path / 'ca.crt'}\n"
        f"token: {TOKEN}\n"
    )
    return path


def events_of(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def find(events: list[dict[str, Any]], **want: Any) -> list[dict[str, Any]]:
    """The events whose top-level fields (and objectRef's, as ref_*) are `want`."""
    out = []
    for e in events:
        ref = e.get("objectRef", {})
        if all(
            (ref.get(k[4:]) if k.startswith("ref_") else e.get(k)) == v for k, v in want.items()
        ):
            out.append(e)
    return out


@pytest.mark.timeout(120)
async def test_calls_are_audited_by_policy(etcd_server: EtcdServer, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    async with audited_server(etcd_server, tmp_path) as server:
        async with Client(load_config(client_config(tmp_path, server.port))) as client:
            ns = Namespace()
            ns.metadata.name = NS
            await client.create(ns)
            cm = ConfigMap()
            cm.metadata.name = "settings"
            cm.data["mode"] = "fast"
            await client.create(cm, namespace=NS)
            await client.get(ConfigMap, "settings", namespace=NS)
            await client.list(ConfigMap, namespace=NS)
            async with client.watch(ConfigMap, namespace=NS) as watch:
                with anyio.fail_after(10):
                    async for event in watch:
                        assert event.object.metadata.name == "settings"
                        break
            with pytest.raises(errors.NotFound):
                await client.get(ConfigMap, "missing", namespace=NS)
            secret = Secret()
            secret.metadata.name = "db"
            secret.data["password"] = PLAINTEXT.encode()
            secret.string_data["token"] = PLAINTEXT
            await client.create(secret, namespace=NS)
            await client.get(Secret, "db", namespace=NS)

        # A raw call: the audit ID comes back in the trailing metadata, on a failure too.
        credentials = grpc.ssl_channel_credentials(root_certificates=CA.cert_pem)
        async with grpc.aio.secure_channel(f"127.0.0.1:{server.port}", credentials) as channel:
            stub = api.APIStub(channel)
            missing = api.ResourceRef(version="v1", resource="pods", namespace=NS, name="nope")
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Get(
                    api.GetRequest(ref=missing), metadata=(("authorization", f"Bearer {TOKEN}"),)
                )
            trailing = dict(raised.value.trailing_metadata() or ())
            raw_id = trailing.get(AUDIT_ID_KEY)
            assert raw_id, trailing
            with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
                await stub.Get(api.GetRequest(ref=missing))  # no token
            assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
            stranger_id = dict(unauthenticated.value.trailing_metadata() or ()).get(AUDIT_ID_KEY)
            ok = stub.Get(
                api.GetRequest(ref=cm_ref("configmaps", "settings")),
                metadata=(("authorization", f"Bearer {TOKEN}"),),
            )
            await ok
            ok_id = dict(await ok.trailing_metadata() or ()).get(AUDIT_ID_KEY)
            assert ok_id
    # The server has stopped: its writer wrote every event before it ended.
    text = log.read_text()
    assert PLAINTEXT not in text
    assert base64.b64encode(PLAINTEXT.encode()).decode() not in text
    events = events_of(log)
    # A caller refused before any handler ran is audited too, as anonymous.
    [stranger] = [e for e in events if e["auditID"] == stranger_id]
    assert stranger["user"]["username"] == "system:anonymous"
    assert stranger["responseStatus"]["code"] == 401
    assert stranger["responseStatus"]["reason"] == "Unauthorized"
    events.remove(stranger)
    for e in events:
        assert e["apiVersion"] == "audit.k8s.io/v1", e
        assert e["kind"] == "Event", e
        assert e["user"] == {
            "username": "jane",
            "uid": "u-jane",
            "groups": ["system:masters", "system:authenticated"],
        }, e
        assert e["sourceIPs"] == ["127.0.0.1"], e
        assert e["userAgent"], e
        assert e["requestReceivedTimestamp"] <= e["stageTimestamp"], e
    assert not find(events, ref_apiGroup="coordination.k8s.io"), "level None logs nothing"
    assert not find(events, stage="RequestReceived"), "omitted by the policy"

    [created] = find(events, verb="create", ref_resource="configmaps")
    assert created["level"] == "Request"
    assert created["requestURI"] == f"/api/v1/namespaces/{NS}/configmaps"
    assert created["objectRef"]["name"] == "settings"
    assert created["responseStatus"]["code"] == 201
    assert created["requestObject"]["data"] == {"mode": "fast"}
    assert "responseObject" not in created

    got = find(events, verb="get", ref_resource="configmaps", ref_name="settings")
    assert len(got) == 2, got  # the SDK's and the raw one
    assert got[0]["level"] == "Metadata"
    assert got[0]["requestURI"] == f"/api/v1/namespaces/{NS}/configmaps/settings"
    assert got[0]["responseStatus"] == {"metadata": {}, "code": 200}
    assert "requestObject" not in got[0]
    assert ok_id in {e["auditID"] for e in got}

    [listed] = find(events, verb="list", ref_resource="configmaps")
    assert listed["requestURI"].startswith(f"/api/v1/namespaces/{NS}/configmaps")

    watched = find(events, verb="watch", ref_resource="configmaps")
    assert [e["stage"] for e in watched] == ["ResponseStarted", "ResponseComplete"], watched
    assert watched[0]["auditID"] == watched[1]["auditID"]
    assert "watch=true" in watched[0]["requestURI"]

    [failed] = find(events, verb="get", ref_name="missing")
    assert failed["responseStatus"]["code"] == 404
    assert failed["responseStatus"]["reason"] == "NotFound"
    assert failed["responseStatus"]["status"] == "Failure"
    [raw] = find(events, auditID=raw_id)
    assert raw["responseStatus"]["code"] == 404
    assert raw["requestURI"] == f"/api/v1/namespaces/{NS}/pods/nope"

    secrets = find(events, ref_resource="secrets")
    assert [(e["verb"], e["responseStatus"]["code"]) for e in secrets] == [
        ("create", 201),
        ("get", 200),
    ]
    for e in secrets:
        assert e["level"] == "RequestResponse"
        assert "requestObject" not in e
        assert "responseObject" not in e


def cm_ref(resource: str, name: str) -> api.ResourceRef:
    return api.ResourceRef(version="v1", resource=resource, namespace=NS, name=name)


def test_audit_flags_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text(POLICY.replace("level: Metadata", "level: Loud"))
    (tmp_path / "good.yaml").write_text(POLICY)
    cases = [
        (
            ["--audit-policy-file", str(tmp_path / "bad.yaml"), "--audit-log-path", "-"],
            "rules[3].level",
        ),
        (["--audit-policy-file", str(tmp_path / "good.yaml")], "needs --audit-log-path"),
        (["--audit-log-maxsize", "-1"], "--audit-log-maxsize must not be negative"),
        (
            [
                "--audit-policy-file",
                str(tmp_path / "good.yaml"),
                "--audit-log-path",
                "x.log",
                "--workers",
                "2",
            ],
            "workers cannot share",
        ),
    ]
    for argv, error in cases:
        parser = apiserver_main._parser()
        args = parser.parse_args(argv)
        with pytest.raises(SystemExit) as raised:
            apiserver_main._audit(parser, args)
        assert raised.value.code == 2, argv
        assert error in capsys.readouterr().err, argv
    parser = apiserver_main._parser()
    args = parser.parse_args(
        ["--audit-policy-file", str(tmp_path / "good.yaml"), "--audit-log-path", "-"]
    )
    options = apiserver_main._audit(parser, args)
    assert options is not None
    assert options.path == "-"
    assert options.policy.rules[1].level == "RequestResponse"

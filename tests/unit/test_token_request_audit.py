"""A TokenRequest's token never reaches the audit log, at any level: the
auditor records no body of a subresource (kpy.apiserver.audit)."""

from __future__ import annotations

import json

from kpy.api.authentication.v1 import TokenRequest
from kpy.rpc.apiserver import v1 as api
from tests.unit.test_audit_events import call, ref


async def test_tokens_never_appear_in_audit_events() -> None:
    answer = TokenRequest()
    answer.metadata.name = "robot"
    answer.status.token = "eyJhbGciOiJFUzI1NiJ9.secret-claims.secret-signature"
    request = api.CreateRequest(
        ref=ref("serviceaccounts", ns="dev", name="robot", sub="token"),
        object=TokenRequest().SerializeToString(),
    )
    for level in ("Metadata", "Request", "RequestResponse"):
        event, _ = await call(
            "Create", request, api.ObjectResponse(object=answer.SerializeToString()), level=level
        )
        text = json.dumps(event)
        assert "secret-signature" not in text, f"{level}: {text}"
        assert "responseObject" not in event, level
        assert event["objectRef"]["subresource"] == "token", level
        assert event["verb"] == "create", level

"""FakeClient.request_token: what controllers and the agent are tested
against (C2's token projection) answers as the server would."""

from __future__ import annotations

import pytest

from kpy.api import errors
from kpy.api.authentication.v1 import TokenRequest
from kpy.api.core.v1 import Pod, ServiceAccount
from kpy.client.fake import Action, FakeClient


def _client() -> tuple[FakeClient, Pod]:
    client = FakeClient(now=lambda: 1000.0)
    account = ServiceAccount()
    account.metadata.name, account.metadata.namespace = "robot", "dev"
    pod = Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "web", "dev", "uid-web"
    client.add(account, pod)
    return client, pod


async def test_request_token_answers_a_fake_token() -> None:
    client, pod = _client()
    first = await client.request_token("dev", "robot", audiences=["api"], bound_pod=pod)
    second = await client.request_token("dev", "robot", expiration_seconds=200_000)
    assert first.status.token == "fake-token-1-dev-robot"
    assert second.status.token == "fake-token-2-dev-robot"
    assert first.status.expiration_timestamp.seconds == 1000 + 3600
    assert second.spec.expiration_seconds == 48 * 3600  # cut, as the server cuts it
    assert list(second.spec.audiences) == ["kpy-fake"]
    ref = first.spec.bound_object_ref
    assert (ref.kind, ref.name, ref.uid) == ("Pod", "web", "uid-web")
    action = client.actions[0]
    assert (action.verb, action.kind, action.namespace, action.name, action.subresource) == (
        "create",
        "ServiceAccount",
        "dev",
        "robot",
        "token",
    )
    assert list(action.object.spec.audiences) == ["api"]


async def test_request_token_refusals() -> None:
    client, pod = _client()
    with pytest.raises(errors.NotFound):
        await client.request_token("dev", "nobody")
    with pytest.raises(errors.Invalid, match="less than 10 minutes"):
        await client.request_token("dev", "robot", expiration_seconds=60)
    stale = Pod()
    stale.CopyFrom(pod)
    stale.metadata.uid = "old"
    with pytest.raises(errors.Conflict):
        await client.request_token("dev", "robot", bound_pod=stale)


async def test_a_reactor_answers_or_fails_token_requests() -> None:
    client, _ = _client()
    answer = TokenRequest()
    answer.status.token = "from-reactor"

    def react(action: Action) -> TokenRequest | None:
        return answer if action.subresource == "token" else None

    client.prepend_reactor("create", "ServiceAccount", react)
    assert (await client.request_token("dev", "robot")).status.token == "from-reactor"
    client.fail("create", "ServiceAccount", errors.Forbidden("no"))
    with pytest.raises(errors.Forbidden):
        await client.request_token("dev", "robot")

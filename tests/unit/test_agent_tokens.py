"""The agent's service account tokens (kpy/agent/tokens.py) on the fake
client and a fake clock: got for each serviceAccountToken projection,
bound to the pod, refreshed before 80% of their lifetime (or 24 h), kept
while a refresh fails, stopped with the pod; a failure leaves the volume
not ready with the reason; a refreshed token reaches the file atomically."""

from __future__ import annotations

import os
from collections import Counter
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

from kpy.agent.env import PodContext
from kpy.agent.objects import ObjectManager
from kpy.agent.tokens import TokenKey, TokenManager, refresh_at, token_keys
from kpy.agent.volumes import VolumeError, VolumeManager
from kpy.api import errors
from kpy.api.codec import from_dict
from kpy.api.core.v1 import (
    ConfigMap,
    Pod,
    ServiceAccount,
    ServiceAccountTokenProjection,
    Volume,
)
from kpy.apiserver.admission import api_access_volume
from kpy.client.fake import FakeClient
from kpy.clock import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

START = 1_800_000_000.0  # wall seconds
HOUR = 3600.0


@pytest.mark.parametrize(
    ("name", "issued", "expires", "jitter", "want"),
    [
        ("kube-api-access's 3607 s: at 80%", 0.0, 3607.0, 0.0, 2885.6),
        ("an hour: at 48 min", 100.0, 100.0 + HOUR, 0.0, 100.0 + 2880.0),
        ("48 h: at 24 h, not 38.4 h", 0.0, 48 * HOUR, 0.0, 24 * HOUR),
        ("a year (extended): at 24 h", 0.0, 365 * 24 * HOUR, 0.0, 24 * HOUR),
        ("the jitter comes off", 0.0, HOUR, 7.0, 2880.0 - 7.0),
        ("expired on arrival: now", 50.0, 10.0, 0.0, 50.0),
    ],
)
def test_refresh_at(name: str, issued: float, expires: float, jitter: float, want: float) -> None:
    assert refresh_at(issued, expires, jitter) == pytest.approx(want), name


def projection(**fields: Any) -> dict[str, Any]:
    return {"serviceAccountToken": {"path": "token", **fields}}


@pytest.mark.parametrize(
    ("name", "volumes", "want"),
    [
        ("no volumes", [], set()),
        (
            "admission's kube-api-access volume",
            [api_access_volume("kube-api-access-abcde")],
            {TokenKey("", 3607)},
        ),
        (
            "the lifetime defaults to an hour",
            [{"name": "t", "projected": {"sources": [projection()]}}],
            {TokenKey("", 3600)},
        ),
        (
            "one token per audience and lifetime, however many volumes ask",
            [
                {"name": "a", "projected": {"sources": [projection(audience="vault")]}},
                {"name": "b", "projected": {"sources": [projection(audience="vault")]}},
                {"name": "c", "projected": {"sources": [projection(expirationSeconds=600)]}},
            ],
            {TokenKey("vault", 3600), TokenKey("", 600)},
        ),
        ("a configMap volume asks for none", [{"name": "c", "configMap": {"name": "x"}}], set()),
    ],
)
def test_token_keys(name: str, volumes: list[Any], want: set[TokenKey]) -> None:
    p = from_dict(Pod, {"spec": {"containers": [{"name": "app", "image": "busybox"}]}})
    for v in volumes:
        p.spec.volumes.append(v if isinstance(v, Volume) else from_dict(Volume, v))
    assert token_keys(p) == want, name


class Woken:
    """The `wake` callback, counting per pod."""

    def __init__(self) -> None:
        self.uids: Counter[str] = Counter()

    def __call__(self, uid: str) -> None:
        self.uids[uid] += 1


def a_pod(uid: str = "uid-1", *, account: str = "", seconds: int = 3607) -> Pod:
    p = from_dict(
        Pod,
        {
            "metadata": {"name": f"web-{uid}", "namespace": "dev", "uid": uid},
            "spec": {
                "serviceAccountName": account,
                "containers": [{"name": "app", "image": "busybox"}],
                "volumes": [
                    {
                        "name": "kube-api-access-abcde",
                        "projected": {
                            "sources": [projection(expirationSeconds=seconds)],
                        },
                    }
                ],
            },
        },
    )
    if not account:
        p.spec.ClearField("service_account_name")
    return p


def the_projection(p: Pod) -> ServiceAccountTokenProjection:
    return p.spec.volumes[0].projected.sources[0].service_account_token


def requests(client: FakeClient) -> list[str]:
    """Each token request: `namespace/account bound to pod/uid`."""
    return [
        f"{a.namespace}/{a.name} bound to {a.object.spec.bound_object_ref.name}"
        for a in client.actions
        if a.subresource == "token"
    ]


async def settle() -> None:
    """Lets every task woken by the fake clock run to its next wait."""
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


def account(name: str = "default") -> ServiceAccount:
    sa = ServiceAccount()
    sa.metadata.name, sa.metadata.namespace = name, "dev"
    return sa


@asynccontextmanager
async def running(
    client: FakeClient, clock: FakeClock, woken: Woken
) -> AsyncIterator[TokenManager]:
    tokens = TokenManager(client, woken, clock=clock, jitter=lambda: 0.0)
    async with anyio.create_task_group() as tg:
        await tg.start(tokens.run)
        yield tokens
        tg.cancel_scope.cancel()


def world() -> tuple[FakeClient, FakeClock, Woken]:
    clock = FakeClock(start=START)
    return FakeClient(now=clock.now), clock, Woken()


async def test_a_token_is_got_bound_to_the_pod_and_refreshed_at_80_percent() -> None:
    client, clock, woken = world()
    p = a_pod()
    client.add(account(), p)
    async with running(client, clock, woken) as tokens:
        tokens.track(p)
        with anyio.fail_after(5):
            await tokens.wait_for_pod("uid-1")
        assert tokens.token(p, the_projection(p)) == b"fake-token-1-dev-default"
        assert requests(client) == ["dev/default bound to web-uid-1"]
        assert woken.uids["uid-1"] == 1
        clock.advance(0.79 * 3607)
        await settle()
        assert len(requests(client)) == 1, "not yet: before 80% of 3607 s"
        clock.advance(0.02 * 3607)
        await settle()
        assert len(requests(client)) == 2, "refreshed once 80% passed"
        assert tokens.token(p, the_projection(p)) == b"fake-token-2-dev-default"
        assert woken.uids["uid-1"] == 2, "the new token wakes the pod (its volume is rewritten)"
        assert tokens.statistics().ready == 1


async def test_a_named_account_and_an_audience() -> None:
    client, clock, woken = world()
    p = a_pod(account="builder")
    p.spec.volumes[0].projected.sources[0].service_account_token.audience = "vault"
    client.add(account("builder"), p)
    async with running(client, clock, woken) as tokens:
        tokens.track(p)
        await tokens.wait_for_pod("uid-1")
        sent = [a.object for a in client.actions if a.subresource == "token"]
        assert [(a.metadata.name, list(a.spec.audiences)) for a in sent] == [("builder", ["vault"])]
        assert sent[0].spec.expiration_seconds == 3607


async def test_a_failed_request_leaves_the_volume_not_ready_then_retries() -> None:
    client, clock, woken = world()
    p = a_pod()
    client.add(p)  # no ServiceAccount yet
    async with running(client, clock, woken) as tokens:
        tokens.track(p)
        await tokens.wait_for_pod("uid-1")
        assert woken.uids["uid-1"] == 1, "the first answer wakes the pod, even a failure"
        with pytest.raises(VolumeError, match=r'failed to fetch token: .*"default" not found'):
            tokens.token(p, the_projection(p))
        client.add(account())
        clock.advance(1.5)  # the first back-off: 1 s to 1.2 s
        await settle()
        assert tokens.token(p, the_projection(p)) == b"fake-token-1-dev-default"
        assert woken.uids["uid-1"] == 2


async def test_a_failed_refresh_keeps_the_valid_token() -> None:
    client, clock, woken = world()
    p = a_pod()
    client.add(account(), p)
    async with running(client, clock, woken) as tokens:
        tokens.track(p)
        await tokens.wait_for_pod("uid-1")
        client.fail("create", "ServiceAccount", errors.Unavailable("the API server is away"))
        clock.advance(0.81 * 3607)
        await settle()
        assert len(requests(client)) == 2
        assert tokens.token(p, the_projection(p)) == b"fake-token-1-dev-default"
        clock.advance(0.2 * 3607)  # past its expiry, still failing
        await settle()
        with pytest.raises(VolumeError, match="failed to fetch token: the API server is away"):
            tokens.token(p, the_projection(p))


async def test_untrack_stops_the_refreshes() -> None:
    client, clock, woken = world()
    p, other = a_pod(), a_pod("uid-2")
    client.add(account(), p, other)
    async with running(client, clock, woken) as tokens:
        tokens.track(p)
        tokens.track(other)
        await tokens.wait_for_pod("uid-1")
        await tokens.wait_for_pod("uid-2")
        tokens.untrack("uid-1")
        await settle()
        clock.advance(25 * HOUR)
        await settle()
        assert requests(client).count("dev/default bound to web-uid-1") == 1
        assert requests(client).count("dev/default bound to web-uid-2") > 1
        assert tokens.statistics().pods == 1
        with pytest.raises(VolumeError):
            tokens.token(p, the_projection(p))


async def test_a_pod_without_tokens_costs_nothing() -> None:
    client, clock, woken = world()
    p = from_dict(Pod, {"metadata": {"uid": "u"}, "spec": {"containers": [{"name": "a"}]}})
    async with running(client, clock, woken) as tokens:
        tokens.track(p)
        await tokens.wait_for_pod("u")
        assert tokens.statistics().pods == 0
        assert requests(client) == []


async def test_the_refreshed_token_is_written_to_the_volume_atomically(tmp_path: Path) -> None:
    """Through the agent's ObjectManager (which owns the token manager) and
    the VolumeManager: the token file follows the refresh, and the old
    version directory is replaced by one swap of `..data`."""
    client, clock, woken = world()
    p = a_pod()
    p.spec.volumes[0].CopyFrom(api_access_volume("kube-api-access-abcde"))
    ca = ConfigMap(data={"ca.crt": "PEM"})
    ca.metadata.name, ca.metadata.namespace = "kube-root-ca.crt", "dev"
    client.add(account(), p, ca)
    objects = ObjectManager(client, woken, clock=clock)
    volumes = VolumeManager(tmp_path, clock=clock.now)
    ctx = PodContext()
    async with anyio.create_task_group() as tg:
        await tg.start(objects.run)
        objects.track(p)
        with anyio.fail_after(5):
            await objects.wait_for_pod("uid-1")
        paths = volumes.prepare(p, objects, ctx)
        volume = paths["kube-api-access-abcde"]
        assert (volume / "token").read_text() == "fake-token-1-dev-default"
        assert (volume / "ca.crt").read_text() == "PEM"
        assert (volume / "namespace").read_text() == "dev"
        before = os.readlink(volume / "..data")
        clock.advance(0.81 * 3607)
        await settle()
        assert volumes.refresh(p, objects, ctx), "the new token is written"
        assert (volume / "token").read_text() == "fake-token-2-dev-default"
        assert os.readlink(volume / "..data") != before
        assert not (volume / before).exists(), "the old version is removed"
        objects.untrack("uid-1")
        assert objects.tokens.statistics().pods == 0
        tg.cancel_scope.cancel()

"""The SDK never writes twice, and never misreports a write, when an API
server dies under it (issue 14): two API servers over one etcd, one killed by
its pid in the middle of many creates."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kpy.api import errors
from kpy.api.core.v1 import ConfigMap, Namespace
from kpy.apiserver.process import APIServerProcess
from kpy.client import Client
from kpy.rpc.apiserver import v1 as api

if TYPE_CHECKING:
    from kpy.storage import EtcdServer

pytestmark = pytest.mark.etcd

N = 1500
CONCURRENCY = 40
KILL_AFTER = 400  # creates answered before the first API server is killed


def _config_map(i: int) -> ConfigMap:
    cm = ConfigMap()
    if i % 2:
        cm.metadata.generate_name = "gen-"
    else:
        cm.metadata.name = f"named-{i}"
    cm.data["i"] = str(i)
    return cm


@pytest.mark.timeout(300)
async def test_killed_apiserver_leaves_exactly_n_objects(
    etcd_server: EtcdServer, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kpy.client")
    first = APIServerProcess(etcd_server.endpoint, bookmark_interval=0.5)
    second = APIServerProcess(etcd_server.endpoint, bookmark_interval=0.5)
    first.start()
    second.start()
    pids = [first.pid, second.pid]
    try:
        async with Client([first.address, second.address], retry_timeout=60.0) as client:
            ns = Namespace()
            ns.metadata.name = namespace
            await client.create(ns)
            outcomes = await _create_while_killing(client, namespace, first)
            assert not first.running, "the first API server should have been killed"

            failures = {i: e for i, e in outcomes.items() if isinstance(e, BaseException)}
            assert not failures, (
                f"{len(failures)} creates failed, e.g. {next(iter(failures.items()))}"
            )
            created = {
                i: (o.metadata.name, o.metadata.uid)
                for i, o in outcomes.items()
                if isinstance(o, ConfigMap)
            }
            stored = await client.list(ConfigMap, namespace=namespace)
            by_i = {}
            for cm in stored.items:
                assert cm.data["i"] not in by_i, f"object {cm.data['i']} is stored twice"
                by_i[int(cm.data["i"])] = (cm.metadata.name, cm.metadata.uid)
            assert len(stored.items) == N, f"{len(stored.items)} objects stored for {N} creates"
            assert by_i == created, "a create reported an object that is not the stored one"
            resolved = [r for r in caplog.records if "outcome unknown" in r.getMessage()]
            assert resolved, "no create was in flight when the server died: nothing was tested"
    finally:
        first.stop()
        second.stop()
    running = [pid for pid in pids if _alive(pid)]
    assert not running, f"kpy-apiserver pids {running} still run after stop()"


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def _create_while_killing(
    client: Client, namespace: str, victim: APIServerProcess
) -> dict[int, ConfigMap | BaseException]:
    """Creates N ConfigMaps, CONCURRENCY at a time; SIGKILLs `victim` (the
    client's first server) once KILL_AFTER are answered. Each create's
    outcome: the object returned, or the error raised."""
    outcomes: dict[int, ConfigMap | BaseException] = {}
    todo = iter(range(N))
    answered = 0

    async def worker() -> None:
        nonlocal answered
        for i in todo:
            try:
                outcomes[i] = await client.create(_config_map(i), namespace=namespace)
            except errors.StatusError as e:
                outcomes[i] = e
            answered += 1
            if answered == KILL_AFTER:
                os.kill(victim.pid, signal.SIGKILL)  # a crash, with calls in flight

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return outcomes


async def test_create_proposes_the_uid_and_ignores_the_body_uid(
    client: Client, api_namespace: str
) -> None:
    cm = ConfigMap()
    cm.metadata.name = "proposed"
    cm.metadata.uid = "4c1d7a52-0e4e-4a34-9a55-6a4ef7d0c0aa"  # copied from another object
    created = await client.create(cm)
    assert created.metadata.uid != cm.metadata.uid, "a uid in the body must be ignored"
    assert str(uuid.UUID(created.metadata.uid)) == created.metadata.uid

    # What the SDK sends: the uid in the request metadata is the one stored.
    proposed = str(uuid.uuid4())
    request = api.CreateRequest(
        ref=api.ResourceRef(version="v1", resource="configmaps", namespace=api_namespace),
        object=_named("by-metadata").SerializeToString(),
    )
    response = await client._call("Create", request, (("kpy-create-uid", proposed),))
    assert ConfigMap.FromString(response.object).metadata.uid == proposed
    stored = await client.get(ConfigMap, "by-metadata")
    assert stored.metadata.uid == proposed


async def test_generate_name_is_resolved_by_the_client(client: Client, api_namespace: str) -> None:
    cm = ConfigMap()
    cm.metadata.generate_name = "x" * 70
    created = await client.create(cm)
    assert created.metadata.name.startswith("x" * 58)
    assert len(created.metadata.name) == 63
    assert created.metadata.generate_name == "x" * 70

    bad = ConfigMap()
    bad.metadata.generate_name = "Bad_"
    with pytest.raises(errors.Invalid) as caught:
        await client.create(bad)
    paths = [c.path for c in caught.value.causes]
    assert paths == ["metadata.generateName"], caught.value.causes
    assert '"Bad_"' in caught.value.causes[0].detail, caught.value.causes[0].detail


def _named(name: str) -> ConfigMap:
    cm = ConfigMap()
    cm.metadata.name = name
    return cm

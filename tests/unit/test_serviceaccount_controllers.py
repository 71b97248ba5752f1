"""The ServiceAccount controller and the root CA publisher, table by table,
on the fake client (after Kubernetes' serviceaccounts_controller_test.go and
rootcacertpublisher's publisher_test.go)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import errors
from kpy.api.core.v1 import ConfigMap, Namespace, ServiceAccount
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.controllers import main as controller_manager_main
from kpy.controllers.root_ca_publisher import (
    CA_KEY,
    DESCRIPTION,
    DESCRIPTION_ANNOTATION,
    ROOT_CA_CONFIG_MAP,
    RootCACertPublisher,
)
from kpy.controllers.serviceaccount import ServiceAccountsController

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from google.protobuf.message import Message

    from kpy.controllers.every_namespace import PerNamespaceObjectController

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
ROTATED = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"


def namespace(name: str = "dev", *, phase: str = "Active", deleting: bool = False) -> Namespace:
    ns = Namespace()
    ns.metadata.name = name
    ns.status.phase = phase
    if deleting:
        ns.metadata.deletion_timestamp.FromSeconds(1)
    return ns


def account(name: str = "default", ns: str = "dev") -> ServiceAccount:
    sa = ServiceAccount()
    sa.metadata.name, sa.metadata.namespace = name, ns
    return sa


def config_map(data: dict[str, str], *, described: bool = True, ns: str = "dev") -> ConfigMap:
    cm = ConfigMap(data=data)
    cm.metadata.name, cm.metadata.namespace = ROOT_CA_CONFIG_MAP, ns
    if described:
        cm.metadata.annotations[DESCRIPTION_ANNOTATION] = DESCRIPTION
    return cm


TERMINATING = errors.Forbidden(
    "unable to create new content in namespace dev because it is being terminated",
    kind="namespaces",
    name="dev",
)


@dataclass(frozen=True)
class Case:
    name: str
    namespace: Namespace | None
    existing: list[Message] = field(default_factory=list)
    create_error: Exception | None = None
    #: the writes the sync makes, as `str(action)`
    writes: list[str] = field(default_factory=list)
    fails: bool = False


SERVICE_ACCOUNT_CASES = [
    Case(
        "active namespace without one: created",
        namespace(),
        writes=["create ServiceAccount dev/default"],
    ),
    Case("one exists: nothing", namespace(), existing=[account()]),
    Case(
        "another account exists: default still created",
        namespace(),
        existing=[account("builder")],
        writes=["create ServiceAccount dev/default"],
    ),
    Case("terminating namespace: nothing", namespace(phase="Terminating")),
    Case("namespace being deleted: nothing", namespace(deleting=True)),
    Case("namespace gone: nothing", None),
    Case(
        "made meanwhile (AlreadyExists): not an error",
        namespace(),
        create_error=errors.already_exists("serviceaccounts", "default"),
        writes=["create ServiceAccount dev/default"],
    ),
    Case(
        "namespace terminated meanwhile: not retried",
        namespace(),
        create_error=TERMINATING,
        writes=["create ServiceAccount dev/default"],
    ),
    Case(
        "another refusal: retried",
        namespace(),
        create_error=errors.Forbidden("serviceaccounts is forbidden", kind="serviceaccounts"),
        writes=["create ServiceAccount dev/default"],
        fails=True,
    ),
]


async def _sync(
    case: Case,
    client: FakeClient,
    controller: PerNamespaceObjectController[Any],
    namespaces: SharedInformer[Namespace],
    objects: SharedInformer[Any],
) -> None:
    """Seeds the caches and the store with the case, syncs namespace "dev"
    once, and checks the writes."""
    if case.namespace is not None:
        namespaces.indexer.add(client.add(case.namespace)[0])
    for obj in case.existing:
        objects.indexer.add(client.add(obj)[0])
    if case.create_error is not None:
        client.fail("create", "*", case.create_error)
    client.clear_actions()
    try:
        await controller.sync("dev")
    except errors.StatusError:
        assert case.fails, case.name
    else:
        assert not case.fails, case.name
    finally:
        controller.queue.shut_down()
    assert [str(a) for a in client.writes()] == case.writes, case.name


@pytest.mark.parametrize("case", SERVICE_ACCOUNT_CASES, ids=lambda c: c.name)
async def test_serviceaccount_sync(case: Case) -> None:
    client = FakeClient()
    namespaces = SharedInformer(client, Namespace)
    accounts = SharedInformer(client, ServiceAccount)
    controller = ServiceAccountsController(client, namespaces, accounts)
    await _sync(case, client, controller, namespaces, accounts)


PUBLISHER_CASES = [
    Case(
        "no ConfigMap: created with the CA and the description",
        namespace(),
        writes=["create ConfigMap dev/kube-root-ca.crt"],
    ),
    Case("right one: nothing", namespace(), existing=[config_map({CA_KEY: CA})]),
    Case(
        "data edited: set back",
        namespace(),
        existing=[config_map({CA_KEY: "tampered"})],
        writes=["update ConfigMap dev/kube-root-ca.crt"],
    ),
    Case(
        "a key added: set back to ca.crt alone",
        namespace(),
        existing=[config_map({CA_KEY: CA, "extra": "x"})],
        writes=["update ConfigMap dev/kube-root-ca.crt"],
    ),
    Case(
        "description removed: put back",
        namespace(),
        existing=[config_map({CA_KEY: CA}, described=False)],
        writes=["update ConfigMap dev/kube-root-ca.crt"],
    ),
    Case("terminating namespace: nothing", namespace(phase="Terminating")),
    Case("namespace gone: nothing", None),
    Case(
        "namespace terminated meanwhile: not retried",
        namespace(),
        create_error=TERMINATING,
        writes=["create ConfigMap dev/kube-root-ca.crt"],
    ),
]


@pytest.mark.parametrize("case", PUBLISHER_CASES, ids=lambda c: c.name)
async def test_root_ca_publisher_sync(case: Case, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(CA)
    client = FakeClient()
    namespaces = SharedInformer(client, Namespace)
    config_maps = SharedInformer(client, ConfigMap)
    controller = RootCACertPublisher(client, namespaces, ca_file, config_maps)
    await _sync(case, client, controller, namespaces, config_maps)
    if case.writes and not case.create_error:
        stored = client.stored(ConfigMap, ROOT_CA_CONFIG_MAP, "dev")
        assert stored is not None, case.name
        assert dict(stored.data) == {CA_KEY: CA}, case.name
        assert stored.metadata.annotations[DESCRIPTION_ANNOTATION] == DESCRIPTION, case.name


async def test_root_ca_file_edited_is_published_to_every_namespace(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(CA)
    client = FakeClient()
    namespaces = SharedInformer(client, Namespace)
    config_maps = SharedInformer(client, ConfigMap)
    controller = RootCACertPublisher(client, namespaces, ca_file, config_maps)
    for name in ("dev", "prod"):
        namespaces.indexer.add(client.add(namespace(name))[0])
        config_maps.indexer.add(client.add(config_map({CA_KEY: CA}, ns=name))[0])
    assert not controller.reload(), "an unchanged file enqueues nothing"
    ca_file.write_text("not a certificate")
    assert not controller.reload(), "a file without a certificate keeps the last CA"
    ca_file.write_text(ROTATED)
    assert controller.reload()
    assert sorted([await controller.queue.get(), await controller.queue.get()]) == ["dev", "prod"]
    for name in ("dev", "prod"):
        await controller.sync(name)
    controller.queue.shut_down()
    for name in ("dev", "prod"):
        stored = client.stored(ConfigMap, ROOT_CA_CONFIG_MAP, name)
        assert stored is not None
        assert stored.data[CA_KEY] == ROTATED, name


async def test_root_ca_publisher_without_file_does_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kpy.controllers.root_ca_publisher")
    client = FakeClient()
    namespaces = SharedInformer(client, Namespace)
    namespaces.indexer.add(client.add(namespace())[0])
    controller = RootCACertPublisher(client, namespaces, None, SharedInformer(client, ConfigMap))
    with anyio.fail_after(5):
        await controller.run(1)  # returns at once
    await controller.sync("dev")
    assert client.writes() == []
    said = [r.getMessage() for r in caplog.records if "root-ca-file" in r.getMessage()]
    assert len(said) == 1, said


def published(client: FakeClient) -> list[ConfigMap]:
    return [c for c in client.stored_list(ConfigMap) if c.metadata.name == ROOT_CA_CONFIG_MAP]


async def wait_until(done: Callable[[], bool]) -> None:
    while not done():  # noqa: ASYNC110 - the fake store has no event to wait on
        await anyio.sleep(0.01)


async def test_controllers_run_their_own_field_selected_informers(tmp_path: Path) -> None:
    """Run for real on the fake client: each watches only its one object
    per namespace, and puts back what is deleted."""
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(CA)
    client = FakeClient()
    client.add(namespace("dev"), namespace("prod"))
    client.add(config_map({"other": "x"}, ns="dev"))  # another ConfigMap is not watched
    namespaces = SharedInformer(client, Namespace)
    accounts = ServiceAccountsController(client, namespaces)
    publisher = RootCACertPublisher(client, namespaces, ca_file)
    async with anyio.create_task_group() as tg:
        tg.start_soon(namespaces.run)
        tg.start_soon(accounts.run, 1)
        tg.start_soon(publisher.run, 1)
        with anyio.fail_after(10):
            await wait_until(lambda: len(client.stored_list(ServiceAccount)) == 2)
            await wait_until(lambda: len(published(client)) == 2)
            await client.delete(ServiceAccount, "default", namespace="prod")
            await wait_until(lambda: client.stored(ServiceAccount, "default", "prod") is not None)
        watched = [
            a for a in client.actions if a.verb in ("list", "watch") and a.kind == "ConfigMap"
        ]
        assert watched, "the publisher lists ConfigMaps"
        tg.cancel_scope.cancel()
    assert sorted(publisher.objects.indexer.list_keys()) == [
        "dev/kube-root-ca.crt",
        "prod/kube-root-ca.crt",
    ]


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("a CA certificate", CA, ""),
        (
            "a key, not a certificate",
            "-----BEGIN EC PRIVATE KEY-----\n",
            "holds no PEM certificate",
        ),
        ("no such file", None, "cannot read it"),
    ],
)
def test_root_ca_file_flag(
    name: str,
    content: str | None,
    error: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "ca.crt"
    if content is not None:
        path.write_text(content)
    parser = controller_manager_main._parser()
    args = parser.parse_args(["--root-ca-file", str(path)])
    if not error:
        assert controller_manager_main._config(parser, args).root_ca_file == path, name
        return
    with pytest.raises(SystemExit) as exited:
        controller_manager_main._config(parser, args)
    assert exited.value.code == 2, name
    assert f"--root-ca-file {path}: {error}" in capsys.readouterr().err, name


def test_without_the_flag_nothing_is_published() -> None:
    parser = controller_manager_main._parser()
    assert controller_manager_main._config(parser, parser.parse_args([])).root_ca_file is None

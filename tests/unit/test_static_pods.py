"""Static pods: the transformations, mirror pods, and a real watched directory."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio
import pytest

from kpy.agent.static_pods import (
    CONFIG_HASH_ANNOTATION,
    CONFIG_SEEN_ANNOTATION,
    CONFIG_SOURCE_ANNOTATION,
    MIRROR_ANNOTATION,
    ManifestSource,
    is_mirror_pod,
    is_static_pod,
    mirror_matches,
    mirror_pod,
    static_pod,
)
from kpy.api import codec
from kpy.api.core.v1 import Node, Pod, Toleration
from kpy.api.meta.v1 import ObjectMeta

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

NODE = "node-1"
SEEN = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
# Long enough for a debounced re-read to have happened had one been due.
QUIET_SECONDS = 0.3


def pod_yaml(name: str = "web", image: str = "nginx:1.27", extra_meta: str = "") -> str:
    return (
        f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{extra_meta}"
        f"spec:\n  containers:\n  - name: main\n    image: {image}\n"
    )


def manifest(text: str = "") -> Pod:
    (pod,) = codec.load_manifest(text or pod_yaml())
    assert isinstance(pod, Pod)
    return pod


def node(uid: str = "node-uid-1") -> Node:
    return Node(metadata=ObjectMeta(name=NODE, uid=uid))


# ---------------------------------------------------------------- transformations


def test_static_pod_applies_kubelets_changes() -> None:
    source = manifest()
    pod = static_pod(
        source, node_name="Node-1", source_path="/etc/kpy/manifests/web.yaml", seen=SEEN
    )

    meta = pod.metadata
    assert (meta.namespace, meta.name) == ("default", "web-node-1")
    assert pod.spec.node_name == "Node-1"
    assert len(meta.uid) == 32
    assert int(meta.uid, 16) >= 0
    assert dict(meta.annotations) == {
        CONFIG_SOURCE_ANNOTATION: "file",
        CONFIG_HASH_ANNOTATION: meta.uid,
        CONFIG_SEEN_ANNOTATION: "2026-01-02T03:04:05.678000Z",
    }
    assert list(pod.spec.tolerations) == [Toleration(operator="Exists", effect="NoExecute")]
    assert pod.status.phase == "Pending"
    assert pod.spec.restart_policy == "Always", "the pod is defaulted"
    assert source.metadata.name == "web", "the manifest pod is not modified"
    assert not source.metadata.annotations


def test_static_pod_keeps_a_namespace_and_does_not_repeat_the_toleration() -> None:
    text = pod_yaml(extra_meta="  namespace: kube-system\n") + (
        "  tolerations:\n"
        "  - {operator: Exists, effect: NoExecute, tolerationSeconds: 30}\n"
        "  - {key: k, operator: Exists, effect: NoSchedule}\n"
    )
    pod = static_pod(manifest(text), node_name=NODE, source_path="p.yaml")

    assert pod.metadata.namespace == "kube-system"
    assert list(pod.spec.tolerations) == [
        Toleration(operator="Exists", effect="NoExecute"),
        Toleration(key="k", operator="Exists", effect="NoSchedule"),
    ]


UID_CASES = [
    # (name, manifest, node, path, seen, same uid as the base?)
    ("the same file read again later", pod_yaml(), NODE, "/m/web.yaml", datetime.now(UTC), True),
    (
        "defaults written out",
        pod_yaml().replace("spec:\n", "spec:\n  restartPolicy: Always\n"),
        NODE,
        "/m/web.yaml",
        SEEN,
        True,
    ),
    ("another image", pod_yaml(image="nginx:1.28"), NODE, "/m/web.yaml", SEEN, False),
    ("another node", pod_yaml(), "node-2", "/m/web.yaml", SEEN, False),
    ("another file", pod_yaml(), NODE, "/m/web2.yaml", SEEN, False),
]


@pytest.mark.parametrize("case", UID_CASES, ids=[c[0] for c in UID_CASES])
def test_uid_hashes_content_node_and_path(case: tuple[str, str, str, str, datetime, bool]) -> None:
    name, text, node_name, path, seen, same = case
    base = static_pod(manifest(), node_name=NODE, source_path="/m/web.yaml", seen=SEEN)
    pod = static_pod(manifest(text), node_name=node_name, source_path=path, seen=seen)
    assert (pod.metadata.uid == base.metadata.uid) is same, name


def test_mirror_pod_is_the_api_copy_owned_by_the_node() -> None:
    static = static_pod(
        manifest(pod_yaml(extra_meta="  labels: {app: web}\n")),
        node_name=NODE,
        source_path="/m/web.yaml",
        seen=SEEN,
    )
    mirror = mirror_pod(static, node())

    meta = mirror.metadata
    assert (meta.namespace, meta.name) == ("default", "web-node-1")
    assert not meta.uid
    assert not meta.resource_version
    assert dict(meta.labels) == {"app": "web"}
    assert dict(meta.annotations) == {
        **static.metadata.annotations,
        MIRROR_ANNOTATION: static.metadata.uid,
    }
    assert [codec.to_dict(r) for r in meta.owner_references] == [
        {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": "node-uid-1", "controller": False}
    ]
    assert mirror.spec == static.spec
    assert not mirror.HasField("status")


def test_mirror_pod_needs_the_nodes_uid() -> None:
    static = static_pod(manifest(), node_name=NODE, source_path="/m/web.yaml")
    with pytest.raises(ValueError, match=r'node "node-1" has no metadata.uid; read the Node'):
        mirror_pod(static, node(uid=""))


def _predicate_cases() -> list[tuple[str, Pod, bool, bool]]:
    static = static_pod(manifest(), node_name=NODE, source_path="/m/web.yaml")
    api_pod = manifest()
    api_pod.metadata.annotations[CONFIG_SOURCE_ANNOTATION] = "api"
    return [
        # (name, pod, is static, is mirror)
        ("a pod from the API", manifest(), False, False),
        ("a pod marked as from the API", api_pod, False, False),
        ("a static pod", static, True, False),
        ("its mirror", mirror_pod(static, node()), False, True),
    ]


@pytest.mark.parametrize("case", _predicate_cases(), ids=lambda c: c[0])
def test_static_and_mirror_predicates(case: tuple[str, Pod, bool, bool]) -> None:
    name, pod, static, mirror = case
    assert (is_static_pod(pod), is_mirror_pod(pod)) == (static, mirror), name


def _matches_cases() -> list[tuple[str, Pod, bool]]:
    static = static_pod(manifest(), node_name=NODE, source_path="/m/web.yaml")
    edited = static_pod(manifest(pod_yaml(image="v2")), node_name=NODE, source_path="/m/web.yaml")
    deleting = mirror_pod(static, node())
    deleting.metadata.deletion_timestamp.GetCurrentTime()
    renamed = mirror_pod(static, node())
    renamed.metadata.name = "other-node-1"
    return [
        # (name, mirror, matches the static pod)
        ("its own mirror", mirror_pod(static, node()), True),
        ("the mirror of an older edit", mirror_pod(edited, node()), False),
        ("a mirror being deleted", deleting, False),
        ("another pod's mirror", renamed, False),
    ]


@pytest.mark.parametrize("case", _matches_cases(), ids=lambda c: c[0])
def test_mirror_matches(case: tuple[str, Pod, bool]) -> None:
    name, mirror, want = case
    static = static_pod(manifest(), node_name=NODE, source_path="/m/web.yaml")
    assert mirror_matches(mirror, static) is want, name


# ---------------------------------------------------------------- the watched directory


class Recorder:
    """Collects what a ManifestSource reports (on_change as a coroutine,
    on_error as a plain function: both kinds of callback are accepted)."""

    def __init__(self) -> None:
        self.changes: list[dict[str, Pod]] = []
        self.errors: list[tuple[Path, str]] = []
        self._changed = anyio.Event()

    async def on_change(self, pods: dict[str, Pod]) -> None:
        self.changes.append(pods)
        self._changed.set()
        self._changed = anyio.Event()

    def on_error(self, path: Path, message: str) -> None:
        self.errors.append((path, message))

    async def change(self, number: int) -> dict[str, Pod]:
        """Waits for the `number`th change (1-based) and returns it."""
        with anyio.fail_after(5):
            while len(self.changes) < number:
                await self._changed.wait()
        got = [images(c) for c in self.changes]
        assert len(self.changes) == number, f"expected {number} changes, got {got}"
        return self.changes[-1]

    async def quiet(self, changes: int, errors: int) -> None:
        """Asserts nothing more is reported for a while."""
        await anyio.sleep(QUIET_SECONDS)
        assert len(self.changes) == changes, [images(c) for c in self.changes]
        assert len(self.errors) == errors, self.errors


@asynccontextmanager
async def watching(
    directory: Path, *, rescan_seconds: float = 60.0, debounce_seconds: float = 0.05
) -> AsyncIterator[Recorder]:
    recorder = Recorder()
    source = ManifestSource(
        directory,
        NODE,
        on_change=recorder.on_change,
        on_error=recorder.on_error,
        rescan_seconds=rescan_seconds,
        debounce_seconds=debounce_seconds,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(source.run)
        yield recorder
        tg.cancel_scope.cancel()


def images(pods: dict[str, Pod]) -> dict[str, str]:
    return {key: pod.spec.containers[0].image for key, pod in pods.items()}


async def test_initial_read_reports_every_manifest_and_skips_the_rest(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(pod_yaml())
    (tmp_path / "db.yml").write_text(pod_yaml("db", extra_meta="  namespace: kube-system\n"))
    as_json = codec.encode_object(manifest(pod_yaml("api")))
    (tmp_path / "api.json").write_text(json.dumps(as_json))
    for skipped in (".hidden.yaml", "web.yaml~", "web.yaml.swp", "notes.txt", "sub/x.yaml"):
        (tmp_path / skipped).parent.mkdir(exist_ok=True)
        (tmp_path / skipped).write_text(pod_yaml("skipped"))

    async with watching(tmp_path) as recorder:
        pods = await recorder.change(1)
        await recorder.quiet(changes=1, errors=0)

    assert sorted(pods) == ["default/api-node-1", "default/web-node-1", "kube-system/db-node-1"]


async def test_add_edit_and_remove_are_each_reported_once(tmp_path: Path) -> None:
    web = tmp_path / "web.yaml"
    async with watching(tmp_path) as recorder:
        assert await recorder.change(1) == {}

        web.write_text(pod_yaml())
        added = await recorder.change(2)
        assert images(added) == {"default/web-node-1": "nginx:1.27"}
        await recorder.quiet(changes=2, errors=0)

        web.write_text(pod_yaml(image="nginx:1.28"))
        edited = await recorder.change(3)
        assert images(edited) == {"default/web-node-1": "nginx:1.28"}
        old_uid = added["default/web-node-1"].metadata.uid
        assert edited["default/web-node-1"].metadata.uid != old_uid
        await recorder.quiet(changes=3, errors=0)

        web.unlink()
        assert await recorder.change(4) == {}
        await recorder.quiet(changes=4, errors=0)


async def test_an_unchanged_file_rewritten_keeps_its_pod(tmp_path: Path) -> None:
    web = tmp_path / "web.yaml"
    web.write_text(pod_yaml())
    async with watching(tmp_path) as recorder:
        await recorder.change(1)
        web.write_text(pod_yaml())
        os.utime(web)
        await recorder.quiet(changes=1, errors=0)


async def test_a_temp_file_renamed_into_place_is_seen(tmp_path: Path) -> None:
    async with watching(tmp_path) as recorder:
        await recorder.change(1)
        temp = tmp_path / ".web.yaml.tmp"
        temp.write_text(pod_yaml())
        temp.rename(tmp_path / "web.yaml")
        assert sorted(await recorder.change(2)) == ["default/web-node-1"]
        await recorder.quiet(changes=2, errors=0)


async def test_a_burst_of_writes_gives_one_change(tmp_path: Path) -> None:
    web = tmp_path / "web.yaml"
    # Writes 5 ms apart, well inside the debounce even on a loaded machine.
    async with watching(tmp_path, debounce_seconds=0.2) as recorder:
        await recorder.change(1)
        for version in range(20):
            web.write_text(pod_yaml(image=f"nginx:1.{version}"))
            await anyio.sleep(0.005)  # an editor's writes, each seen before the next
        assert images(await recorder.change(2)) == {"default/web-node-1": "nginx:1.19"}
        await recorder.quiet(changes=2, errors=0)


BAD_FILES = [
    # (name, file, content, what the message must say)
    ("malformed YAML", "broken.yaml", "metadata: [", ["broken.yaml", "line 1", "malformed"]),
    (
        "unknown field",
        "typo.yaml",
        pod_yaml().replace("image:", "imagee:"),
        ["typo.yaml", "spec.containers[0].imagee", 'unknown field "imagee"'],
    ),
    (
        "not a Pod",
        "deploy.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
        ["deploy.yaml", "kind: v1 Service is not a Pod", "exactly one Pod"],
    ),
    (
        "two pods in one file",
        "two.yaml",
        pod_yaml("a") + "---\n" + pod_yaml("b"),
        ["two.yaml", "holds 2 objects", "a file of its own"],
    ),
    ("an empty file", "empty.yaml", "", ["empty.yaml", "holds no object"]),
    (
        "invalid pod",
        "bad-name.yaml",
        pod_yaml("Bad_Name"),
        ["bad-name.yaml", "metadata.name", "<metadata.name>-node-1"],
    ),
]


async def test_bad_files_are_reported_and_leave_the_others_alone(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(pod_yaml())
    for _, file, content, _ in BAD_FILES:
        (tmp_path / file).write_text(content)

    async with watching(tmp_path) as recorder:
        pods = await recorder.change(1)
        await recorder.quiet(changes=1, errors=len(BAD_FILES))

    assert sorted(pods) == ["default/web-node-1"]
    errors = dict(recorder.errors)
    for name, file, _, fragments in BAD_FILES:
        message = errors.get(tmp_path / file, "<no error reported>")
        for fragment in fragments:
            assert fragment in message, f"{name}: {fragment!r} not in {message!r}"


async def test_the_first_file_of_a_pod_name_wins(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(pod_yaml(image="first"))
    (tmp_path / "b.yaml").write_text(pod_yaml(image="second"))
    async with watching(tmp_path) as recorder:
        pods = await recorder.change(1)
        await recorder.quiet(changes=1, errors=1)

    assert images(pods) == {"default/web-node-1": "first"}
    [(path, message)] = recorder.errors
    assert path == tmp_path / "b.yaml"
    assert f'pod "default/web-node-1" is already defined by {tmp_path / "a.yaml"}' in message


async def test_a_problem_is_reported_once_until_it_is_fixed(tmp_path: Path) -> None:
    bad = tmp_path / "web.yaml"
    bad.write_text("metadata: [")
    async with watching(tmp_path, rescan_seconds=0.05) as recorder:
        assert await recorder.change(1) == {}
        await recorder.quiet(changes=1, errors=1)  # several rescans, one report

        bad.write_text(pod_yaml())
        assert sorted(await recorder.change(2)) == ["default/web-node-1"]
        await recorder.quiet(changes=2, errors=1)


async def test_the_rescan_sees_what_inotify_cannot(tmp_path: Path) -> None:
    # A manifest symlinked from elsewhere changes without an event in the directory.
    elsewhere, manifests = tmp_path / "elsewhere", tmp_path / "manifests"
    elsewhere.mkdir()
    manifests.mkdir()
    (elsewhere / "web.yaml").write_text(pod_yaml())
    (manifests / "web.yaml").symlink_to(elsewhere / "web.yaml")

    async with watching(manifests, rescan_seconds=0.1) as recorder:
        assert images(await recorder.change(1)) == {"default/web-node-1": "nginx:1.27"}
        (elsewhere / "web.yaml").write_text(pod_yaml(image="nginx:1.28"))
        assert images(await recorder.change(2)) == {"default/web-node-1": "nginx:1.28"}


async def test_a_missing_directory_is_empty_until_it_appears(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    async with watching(manifests) as recorder:
        assert await recorder.change(1) == {}

        manifests.mkdir()
        (manifests / "web.yaml").write_text(pod_yaml())
        assert sorted(await recorder.change(2)) == ["default/web-node-1"]

        shutil.rmtree(manifests)
        assert await recorder.change(3) == {}

        manifests.mkdir()
        (manifests / "db.yaml").write_text(pod_yaml("db"))
        assert sorted(await recorder.change(4)) == ["default/db-node-1"]
        await recorder.quiet(changes=4, errors=0)

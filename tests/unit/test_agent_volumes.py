"""Pod volumes on disk: each volume type, items and modes, the atomic update
of API data volumes, hostPath type checks, PVCs, mounts and cleanup; real
files under tmp_path."""

from __future__ import annotations

import calendar
import os
import re
import socket
import stat
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from kpy.agent.env import PERSISTENT_VOLUME_CLAIM, ConfigError, PodContext, references
from kpy.agent.runtime.base import Mount
from kpy.agent.volumes import (
    FileProjection,
    VolumeError,
    VolumeManager,
    write_atomically,
)
from kpy.api.codec import from_dict
from kpy.api.core.v1 import (
    ConfigMap,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
    Secret,
    ServiceAccountTokenProjection,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

UID = "uid-1"
CTX = PodContext(pod_ip="10.0.0.5", host_ip="192.168.1.5", node_allocatable={"memory": "8Gi"})
NOW = 1704164645.0  # 2024-01-02 03:04:05 UTC


@dataclass
class Objects:
    """The agent's caches, as plain dicts."""

    config_maps: dict[tuple[str, str], ConfigMap] = field(default_factory=dict)
    secrets: dict[tuple[str, str], Secret] = field(default_factory=dict)
    claims: dict[tuple[str, str], PersistentVolumeClaim] = field(default_factory=dict)
    volumes: dict[str, PersistentVolume] = field(default_factory=dict)
    #: (pod uid, audience) -> the token the token manager holds
    tokens: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def config_map(self, namespace: str, name: str) -> ConfigMap | None:
        return self.config_maps.get((namespace, name))

    def secret(self, namespace: str, name: str) -> Secret | None:
        return self.secrets.get((namespace, name))

    def persistent_volume_claim(self, namespace: str, name: str) -> PersistentVolumeClaim | None:
        return self.claims.get((namespace, name))

    def persistent_volume(self, name: str) -> PersistentVolume | None:
        return self.volumes.get(name)

    def service_account_token(self, pod: Pod, projection: ServiceAccountTokenProjection) -> bytes:
        token = self.tokens.get((pod.metadata.uid, projection.audience))
        if token is None:
            raise VolumeError('failed to fetch token: serviceaccounts "default" not found')
        return token

    def set_config_map(self, name: str, data: dict[str, str], **more: Any) -> None:
        self.config_maps[("ns", name)] = from_dict(ConfigMap, {"data": data, **more})


def _objects() -> Objects:
    objects = Objects()
    objects.set_config_map("app", {"app.yaml": "level: debug\n", "extra": "x"})
    objects.config_maps[("ns", "app")].binary_data["logo.png"] = b"\x89PNG"
    objects.secrets[("ns", "db")] = Secret(data={"password": b"s3cr3t", "user": b"admin"})
    objects.tokens[(UID, "")] = b"eyJhbGciOiJFUzI1NiJ9.default.sig"
    objects.tokens[(UID, "vault")] = b"eyJhbGciOiJFUzI1NiJ9.vault.sig"
    return objects


def _pod(volumes: list[dict[str, Any]], containers: list[dict[str, Any]] | None = None) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {
                "name": "web",
                "namespace": "ns",
                "uid": UID,
                "labels": {"app": "web"},
                "annotations": {"build": "7"},
            },
            "spec": {
                "containers": containers
                or [{"name": "app", "resources": {"limits": {"memory": "64Mi"}}}],
                "volumes": volumes,
            },
        },
    )


@pytest.fixture
def manager(tmp_path: Path) -> VolumeManager:
    return VolumeManager(tmp_path / "agent", clock=lambda: NOW)


def _files(directory: Path) -> dict[str, str]:
    """What a container sees: every file reachable through the visible
    entries (not the `..` bookkeeping), with its content."""
    seen: dict[str, str] = {}
    for entry in sorted(os.listdir(directory)):
        if entry.startswith(".."):
            continue
        path = directory / entry
        if path.is_dir():
            seen.update({f"{entry}/{k}": v for k, v in _files(path).items()})
        else:
            seen[entry] = path.read_text(errors="replace")
    return seen


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _versions(directory: Path) -> list[str]:
    return sorted(e for e in os.listdir(directory) if e.startswith("..") and e != "..data")


# --- each volume type ---


def test_empty_dir(manager: VolumeManager, tmp_path: Path) -> None:
    pod = _pod(
        [{"name": "cache", "emptyDir": {}}, {"name": "mem", "emptyDir": {"medium": "Memory"}}]
    )
    paths = manager.prepare(pod, _objects(), CTX)
    base = tmp_path / "agent/pods" / UID / "volumes/kubernetes.io~empty-dir"
    assert paths == {"cache": base / "cache", "mem": base / "mem"}
    assert (base / "cache").is_dir()
    assert _mode(base / "cache") == 0o777
    (base / "cache" / "kept").write_text("data")
    manager.prepare(pod, _objects(), CTX)
    assert (base / "cache" / "kept").read_text() == "data"


def test_volume_without_source_is_an_empty_dir(manager: VolumeManager) -> None:
    paths = manager.prepare(_pod([{"name": "scratch"}]), _objects(), CTX)
    assert paths["scratch"].parent.name == "kubernetes.io~empty-dir"


@dataclass(frozen=True)
class DataVolumeCase:
    name: str
    volume: dict[str, Any]
    plugin: str
    files: dict[str, str]
    modes: dict[str, int]


DATA_VOLUME_CASES = [
    DataVolumeCase(
        "configMap: a file per key, binary data too, 0644",
        {"configMap": {"name": "app"}},
        "kubernetes.io~configmap",
        {"app.yaml": "level: debug\n", "extra": "x", "logo.png": "\ufffdPNG"},
        {"app.yaml": 0o644, "logo.png": 0o644},
    ),
    DataVolumeCase(
        "configMap: defaultMode",
        {"configMap": {"name": "app", "defaultMode": 0o400}},
        "kubernetes.io~configmap",
        {"app.yaml": "level: debug\n", "extra": "x", "logo.png": "\ufffdPNG"},
        {"app.yaml": 0o400},
    ),
    DataVolumeCase(
        "configMap: items with nested path and mode",
        {
            "configMap": {
                "name": "app",
                "items": [
                    {"key": "app.yaml", "path": "conf/app.yaml", "mode": 0o600},
                    {"key": "extra", "path": "extra.txt"},
                ],
            }
        },
        "kubernetes.io~configmap",
        {"conf/app.yaml": "level: debug\n", "extra.txt": "x"},
        {"conf/app.yaml": 0o600, "extra.txt": 0o644},
    ),
    DataVolumeCase(
        "configMap: optional and missing is empty",
        {"configMap": {"name": "nope", "optional": True}},
        "kubernetes.io~configmap",
        {},
        {},
    ),
    DataVolumeCase(
        "configMap: optional skips a missing item key",
        {
            "configMap": {
                "name": "app",
                "optional": True,
                "items": [{"key": "nope", "path": "a"}, {"key": "extra", "path": "b"}],
            }
        },
        "kubernetes.io~configmap",
        {"b": "x"},
        {},
    ),
    DataVolumeCase(
        "secret: a file per key",
        {"secret": {"secretName": "db"}},
        "kubernetes.io~secret",
        {"password": "s3cr3t", "user": "admin"},
        {"password": 0o644},
    ),
    DataVolumeCase(
        "secret: items and defaultMode",
        {
            "secret": {
                "secretName": "db",
                "defaultMode": 0o440,
                "items": [{"key": "password", "path": "pw"}],
            }
        },
        "kubernetes.io~secret",
        {"pw": "s3cr3t"},
        {"pw": 0o440},
    ),
    DataVolumeCase(
        "downwardAPI: fields and resources",
        {
            "downwardAPI": {
                "items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "build", "fieldRef": {"fieldPath": "metadata.annotations['build']"}},
                    {
                        "path": "meta/name",
                        "mode": 0o600,
                        "fieldRef": {"fieldPath": "metadata.name"},
                    },
                    {
                        "path": "mem",
                        "resourceFieldRef": {
                            "containerName": "app",
                            "resource": "limits.memory",
                            "divisor": "1Mi",
                        },
                    },
                ]
            }
        },
        "kubernetes.io~downward-api",
        {"labels": 'app="web"', "build": "7", "meta/name": "web", "mem": "64"},
        {"labels": 0o644, "meta/name": 0o600},
    ),
    DataVolumeCase(
        "projected: sources merged, the pod's tokens",
        {
            "projected": {
                "defaultMode": 0o440,
                "sources": [
                    {"configMap": {"name": "app", "items": [{"key": "extra", "path": "extra"}]}},
                    {"secret": {"name": "db", "items": [{"key": "user", "path": "db/user"}]}},
                    {
                        "downwardAPI": {
                            "items": [
                                {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
                            ]
                        }
                    },
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                    {"serviceAccountToken": {"path": "vault/token", "audience": "vault"}},
                ],
            }
        },
        "kubernetes.io~projected",
        {
            "extra": "x",
            "db/user": "admin",
            "ns": "ns",
            "token": "eyJhbGciOiJFUzI1NiJ9.default.sig",
            "vault/token": "eyJhbGciOiJFUzI1NiJ9.vault.sig",
        },
        {"extra": 0o440, "token": 0o440},
    ),
]


@pytest.mark.parametrize("case", DATA_VOLUME_CASES, ids=[c.name for c in DATA_VOLUME_CASES])
def test_api_data_volume(case: DataVolumeCase, manager: VolumeManager, tmp_path: Path) -> None:
    paths = manager.prepare(_pod([{"name": "v", **case.volume}]), _objects(), CTX)
    want_dir = tmp_path / "agent/pods" / UID / "volumes" / case.plugin / "v"
    assert paths == {"v": want_dir}, case.name
    assert _files(want_dir) == case.files, case.name
    for path, mode in case.modes.items():
        assert _mode(want_dir / path) == mode, f"{case.name}: mode of {path}"
    data = want_dir / "..data"
    assert data.is_symlink(), case.name
    assert os.readlink(data).startswith("..2024_01_02_03_04_05."), case.name
    for entry in {p.split("/")[0] for p in case.files}:
        assert os.readlink(want_dir / entry) == f"..data/{entry}", case.name


ERROR_CASES = [
    ("missing configMap", {"configMap": {"name": "nope"}}, ConfigError,
     'MountVolume.SetUp failed for volume "v" : configmap "nope" not found'),
    ("missing configMap key", {"configMap": {"name": "app", "items": [{"key": "k", "path": "k"}]}},
     ConfigError,
     'MountVolume.SetUp failed for volume "v" : configmap "app" references non-existent key: k'),
    ("missing secret", {"secret": {"secretName": "nope"}}, ConfigError,
     'MountVolume.SetUp failed for volume "v" : secret "nope" not found'),
    ("missing secret key", {"secret": {"secretName": "db", "items": [{"key": "k", "path": "k"}]}},
     ConfigError,
     'MountVolume.SetUp failed for volume "v" : secret "db" references non-existent key: k'),
    ("missing projected configMap", {"projected": {"sources": [{"configMap": {"name": "nope"}}]}},
     ConfigError, 'configmap "nope" not found'),
    ("downwardAPI bad field",
     {"downwardAPI": {"items": [{"path": "x", "fieldRef": {"fieldPath": "spec.nope"}}]}},
     ConfigError, "unsupported fieldPath: spec.nope"),
    ("item path escaping the volume",
     {"configMap": {"name": "app", "items": [{"key": "extra", "path": "../evil"}]}},
     VolumeError, "must be relative, not contain '..'"),
    ("absolute item path",
     {"configMap": {"name": "app", "items": [{"key": "extra", "path": "/etc/evil"}]}},
     VolumeError, "must be relative"),
    ("unsupported volume type", {"nfs": {"server": "nfs.local", "path": "/export"}}, VolumeError,
     "volume type nfs is not supported by kpy-agent"),
    ("no token for the projection",
     {"projected": {"sources": [{"serviceAccountToken": {"path": "t", "audience": "other"}}]}},
     VolumeError, 'failed to fetch token: serviceaccounts "default" not found'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "volume", "error", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_volume_errors(
    name: str,
    volume: dict[str, Any],
    error: type[Exception],
    message: str,
    manager: VolumeManager,
) -> None:
    with pytest.raises(error) as info:
        manager.prepare(_pod([{"name": "v", **volume}]), _objects(), CTX)
    assert message in str(info.value), name
    assert str(info.value).startswith('MountVolume.SetUp failed for volume "v" : '), name


# --- hostPath ---


def _make_dir(path: Path) -> None:
    path.mkdir()


def _make_file(path: Path) -> None:
    path.write_text("x")


def _make_nothing(path: Path) -> None:
    pass


def _make_block_device(path: Path) -> None:
    os.mknod(path, stat.S_IFBLK | 0o600, os.makedev(7, 0))


def _make_char_device(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))


def _make_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # the file stays after the socket closes


@dataclass(frozen=True)
class HostPathCase:
    name: str
    make: Callable[[Path], None]
    type: str
    error: str = ""  # "" when the check passes
    created: str = ""  # "dir" | "file": what the check must have made


HOST_PATH_CASES = [
    HostPathCase("no type, missing is fine", _make_nothing, ""),
    HostPathCase("DirectoryOrCreate creates", _make_nothing, "DirectoryOrCreate", created="dir"),
    HostPathCase("DirectoryOrCreate keeps a dir", _make_dir, "DirectoryOrCreate"),
    HostPathCase("DirectoryOrCreate on a file", _make_file, "DirectoryOrCreate",
                 "is not a directory"),
    HostPathCase("Directory", _make_dir, "Directory"),
    HostPathCase("Directory missing", _make_nothing, "Directory", "does not exist"),
    HostPathCase("Directory on a file", _make_file, "Directory", "is not a directory"),
    HostPathCase("FileOrCreate creates", _make_nothing, "FileOrCreate", created="file"),
    HostPathCase("FileOrCreate keeps a file", _make_file, "FileOrCreate"),
    HostPathCase("FileOrCreate on a dir", _make_dir, "FileOrCreate", "is not a file"),
    HostPathCase("File", _make_file, "File"),
    HostPathCase("File on a dir", _make_dir, "File", "is not a file"),
    HostPathCase("Socket", _make_socket, "Socket"),
    HostPathCase("Socket on a file", _make_file, "Socket", "is not a socket file"),
    HostPathCase("CharDevice", _make_char_device, "CharDevice"),
    HostPathCase("CharDevice on a block device", _make_block_device, "CharDevice",
                 "is not a character device"),
    HostPathCase("BlockDevice", _make_block_device, "BlockDevice"),
    HostPathCase("BlockDevice on a dir", _make_dir, "BlockDevice", "is not a block device"),
    HostPathCase("unknown type", _make_dir, "Dir", "hostPath type 'Dir' is not one of"),
]  # fmt: skip


@pytest.mark.parametrize("case", HOST_PATH_CASES, ids=[c.name for c in HOST_PATH_CASES])
def test_host_path_types(case: HostPathCase, manager: VolumeManager, tmp_path: Path) -> None:
    target = tmp_path / "host" / "thing"
    target.parent.mkdir()
    case.make(target)
    pod = _pod([{"name": "h", "hostPath": {"path": str(target), "type": case.type}}])
    if case.error:
        with pytest.raises(VolumeError, match=re.escape(case.error)):
            manager.prepare(pod, _objects(), CTX)
        return
    assert manager.prepare(pod, _objects(), CTX) == {"h": target}, case.name
    if case.created == "dir":
        assert target.is_dir(), case.name
        assert _mode(target) == 0o755, case.name
    if case.created == "file":
        assert target.is_file(), case.name
        assert target.read_bytes() == b"", case.name


def test_file_or_create_needs_the_parent(manager: VolumeManager, tmp_path: Path) -> None:
    target = tmp_path / "missing-parent" / "file"
    pod = _pod([{"name": "h", "hostPath": {"path": str(target), "type": "FileOrCreate"}}])
    with pytest.raises(VolumeError, match="does not exist"):
        manager.prepare(pod, _objects(), CTX)


# --- persistentVolumeClaim ---


def _claim(phase: str = "Bound", volume_name: str = "pv-1") -> PersistentVolumeClaim:
    return from_dict(
        PersistentVolumeClaim,
        {
            "metadata": {"name": "data", "namespace": "ns"},
            "spec": {"volumeName": volume_name},
            "status": {"phase": phase},
        },
    )


def _pv(source: dict[str, Any], claim: str = "data") -> PersistentVolume:
    return from_dict(
        PersistentVolume,
        {
            "metadata": {"name": "pv-1"},
            "spec": {"claimRef": {"namespace": "ns", "name": claim}, **source},
        },
    )


def test_claim_mounts_its_bound_volume(manager: VolumeManager, tmp_path: Path) -> None:
    for source in ("hostPath", "local"):
        disk = tmp_path / f"disk-{source}"
        disk.mkdir()
        objects = _objects()
        objects.claims[("ns", "data")] = _claim()
        objects.volumes["pv-1"] = _pv({source: {"path": str(disk)}})
        pod = _pod([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
        assert manager.prepare(pod, objects, CTX) == {"d": disk}, source


CLAIM_ERRORS = [
    ("missing claim", None, None, 'persistentvolumeclaim "data" not found'),
    ("pending claim", _claim("Pending", ""), None, 'persistentvolumeclaim "data" is not bound'),
    ("claim being bound", _claim("Pending", "pv-1"), None,
     'persistentvolumeclaim "data" is not bound (phase "Pending", volumeName "pv-1")'),
    ("claim lost", _claim("Lost", "pv-1"), None, 'persistentvolumeclaim "data" is not bound'),
    ("volume gone", _claim(), None, 'persistentvolume "pv-1" bound to claim ns/data not found'),
    ("volume bound elsewhere", _claim(), _pv({"hostPath": {"path": "/"}}, claim="other"),
     "is bound to claim ns/other, not to ns/data"),
    ("network volume", _claim(), _pv({"nfs": {"server": "nfs.local", "path": "/x"}}),
     "has no hostPath or local source (it has: nfs)"),
    ("local path missing", _claim(), _pv({"local": {"path": "/nonexistent/kpy"}}),
     "local path /nonexistent/kpy of persistentvolume \"pv-1\" does not exist"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "claim", "pv", "message"), CLAIM_ERRORS, ids=[c[0] for c in CLAIM_ERRORS]
)
def test_claim_errors(
    name: str,
    claim: PersistentVolumeClaim | None,
    pv: PersistentVolume | None,
    message: str,
    manager: VolumeManager,
) -> None:
    objects = _objects()
    if claim is not None:
        objects.claims[("ns", "data")] = claim
    if pv is not None:
        objects.volumes["pv-1"] = pv
    pod = _pod([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    with pytest.raises(VolumeError, match=r"MountVolume\.SetUp failed") as info:
        manager.prepare(pod, objects, CTX)
    assert message in str(info.value), name


def test_provisioned_claim_volume_is_created_on_first_use(
    manager: VolumeManager, tmp_path: Path
) -> None:
    """A hostPath PV of type DirectoryOrCreate (what the local-path
    provisioner makes) gets its directory when the first pod mounts it,
    and keeps what is in it for the next."""
    disk = tmp_path / "local-path" / "pvc-1234"
    objects = _objects()
    objects.claims[("ns", "data")] = _claim()
    objects.volumes["pv-1"] = _pv({"hostPath": {"path": str(disk), "type": "DirectoryOrCreate"}})
    pod = _pod([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    assert manager.prepare(pod, objects, CTX) == {"d": disk}
    assert disk.is_dir()
    (disk / "kept").write_text("data")
    manager.cleanup(UID)
    assert manager.prepare(pod, objects, CTX) == {"d": disk}
    assert (disk / "kept").read_text() == "data"


def test_a_pod_is_woken_by_its_claims() -> None:
    pod = _pod(
        [
            {"name": "a", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "b", "persistentVolumeClaim": {"claimName": "logs", "readOnly": True}},
            {"name": "c", "emptyDir": {}},
        ]
    )
    assert references(pod) == {
        (PERSISTENT_VOLUME_CLAIM, "ns", "data"),
        (PERSISTENT_VOLUME_CLAIM, "ns", "logs"),
    }


# --- atomic updates ---


def test_refresh_swaps_to_new_content_and_drops_the_old(manager: VolumeManager) -> None:
    objects = _objects()
    pod = _pod([{"name": "v", "configMap": {"name": "app"}}])
    target = manager.prepare(pod, objects, CTX)["v"]
    (old_version,) = _versions(target)
    assert manager.refresh(pod, objects, CTX) is False
    assert _versions(target) == [old_version]

    objects.set_config_map("app", {"app.yaml": "level: info\n", "new": "n"})
    assert manager.refresh(pod, objects, CTX) is True
    assert _files(target) == {"app.yaml": "level: info\n", "new": "n"}
    (new_version,) = _versions(target)
    assert new_version != old_version
    assert os.readlink(target / "..data") == new_version
    assert not (target / "extra").is_symlink()  # a removed key disappears
    assert not (target / "..data_tmp").exists()


def test_reader_holding_old_files_sees_the_old_version(manager: VolumeManager) -> None:
    objects = _objects()
    objects.set_config_map("app", {"a": "1", "b": "1"})
    pod = _pod([{"name": "v", "configMap": {"name": "app"}}])
    target = manager.prepare(pod, objects, CTX)["v"]
    with (target / "a").open() as a, (target / "b").open() as b:
        objects.set_config_map("app", {"a": "2", "b": "2"})
        assert manager.refresh(pod, objects, CTX) is True
        assert (a.read(), b.read()) == ("1", "1")
    assert ((target / "a").read_text(), (target / "b").read_text()) == ("2", "2")


def test_concurrent_reader_never_sees_a_mix(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    write_atomically(target, _pair(0), NOW)
    stop = threading.Event()
    seen: list[tuple[str, str]] = []

    def read() -> None:
        while not stop.is_set():
            version = os.readlink(target / "..data")  # resolve once, then read both
            try:
                pair = ((target / version / "a").read_text(), (target / version / "b").read_text())
            except FileNotFoundError:
                continue  # that version was removed between the two reads; retry
            seen.append(pair)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(1, 200):
            assert write_atomically(target, _pair(i), NOW + i)
    finally:
        stop.set()
        reader.join()
    assert seen, "the reader read nothing"
    mixed = [pair for pair in seen if pair[0] != pair[1]]
    assert not mixed, f"the reader saw a mix of versions: {mixed[:3]}"
    assert len(_versions(target)) == 1


def _pair(i: int) -> dict[str, FileProjection]:
    return {
        "a": FileProjection(str(i).encode(), 0o644),
        "b": FileProjection(str(i).encode(), 0o644),
    }


def test_mode_change_alone_is_written(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    write_atomically(target, {"f": FileProjection(b"x", 0o644)}, NOW)
    assert write_atomically(target, {"f": FileProjection(b"x", 0o644)}, NOW) is False
    assert write_atomically(target, {"f": FileProjection(b"x", 0o600)}, NOW) is True
    assert _mode(target / "f") == 0o600


def test_leftover_versions_from_a_crash_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    write_atomically(target, {"f": FileProjection(b"1", 0o644)}, NOW)
    (target / "..2020_01_01_00_00_00.123").mkdir()  # a write that never got swapped in
    assert write_atomically(target, {"f": FileProjection(b"2", 0o644)}, NOW)
    assert _versions(target) == [os.readlink(target / "..data")]


def test_nested_paths_and_conflicts(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    write_atomically(target, {"a/b/c": FileProjection(b"deep", 0o644)}, NOW)
    assert (target / "a/b/c").read_text() == "deep"
    assert os.readlink(target / "a") == "..data/a"
    with pytest.raises(VolumeError, match="is both a file and the directory"):
        write_atomically(
            target, {"a": FileProjection(b"", 0o644), "a/b": FileProjection(b"", 0o644)}, NOW
        )


def test_refresh_follows_label_changes(manager: VolumeManager) -> None:
    pod = _pod(
        [
            {
                "name": "info",
                "downwardAPI": {
                    "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
                },
            }
        ]
    )
    target = manager.prepare(pod, _objects(), CTX)["info"]
    pod.metadata.labels["release"] = "2"
    assert manager.refresh(pod, _objects(), CTX) is True
    assert (target / "labels").read_text() == 'app="web"\nrelease="2"'


def test_refresh_keeps_old_content_on_error_and_refreshes_the_rest(
    manager: VolumeManager,
) -> None:
    objects = _objects()
    pod = _pod(
        [
            {"name": "cfg", "configMap": {"name": "app"}},
            {"name": "sec", "secret": {"secretName": "db"}},
        ]
    )
    paths = manager.prepare(pod, objects, CTX)
    del objects.config_maps[("ns", "app")]
    objects.secrets[("ns", "db")] = Secret(data={"password": b"rotated"})
    with pytest.raises(ConfigError, match='volume "cfg" : configmap "app" not found'):
        manager.refresh(pod, objects, CTX)
    assert (paths["cfg"] / "extra").read_text() == "x"
    assert _files(paths["sec"]) == {"password": "rotated"}


def test_refresh_creates_nothing_for_an_unprepared_pod(
    manager: VolumeManager, tmp_path: Path
) -> None:
    pod = _pod([{"name": "v", "configMap": {"name": "app"}}])
    assert manager.refresh(pod, _objects(), CTX) is False
    assert not (tmp_path / "agent").exists()


# --- mounts ---


@dataclass(frozen=True)
class MountCase:
    name: str
    mount: dict[str, Any]
    want: Mount | None  # None: VolumeError
    error: str = ""


def _mount_cases(root: Path, version: str) -> list[MountCase]:
    """`root` is the agent's; `version` is the configMap volume's `..data`."""
    empty = root / "pods" / UID / "volumes/kubernetes.io~empty-dir/data"
    config = root / "pods" / UID / "volumes/kubernetes.io~configmap/cfg"
    return [
        MountCase("plain", {"name": "data", "mountPath": "/data"}, Mount(str(empty), "/data")),
        MountCase(
            "readOnly carried",
            {"name": "data", "mountPath": "/data", "readOnly": True},
            Mount(str(empty), "/data", read_only=True),
        ),
        MountCase(
            "subPath directory is created",
            {"name": "data", "mountPath": "/logs", "subPath": "logs/app"},
            Mount(str(empty / "logs/app"), "/logs"),
        ),
        MountCase(
            "subPathExpr expands the env",
            {"name": "data", "mountPath": "/p", "subPathExpr": "pods/$(POD_NAME)"},
            Mount(str(empty / "pods/web"), "/p"),
        ),
        MountCase(
            "configMap volumes are always read-only",
            {"name": "cfg", "mountPath": "/etc/app"},
            Mount(str(config), "/etc/app", read_only=True),
        ),
        MountCase(
            "subPath file of a configMap resolves to its version",
            {"name": "cfg", "mountPath": "/etc/app.yaml", "subPath": "app.yaml"},
            Mount(str(config / version / "app.yaml"), "/etc/app.yaml", read_only=True),
        ),
        MountCase(
            "claimed volume readOnly from the pod",
            {"name": "disk", "mountPath": "/disk"},
            Mount(str(root.parent / "disk"), "/disk", read_only=True),
        ),
        MountCase(
            "unknown volume",
            {"name": "nope", "mountPath": "/x"},
            None,
            'volumeMount "nope": the pod has no volume of that name',
        ),
        MountCase(
            "subPath with ..",
            {"name": "data", "mountPath": "/x", "subPath": "../../etc"},
            None,
            "must be a relative path without '..'",
        ),
        MountCase(
            "absolute subPath",
            {"name": "data", "mountPath": "/x", "subPath": "/etc"},
            None,
            "must be a relative path",
        ),
        MountCase(
            "subPath through a symlink out of the volume",
            {"name": "data", "mountPath": "/x", "subPath": "escape/passwd"},
            None,
            "outside the volume",
        ),
        MountCase(
            "missing subPath in a configMap volume",
            {"name": "cfg", "mountPath": "/x", "subPath": "nope"},
            None,
            "does not exist",
        ),
        MountCase(
            "subPathExpr with an unknown variable",
            {"name": "data", "mountPath": "/x", "subPathExpr": "$(NOPE)"},
            None,
            "missing value for NOPE",
        ),
    ]


def test_mounts(manager: VolumeManager, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    objects = _objects()
    objects.claims[("ns", "data")] = _claim()
    objects.volumes["pv-1"] = _pv({"hostPath": {"path": str(disk)}})
    pod = _pod(
        [
            {"name": "data", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "app"}},
            {"name": "disk", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}},
        ]
    )
    paths = manager.prepare(pod, objects, CTX)
    (paths["data"] / "escape").symlink_to("/etc")
    version = os.readlink(paths["cfg"] / "..data")
    env = {"POD_NAME": "web"}
    for case in _mount_cases(tmp_path / "agent", version):
        container = _pod([], [{"name": "app", "volumeMounts": [case.mount]}]).spec.containers[0]
        if case.want is None:
            with pytest.raises(VolumeError, match=re.escape(case.error)):
                manager.mounts(container, paths, pod=pod, env=env)
            continue
        assert manager.mounts(container, paths, pod=pod, env=env) == [case.want], case.name
        assert os.path.exists(case.want.host_path), case.name


# --- cleanup and paths ---


def test_cleanup_never_touches_host_paths_or_symlink_targets(
    manager: VolumeManager, tmp_path: Path
) -> None:
    host = tmp_path / "host-data"
    host.mkdir()
    (host / "keep").write_text("host")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("outside")
    pod = _pod(
        [
            {"name": "h", "hostPath": {"path": str(host), "type": "Directory"}},
            {"name": "e", "emptyDir": {}},
            {"name": "c", "configMap": {"name": "app"}},
        ]
    )
    paths = manager.prepare(pod, _objects(), CTX)
    (paths["e"] / "link-to-outside").symlink_to(outside)
    (paths["e"] / "link-to-host").symlink_to(host)
    (paths["e"] / "file-link").symlink_to(outside / "keep")
    manager.cleanup(UID)
    assert not manager.pod_dir(UID).exists()
    assert (host / "keep").read_text() == "host"
    assert (outside / "keep").read_text() == "outside"
    manager.cleanup(UID)  # nothing left: a no-op


def test_cleanup_of_a_symlinked_pod_dir_removes_only_the_link(
    manager: VolumeManager, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("x")
    manager.pod_dir(UID).parent.mkdir(parents=True)
    manager.pod_dir(UID).symlink_to(elsewhere)
    manager.cleanup(UID)
    assert not manager.pod_dir(UID).is_symlink()
    assert (elsewhere / "keep").read_text() == "x"


def test_paths(manager: VolumeManager, tmp_path: Path) -> None:
    root = tmp_path / "agent"
    assert manager.pod_dir("u1") == root / "pods/u1"
    assert manager.log_dir("ns", "web", "u1") == root / "logs/ns_web_u1"
    for bad in ("", "..", "a/b"):
        with pytest.raises(VolumeError, match="cannot name a directory"):
            manager.cleanup(bad)


def test_clock_names_versions(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    when = calendar.timegm((2030, 6, 7, 8, 9, 10))
    write_atomically(target, {"f": FileProjection(b"1", 0o644)}, when)
    assert os.readlink(target / "..data").startswith("..2030_06_07_08_09_10.")

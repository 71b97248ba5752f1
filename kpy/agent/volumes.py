"""A pod's volumes on the node, as the kubelet's volume plugins lay them out.

Every volume the agent makes lives at
`root/pods/<uid>/volumes/<plugin>/<volume-name>`, with the kubelet's plugin
directory names (`kubernetes.io~empty-dir`, `~configmap`, `~secret`,
`~downward-api`, `~projected`). hostPath and persistentVolumeClaim volumes
are used in place: nothing of theirs is under the pod directory.

Contract:

- `prepare` makes every volume of a pod ready and returns volume name ->
  host path; it is idempotent, so the agent calls it before each container
  start. `refresh` re-renders the API data volumes (configMap, secret,
  downwardAPI, projected) of a prepared pod and says whether anything
  changed; it never creates a volume the pod does not already have on disk.
- API data volumes are written the way Kubernetes' AtomicWriter writes them:
  the files go to a fresh `..<timestamp>.<random>` directory, the `..data`
  symlink is swapped to it with one rename, and each top-level entry the
  user sees is a symlink through `..data`. Files are never rewritten in
  place, so a reader that resolved `..data` once (or holds files open)
  sees one whole version, never a mix. Old versions are removed after the
  swap; content (and modes) equal to what is on disk writes nothing.
- A projected `serviceAccountToken` source holds the pod's token as the
  agent's token manager got it from the API server
  (`Objects.service_account_token`, `kpy.agent.tokens`); a refreshed token
  is written by the next `refresh`, atomically as any other file. While
  there is no token (the request failed, or has no answer yet) the volume
  fails with VolumeError ("failed to fetch token: ..."), so the pod waits.
- API data volumes are always mounted read-only, as Kubernetes mounts them,
  so that no container can corrupt the writer's state.
- Failures raise `VolumeError` (or env's `ConfigError` for a missing
  ConfigMap, Secret or key that is not optional), each message prefixed
  with `MountVolume.SetUp failed for volume "<name>" :` as the kubelet's
  FailedMount events read.
- `cleanup` removes the pod's directory without following a symlink out of
  it and refuses to cross a mount point, so hostPath targets and anything a
  symlink inside a volume points to are never touched.
- All methods do blocking file I/O: the agent calls them from a worker
  thread (`anyio.to_thread.run_sync`). Calls for one pod must not overlap
  (the agent's per-pod worker serialises them); different pods may proceed
  in parallel.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import posixpath
import shutil
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Final

from kpy.agent.env import (
    ConfigError,
    PodContext,
    config_map_data,
    expand,
    field_value,
    resource_value,
    secret_data,
)
from kpy.agent.runtime.base import Mount

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

    from kpy.agent.env import Objects
    from kpy.api.core.v1 import (
        ConfigMapVolumeSource,
        Container,
        DownwardAPIVolumeFile,
        DownwardAPIVolumeSource,
        KeyToPath,
        PersistentVolume,
        PersistentVolumeClaimVolumeSource,
        Pod,
        ProjectedVolumeSource,
        SecretVolumeSource,
        Volume,
        VolumeMount,
    )

__all__ = [
    "CONFIG_MAP_PLUGIN",
    "DOWNWARD_API_PLUGIN",
    "EMPTY_DIR_PLUGIN",
    "PROJECTED_PLUGIN",
    "SECRET_PLUGIN",
    "FileProjection",
    "VolumeError",
    "VolumeManager",
    "write_atomically",
]

EMPTY_DIR_PLUGIN: Final = "kubernetes.io~empty-dir"
CONFIG_MAP_PLUGIN: Final = "kubernetes.io~configmap"
SECRET_PLUGIN: Final = "kubernetes.io~secret"
DOWNWARD_API_PLUGIN: Final = "kubernetes.io~downward-api"
PROJECTED_PLUGIN: Final = "kubernetes.io~projected"

# Volume source field -> plugin directory, for the volumes rendered from API data.
_API_DATA_PLUGINS: Final = {
    "config_map": CONFIG_MAP_PLUGIN,
    "secret": SECRET_PLUGIN,
    "downward_api": DOWNWARD_API_PLUGIN,
    "projected": PROJECTED_PLUGIN,
}
_SUPPORTED: Final = ("empty_dir", "host_path", "persistent_volume_claim", *_API_DATA_PLUGINS)

_DEFAULT_MODE: Final = 0o644
_DATA_LINK: Final = "..data"
_DATA_TMP: Final = "..data_tmp"
_MAX_SEGMENT: Final = 255


class VolumeError(Exception):
    """A volume cannot be set up or mounted. `reason` is the Event reason
    the kubelet records; the pod stays ContainerCreating meanwhile."""

    reason = "FailedMount"


@dataclass(frozen=True, slots=True)
class FileProjection:
    """One file of an API data volume: its bytes and permission bits."""

    data: bytes
    mode: int


Payload = dict[str, FileProjection]


class VolumeManager:
    """Makes, refreshes, mounts and removes pod volumes under `root`; see
    the module docstring for the contract. `clock` names the timestamped
    directories (UTC)."""

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._root = Path(root)
        self._clock = clock

    def pod_dir(self, uid: str) -> Path:
        """`root/pods/<uid>` (not created here)."""
        return self._root / "pods" / _checked_name(uid, "pod uid")

    def log_dir(self, namespace: str, name: str, uid: str) -> Path:
        """`root/logs/<namespace>_<name>_<uid>` (not created here)."""
        return self._root / "logs" / _checked_name(f"{namespace}_{name}_{uid}", "pod log dir")

    def volume_dir(self, uid: str, plugin: str, name: str) -> Path:
        return self.pod_dir(uid) / "volumes" / plugin / _checked_name(name, "volume name")

    # --- setting up ---

    def prepare(self, pod: Pod, objects: Objects, ctx: PodContext) -> dict[str, Path]:
        """Make every volume of the pod ready; volume name -> host path.

        emptyDir is a plain directory (mode 0777, as Kubernetes makes it);
        `medium: Memory` is a plain directory too (kpy mounts no tmpfs) and
        `sizeLimit` is not enforced. hostPath is the path itself after its
        `type` check. A persistentVolumeClaim is its bound PersistentVolume's
        hostPath or local path. With the pod's `securityContext.fsGroup`,
        emptyDir and API data volumes belong to that group (emptyDir g+rwx
        and setgid, files g+r), as the kubelet sets them; hostPath and claims
        are left alone. Raises VolumeError or ConfigError."""
        self.pod_dir(pod.metadata.uid).mkdir(mode=0o750, parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for volume in pod.spec.volumes:
            with _setting_up(volume.name):
                paths[volume.name] = self._set_up(pod, volume, objects, ctx)
        return paths

    def refresh(self, pod: Pod, objects: Objects, ctx: PodContext) -> bool:
        """Re-render the API data volumes the pod already has on disk (after
        a ConfigMap, Secret, label or annotation changed); whether any file
        changed. A volume that fails keeps its old content; the others are
        still refreshed, then the first error is raised."""
        changed = False
        errors: list[Exception] = []
        for volume in pod.spec.volumes:
            try:
                with _setting_up(volume.name):
                    changed |= self._refresh_volume(pod, volume, objects, ctx)
            except (ConfigError, VolumeError) as err:
                errors.append(err)
        if errors:
            raise errors[0]
        return changed

    def _refresh_volume(self, pod: Pod, volume: Volume, objects: Objects, ctx: PodContext) -> bool:
        plugin = _API_DATA_PLUGINS.get(_source_of(volume))
        if plugin is None:
            return False
        target = self.volume_dir(pod.metadata.uid, plugin, volume.name)
        if not target.is_dir():
            # Never prepared, or already cleaned up: refreshing must not
            # bring a removed pod's files back.
            return False
        return self._render(pod, volume, target, objects, ctx)

    def _set_up(self, pod: Pod, volume: Volume, objects: Objects, ctx: PodContext) -> Path:
        source = _source_of(volume)
        if source not in _SUPPORTED:
            raise VolumeError(
                f"volume type {source} is not supported by kpy-agent; use one of "
                "emptyDir, hostPath, configMap, secret, downwardAPI, projected, "
                "persistentVolumeClaim"
            )
        if source == "empty_dir":
            return _give_to_fs_group(self._empty_dir(pod.metadata.uid, volume.name), pod)
        if source == "host_path":
            return _host_path(volume.host_path.path, volume.host_path.type)
        if source == "persistent_volume_claim":
            return _claim_path(pod.metadata.namespace, volume.persistent_volume_claim, objects)
        target = self.volume_dir(pod.metadata.uid, _API_DATA_PLUGINS[source], volume.name)
        self._render(pod, volume, target, objects, ctx)
        return target

    def _empty_dir(self, uid: str, name: str) -> Path:
        path = self.volume_dir(uid, EMPTY_DIR_PLUGIN, name)
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            # Any user a container runs as may write it, as in Kubernetes.
            path.chmod(0o777)
        return path

    def _render(
        self, pod: Pod, volume: Volume, target: Path, objects: Objects, ctx: PodContext
    ) -> bool:
        payload = _payload(pod, volume, objects, ctx)
        gid = _fs_group(pod)
        if gid is not None:
            # The fsGroup reads every file (the kubelet's read-only mask), in
            # the modes compared on refresh too, so nothing is rewritten.
            payload = {k: FileProjection(f.data, f.mode | 0o440) for k, f in payload.items()}
        changed = write_atomically(target, payload, self._clock())
        if gid is not None:
            _chown_tree(target, gid)
        return changed

    # --- mounting ---

    def mounts(
        self,
        container: Container,
        volume_paths: Mapping[str, Path],
        *,
        pod: Pod | None = None,
        env: Mapping[str, str] | None = None,
    ) -> list[Mount]:
        """The container's volumeMounts as runtime Mounts.

        `subPath` mounts a file or directory inside the volume (a missing
        directory is created, except in API data volumes); one that leaves
        the volume, by `..` or through a symlink, is refused. `subPathExpr`
        is expanded with `env` (the container's environment). A mount is
        read-only when it says so, when its volume is an API data volume,
        or (given `pod`) when its persistentVolumeClaim volume is readOnly.
        A subPath of an API data volume is resolved now, so like in
        Kubernetes it does not follow later updates. Raises VolumeError."""
        forced = _read_only_claims(pod) if pod is not None else set()
        result: list[Mount] = []
        for mount in container.volume_mounts:
            where = f'container "{container.name}" volumeMount "{mount.name}"'
            base = volume_paths.get(mount.name)
            if base is None:
                known = ", ".join(sorted(volume_paths)) or "none"
                raise VolumeError(f"{where}: the pod has no volume of that name (volumes: {known})")
            api_data = self._is_api_data(base)
            host = base
            sub = _sub_path(mount, env or {}, where)
            if sub:
                host = _resolve_sub_path(base, sub, where, creatable=not api_data)
            read_only = mount.read_only or api_data or mount.name in forced
            result.append(Mount(str(host), mount.mount_path, read_only))
        return result

    def _is_api_data(self, path: Path) -> bool:
        return path.parent.name in _API_DATA_PLUGINS.values() and path.is_relative_to(
            self._root / "pods"
        )

    # --- tearing down ---

    def cleanup(self, pod_uid: str) -> None:
        """Remove the pod's directory and everything under it. Symlinks are
        removed, never followed; a mount point inside raises VolumeError
        (unmount it first) and nothing is removed."""
        pod_dir = self.pod_dir(pod_uid)
        if pod_dir.is_symlink():
            pod_dir.unlink()
            return
        if not pod_dir.exists():
            return
        _refuse_mount_points(pod_dir)
        shutil.rmtree(pod_dir)


def _fs_group(pod: Pod) -> int | None:
    sc = pod.spec.security_context
    return sc.fs_group if sc.HasField("fs_group") else None


def _give_to_fs_group(path: Path, pod: Pod) -> Path:
    """An emptyDir the pod's fsGroup owns and writes, as the kubelet makes
    it (group, g+rwx and setgid, so new files get the group too)."""
    gid = _fs_group(pod)
    if gid is not None:
        os.chown(path, -1, gid)
        path.chmod(stat.S_IMODE(path.stat().st_mode) | 0o070 | stat.S_ISGID)
    return path


def _chown_tree(top: Path, gid: int) -> None:
    """Gives `top` and everything below it (symlinks themselves, never
    what they point to) to group `gid`."""
    os.chown(top, -1, gid)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), -1, gid, follow_symlinks=False)


@contextlib.contextmanager
def _setting_up(volume_name: str) -> Iterator[None]:
    try:
        yield
    except (ConfigError, VolumeError) as err:
        message = f'MountVolume.SetUp failed for volume "{volume_name}" : {err}'
        raise type(err)(message) from err


def _checked_name(name: str, what: str) -> str:
    """A single path segment: the pod directory must never be a path out."""
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise VolumeError(f"{what} {name!r} cannot name a directory")
    return name


def _source_of(volume: Volume) -> str:
    """The volume's source field; a volume naming none is an emptyDir."""
    sources = [f.name for f, _ in volume.ListFields() if f.name != "name"]
    if len(sources) > 1:
        raise VolumeError(f"names more than one source: {', '.join(sources)}")
    return sources[0] if sources else "empty_dir"


# --- hostPath and persistentVolumeClaim ---


def _exists_as(test: Callable[[int], bool], what: str) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise VolumeError(f"hostPath type check failed: {path} does not exist") from None
        if not test(mode):
            raise VolumeError(f"hostPath type check failed: {path} is not {what}")

    return check


_is_directory = _exists_as(stat.S_ISDIR, "a directory")
_is_file = _exists_as(stat.S_ISREG, "a file")


def _directory_or_create(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
    _is_directory(path)


def _file_or_create(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        try:
            os.close(os.open(path, os.O_CREAT | os.O_RDONLY, 0o644))
        except FileNotFoundError:
            raise VolumeError(
                f"hostPath type check failed: cannot create file {path}: "
                f"directory {path.parent} does not exist (FileOrCreate makes no parents)"
            ) from None
    _is_file(path)


_HOST_PATH_TYPES: Final[dict[str, Callable[[Path], None]]] = {
    "": lambda _: None,
    "DirectoryOrCreate": _directory_or_create,
    "Directory": _is_directory,
    "FileOrCreate": _file_or_create,
    "File": _is_file,
    "Socket": _exists_as(stat.S_ISSOCK, "a socket file"),
    "CharDevice": _exists_as(stat.S_ISCHR, "a character device"),
    "BlockDevice": _exists_as(stat.S_ISBLK, "a block device"),
}


def _host_path(path: str, kind: str) -> Path:
    """The hostPath itself, after the check its `type` asks for."""
    if not path.startswith("/"):
        raise VolumeError(f"hostPath {path!r} must be an absolute path")
    check = _HOST_PATH_TYPES.get(kind)
    if check is None:
        known = ", ".join(repr(k) for k in _HOST_PATH_TYPES)
        raise VolumeError(f"hostPath type {kind!r} is not one of {known}")
    check(Path(path))
    return Path(path)


def _claim_path(
    namespace: str, source: PersistentVolumeClaimVolumeSource, objects: Objects
) -> Path:
    name = source.claim_name
    claim = objects.persistent_volume_claim(namespace, name)
    if claim is None:
        raise VolumeError(f'persistentvolumeclaim "{name}" not found')
    volume_name = claim.spec.volume_name
    if claim.status.phase != "Bound" or not volume_name:
        raise VolumeError(
            f'persistentvolumeclaim "{name}" is not bound (phase '
            f'"{claim.status.phase or "Pending"}", volumeName "{volume_name}"); '
            "the pod waits until a PersistentVolume is bound to it"
        )
    pv = objects.persistent_volume(volume_name)
    if pv is None:
        raise VolumeError(
            f'persistentvolume "{volume_name}" bound to claim {namespace}/{name} not found'
        )
    ref = pv.spec.claim_ref
    if pv.spec.HasField("claim_ref") and (ref.namespace, ref.name) != (namespace, name):
        raise VolumeError(
            f'persistentvolume "{volume_name}" is bound to claim {ref.namespace}/{ref.name}, '
            f"not to {namespace}/{name}"
        )
    return _volume_path(pv)


def _volume_path(pv: PersistentVolume) -> Path:
    spec, name = pv.spec, pv.metadata.name
    if spec.HasField("host_path"):
        return _host_path(spec.host_path.path, spec.host_path.type)
    if spec.HasField("local"):
        path = Path(spec.local.path)
        if not path.exists():
            raise VolumeError(
                f'local path {path} of persistentvolume "{name}" does not exist on this node'
            )
        return path
    sources = [f.name for f, _ in spec.ListFields() if f.name in ("nfs", "csi")]
    raise VolumeError(
        f'persistentvolume "{name}" has no hostPath or local source '
        f"(it has: {', '.join(sources) or 'none'}); kpy-agent mounts only directories "
        "of this node, so back the claim with a hostPath or local PersistentVolume"
    )


# --- API data volumes: what to write ---


def _payload(pod: Pod, volume: Volume, objects: Objects, ctx: PodContext) -> Payload:
    namespace = pod.metadata.namespace
    if volume.HasField("config_map"):
        cm = volume.config_map
        data = config_map_data(objects, namespace, cm.name, optional=cm.optional, binary=True)
        return _key_files(data, cm.items, _mode_of(cm), cm.optional, f'configmap "{cm.name}"')
    if volume.HasField("secret"):
        sv = volume.secret
        data = secret_data(objects, namespace, sv.secret_name, optional=sv.optional)
        return _key_files(data, sv.items, _mode_of(sv), sv.optional, f'secret "{sv.secret_name}"')
    if volume.HasField("downward_api"):
        return _downward_files(pod, volume.downward_api.items, _mode_of(volume.downward_api), ctx)
    return _projected_files(pod, volume.projected, objects, ctx)


def _mode_of(
    source: ConfigMapVolumeSource
    | SecretVolumeSource
    | DownwardAPIVolumeSource
    | ProjectedVolumeSource,
) -> int:
    return source.default_mode if source.HasField("default_mode") else _DEFAULT_MODE


def _key_files(
    data: dict[str, bytes] | None,
    items: RepeatedCompositeFieldContainer[KeyToPath],
    default_mode: int,
    optional: bool,
    what: str,
) -> Payload:
    """A file per key, or only the `items` asked for (at their `path`)."""
    if data is None:
        return {}
    if not items:
        return {key: FileProjection(value, default_mode) for key, value in data.items()}
    files: Payload = {}
    for item in items:
        if item.key not in data:
            if optional:
                continue
            raise ConfigError(f"{what} references non-existent key: {item.key}")
        mode = item.mode if item.HasField("mode") else default_mode
        files[item.path] = FileProjection(data[item.key], mode)
    return files


def _downward_files(
    pod: Pod,
    items: Iterable[DownwardAPIVolumeFile],
    default_mode: int,
    ctx: PodContext,
) -> Payload:
    files: Payload = {}
    for item in items:
        if item.HasField("field_ref"):
            value = field_value(pod, item.field_ref.field_path, ctx)
        elif item.HasField("resource_field_ref"):
            ref = item.resource_field_ref
            value = resource_value(pod, ref.container_name, ref.resource, ref.divisor.string, ctx)
        else:
            raise VolumeError(
                f"downwardAPI item {item.path!r} names no fieldRef or resourceFieldRef"
            )
        mode = item.mode if item.HasField("mode") else default_mode
        files[item.path] = FileProjection(value.encode(), mode)
    return files


def _projected_files(
    pod: Pod, projected: ProjectedVolumeSource, objects: Objects, ctx: PodContext
) -> Payload:
    """Every source's files merged into one directory (a later source wins
    a path that API validation should have refused as a duplicate)."""
    namespace, mode = pod.metadata.namespace, _mode_of(projected)
    files: Payload = {}
    for source in projected.sources:
        if source.HasField("config_map"):
            cm = source.config_map
            data = config_map_data(objects, namespace, cm.name, optional=cm.optional, binary=True)
            files |= _key_files(data, cm.items, mode, cm.optional, f'configmap "{cm.name}"')
        elif source.HasField("secret"):
            sp = source.secret
            data = secret_data(objects, namespace, sp.name, optional=sp.optional)
            files |= _key_files(data, sp.items, mode, sp.optional, f'secret "{sp.name}"')
        elif source.HasField("downward_api"):
            files |= _downward_files(pod, source.downward_api.items, mode, ctx)
        elif source.HasField("service_account_token"):
            # The token the agent's token manager holds for this pod (got
            # from the API server and refreshed: `kpy.agent.tokens`).
            projection = source.service_account_token
            token = objects.service_account_token(pod, projection)
            files[projection.path or "token"] = FileProjection(token, mode)
        else:
            raise VolumeError(
                "a projected source other than configMap, secret, downwardAPI and "
                "serviceAccountToken is not supported by kpy-agent"
            )
    return files


# --- API data volumes: writing atomically (Kubernetes' AtomicWriter) ---


def write_atomically(target: Path, payload: Mapping[str, FileProjection], now: float) -> bool:
    """Make `target` hold exactly `payload` (relative path -> file), the
    AtomicWriter way described in the module docstring; whether anything
    was written. `now` (seconds since the epoch) names the new version."""
    files = _validated(payload)
    target.mkdir(parents=True, exist_ok=True)
    current = _current_version(target)
    if current is not None and _read_version(target / current) == files:
        _link_visible(target, files)
        return False
    fresh = _new_version_dir(target, now)
    _write_version(fresh, files)
    tmp_link = target / _DATA_TMP
    if tmp_link.is_symlink():
        tmp_link.unlink()
    tmp_link.symlink_to(fresh.name)
    # One rename: a reader resolves `..data` to the old or the new version.
    tmp_link.replace(target / _DATA_LINK)
    _link_visible(target, files)
    _unlink_stale_visible(target, files)
    _remove_old_versions(target, keep=fresh.name)
    return True


def _validated(payload: Mapping[str, FileProjection]) -> Payload:
    """Clean relative paths that stay inside the volume, none inside another."""
    files: Payload = {}
    for raw, projection in payload.items():
        parts = raw.split("/")
        bad = (
            not raw
            or raw.startswith(("/", ".."))
            or ".." in parts
            or any(len(part.encode()) > _MAX_SEGMENT for part in parts)
        )
        if bad:
            raise VolumeError(
                f"file path {raw!r} must be relative, not contain '..', not start "
                f"with '..' and have no segment over {_MAX_SEGMENT} bytes"
            )
        files[posixpath.normpath(raw)] = FileProjection(projection.data, projection.mode & 0o777)
    ordered = sorted(files)
    for path, after in itertools.pairwise(ordered):
        if after.startswith(path + "/"):
            raise VolumeError(f"file path {path!r} is both a file and the directory of {after!r}")
    return files


def _current_version(target: Path) -> str | None:
    link = target / _DATA_LINK
    if not link.is_symlink():
        return None
    name = os.readlink(link)
    return name if name.startswith("..") and "/" not in name else None


def _read_version(version: Path) -> Payload | None:
    """What a version directory holds, or None when it is not a clean
    tree of regular files (then it is rewritten)."""
    files: Payload = {}
    for dirpath, _, filenames in os.walk(version):
        for filename in filenames:
            path = Path(dirpath, filename)
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                return None
            rel = path.relative_to(version).as_posix()
            files[rel] = FileProjection(path.read_bytes(), stat.S_IMODE(info.st_mode))
    return files if version.is_dir() else None


def _new_version_dir(target: Path, now: float) -> Path:
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime(now))
    fresh = Path(tempfile.mkdtemp(prefix=stamp, dir=target))
    fresh.chmod(0o755)
    return fresh


def _write_version(version: Path, files: Payload) -> None:
    for rel, projection in files.items():
        path = version / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with open(fd, "wb") as out:
            out.write(projection.data)
        # chmod, not the open mode: the umask must not change what was asked.
        path.chmod(projection.mode)


def _top_level(files: Payload) -> set[str]:
    return {path.split("/", 1)[0] for path in files}


def _link_visible(target: Path, files: Payload) -> None:
    for name in _top_level(files):
        link = target / name
        if not link.is_symlink() and not link.exists():
            link.symlink_to(f"{_DATA_LINK}/{name}")


def _unlink_stale_visible(target: Path, files: Payload) -> None:
    wanted = _top_level(files)
    for entry in os.scandir(target):
        if entry.name.startswith("..") or entry.name in wanted or not entry.is_symlink():
            continue
        if os.readlink(entry.path).startswith(f"{_DATA_LINK}/"):
            os.unlink(entry.path)


def _remove_old_versions(target: Path, *, keep: str) -> None:
    """Every version but `keep`, including ones a crash left half written."""
    for entry in os.scandir(target):
        stale = entry.name.startswith("..") and entry.name not in (_DATA_LINK, keep)
        if stale and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)


# --- mounts ---


def _read_only_claims(pod: Pod) -> set[str]:
    return {
        volume.name
        for volume in pod.spec.volumes
        if volume.HasField("persistent_volume_claim") and volume.persistent_volume_claim.read_only
    }


class _Recorded(Mapping[str, str]):
    """The env as `expand` sees it, remembering names with no value."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.missing: set[str] = set()

    def __getitem__(self, key: str) -> str:
        value = self._env.get(key, "")
        if not value:
            self.missing.add(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def _sub_path(mount: VolumeMount, env: Mapping[str, str], where: str) -> str:
    if not mount.sub_path_expr:
        return mount.sub_path
    recorded = _Recorded(env)
    expanded = expand(mount.sub_path_expr, recorded)
    if recorded.missing:
        missing = ", ".join(sorted(recorded.missing))
        raise VolumeError(
            f"{where}: subPathExpr {mount.sub_path_expr!r}: missing value for {missing}"
        )
    return expanded


def _resolve_sub_path(base: Path, sub: str, where: str, *, creatable: bool) -> Path:
    """`sub` inside the volume at `base`, with every symlink resolved."""
    if sub.startswith("/") or ".." in PurePosixPath(sub).parts:
        raise VolumeError(f"{where}: subPath {sub!r} must be a relative path without '..'")
    real_base = Path(os.path.realpath(base))
    real = Path(os.path.realpath(base / sub))
    if not real.is_relative_to(real_base):
        raise VolumeError(
            f"{where}: subPath {sub!r} resolves to {real}, outside the volume "
            "(a symlink in the volume points out of it)"
        )
    if not real.exists():
        if not creatable:
            raise VolumeError(
                f"{where}: subPath {sub!r} does not exist, and kpy creates none in a "
                "configMap, secret, downwardAPI or projected volume"
            )
        real.mkdir(parents=True, exist_ok=True)
    return real


def _refuse_mount_points(top: Path) -> None:
    device = top.lstat().st_dev
    for dirpath, _, _ in os.walk(top):
        if os.lstat(dirpath).st_dev != device:
            raise VolumeError(f"cannot remove {top}: {dirpath} is a mount point; unmount it first")

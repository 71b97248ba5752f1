"""Static pods: pods the agent runs from files, without the API server.

As kubelet's `--pod-manifest-path`: every `*.yaml`, `*.yml` or `*.json` file
in one directory (not its subdirectories; dotfiles and editor leftovers such
as `*~` and `*.swp` are skipped) holds one Pod. `ManifestSource` keeps the
current set of those pods and tells the agent when it changes; the agent runs
them and publishes a read-only mirror of each in the API (`mirror_pod`), which
it recreates whenever the mirror no longer matches (`mirror_matches`).

The pure transformations follow Kubernetes:
- `static_pod`: namespace "default" when unset, name `<name>-<node name>`,
  `spec.nodeName` set, a uid that hashes the defaulted manifest with the node
  name and the file path (so an edit, another node or another file gives a
  new uid and an unchanged file keeps its uid), the `kubernetes.io/config.*`
  annotations, a toleration of every NoExecute taint (a node problem must not
  evict the pods that make up the node), and phase Pending.
- `mirror_pod`: the API copy, annotated `kubernetes.io/config.mirror` and
  owned by the Node, so it goes when the Node goes.

How `ManifestSource` sees changes: inotify (the `asyncinotify` library) on the
directory, with a burst of
events settled for `debounce_seconds` into one re-read, plus a full re-read
every `rescan_seconds` as a safety net: it catches what inotify cannot see
(a symlinked manifest whose target changes elsewhere) and it is the only
mechanism when inotify is unavailable. A directory that does not exist is an
empty set; its parent directory is watched so that its creation is seen at
once (and if the parent does not exist either, the rescan finds it).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeAlias

import anyio
import anyio.to_thread
from asyncinotify import Event, Inotify, Mask, Watch

from kpy.api import codec
from kpy.api.core.v1 import Node, Pod, Toleration
from kpy.api.defaults import set_defaults
from kpy.api.validation import validate

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence
    from pathlib import Path

    from google.protobuf.message import Message

__all__ = [
    "CONFIG_HASH_ANNOTATION",
    "CONFIG_SEEN_ANNOTATION",
    "CONFIG_SOURCE_ANNOTATION",
    "FILE_SOURCE",
    "MIRROR_ANNOTATION",
    "ManifestSource",
    "StaticPodError",
    "is_manifest_name",
    "is_mirror_pod",
    "is_static_pod",
    "load_static_pod",
    "mirror_matches",
    "mirror_pod",
    "pod_full_name",
    "static_pod",
]

log = logging.getLogger("kpy.agent.static_pods")

CONFIG_SOURCE_ANNOTATION = "kubernetes.io/config.source"
CONFIG_HASH_ANNOTATION = "kubernetes.io/config.hash"
CONFIG_SEEN_ANNOTATION = "kubernetes.io/config.seen"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
# The config.source of a pod read from a manifest file.
FILE_SOURCE = "file"
# Sources whose pods are static (kubelet also knows "http"); "api" pods are not.
_STATIC_SOURCES = frozenset({FILE_SOURCE, "http"})

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_EDITOR_LEFTOVERS = ("~", ".swp", ".swx", ".tmp")

OnChange: TypeAlias = "Callable[[dict[str, Pod]], Awaitable[None] | None]"
OnError: TypeAlias = "Callable[[Path, str], Awaitable[None] | None]"


# ---------------------------------------------------------------- pure parts


class StaticPodError(Exception):
    """A manifest file that does not give a static pod; the message names
    the file and the field, and says what to change."""


def pod_full_name(pod: Pod) -> str:
    """`namespace/name`, the key of a pod in `ManifestSource`'s sets."""
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def static_pod(
    manifest_pod: Pod,
    *,
    node_name: str,
    source_path: str | os.PathLike[str],
    seen: datetime | None = None,
) -> Pod:
    """The pod the agent runs for `manifest_pod`, read from `source_path`.

    Returns a new, defaulted Pod (the argument is not modified); `seen`
    (default now) is the time put in the config.seen annotation, which is
    not part of the uid. See the module docstring for what changes."""
    pod = Pod()
    pod.CopyFrom(manifest_pod)
    set_defaults(pod)
    uid = _config_hash(pod, node_name=node_name, source_path=os.fspath(source_path))
    meta = pod.metadata
    meta.uid = uid
    meta.name = f"{meta.name}-{node_name.lower()}"
    if not meta.namespace:
        meta.namespace = "default"
    pod.spec.node_name = node_name
    meta.annotations[CONFIG_SOURCE_ANNOTATION] = FILE_SOURCE
    meta.annotations[CONFIG_HASH_ANNOTATION] = uid
    meta.annotations[CONFIG_SEEN_ANNOTATION] = _rfc3339(seen or datetime.now(UTC))
    _tolerate_no_execute(pod)
    pod.status.phase = "Pending"
    return pod


def _config_hash(defaulted: Pod, *, node_name: str, source_path: str) -> str:
    # Canonical JSON rather than protobuf bytes: map order and wire details
    # must not change a uid that running pods are known by.
    content = json.dumps(codec.to_dict(defaulted), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256()
    for part in (content, f"host:{node_name}", f"file:{source_path}"):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def _tolerate_no_execute(pod: Pod) -> None:
    wanted = Toleration(operator="Exists", effect="NoExecute")
    for existing in pod.spec.tolerations:
        if _same_toleration(existing, wanted):
            existing.CopyFrom(wanted)
            return
    pod.spec.tolerations.append(wanted)


def _same_toleration(a: Toleration, b: Toleration) -> bool:
    return (a.key, a.operator or "Equal", a.value, a.effect) == (
        b.key,
        b.operator or "Equal",
        b.value,
        b.effect,
    )


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def mirror_pod(static: Pod, node: Node) -> Pod:
    """The mirror of `static` to create in the API: its name, namespace,
    labels, annotations and spec, plus the config.mirror annotation and an
    ownerReference to `node`; no uid or resourceVersion (the API server sets
    them) and no status (the agent reports it afterwards).

    Raises ValueError if `node` has no uid (read it from the API first)."""
    if not node.metadata.uid:
        raise ValueError(
            f'node "{node.metadata.name}" has no metadata.uid; read the Node from the '
            "API server before creating mirror pods, which it owns"
        )
    mirror = Pod()
    meta = mirror.metadata
    meta.name = static.metadata.name
    meta.namespace = static.metadata.namespace
    meta.labels.update(static.metadata.labels)
    meta.annotations.update(static.metadata.annotations)
    meta.annotations[MIRROR_ANNOTATION] = _hash_of(static)
    meta.owner_references.add(
        api_version="v1",
        kind="Node",
        name=node.metadata.name,
        uid=node.metadata.uid,
        controller=False,
    )
    mirror.spec.CopyFrom(static.spec)
    return mirror


def _hash_of(static: Pod) -> str:
    return static.metadata.annotations.get(CONFIG_HASH_ANNOTATION) or static.metadata.uid


def is_mirror_pod(pod: Pod) -> bool:
    """An API pod that mirrors a static pod: the agent owns it, not users."""
    return MIRROR_ANNOTATION in pod.metadata.annotations


def is_static_pod(pod: Pod) -> bool:
    """A pod that came from a file (or URL) rather than the API. A mirror pod
    carries the same annotations but is not itself static."""
    source = pod.metadata.annotations.get(CONFIG_SOURCE_ANNOTATION, "")
    return source in _STATIC_SOURCES and not is_mirror_pod(pod)


def mirror_matches(mirror: Pod, static: Pod) -> bool:
    """Whether `mirror` is an up-to-date mirror of `static`: the same
    namespace and name, the same config hash, and not being deleted. The
    agent deletes and recreates a mirror that does not match."""
    return (
        pod_full_name(mirror) == pod_full_name(static)
        and not mirror.metadata.HasField("deletion_timestamp")
        and mirror.metadata.annotations.get(MIRROR_ANNOTATION) == _hash_of(static)
    )


def load_static_pod(path: Path, *, node_name: str, seen: datetime | None = None) -> Pod:
    """The static pod of one manifest file: strictly decoded, defaulted,
    transformed (`static_pod`) and validated. Raises StaticPodError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StaticPodError(f"{path}: cannot read the file: {exc}") from None
    try:
        objects = codec.load_manifest(text, source=str(path))
    except codec.ManifestError as exc:
        raise StaticPodError(str(exc)) from None
    pod = static_pod(_only_pod(objects, path), node_name=node_name, source_path=path, seen=seen)
    problems = validate(pod)
    if problems:
        hint = ""
        if any(p.path == "metadata.name" for p in problems):
            hint = f" (a static pod is named <metadata.name>-{node_name.lower()})"
        causes = "; ".join(str(p) for p in problems)
        raise StaticPodError(f'{path}: Pod "{pod.metadata.name}" is invalid: {causes}{hint}')
    return pod


def _only_pod(objects: Sequence[Message], path: Path) -> Pod:
    one_pod = "a static pod manifest holds exactly one Pod (apiVersion: v1, kind: Pod)"
    if not objects:
        raise StaticPodError(f"{path}: the file holds no object; {one_pod}")
    if len(objects) > 1:
        raise StaticPodError(
            f"{path}: the file holds {len(objects)} objects; {one_pod}: "
            "put each pod in a file of its own"
        )
    obj = objects[0]
    if not isinstance(obj, Pod):
        kind = codec.encode_object(obj)
        raise StaticPodError(
            f"{path}: kind: {kind['apiVersion']} {kind['kind']} is not a Pod; {one_pod}"
        )
    return obj


# ---------------------------------------------------------------- the directory


def is_manifest_name(name: str) -> bool:
    """Whether a directory entry is read as a manifest: the right suffix, not
    hidden, not an editor's backup or swap file."""
    return (
        not name.startswith(".")
        and name.endswith(MANIFEST_SUFFIXES)
        and not name.endswith(_EDITOR_LEFTOVERS)
    )


@dataclass(frozen=True, slots=True)
class _Scan:
    """One read of the directory. `pods` is None when the directory could
    not be listed (the previous set stands); `present` is False when it does
    not exist (an empty set)."""

    pods: dict[str, Pod] | None
    errors: dict[Path, str]
    present: bool


def _scan(directory: Path, node_name: str, seen: datetime) -> _Scan:
    try:
        names = sorted(entry.name for entry in os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return _Scan({}, {}, present=False)
    except OSError as exc:
        message = (
            f"{directory}: cannot list the static pod directory: {exc}; "
            "keeping the pods read before until it can be read"
        )
        return _Scan(None, {directory: message}, present=True)
    pods: dict[str, Pod] = {}
    origin: dict[str, Path] = {}
    errors: dict[Path, str] = {}
    for name in filter(is_manifest_name, names):
        path = directory / name
        if not path.is_file():
            continue
        try:
            pod = load_static_pod(path, node_name=node_name, seen=seen)
        except StaticPodError as exc:
            errors[path] = str(exc)
            continue
        key = pod_full_name(pod)
        if key in pods:
            errors[path] = (
                f'{path}: metadata.name: pod "{key}" is already defined by {origin[key]}; '
                "this file is ignored: rename the pod or remove one of the files"
            )
            continue
        pods[key] = pod
        origin[key] = path
    return _Scan(pods, errors, present=True)


# No IN_MODIFY: a file being written is read once it is closed (IN_CLOSE_WRITE),
# not half-written at the first write.
_DIRECTORY_EVENTS = (
    Mask.CREATE
    | Mask.DELETE
    | Mask.CLOSE_WRITE
    | Mask.MOVED_TO
    | Mask.MOVED_FROM
    | Mask.DELETE_SELF
    | Mask.MOVE_SELF
    | Mask.ATTRIB
)
_PARENT_EVENTS = Mask.CREATE | Mask.DELETE | Mask.MOVED_TO | Mask.MOVED_FROM
# However long a burst of events lasts, the directory is re-read at least this often.
_MAX_SETTLE_SECONDS = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


class ManifestSource:
    """The static pods of one directory, reported whenever they change.

    `run()` reads the directory, calls `on_change` with the initial set (even
    an empty one), then follows the directory until cancelled, calling
    `on_change(pods)` again only when a pod was added, removed or changed.
    `pods` maps `namespace/name` to the Pod; it is a new dict each time, but
    the Pods in it are shared with the source and must not be mutated. An
    unchanged pod keeps its uid and its config.seen time across re-reads.

    `on_error(path, message)` is called once for each file that gives no pod
    (it does not parse, is not one valid Pod, or repeats another file's pod
    name: the first file by name order wins), and again only if its problem
    changes; the other files' pods are unaffected.

    Either callback may be a plain function or a coroutine function; they
    are called one at a time, from the task running `run()`.
    """

    def __init__(
        self,
        directory: Path,
        node_name: str,
        *,
        on_change: OnChange,
        on_error: OnError,
        rescan_seconds: float = 20.0,
        debounce_seconds: float = 0.05,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.directory = directory
        self.node_name = node_name
        self._on_change = on_change
        self._on_error = on_error
        self._rescan_seconds = rescan_seconds
        self._debounce_seconds = debounce_seconds
        self._clock = clock
        self._lock = anyio.Lock()
        self._pods: dict[str, Pod] | None = None
        self._errors: dict[Path, str] = {}
        self._present: bool | None = None
        self._dir_watch: Watch | None = None
        self._parent_watch: Watch | None = None

    @property
    def pods(self) -> Mapping[str, Pod]:
        """The set last reported to `on_change` (empty before the first)."""
        return dict(self._pods or {})

    async def run(self) -> None:
        """Read and follow the directory until cancelled."""
        inotify = self._open_inotify()
        try:
            await self._reload(inotify)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._rescan_forever, inotify)
                if inotify is not None:
                    tg.start_soon(self._follow_forever, inotify)
        finally:
            if inotify is not None:
                inotify.close()

    def _open_inotify(self) -> Inotify | None:
        try:
            return Inotify()
        except OSError as exc:
            log.warning(
                "inotify is unavailable; static pod changes are seen only by the rescan",
                extra={
                    "directory": str(self.directory),
                    "error": str(exc),
                    "rescan_seconds": self._rescan_seconds,
                },
            )
            return None

    async def _rescan_forever(self, inotify: Inotify | None) -> None:
        while True:
            await anyio.sleep(self._rescan_seconds)
            await self._reload(inotify)

    async def _follow_forever(self, inotify: Inotify) -> None:
        while True:
            event = await inotify.get()
            if self._concerns_us(event):
                await self._settle(inotify)
                await self._reload(inotify)

    def _concerns_us(self, event: Event) -> bool:
        # The parent's watch reports every sibling; only our directory counts. A
        # queue overflow has no watch: events were lost, so re-read.
        parent = self._parent_watch
        if parent is None or event.watch is not parent:
            return True
        return event.name is not None and event.name.name == self.directory.name

    async def _settle(self, inotify: Inotify) -> None:
        """Returns once no event came for `debounce_seconds` (an editor's
        save is several events), or after at most _MAX_SETTLE_SECONDS."""
        deadline = anyio.current_time() + _MAX_SETTLE_SECONDS
        while True:
            quiet = min(self._debounce_seconds, deadline - anyio.current_time())
            with anyio.move_on_after(max(quiet, 0)) as scope:
                # An event read as the wait is cancelled may be dropped: harmless,
                # since the directory is re-read whole right after.
                await inotify.get()
            if scope.cancelled_caught:
                return

    async def _reload(self, inotify: Inotify | None) -> None:
        async with self._lock:
            if inotify is not None:
                self._watch(inotify)
            scan = await anyio.to_thread.run_sync(
                _scan, self.directory, self.node_name, self._clock()
            )
            self._note_presence(scan.present)
            await self._report_errors(scan.errors)
            if scan.pods is not None:
                await self._report_pods(scan.pods)

    def _watch(self, inotify: Inotify) -> None:
        """(Re)watches the directory and its parent; adding a watch that
        exists gives the same watch back, so this also follows a directory
        recreated."""
        parent = self.directory.parent
        if parent != self.directory:
            self._parent_watch = _try_watch(inotify, parent, _PARENT_EVENTS)
        watch = _try_watch(inotify, self.directory, _DIRECTORY_EVENTS | Mask.ONLYDIR)
        if self._dir_watch is not None and watch is not self._dir_watch:
            # The old directory was removed or moved away; stop hearing about it.
            # (It may already be gone with its directory.)
            with contextlib.suppress(OSError):
                inotify.rm_watch(self._dir_watch)
        self._dir_watch = watch

    def _note_presence(self, present: bool) -> None:
        if present == self._present:
            return
        if not present:
            log.info(
                "static pod directory does not exist; no static pods until it appears",
                extra={"directory": str(self.directory)},
            )
        elif self._present is not None:
            log.info("static pod directory appeared", extra={"directory": str(self.directory)})
        self._present = present

    async def _report_errors(self, errors: dict[Path, str]) -> None:
        for path, message in errors.items():
            if self._errors.get(path) != message:
                await _call(self._on_error, path, message)
        # Dropping fixed or vanished files lets the same problem be reported again if it returns.
        self._errors = dict(errors)

    async def _report_pods(self, scanned: dict[str, Pod]) -> None:
        previous = self._pods or {}
        current = {key: _unchanged_or(previous.get(key), pod) for key, pod in scanned.items()}
        first = self._pods is None
        if (
            not first
            and current.keys() == previous.keys()
            and all(current[k] is previous[k] for k in current)
        ):
            return
        self._pods = current
        log.debug(
            "static pods changed",
            extra={"directory": str(self.directory), "pods": ",".join(sorted(current))},
        )
        await _call(self._on_change, dict(current))


def _unchanged_or(old: Pod | None, new: Pod) -> Pod:
    # The same uid means the same file content: keep the pod first seen, and its seen time.
    if old is not None and old.metadata.uid == new.metadata.uid:
        return old
    return new


def _try_watch(inotify: Inotify, path: Path, mask: Mask) -> Watch | None:
    try:
        return inotify.add_watch(path, mask)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        log.warning(
            "cannot watch with inotify; changes are seen by the rescan",
            extra={"path": str(path), "error": str(exc)},
        )
        return None


async def _call(callback: Callable[..., Awaitable[None] | None], *args: object) -> None:
    result = callback(*args)
    if inspect.isawaitable(result):
        await result

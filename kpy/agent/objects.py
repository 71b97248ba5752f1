"""The objects a node's pods use, one watch per object, as the kubelet's
watch-based ConfigMap and Secret managers
(`--config-map-and-secret-change-detection-strategy=Watch`).

    objects = ObjectManager(client, wake=lambda uid: ...)
    await tg.start(objects.run)
    objects.track(pod)            # a pod arrived: watch what it uses
    objects.secret(ns, name)      # env's and volumes' `Objects` lookups
    await objects.wait_for_pod(uid)
    objects.untrack(uid)          # the pod is gone: stop what only it used

Contract:

- For each ConfigMap, Secret and PersistentVolumeClaim a tracked pod
  refers to (`env.references`: env, envFrom, volumes, projected sources),
  one informer limited to that object: list and watch in its namespace
  with the field selector `metadata.name=<name>`, the only list a node may
  make of those kinds (the node authorizer allows it for the objects of
  its own pods, and nothing cluster-wide). The watch starts when the first
  pod that uses the object is tracked and its task is cancelled when the
  last one is untracked (counted by pod uid), so the agent holds only what
  its pods use and lets go of it with them. One manager may serve many
  nodes (the simulated nodes): one watch per object, however many pods and
  nodes use it.
- The PersistentVolume a claim names (`spec.volumeName`) is read with
  `get`, the only read the node authorizer allows of a volume (the
  kubelet's volume manager reads it so too): when the claim is first seen
  naming it and again at every change of the claim. A volume not found (or
  not readable yet) is asked for again after a back-off (1 s doubling to
  30 s), since no watch would say when it appears. It is held while a
  watched claim names it.
- Every change of an object (added, changed, deleted, and its first list
  answered, found or not) wakes the pods that use it (`wake(uid)`); a
  volume read wakes the pods of the claims naming it.
- Lookups are synchronous reads of those caches: None when the object
  does not exist; `ConfigError` while its watch has not answered yet, or
  for an object no tracked pod uses, so that an optional reference is never
  taken for a missing object before anyone knows (the kubelet's "failed to
  sync secret cache"). An object deleted while in use reads None, as it did
  from a cluster-wide informer.
- `wait_for_pod(uid)` returns once every object the pod uses has answered
  (its claims' volumes included), or after `sync_timeout` seconds, so a
  pod's first sync does not report as missing what is only not loaded yet.
- The service account tokens of the pods' projected volumes come from the
  manager's `tokens.TokenManager` (run by `run`, tracked and untracked with
  the pods, waited for by `wait_for_pod`): `service_account_token` is their
  lookup, so env and volumes find tokens where they find every other
  object a pod uses.
- Handlers and lookups run on the event loop without awaiting; `track` and
  `untrack` need `run` to be running (it owns every watch's task).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc

from kpy.agent.env import (
    CONFIG_MAP,
    PERSISTENT_VOLUME_CLAIM,
    SECRET,
    ConfigError,
    references,
)
from kpy.agent.tokens import TokenManager
from kpy.api import errors
from kpy.api.core.v1 import ConfigMap, PersistentVolume, PersistentVolumeClaim, Secret
from kpy.backoff import Backoff
from kpy.cache import EventHandler, SharedInformer

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.api.core.v1 import Pod, ServiceAccountTokenProjection
    from kpy.client import ClientProtocol
    from kpy.clock import Clock

__all__ = ["ObjectManager", "ObjectStatistics"]

log = logging.getLogger("kpy.agent")

Key = tuple[str, str, str]  # (CONFIG_MAP | SECRET | PERSISTENT_VOLUME_CLAIM, namespace, name)

_KINDS: Final[dict[str, type[Any]]] = {
    CONFIG_MAP: ConfigMap,
    SECRET: Secret,
    PERSISTENT_VOLUME_CLAIM: PersistentVolumeClaim,
}
# How the kubelet names the kinds in its messages.
_WORDS: Final = {
    CONFIG_MAP: "configmap",
    SECRET: "secret",
    PERSISTENT_VOLUME_CLAIM: "persistentvolumeclaim",
}
SYNC_TIMEOUT: Final = 5.0  # seconds a pod's first sync waits for its objects


@dataclass(frozen=True, slots=True)
class ObjectStatistics:
    watches: int  # objects watched (one list and watch each)
    synced: int  # of which answered their first list
    volumes: int  # volumes read for the watched claims


@dataclass(eq=False, slots=True)
class _Watch:
    """The informer of one object and the pods using it."""

    informer: SharedInformer[Any]
    users: set[str] = field(default_factory=set)  # pod uids
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    synced: anyio.Event = field(default_factory=anyio.Event)
    volume: str = ""  # a claim's: the volume it names, held in `_volumes`


@dataclass(eq=False, slots=True)
class _Volume:
    """One PersistentVolume read by name for the claims naming it."""

    name: str
    claims: set[Key] = field(default_factory=set)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    again: anyio.Event = field(default_factory=anyio.Event)  # a claim changed: read again
    read: anyio.Event = field(default_factory=anyio.Event)  # answered once (found or not)
    found: PersistentVolume | None = None


class ObjectManager:
    """The ConfigMaps, Secrets, claims and volumes of the tracked pods; see
    the module docstring. Satisfies `env.Objects`."""

    def __init__(
        self,
        client: ClientProtocol,
        wake: Callable[[str], None],
        *,
        sync_timeout: float = SYNC_TIMEOUT,
        volume_backoff: tuple[float, float] = (1.0, 30.0),
        clock: Clock | None = None,
    ) -> None:
        """`clock` (a wall clock by default) times the tokens' refreshes."""
        self._client = client
        self.tokens = TokenManager(client, wake, clock=clock, sync_timeout=sync_timeout)
        self._wake = wake
        self._sync_timeout = sync_timeout
        self._volume_backoff = volume_backoff
        self._watches: dict[Key, _Watch] = {}
        self._volumes: dict[str, _Volume] = {}
        self._refs_of: dict[str, set[Key]] = {}  # pod uid -> what it uses
        self._tg: anyio.abc.TaskGroup | None = None

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Hosts every watch and volume read until cancelled."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.tokens.run)
            self._tg = tg
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None

    def statistics(self) -> ObjectStatistics:
        return ObjectStatistics(
            watches=len(self._watches),
            synced=sum(w.synced.is_set() for w in self._watches.values()),
            volumes=len(self._volumes),
        )

    # -- the pods ------------------------------------------------------------------

    def track(self, pod: Pod) -> None:
        """Watches what `pod` uses, once per uid: it comes from the pod's
        spec, which does not change (status updates pass by cheaply). A spec
        it cannot read is logged; the pod still runs (its sync reports what
        is wrong), only without those objects."""
        if self._tg is None:
            raise RuntimeError("ObjectManager.run() is not running")
        uid = pod.metadata.uid
        if uid in self._refs_of:
            return
        self.tokens.track(pod)
        try:
            refs = references(pod)
        except Exception:
            log.exception(
                "cannot list the objects a pod uses",
                extra={"pod": f"{pod.metadata.namespace}/{pod.metadata.name}"},
            )
            refs = set()
        self._refs_of[uid] = refs
        for key in refs:
            watch = self._watches.get(key)
            if watch is None:
                watch = self._watches[key] = self._start(key)
            watch.users.add(uid)

    def untrack(self, uid: str) -> None:
        """The pod is gone: stops the watches nobody else uses, and its
        tokens' refreshes."""
        self.tokens.untrack(uid)
        for key in self._refs_of.pop(uid, ()):
            watch = self._watches.get(key)
            if watch is None:
                continue
            watch.users.discard(uid)
            if not watch.users:
                del self._watches[key]
                watch.scope.cancel()
                self._release_volume(key, watch)

    async def wait_for_pod(self, uid: str) -> None:
        """Returns once every object pod `uid` uses has answered its first
        list (and its claims' volumes their first read, and its tokens their
        first answer), or after the sync timeout; at once for a pod that uses
        none."""
        with anyio.move_on_after(self._sync_timeout):
            await self.tokens.wait_for_pod(uid)
            for key in sorted(self._refs_of.get(uid, ())):
                watch = self._watches.get(key)
                if watch is None:
                    continue
                await watch.synced.wait()
                volume = self._volumes.get(watch.volume)
                if volume is not None:
                    await volume.read.wait()

    # -- env.Objects -----------------------------------------------------------------

    def config_map(self, namespace: str, name: str) -> ConfigMap | None:
        found: ConfigMap | None = self._cached(CONFIG_MAP, namespace, name)
        return found

    def secret(self, namespace: str, name: str) -> Secret | None:
        found: Secret | None = self._cached(SECRET, namespace, name)
        return found

    def persistent_volume_claim(self, namespace: str, name: str) -> PersistentVolumeClaim | None:
        found: PersistentVolumeClaim | None = self._cached(PERSISTENT_VOLUME_CLAIM, namespace, name)
        return found

    def persistent_volume(self, name: str) -> PersistentVolume | None:
        volume = self._volumes.get(name)
        if volume is None:
            return None  # no watched claim names it
        if not volume.read.is_set():
            raise ConfigError(
                f'persistentvolume "{name}" is not read yet; the agent keeps asking for it '
                "(if this lasts, the agent's log says why it cannot read it)"
            )
        return volume.found

    def service_account_token(self, pod: Pod, projection: ServiceAccountTokenProjection) -> bytes:
        return self.tokens.token(pod, projection)

    def _cached(self, kind: str, namespace: str, name: str) -> Any:
        watch = self._watches.get((kind, namespace, name))
        word = _WORDS[kind]
        if watch is None:
            raise ConfigError(
                f'{word} "{name}" of namespace "{namespace}" is not registered: no pod on '
                "this node uses it"
            )
        if not watch.synced.is_set():
            raise ConfigError(
                f"failed to sync {word} cache: {namespace}/{name} is not listed yet; the "
                "agent keeps trying (if this lasts, the agent's log says why it cannot read it)"
            )
        return watch.informer.indexer.get_by_key(f"{namespace}/{name}")

    # -- one object's watch ------------------------------------------------------------

    def _start(self, key: Key) -> _Watch:
        kind, namespace, name = key
        informer: SharedInformer[Any] = SharedInformer(
            self._client,
            _KINDS[kind],
            namespace=namespace,
            field_selector=f"metadata.name={name}",
        )
        watch = _Watch(informer)

        def changed(obj: Any, *, wake: bool = True) -> None:
            if self._watches.get(key) is not watch:
                return  # stopped: its last events concern nobody
            if kind == PERSISTENT_VOLUME_CLAIM:
                self._claim_changed(key, watch, obj)
            if wake:
                self._wake_users(watch.users)

        informer.add_event_handler(
            EventHandler(
                # The first list wakes the pods once it is whole (`_run_watch`).
                on_add=lambda obj, initial: changed(obj, wake=not initial),
                on_update=lambda _, obj: changed(obj),
                on_delete=lambda _: changed(None),
            )
        )
        assert self._tg is not None
        self._tg.start_soon(self._run_watch, watch, name=f"watch {kind} {namespace}/{name}")
        return watch

    async def _run_watch(self, watch: _Watch) -> None:
        with watch.scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch.informer.run)
                await watch.informer.wait_for_sync()
                watch.synced.set()
                # Found or not, the pods waiting for it learn which.
                self._wake_users(watch.users)

    def _wake_users(self, uids: set[str]) -> None:
        for uid in list(uids):
            self._wake(uid)

    # -- a claim's volume --------------------------------------------------------------

    def _claim_changed(self, key: Key, watch: _Watch, claim: PersistentVolumeClaim | None) -> None:
        """The volume the claim names is held (and read again: the claim
        changing may mean the volume did, as when it gets bound)."""
        name = claim.spec.volume_name if claim is not None else ""
        if name != watch.volume:
            self._release_volume(key, watch)
            watch.volume = name
            if name:
                volume = self._volumes.get(name)
                if volume is None:
                    volume = self._volumes[name] = _Volume(name)
                    assert self._tg is not None
                    self._tg.start_soon(self._read_volume, volume, name=f"get volume {name}")
                volume.claims.add(key)
        elif name:
            self._volumes[name].again.set()

    def _release_volume(self, key: Key, watch: _Watch) -> None:
        volume = self._volumes.get(watch.volume)
        watch.volume = ""
        if volume is None:
            return
        volume.claims.discard(key)
        if not volume.claims:
            del self._volumes[volume.name]
            volume.scope.cancel()

    async def _read_volume(self, volume: _Volume) -> None:
        """Gets the volume, again whenever a claim naming it changes; one
        not found (or not readable) is asked for again after a back-off."""
        low, high = self._volume_backoff
        backoff = Backoff(base=low, cap=high, jitter=(1.0, 1.2))
        with volume.scope:
            while True:
                volume.again = anyio.Event()
                wait = await self._get_volume(volume, backoff)
                with anyio.move_on_after(wait):
                    await volume.again.wait()

    async def _get_volume(self, volume: _Volume, backoff: Backoff) -> float:
        """One read; how long to wait before the next unless a claim
        changes (forever once found)."""
        try:
            found: PersistentVolume | None = await self._client.get(PersistentVolume, volume.name)
        except errors.NotFound:
            found = None
        except errors.StatusError as e:
            wait = backoff.next()
            log.warning(
                "cannot read a persistent volume; retrying",
                extra={"volume": volume.name, "error": str(e), "retry_in": f"{wait:.1f}s"},
            )
            return wait
        first = not volume.read.is_set()
        changed = first or found != volume.found
        volume.found = found
        volume.read.set()
        if changed:
            for claim in list(volume.claims):
                watch = self._watches.get(claim)
                if watch is not None:
                    self._wake_users(watch.users)
        if found is None:
            return backoff.next()
        backoff.reset()
        return float("inf")

"""Custom resources: the kinds CustomResourceDefinitions add, served at run time.

`CustomResources` follows the API server's own watch cache of CRDs. For
every CRD whose names are accepted (`kpy.api.crd.names`) and every version
it serves, it registers the kind in the server's scheme (a
`kpy.api.unstructured` class) and adds a `Registry` with its own watch
cache to the table the gRPC service reads, so the new resource answers
every verb, watch and selector at once, on every API server, with no
restart. A CRD that changes swaps its kind's strategy (schema, subresources,
names) in place; a CRD that goes, or stops serving a version, takes that
registry away and ends its watches.

`CustomResourceStrategy` is a custom kind's rules: metadata checked as any
object's, everything else pruned, defaulted and validated by the version's
structural schema (`kpy.api.crd.schema`); the status subresource as the
CRD declares it; the scale subresource at the CRD's JSON paths; no new
objects while the CRD is being deleted.

All versions of one CRD are stored under its storage version's keys
(conversion "None": the versions differ only in apiVersion).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from kpy.api import codec, errors, names
from kpy.api.crd.kinds import custom_kind_of, json_path
from kpy.api.crd.names import name_conflicts
from kpy.api.crd.schema import Structural
from kpy.api.labels import parse_selector
from kpy.api.validation import validate_object_meta, validate_object_meta_update
from kpy.apiserver.strategy import NamespacesBeingDeleted, ScalableStrategy

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping

    from kpy.api.scheme import ResourceInfo, Scheme
    from kpy.apiserver.registry import Registry
    from kpy.apiserver.watch_cache import WatchCache

log = logging.getLogger("kpy.apiserver")

Key = tuple[str, str, str]  # group, version, plural


@dataclass(frozen=True, slots=True)
class Scale:
    """A CRD version's scale subresource: where replicas and the selector live."""

    spec_replicas: tuple[str, ...]
    status_replicas: tuple[str, ...]
    label_selector: tuple[str, ...] | None


def _read(obj: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


class CustomResourceStrategy(ScalableStrategy):
    """The rules of one custom kind in one version (see the module docstring)."""

    def __init__(
        self,
        info: ResourceInfo,
        deleting: NamespacesBeingDeleted,
        *,
        schema: Structural | None,
        scale: Scale | None,
        terminating: bool,
    ) -> None:
        super().__init__(info, deleting)
        self.schema = schema
        self.scale = scale
        self.terminating = terminating

    def subresources(self) -> tuple[str, ...]:
        return ("status",) * self.status_subresource + ("scale",) * (self.scale is not None)

    # -- checks ---------------------------------------------------------------

    def default(self, obj: Any) -> None:
        """Prunes the fields the schema does not know, then sets its defaults."""
        if self.schema is None:
            return
        whole = obj.to_object()
        self.schema.prune(whole)
        self.schema.default(whole)
        obj.content = {
            k: v for k, v in whole.items() if k not in ("apiVersion", "kind", "metadata")
        }

    def validate(self, new: Any, old: Any | None) -> list[errors.FieldError]:
        errs = validate_object_meta(
            new.metadata, namespaced=self.info.namespaced, name_check=names.is_dns1123_subdomain
        )
        if old is not None:
            errs += validate_object_meta_update(new.metadata, old.metadata)
        if self.schema is not None:
            errs += self.schema.validate(new.to_object(), None if old is None else old.to_object())
        return errs

    def take_status(self, out: Any, new: Any) -> None:
        _keep(out.content, new.content, "status")

    # -- create and update ----------------------------------------------------

    def prepare_for_create(self, obj: Any) -> None:
        if self.terminating:
            raise errors.MethodNotAllowed(
                f"create not allowed while custom resource definition "
                f"{self.info.group_resource} is terminating",
                kind=self.info.group_resource,
            )
        if self.status_subresource:
            obj.content.pop("status", None)

    def prepare_for_update(self, new: Any, old: Any) -> None:
        if self.status_subresource:
            _keep(new.content, old.content, "status")

    def spec_changed(self, new: Any, old: Any) -> bool:
        """Kubernetes counts a generation for any change but metadata's (and
        status's, when status has its own subresource)."""
        skip = ("status",) if self.status_subresource else ()
        fields = set(new.content) | set(old.content)
        return any(new.content.get(f) != old.content.get(f) for f in fields if f not in skip)

    # -- scale ----------------------------------------------------------------

    def _scale(self) -> Scale:
        if self.scale is None:
            raise errors.MethodNotAllowed(f"{self.info.plural} has no scale subresource")
        return self.scale

    def replicas(self, obj: Any) -> tuple[int, int]:
        whole = obj.content
        spec = _read(whole, self._scale().spec_replicas)
        current = _read(whole, self._scale().status_replicas)
        return (spec if isinstance(spec, int) else 0, current if isinstance(current, int) else 0)

    def set_replicas(self, obj: Any, replicas: int) -> None:
        *parents, last = self._scale().spec_replicas
        node = obj.content
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[last] = replicas

    def scale_selector(self, obj: Any) -> str:
        path = self._scale().label_selector
        value = _read(obj.content, path) if path else None
        if not isinstance(value, str):
            return ""
        try:
            return str(parse_selector(value))
        except ValueError:
            return ""


def _keep(into: dict[str, Any], source: dict[str, Any], field: str) -> None:
    """`into[field]` becomes a copy of `source[field]`, or goes when it has none."""
    if field in source:
        into[field] = copy.deepcopy(source[field])
    else:
        into.pop(field, None)


@dataclass(slots=True)
class _ReadDefaults:
    """Sets the schema's defaults on each object read from storage, with
    the kind's current strategy (a CRD that changes its defaults changes
    what objects stored before read as, as in Kubernetes)."""

    strategy: CustomResourceStrategy | None = None

    def __call__(self, obj: Any) -> None:
        schema = self.strategy.schema if self.strategy is not None else None
        if schema is not None:
            whole = obj.to_object()
            schema.default(whole)
            obj.content = {k: v for k, v in whole.items() if k not in _RESERVED}


_RESERVED = ("apiVersion", "kind", "metadata")


@dataclass(slots=True)
class _Served:
    registry: Registry
    scope: anyio.CancelScope
    crd_uid: str
    reader: _ReadDefaults
    # What the strategy was built from: the CRD's generation (every spec
    # change) and whether it is being deleted; a status write changes neither.
    built_from: tuple[int, bool] = (0, False)


class CustomResources:
    """Serves every accepted CRD (see the module docstring). `registries` is
    the table the gRPC service reads; `new_registry` builds a registry (and
    its unstarted watch cache) for a kind."""

    def __init__(
        self,
        crds: WatchCache,
        registries: MutableMapping[Key, Registry],
        scheme: Scheme,
        new_registry: Callable[[ResourceInfo], Registry],
        deleting: NamespacesBeingDeleted,
    ) -> None:
        self._crds = crds
        self._registries = registries
        self._scheme = scheme
        self._new_registry = new_registry
        self._deleting = deleting
        self._served: dict[Key, _Served] = {}

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Follows the CRDs until cancelled; reports started once the CRDs
        stored when it began are served."""
        async with anyio.create_task_group() as tg:
            started = False
            while True:
                try:
                    async with await self._crds.watch(initial_events=True) as watcher:
                        await self.sync(tg)
                        if not started:
                            started = True
                            task_status.started()
                        async for _ in watcher:
                            await self.sync(tg)
                except errors.StatusError as e:  # cut off or ended: follow again
                    log.info("following CRDs again", extra={"reason": str(e)})
                    await anyio.sleep(0.5)

    async def sync(self, tg: anyio.abc.TaskGroup) -> None:
        """Makes what is served match the CRDs in the cache."""
        stored, _ = self._crds.list(None)
        crds: list[Any] = [crd for crd in stored if crd.spec.names.plural]  # type: ignore[attr-defined]
        conflicts = name_conflicts(crds)
        wanted: dict[Key, tuple[Any, Any]] = {}
        for crd in crds:
            if crd.metadata.name in conflicts:
                continue
            for version in crd.spec.versions:
                if version.served:
                    wanted[(crd.spec.group, version.name, crd.spec.names.plural)] = (crd, version)
        for key in [k for k in self._served if k not in wanted]:
            self._stop(key)
        for key, (crd, version) in wanted.items():
            served = self._served.get(key)
            if served is not None and served.crd_uid != crd.metadata.uid:
                self._stop(key)  # a CRD deleted and created again: start afresh
                served = None
            built_from = (crd.metadata.generation, crd.metadata.HasField("deletion_timestamp"))
            if served is not None and served.built_from == built_from:
                continue  # compiling a schema is costly; nothing it reads changed
            reader = served.reader if served is not None else _ReadDefaults()
            try:
                info, strategy = self._build(crd, version, reader)
            except Exception:  # a CRD the API server accepted must never stop the others
                log.exception("cannot serve a custom resource", extra={"crd": crd.metadata.name})
                continue
            reader.strategy = strategy
            if served is None:
                await self._start(key, info, strategy, crd.metadata.uid, reader, tg)
                self._served[key].built_from = built_from
            else:
                served.registry.info = info
                served.registry.strategy = strategy
                served.built_from = built_from

    def _build(
        self, crd: Any, version: Any, reader: _ReadDefaults
    ) -> tuple[ResourceInfo, CustomResourceStrategy]:
        cls = custom_kind_of(crd, version.name, on_read=reader, using=self._scheme)
        info = self._scheme.for_message(cls)
        schema = None
        if version.schema.HasField("open_apiv3_schema"):
            schema = Structural.build(codec.to_dict(version.schema.open_apiv3_schema))
        scale = None
        if version.subresources.HasField("scale"):
            s = version.subresources.scale
            scale = Scale(
                json_path(s.spec_replicas_path),
                json_path(s.status_replicas_path),
                json_path(s.label_selector_path) if s.label_selector_path else None,
            )
        terminating = crd.metadata.HasField("deletion_timestamp")
        strategy = CustomResourceStrategy(
            info, self._deleting, schema=schema, scale=scale, terminating=terminating
        )
        return info, strategy

    async def _start(
        self,
        key: Key,
        info: ResourceInfo,
        strategy: CustomResourceStrategy,
        uid: str,
        reader: _ReadDefaults,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        registry = self._new_registry(info)
        registry.strategy = strategy
        scope = anyio.CancelScope()

        async def run_cache(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            with scope:
                await registry.cache.run(task_status=task_status)

        await tg.start(run_cache)
        self._served[key] = _Served(registry, scope, uid, reader)
        self._registries[key] = registry
        log.info("serving a custom resource", extra={"resource": "/".join(key)})

    def _stop(self, key: Key) -> None:
        served = self._served.pop(key)
        self._registries.pop(key, None)
        info = served.registry.info
        with contextlib.suppress(KeyError):
            if self._scheme.lookup(info.api_version, info.kind) is info:
                self._scheme.unregister(info.api_version, info.kind)
        served.scope.cancel()
        log.info("stopped serving a custom resource", extra={"resource": "/".join(key)})

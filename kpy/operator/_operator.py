"""`Operator`: the registry of an operator's handlers, and how it runs.

    app = Operator("webapp-operator")

    @app.reconcile(WebApp, owns=[Deployment, Service])
    async def reconcile(ctx: Context, web: WebApp) -> Result | None: ...

    @app.on_delete(WebApp)          # adds and removes a finalizer for you
    async def cleanup(ctx: Context, web: WebApp) -> None: ...

Registration only records the handlers; nothing runs at import time, so a
module can be imported by `kpy-operator module:app`, by tests and by the
harness alike. Each run builds a `Runtime`: one shared informer factory
(each kind watched once however many handlers use it), one event
broadcaster, and one `KindController` (kpy's `Controller`) per primary kind.

`Operator.run(client)` runs it from Python until cancelled; with
`election=` it runs only while holding a Lease (as `kpy-operator` does by
default), and with `metrics_port=` it serves /metrics and /healthz
(kpy.metrics: reconcile counts and durations by result, work queue depth,
adds and retries, and whether this replica leads).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
import anyio.abc

from kpy.api.scheme import scheme
from kpy.cache.events import EventBroadcaster
from kpy.cache.informer import SharedInformerFactory
from kpy.component import ElectionOptions, run_elected
from kpy.metrics import Metrics
from kpy.operator._controller import KindController, KindSpec

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from kpy.client import Client, ClientProtocol
    from kpy.clock import Clock
    from kpy.operator._types import DeleteHandler, Mapper, ReconcileHandler

log = logging.getLogger("kpy.operator")

__all__ = ["Operator", "Runtime"]

R = TypeVar("R", bound="ReconcileHandler")
D = TypeVar("D", bound="DeleteHandler")


class Operator:
    """See the module docstring. `name` names the operator in logs, metrics,
    events, its Lease and its default finalizer; `namespace` limits every
    watch to one namespace (None: all); `workers` is the default number of
    concurrent reconciles per kind."""

    def __init__(self, name: str, *, namespace: str | None = None, workers: int = 4) -> None:
        if not name:
            raise ValueError("an Operator needs a name (it names its Lease and finalizer)")
        if workers < 1:
            raise ValueError(f"Operator {name!r}: workers must be at least 1, got {workers}")
        self.name = name
        self.namespace = namespace
        self.workers = workers
        self._specs: dict[type[Any], KindSpec] = {}

    # -- registration -------------------------------------------------------------------

    def reconcile(
        self,
        kind: type[Any],
        *,
        owns: Sequence[type[Any]] = (),
        watches: Iterable[tuple[type[Any], Mapper]] = (),
        workers: int | None = None,
    ) -> Callable[[R], R]:
        """Registers the reconcile of `kind` (one per kind). `owns`: kinds whose
        objects this kind controls (their events reconcile the owner named by
        their controller ownerReference); `watches`: (kind, mapper) pairs,
        the mapper returning the "namespace/name" keys to reconcile."""

        def register(fn: R) -> R:
            spec = self._spec(kind)
            if spec.reconcile is not None:
                raise ValueError(f"{self.name}: {_kind(kind)} already has a reconcile handler")
            self._specs[kind] = replace(
                spec,
                reconcile=fn,
                owns=tuple(owns),
                watches=tuple(watches),
                workers=workers or spec.workers,
            )
            return fn

        return register

    def on_delete(self, kind: type[Any], *, finalizer: str = "") -> Callable[[D], D]:
        """Registers the deletion handler of `kind`: objects get `finalizer`
        (default `<group or kpy.dev>/<operator name>`) before their first
        reconcile, so a delete waits until this handler has returned; then
        the finalizer is removed and the object goes."""

        def register(fn: D) -> D:
            spec = self._spec(kind)
            if spec.on_delete is not None:
                raise ValueError(f"{self.name}: {_kind(kind)} already has a deletion handler")
            group = scheme.for_message(kind).group or "kpy.dev"
            self._specs[kind] = replace(
                spec, on_delete=fn, finalizer=finalizer or f"{group}/{self.name}"
            )
            return fn

        return register

    def set_workers(self, workers: int) -> None:
        """Sets the concurrent reconciles of every kind (`kpy-operator --workers`)."""
        if workers < 1:
            raise ValueError(f"Operator {self.name!r}: workers must be at least 1, got {workers}")
        self.workers = workers
        self._specs = {k: replace(s, workers=workers) for k, s in self._specs.items()}

    def _spec(self, kind: type[Any]) -> KindSpec:
        scheme.for_message(kind)  # KeyError naming the kind if it is not registered
        return self._specs.get(kind) or KindSpec(kind, workers=self.workers)

    @property
    def kinds(self) -> list[type[Any]]:
        """The primary kinds, in registration order."""
        return list(self._specs)

    def finalizer(self, kind: type[Any]) -> str:
        """The finalizer this operator puts on `kind` ("" without a deletion handler)."""
        spec = self._specs.get(kind)
        return spec.finalizer if spec is not None else ""

    # -- running ------------------------------------------------------------------------

    async def run(
        self,
        client: ClientProtocol,
        *,
        election: ElectionOptions | None = None,
        metrics_host: str = "127.0.0.1",
        metrics_port: int | None = None,
        task_status: anyio.abc.TaskStatus[int | None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Runs until cancelled. With `election` (enabled), only while this
        replica holds the Lease `election.namespace/election.name` (default
        name: the operator's); losing it raises `kpy.component.LeadershipLost`.
        Reports the metrics port (None when off) through `task_status`."""
        metrics = Metrics()
        election = election or ElectionOptions(enabled=False)
        if not election.name:
            election = replace(election, name=self.name)

        async def lead() -> None:
            await Runtime(self, client, metrics=metrics).run()

        # run_elected hands the client only to LeaderElector, which takes any ClientProtocol.
        await run_elected(
            self.name,
            cast("Client", client),
            metrics,
            election,
            lead,
            metrics_host=metrics_host,
            metrics_port=metrics_port,
            task_status=task_status,
        )


class Runtime:
    """One run of an operator: informers, events and a controller per kind.
    `started` is set once the caches have synced and the workers run."""

    def __init__(
        self,
        operator: Operator,
        client: ClientProtocol,
        *,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        check_mutations: bool = False,
    ) -> None:
        if not operator.kinds:
            raise ValueError(f"operator {operator.name!r} has no handlers: nothing to run")
        self.operator = operator
        self.informers = SharedInformerFactory(client, namespace=operator.namespace)
        self.events = EventBroadcaster(client)
        recorder = self.events.new_recorder(operator.name)
        self.controllers = [
            KindController(
                operator.name,
                spec,
                client=client,
                informers=self.informers,
                metrics=metrics,
                recorder=recorder,
                clock=clock,
                check_mutations=check_mutations,
            )
            for spec in operator._specs.values()
        ]
        self.started = anyio.Event()

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.events.run)
            tg.start_soon(self.informers.run)
            await self.informers.wait_for_cache_sync()
            for controller in self.controllers:
                tg.start_soon(controller.run, controller.spec.workers)
            log.info(
                "operator running",
                extra={
                    "operator": self.operator.name,
                    "kinds": [c.kind_name for c in self.controllers],
                },
            )
            self.started.set()

    def busy(self) -> bool:
        """Whether any informer or worker has work in hand, or events wait
        to be written (keys waiting for a delay do not count)."""
        if self.events.queued:
            return True
        for controller in self.controllers:
            s = controller.queue.statistics()
            if s.depth or s.processing:
                return True
        return any(self.informers.informer(kind).statistics().queued for kind in self._watched())

    def _watched(self) -> set[type[Any]]:
        kinds: set[type[Any]] = set()
        for c in self.controllers:
            kinds.add(c.spec.kind)
            kinds.update(c.spec.owns)
            kinds.update(k for k, _ in c.spec.watches)
        return kinds


def _kind(kind: type[Any]) -> str:
    return scheme.for_message(kind).kind

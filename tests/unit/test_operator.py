"""kpy.operator on kpy.client.fake: what a reconcile's return or raise does,
finalizers, owned and watched objects, status writes, level-based
reconciliation, leader election and metrics (kpy/operator/)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import errors
from kpy.api.apps.v1 import Deployment, DeploymentSpec
from kpy.api.core.v1 import ConfigMap, Container, PodSpec, PodTemplateSpec
from kpy.api.meta.v1 import LabelSelector, ObjectMeta, OwnerReference
from kpy.api.unstructured import custom_kind
from kpy.cache.informer import SharedInformerFactory
from kpy.client.fake import Action, FakeClient
from kpy.operator import (
    Context,
    ElectionOptions,
    Operator,
    PermanentError,
    Result,
    set_condition,
)
from kpy.operator._controller import KindController
from kpy.operator.testing import Harness

if TYPE_CHECKING:
    from collections.abc import Callable

Widget = custom_kind("test.kpy.dev/v1", "Widget", plural="widgets", status_subresource=True)


def widget(name: str = "w", **spec: Any) -> Any:
    return Widget(metadata=ObjectMeta(name=name, namespace="default"), spec=spec or {"size": 1})


@dataclass
class Recorder:
    """An operator whose reconcile records (key, resourceVersion) and then
    does what `behave` says."""

    behave: Callable[[Context, Any], Any] = lambda _ctx, _obj: None
    calls: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def operator(self, *, on_delete: bool = False, **kwargs: Any) -> Operator:
        app = Operator("test-operator")

        @app.reconcile(Widget, **kwargs)
        async def reconcile(ctx: Context, obj: Any) -> Result | None:
            self.calls.append((ctx.key, obj.metadata.resource_version))
            result = self.behave(ctx, obj)
            if hasattr(result, "__await__"):
                result = await result
            return result  # type: ignore[no-any-return]

        if on_delete:

            @app.on_delete(Widget)
            async def cleanup(ctx: Context, obj: Any) -> None:
                self.deleted.append(ctx.key)

        return app


def fail(error: Exception) -> Callable[[Context, Any], Any]:
    def behave(_ctx: Context, _obj: Any) -> Any:
        raise error

    return behave


# -- what a reconcile returns or raises ----------------------------------------------------

OUTCOMES: list[tuple[str, Callable[[Context, Any], Any], list[tuple[float, int]], bool]] = [
    # name, behaviour, [(advance seconds, total calls after it)], failing afterwards
    ("None: done until a change", lambda _c, _o: None, [(0.0, 1), (3600.0, 1)], False),
    (
        "Result(requeue_after=30): again after 30 s",
        lambda _c, _o: Result(requeue_after=30),
        [(29.0, 1), (1.0, 2), (30.0, 3)],
        False,
    ),
    (
        "raises: per-key exponential back-off (5 ms, 10 ms, ...)",
        fail(ValueError("boom")),
        [(0.004, 1), (0.001, 2), (0.009, 2), (0.001, 3)],
        True,
    ),
    (
        "raises PermanentError: not retried",
        fail(PermanentError("image is not allowed")),
        [(0.005, 1), (3600.0, 1)],
        False,
    ),
]


@pytest.mark.parametrize(
    ("name", "behave", "steps", "failing"), OUTCOMES, ids=[o[0] for o in OUTCOMES]
)
async def test_what_a_reconcile_returns_or_raises_decides_when_it_runs_again(
    name: str,
    behave: Callable[[Context, Any], Any],
    steps: list[tuple[float, int]],
    failing: bool,
) -> None:
    rec = Recorder(behave)
    async with Harness(rec.operator(), widget()) as h:
        for seconds, calls in steps:
            await h.advance(seconds)
            assert len(rec.calls) == calls, f"{name}: after +{seconds}s: {rec.calls}"
        assert ("default/w" in h.failures) == failing, f"{name}: {h.failures}"


async def test_a_permanent_error_is_recorded_as_a_warning_event() -> None:
    rec = Recorder(fail(PermanentError("image latest is not allowed")))
    async with Harness(rec.operator(), widget()) as h:
        [event] = h.events("ReconcileFailed")
        assert (event.type, event.message) == ("Warning", "image latest is not allowed")
        assert event.involved_object.kind == "Widget"
        assert event.involved_object.name == "w"


async def test_a_handler_that_changes_its_cached_object_fails_in_the_harness() -> None:
    def mutate(_ctx: Context, obj: Any) -> None:
        obj.spec["size"] = 99

    async with Harness(Recorder(mutate).operator(), widget()) as h:
        assert "changed Widget default/w in place" in str(h.failures["default/w"])


# -- finalizers ----------------------------------------------------------------------------


async def test_the_finalizer_is_added_with_a_deletion_handler_and_removed_after_it_ran() -> None:
    rec = Recorder()
    app = rec.operator(on_delete=True)
    finalizer = app.finalizer(Widget)
    assert finalizer == "test.kpy.dev/test-operator"
    async with Harness(app, widget()) as h:
        stored = h.get(Widget, "w")
        assert stored is not None
        assert list(stored.metadata.finalizers) == [finalizer]
        assert rec.calls, "reconcile runs once the finalizer is on"
        reconciles = len(rec.calls)
        await h.delete(Widget, "w")
        assert rec.deleted == ["default/w"]
        assert h.get(Widget, "w") is None, "gone once its finalizer was removed"
        assert len(rec.calls) == reconciles, "no reconcile of an object being deleted"


async def test_no_finalizer_without_a_deletion_handler() -> None:
    rec = Recorder()
    async with Harness(rec.operator(), widget()) as h:
        stored = h.get(Widget, "w")
        assert stored is not None
        assert list(stored.metadata.finalizers) == []
        await h.delete(Widget, "w")
        assert h.get(Widget, "w") is None


async def test_a_failing_deletion_handler_keeps_the_finalizer_and_is_retried() -> None:
    app = Operator("test-operator")
    attempts: list[str] = []

    @app.on_delete(Widget)
    async def cleanup(ctx: Context, obj: Any) -> None:
        attempts.append(ctx.key)
        if len(attempts) == 1:
            raise errors.Unavailable("the external system is down")

    async with Harness(app, widget()) as h:
        await h.delete(Widget, "w")
        stored = h.get(Widget, "w")
        assert stored is not None, "kept while its finalizer is there"
        assert list(stored.metadata.finalizers) == ["test.kpy.dev/test-operator"]
        await h.advance(1.0)
        assert attempts == ["default/w", "default/w"]
        assert h.get(Widget, "w") is None


# -- owned and watched objects -------------------------------------------------------------


def deployment(name: str, owners: list[OwnerReference]) -> Deployment:
    labels = {"app": name}
    return Deployment(
        metadata=ObjectMeta(name=name, namespace="default", owner_references=owners),
        spec=DeploymentSpec(
            replicas=1,
            selector=LabelSelector(match_labels=labels),
            template=PodTemplateSpec(
                metadata=ObjectMeta(labels=labels),
                spec=PodSpec(containers=[Container(name="c", image="nginx")]),
            ),
        ),
    )


def ref(kind: str, name: str, *, controller: bool, api_version: str = "test.kpy.dev/v1") -> Any:
    return OwnerReference(
        api_version=api_version,
        kind=kind,
        name=name,
        uid=f"uid-default-{name}",
        controller=controller,
    )


OWNERS: list[tuple[str, list[OwnerReference], list[str]]] = [
    ("controlled by a Widget", [ref("Widget", "w", controller=True)], ["default/w"]),
    ("owned but not controlled", [ref("Widget", "w", controller=False)], []),
    ("controlled by another kind", [ref("ReplicaSet", "w", controller=True)], []),
    (
        "a Widget kind of another group",
        [ref("Widget", "w", controller=True, api_version="other.example.com/v1")],
        [],
    ),
    ("no owner", [], []),
]


@pytest.mark.parametrize(("name", "owners", "reconciled"), OWNERS, ids=[o[0] for o in OWNERS])
async def test_an_owned_object_event_reconciles_its_controller_owner(
    name: str, owners: list[OwnerReference], reconciled: list[str]
) -> None:
    rec = Recorder()
    async with Harness(rec.operator(owns=[Deployment]), widget("w"), widget("other")) as h:
        rec.calls.clear()
        await h.create(deployment("d", owners))
        assert [key for key, _ in rec.calls] == reconciled, name
        rec.calls.clear()
        stored = h.get(Deployment, "d")
        assert stored is not None
        stored.status.ready_replicas = 1
        await h.update_status(stored)
        assert [key for key, _ in rec.calls] == reconciled, f"{name}: status update"


async def test_watches_map_any_kind_to_the_keys_its_mapper_returns() -> None:
    rec = Recorder()
    app = rec.operator(watches=[(ConfigMap, lambda cm: [f"default/{cm.data.get('widget', '')}"])])
    async with Harness(app, widget("w")) as h:
        rec.calls.clear()
        await h.create(ConfigMap(metadata=ObjectMeta(name="cfg"), data={"widget": "w"}))
        assert [key for key, _ in rec.calls] == ["default/w"]


async def test_apply_owned_creates_updates_only_on_change_and_sets_the_controller_ref() -> None:
    async def behave(ctx: Context, obj: Any) -> None:
        d = deployment(obj.metadata.name, [])
        d.spec.replicas = obj.spec["size"]
        await ctx.apply_owned(d)

    async with Harness(Recorder(behave).operator(owns=[Deployment]), widget("w", size=2)) as h:
        stored = h.get(Deployment, "w")
        assert stored is not None
        assert stored.spec.replicas == 2
        [owner] = stored.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid, owner.controller) == (
            "Widget",
            "w",
            "uid-default-w",
            True,
        )
        h.client.clear_actions()
        await h.advance(0)  # nothing to do: a reconcile now writes nothing
        w = h.get(Widget, "w")
        assert w is not None
        w.spec["size"] = 3
        await h.update(w)
        writes = [str(a) for a in h.client.writes()]
        assert writes == ["update Widget default/w", "update Deployment default/w"], writes
        stored = h.get(Deployment, "w")
        assert stored is not None
        assert stored.spec.replicas == 3


async def test_apply_owned_never_takes_over_an_object_another_owner_controls() -> None:
    async def behave(ctx: Context, obj: Any) -> None:
        await ctx.apply_owned(deployment(obj.metadata.name, []))

    taken = deployment("w", [ref("ReplicaSet", "someone", controller=True)])
    async with Harness(Recorder(behave).operator(owns=[Deployment]), widget("w"), taken) as h:
        [event] = h.events("ReconcileFailed")
        assert "is controlled by ReplicaSet someone" in event.message
        stored = h.get(Deployment, "w")
        assert stored is not None
        assert [r.name for r in stored.metadata.owner_references] == ["someone"]


# -- status --------------------------------------------------------------------------------


async def test_status_is_written_through_the_subresource_once_and_not_when_unchanged() -> None:
    async def behave(ctx: Context, obj: Any) -> None:
        await ctx.set_status(obj, {"size": obj.spec["size"]})

    async with Harness(Recorder(behave).operator(), widget("w", size=2)) as h:
        writes = [str(a) for a in h.client.writes()]
        assert writes == ["update Widget default/w (status)"]
        w = h.get(Widget, "w")
        assert w is not None
        assert w.get("status") == {"size": 2}
        h.client.clear_actions()
        w.metadata.labels["touched"] = "yes"  # a change that leaves the status as it is
        await h.update(w)
        assert [str(a) for a in h.client.writes()] == ["update Widget default/w"]


async def test_a_status_conflict_is_retried_on_a_fresh_read() -> None:
    client = FakeClient()
    conflicts = [errors.conflict("widgets.test.kpy.dev", "w", "the object has been modified")]

    def first_conflicts(action: Action) -> None:
        if action.subresource == "status" and conflicts:
            raise conflicts.pop()

    client.prepend_reactor("update", "Widget", first_conflicts)

    async def behave(ctx: Context, obj: Any) -> None:
        await ctx.set_status(obj, {"ok": True})

    async with Harness(Recorder(behave).operator(), widget(), client=client) as h:
        verbs = [(a.verb, a.subresource) for a in client.actions if a.kind == "Widget"]
        assert ("update", "status") in verbs
        assert verbs[verbs.index(("update", "status")) :][:3] == [
            ("update", "status"),
            ("get", ""),
            ("update", "status"),
        ]
        w = h.get(Widget, "w")
        assert w is not None
        assert w.get("status") == {"ok": True}
        assert not h.failures


# -- level-based ---------------------------------------------------------------------------


async def test_a_handler_never_sees_an_older_object_after_a_newer_one() -> None:
    rec = Recorder()
    async with Harness(rec.operator(), widget("w", size=0)) as h:
        for size in range(1, 30):
            w = h.get(Widget, "w")
            assert w is not None
            w.spec["size"] = size
            await h.client.update(w)  # no settling: updates pile up
        await h.settle()
        seen = [int(rv) for _, rv in rec.calls]
        assert seen == sorted(seen), seen
        final = h.get(Widget, "w")
        assert final is not None
        assert seen[-1] == int(final.metadata.resource_version)
        assert len(seen) < 30, "updates that piled up are reconciled together"


async def test_a_cache_behind_the_operators_own_write_is_not_reconciled() -> None:
    client = FakeClient()
    [stored] = client.add(widget())
    seen: list[str] = []
    app = Operator("test-operator")

    @app.reconcile(Widget)
    async def reconcile(ctx: Context, obj: Any) -> None:
        seen.append(obj.metadata.resource_version)

    [spec] = app._specs.values()
    controller = KindController(
        "test-operator", spec, client=client, informers=SharedInformerFactory(client)
    )
    controller.informer.indexer.add(stored)
    newer = Widget()
    newer.CopyFrom(stored)
    newer.metadata.resource_version = str(int(stored.metadata.resource_version) + 5)
    controller.wrote(newer)  # as after a status write whose event is still on its way
    await controller.sync("default/w")
    assert seen == [], "the cache is older than what the operator wrote"
    controller.informer.indexer.update(newer)
    assert not controller._is_echo(Widget, newer), "its event reconciles again"
    await controller.sync("default/w")
    assert seen == [newer.metadata.resource_version]


# -- conditions ----------------------------------------------------------------------------


def test_set_condition_moves_the_transition_time_only_when_the_status_changes() -> None:
    import datetime

    t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    t1 = t0 + datetime.timedelta(hours=1)
    first = set_condition(None, type="Ready", status=False, reason="Waiting", now=t0)
    same = set_condition(first, type="Ready", status=False, reason="StillWaiting", now=t1)
    flipped = set_condition(same, type="Ready", status=True, reason="Done", now=t1)
    cases = [
        ("new condition", first, "False", "2026-01-01T00:00:00Z"),
        ("same status keeps the time", same, "False", "2026-01-01T00:00:00Z"),
        ("new status moves it", flipped, "True", "2026-01-01T01:00:00Z"),
    ]
    for name, conditions, status, when in cases:
        [c] = conditions
        assert (c["status"], c["lastTransitionTime"]) == (status, when), name
    assert first[0]["reason"] == "Waiting", "the input list is not changed"


# -- running: leader election and metrics --------------------------------------------------


ELECTION = ElectionOptions(
    namespace="default", lease_duration=1.5, renew_deadline=1.0, retry_period=0.2
)


async def wait_until(done: Callable[[], bool]) -> None:
    """Polls state other tasks change (bounded by each test's fail_after)."""
    while not done():  # noqa: ASYNC110 - the operator under test has no event to wait on
        await anyio.sleep(0.05)


@pytest.mark.parametrize("elected", [False, True], ids=["election off", "election on"])
async def test_leader_election_lets_one_replica_reconcile_and_hands_over(elected: bool) -> None:
    client = FakeClient()
    client.add(widget())
    replicas = [Recorder(), Recorder()]
    scopes = [anyio.CancelScope(), anyio.CancelScope()]

    async def run(i: int) -> None:
        election = replace(ELECTION, identity=f"replica-{i}") if elected else None
        with scopes[i]:
            await replicas[i].operator().run(client, election=election)

    with anyio.fail_after(20):  # generous: the machine is shared
        async with anyio.create_task_group() as tg:
            for i in range(2):
                tg.start_soon(run, i)
            if not elected:
                await wait_until(lambda: all(r.calls for r in replicas))
                tg.cancel_scope.cancel()
                return
            await wait_until(lambda: any(r.calls for r in replicas))
            await anyio.sleep(0.6)  # several retry periods: the spare stays idle
            [leader] = [i for i, r in enumerate(replicas) if r.calls]
            spare = 1 - leader
            assert not replicas[spare].calls
            scopes[leader].cancel()  # a clean stop releases the Lease
            await wait_until(lambda: bool(replicas[spare].calls))
            tg.cancel_scope.cancel()


async def test_metrics_count_reconciles_and_show_the_queue() -> None:
    client = FakeClient()
    client.add(widget())
    rec = Recorder()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                lambda task_status: rec.operator().run(
                    client, metrics_port=0, task_status=task_status
                )
            )
            await wait_until(lambda: bool(rec.calls))
            await anyio.sleep(0.1)
            pages = {}
            for path in ("/metrics", "/healthz"):
                async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                    await stream.send(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                    body = b""
                    with anyio.move_on_after(5):
                        while True:
                            try:
                                body += await stream.receive()
                            except anyio.EndOfStream:
                                break
                pages[path] = body.decode()
            tg.cancel_scope.cancel()
    metrics = pages["/metrics"]
    assert (
        'kpy_controller_syncs_total{controller="test-operator.widget",result="success"} 1.0'
        in metrics
    )
    assert 'workqueue_depth{name="test-operator.widget"}' in metrics
    assert pages["/healthz"].endswith("ok\n")


async def test_the_deletion_handler_runs_once_even_when_what_it_deletes_requeues_the_owner() -> (
    None
):
    app = Operator("test-operator")
    cleanups: list[str] = []

    @app.reconcile(Widget, owns=[Deployment])
    async def reconcile(ctx: Context, obj: Any) -> None:
        await ctx.apply_owned(deployment(obj.metadata.name, []))

    @app.on_delete(Widget)
    async def cleanup(ctx: Context, obj: Any) -> None:
        cleanups.append(ctx.key)
        await ctx.client.delete(Deployment, obj.metadata.name, namespace="default")
        await anyio.sleep(0.01)  # the Deployment's delete event requeues the owner meanwhile

    async with Harness(app, widget()) as h:
        await h.delete(Widget, "w")
        assert h.get(Widget, "w") is None
        assert cleanups == ["default/w"]


# -- kpy-operator's arguments --------------------------------------------------------------

BAD_APPS: list[tuple[str, str]] = [
    ("no such module", "no_such_module_here:app"),
    ("not an Operator", "examples.webapp.operator:reconcile"),
    ("no such attribute", "examples.webapp.operator:nothing"),
    ("no module", ":app"),
]


@pytest.mark.parametrize(("name", "spec"), BAD_APPS, ids=[b[0] for b in BAD_APPS])
def test_kpy_operator_refuses_what_is_not_an_operator(
    name: str, spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from kpy.operator.main import main

    with pytest.raises(SystemExit) as exited:
        main([spec, "--server", "127.0.0.1:1"])
    assert exited.value.code == 2, name
    err = capsys.readouterr().err
    assert "kpy-operator: error:" in err, name
    assert spec.partition(":")[0] in err or "must name a module" in err, f"{name}: {err}"

"""`kpyctl drain` through the eviction API, on the fake client: each case
scripts what the eviction of each pod answers (a budget's refusals, then
success; or another error) and asserts kubectl's lines on stdout and stderr
and the drain's outcome. Retries are shortened; the interval kubectl uses
(5 s) is checked on its own."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pytest

from kpy.api import errors
from kpy.api.core.v1 import Pod
from kpy.cli import drain
from kpy.client.fake import Action, FakeClient

REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."
RETRY = 0.05  # seconds between refused evictions in these cases


def pod(name: str, node: str = "node-a") -> Pod:
    p = Pod()
    p.metadata.name = name
    p.metadata.namespace = "default"
    p.metadata.owner_references.add(
        api_version="apps/v1", kind="ReplicaSet", name="web", uid="rs-uid", controller=True
    )
    p.spec.node_name = node
    p.spec.containers.add(name="c", image="busybox")
    p.status.phase = "Running"
    return p


def refusal() -> errors.EvictionRefused:
    return errors.EvictionRefused(
        REFUSED,
        causes=[errors.FieldError("", errors.DISRUPTION_BUDGET, "needs 2 healthy pods")],
    )


@dataclass(frozen=True)
class Case:
    name: str
    # per pod: the errors its evictions raise, in order, before one succeeds
    script: dict[str, list[Exception]]
    out: list[str]
    err: list[str] = field(default_factory=list)
    failure: str = ""  # the DrainError's summary, when the drain fails
    timeout: float = 10.0
    left: list[str] = field(default_factory=list)  # pods still stored afterwards


def retry_line(name: str) -> str:
    return (
        f'error when evicting pods/"{name}" -n "default" (will retry after {RETRY:g}s): {REFUSED}'
    )


CASES = [
    Case(
        "no budget in the way: each pod evicted and gone",
        {"a": [], "b": []},
        ["evicting pod default/a", "evicting pod default/b", "pod/a evicted", "pod/b evicted"],
    ),
    Case(
        "a refused eviction is tried again until the budget allows it",
        {"a": [], "b": [refusal(), refusal()]},
        [
            "evicting pod default/a",
            "evicting pod default/b",
            "pod/a evicted",
            "evicting pod default/b",
            "evicting pod default/b",
            "pod/b evicted",
        ],
        [retry_line("b"), retry_line("b")],
    ),
    Case(
        "a budget that never allows it: global timeout",
        {"a": [refusal()] * 100},
        ["evicting pod default/a"] * 4,
        [retry_line("a")] * 3,
        failure='error when evicting pods/"a" -n "default": global timeout reached: 0.18s',
        timeout=0.18,
        left=["a"],
    ),
    Case(
        "another refusal fails that pod at once; the others still go",
        {"a": [errors.Forbidden("pods is forbidden: no")], "b": []},
        ["evicting pod default/a", "evicting pod default/b", "pod/b evicted"],
        failure='error when evicting pods/"a" -n "default": pods is forbidden: no',
        left=["a"],
    ),
    Case(
        "a pod gone before its eviction is no failure",
        {"a": [errors.NotFound('pods "a" not found')]},
        ["evicting pod default/a"],
        left=["a"],  # the script says NotFound; the fake still has it
    ),
]


def scripted(client: FakeClient, script: dict[str, list[Exception]]) -> None:
    pending = {name: list(errs) for name, errs in script.items()}

    def react(action: Action) -> None:
        if action.subresource == "eviction" and pending.get(action.name):
            raise pending[action.name].pop(0)

    client.prepend_reactor("create", "Pod", react)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_drain_evicts(case: Case) -> None:
    client = FakeClient()
    client.add(*(pod(name) for name in case.script), pod("elsewhere", node="node-b"))
    scripted(client, case.script)
    options = drain._Options(drain.Rules(), "", grace=0, timeout=case.timeout, retry_interval=RETRY)
    out, err = io.StringIO(), io.StringIO()
    failure = ""
    try:
        await drain._drain_node(client, "node-a", options, out, err)  # type: ignore[arg-type]
    except drain.DrainError as e:
        failure = e.summary
    # Pods are evicted concurrently: their lines interleave as their calls yield.
    lines = out.getvalue().splitlines()
    assert sorted(lines) == sorted(case.out), f"{case.name}: {lines}"
    assert lines[-1:] == case.out[-1:], f"{case.name}: {lines}"
    assert err.getvalue().splitlines() == case.err, case.name
    assert failure == case.failure, case.name
    stored = sorted(p.metadata.name for p in client.stored_list(Pod))
    assert stored == sorted([*case.left, "elsewhere"]), case.name


async def test_disable_eviction_deletes_without_asking_a_budget() -> None:
    client = FakeClient()
    client.add(pod("a"))
    client.prepend_reactor("create", "Pod", lambda action: (_ for _ in ()).throw(refusal()))
    options = drain._Options(drain.Rules(), "", grace=0, timeout=5.0, evict=False)
    out = io.StringIO()
    await drain._drain_node(client, "node-a", options, out, io.StringIO())  # type: ignore[arg-type]
    assert out.getvalue().splitlines() == ["evicting pod default/a", "pod/a evicted"]
    assert [str(a) for a in client.writes()] == ["delete Pod default/a"]


def test_kubectl_retry_interval_and_flag() -> None:
    assert drain._duration_text(drain.EVICTION_RETRY) == "5s"
    import argparse

    parser = argparse.ArgumentParser()
    drain.add_parser(parser.add_subparsers())
    args = parser.parse_args(["drain", "n1", "--disable-eviction"])
    assert args.disable_eviction
    assert not parser.parse_args(["drain", "n1"]).disable_eviction

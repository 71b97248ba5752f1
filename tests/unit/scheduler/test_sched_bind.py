"""Bind runs in the scheduling cycle's own state: what PreFilter and Filter
wrote for the pod is there when the bind plugin binds it, as in
kube-scheduler, where the binding cycle reuses the scheduling cycle's
CycleState."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from kpy.scheduler.framework import SUCCESS, CycleState, NodeInfo, PreFilterResult, Profile, Status
from kpy.scheduler.scheduler import Scheduler
from tests.unit.scheduler.sched_builders import container, node, pod

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.core.v1 import Pod


@dataclass
class StatefulBinder:
    """Writes a note in PreFilter, and records what Bind finds of it."""

    name: str = "StatefulBinder"
    seen: list[tuple[str, object]] = field(default_factory=list)

    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status]:
        state.write("PreFilterStatefulBinder", f"for {pod.metadata.name}")
        return None, SUCCESS

    async def bind(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        self.seen.append((node_name, state.get("PreFilterStatefulBinder")))
        return SUCCESS


class _NoClient:
    """The scheduler needs nothing of a client here: the plugin binds."""

    async def patch(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing should be patched")


async def test_bind_sees_what_the_cycles_pre_filter_wrote() -> None:
    binder = StatefulBinder()
    s = Scheduler(_NoClient(), profile=Profile.of(binder))  # type: ignore[arg-type]
    s.cache.add_node(node("a", allocatable={"cpu": "4", "pods": "10"}))
    s.queue.add(pod(container({"cpu": "1"}), name="p", uid="uid-p"), "default/p")
    async with anyio.create_task_group() as binds:
        s.schedule_one(await s.queue.pop(), binds)
    assert binder.seen == [("a", "for p")]

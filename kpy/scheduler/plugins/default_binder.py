"""DefaultBinder: binds a pod through the API's pods/binding subresource
(kube-scheduler's defaultbinder/default_binder.go).

The plugin stays free of the client (scheduler plugins are pure logic, an
import contract says so): the scheduler hands it the call that binds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from kpy.scheduler.framework import SUCCESS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from kpy.api.core.v1 import Pod
    from kpy.scheduler.framework import CycleState, Status

NAME: Final = "DefaultBinder"


class DefaultBinder:
    name = NAME

    def __init__(self, bind: Callable[[Pod, str], Awaitable[object]]) -> None:
        self._bind = bind

    async def bind(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        """Raises the API's error when the binding is refused (Conflict: the
        pod is bound already; NotFound: it is gone)."""
        del state
        await self._bind(pod, node_name)
        return SUCCESS

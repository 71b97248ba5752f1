"""A plugin's verdict (kube-scheduler's `framework/interface.go`: Code,
Status, NewStatus, AsStatus).

Statuses are frozen values: compare them with `==`. Success is `SUCCESS`,
whose code is 0, so `if status.code` means "not a success". The framework
stamps the plugin that produced a status on it (`with_plugin`); plugins
leave `plugin` empty.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Final

__all__ = ["SUCCESS", "Code", "PluginError", "Status", "as_status", "new_status"]


class Code(IntEnum):
    """A plugin's verdict (Kubernetes' framework.Code values)."""

    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    SKIP = 5


@dataclass(frozen=True, slots=True)
class Status:
    """The outcome of running a plugin: a code, the reasons shown to users,
    and the plugin that produced it (set by the framework)."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    def is_success(self) -> bool:
        return self.code is Code.SUCCESS

    def is_skip(self) -> bool:
        return self.code is Code.SKIP

    def is_rejected(self) -> bool:
        """Unschedulable or UnschedulableAndUnresolvable: a "no", not an error."""
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def message(self) -> str:
        return ", ".join(self.reasons)

    def with_plugin(self, plugin: str) -> Status:
        return self if self.plugin == plugin else replace(self, plugin=plugin)


SUCCESS: Final = Status()


def new_status(code: Code, *reasons: str) -> Status:
    """Kubernetes' NewStatus."""
    return Status(code, reasons)


def as_status(err: BaseException) -> Status:
    """An Error status carrying the exception's message (Kubernetes' AsStatus)."""
    return Status(Code.ERROR, (str(err),))


class PluginError(Exception):
    """A plugin failed with an Error status (not a rejection) while the
    framework ran it; `status` says which plugin and why."""

    def __init__(self, status: Status) -> None:
        super().__init__(status.message())
        self.status = status

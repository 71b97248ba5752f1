"""The values an operator's handlers exchange with the SDK: what a reconcile
returns (`Result`; `PermanentError`, what it raises to stop retrying, lives
with `Context`, which raises it too), the handler signatures, and
`set_condition`, the one helper for status conditions (apimachinery's
meta.SetStatusCondition on plain JSON)."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from kpy.operator._context import Context

__all__ = [
    "DeleteHandler",
    "Mapper",
    "ReconcileHandler",
    "Result",
    "set_condition",
]


@dataclass(frozen=True, slots=True)
class Result:
    """What a reconcile asks for next. `requeue_after`: reconcile this object
    again after that many seconds even if nothing changes (for state the
    operator polls, such as an external system). Returning None means
    "done until the object or something it owns changes"."""

    requeue_after: float | None = None

    def __post_init__(self) -> None:
        if self.requeue_after is not None and self.requeue_after < 0:
            raise ValueError(f"Result.requeue_after must be >= 0, got {self.requeue_after}")


ReconcileHandler: TypeAlias = Callable[["Context", Any], Awaitable["Result | None"]]
DeleteHandler: TypeAlias = Callable[["Context", Any], Awaitable[None]]
#: `watches=` mappers: a watched object -> the "namespace/name" keys of the
#: primary objects to reconcile.
Mapper: TypeAlias = Callable[[Any], Iterable[str]]


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    *,
    type: str,
    status: bool | str,
    reason: str,
    message: str = "",
    observed_generation: int | None = None,
    now: datetime.datetime | None = None,
) -> list[dict[str, Any]]:
    """A new conditions list with condition `type` set (the input is not
    changed, so it may come from a cached object). `status` True/False
    becomes "True"/"False". `lastTransitionTime` moves only when the status
    changes, so a reconcile that finds nothing new writes an identical status
    and the SDK skips the write."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    if value not in ("True", "False", "Unknown"):
        raise ValueError(
            f"condition {type!r}: status must be True, False or Unknown, got {value!r}"
        )
    out = [dict(c) for c in conditions or ()]
    found = next((c for c in out if c.get("type") == type), None)
    if found is None or found.get("status") != value:
        stamp = (now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
        transition = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        transition = found.get("lastTransitionTime", "")
    new: dict[str, Any] = {"type": type, "status": value}
    if observed_generation is not None:
        new["observedGeneration"] = observed_generation
    new.update(lastTransitionTime=transition, reason=reason, message=message)
    if found is None:
        out.append(new)
    else:
        out[out.index(found)] = new
    return out

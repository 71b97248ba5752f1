"""What every runtime keeps of its sandboxes and containers, and how.

`Records` holds them by id, with the lookups every operation starts with:
an unknown id is a NotFoundError naming the runtime's node and store, and
`ready_sandbox` refuses a stopped sandbox the same way in every runtime (a
stopped sandbox has given its IP back, so nothing more runs in it).
`config_to_json` and `config_from_json` are the one JSON form of the
configs a runtime must store to recover after a restart; reading accepts
what earlier versions wrote (mounts as lists, fields since dropped).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from kpy.agent.runtime.base import (
    ContainerConfig,
    ContainerCreateError,
    Mount,
    NotFoundError,
    PodSandboxConfig,
    SandboxState,
    SecurityConfig,
)

if TYPE_CHECKING:
    from kpy.agent.runtime._statefile import Json


class _SandboxRecord(Protocol):
    @property
    def state(self) -> SandboxState: ...


class _ContainerRecord(Protocol):
    @property
    def sandbox_id(self) -> str: ...


S = TypeVar("S", bound=_SandboxRecord)
C = TypeVar("C", bound=_ContainerRecord)


class Records(Generic[S, C]):
    """A runtime's sandboxes and containers by id (in whatever record type
    the runtime keeps). `where` ends every not-found message: the node and
    the store looked in, e.g. "in /var/lib/kpy/runtime/process"."""

    def __init__(self, where: str, *, noun: str = "") -> None:
        self.sandboxes: dict[str, S] = {}
        self.containers: dict[str, C] = {}
        self._where = where
        self._noun = noun

    def sandbox(self, sandbox_id: str) -> S:
        """The sandbox; NotFoundError if there is none with that id."""
        try:
            return self.sandboxes[sandbox_id]
        except KeyError:
            raise NotFoundError(f"no {self._noun}pod sandbox {sandbox_id} {self._where}") from None

    def container(self, container_id: str) -> C:
        """The container; NotFoundError if there is none with that id."""
        try:
            return self.containers[container_id]
        except KeyError:
            raise NotFoundError(f"no {self._noun}container {container_id} {self._where}") from None

    def containers_of(self, sandbox_id: str) -> list[C]:
        """The containers of one sandbox ([] for an unknown one)."""
        return [c for c in self.containers.values() if c.sandbox_id == sandbox_id]

    def ready_sandbox(self, sandbox_id: str, container: str, pod: PodSandboxConfig) -> S:
        """The sandbox a container named `container` is about to be created
        in: NotFoundError if unknown, ContainerCreateError if stopped."""
        sandbox = self.sandbox(sandbox_id)
        if sandbox.state is not SandboxState.READY:
            raise ContainerCreateError(
                f'cannot create container "{container}" in sandbox {sandbox_id} of pod '
                f"{pod.namespace}/{pod.name}: the sandbox is stopped; run a new sandbox to "
                "create containers in"
            )
        return sandbox


def config_to_json(config: ContainerConfig | PodSandboxConfig) -> Json:
    """`config` as a JSON object (mounts as objects, sequences as lists)."""
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def container_config_from_json(raw: Json) -> ContainerConfig:
    """The ContainerConfig `config_to_json` made (or an earlier version)."""
    fields = _known(ContainerConfig, raw)
    fields["command"] = tuple(fields.get("command", ()))
    fields["args"] = tuple(fields.get("args", ()))
    fields["env"] = tuple((name, value) for name, value in fields.get("env", ()))
    fields["mounts"] = tuple(
        Mount(**m) if isinstance(m, dict) else Mount(*m) for m in fields.get("mounts", ())
    )
    security: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in _known(SecurityConfig, fields.get("security") or {}).items()
    }
    fields["security"] = SecurityConfig(**security)
    return ContainerConfig(**fields)


def sandbox_config_from_json(raw: Json) -> PodSandboxConfig:
    """The PodSandboxConfig `config_to_json` made (or an earlier version)."""
    return PodSandboxConfig(**_known(PodSandboxConfig, raw))


def _known(kind: type[Any], raw: Json) -> dict[str, Any]:
    # Fields an earlier version stored and this one dropped are ignored.
    names = {f.name for f in dataclasses.fields(kind)}
    return {k: v for k, v in raw.items() if k in names}


def _plain(value: Any) -> Any:
    """`value` as JSON-ready dicts and lists (dataclasses.asdict is far slower)."""
    if value is None or isinstance(value, str | int | float):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value

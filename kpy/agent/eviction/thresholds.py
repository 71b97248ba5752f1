"""Eviction signals and thresholds, parsed from the agent's flags as the
kubelet parses its own (Kubernetes' pkg/kubelet/eviction/helpers.go).

A threshold is `<signal><<value>`: the node is short of a resource when the
signal's observed amount available falls below the value, a quantity
(`memory.available<100Mi`) or a percentage of the capacity
(`nodefs.available<10%`).

- `--eviction-hard` (default `memory.available<100Mi,nodefs.available<10%,
  nodefs.inodesFree<5%,imagefs.available<15%`, Kubernetes' Linux defaults):
  acted on as soon as met. Given at all, it replaces every default, as the
  kubelet's flag does; `0%` or `100%` drops a signal.
- `--eviction-soft` with `--eviction-soft-grace-period` (`signal=duration`,
  Go durations such as `1m30s`): acted on once met for the whole grace
  period; every soft threshold needs one.
- `--eviction-pressure-transition-period` (5m): how long a pressure
  condition stays True after its thresholds stop being met.
- `--eviction-max-pod-grace-period` (0): the longest grace a pod evicted for
  a soft threshold gets (the pod's own if shorter; a negative value: the
  pod's own); a hard threshold allows 1 s.
- `--housekeeping-interval` (10s): how often the agent measures.

Signals: `memory.available` (MemoryPressure; the machine's MemAvailable),
`nodefs.available` and `nodefs.inodesFree` (DiskPressure; the filesystem of
the agent's root dir), `imagefs.available` and `imagefs.inodesFree`
(DiskPressure; the runtime's data dir, under the root dir), and
`pid.available` (PIDPressure; pid_max less the processes running).

Every error is a ValueError naming the flag, the statement at fault and
what would be accepted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from kpy.api.quantity import Quantity

__all__ = [
    "DEFAULT_EVICTION_HARD",
    "SIGNALS",
    "EvictionConfig",
    "Signal",
    "Threshold",
    "parse_duration",
    "parse_eviction_config",
    "parse_thresholds",
]


@dataclass(frozen=True, slots=True)
class Signal:
    """What a signal measures: the node condition it drives and the resource
    reclaimed by evicting pods (the kubelet's signalToNodeCondition and
    signalToResource)."""

    name: str
    condition: str
    resource: str


SIGNALS: Final = {
    s.name: s
    for s in (
        Signal("memory.available", "MemoryPressure", "memory"),
        Signal("nodefs.available", "DiskPressure", "ephemeral-storage"),
        Signal("nodefs.inodesFree", "DiskPressure", "inodes"),
        Signal("imagefs.available", "DiskPressure", "ephemeral-storage"),
        Signal("imagefs.inodesFree", "DiskPressure", "inodes"),
        Signal("pid.available", "PIDPressure", "pids"),
    )
}

DEFAULT_EVICTION_HARD: Final = (
    "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%"
)


@dataclass(frozen=True, slots=True)
class Threshold:
    """One threshold; `grace_period` 0 makes it hard (as the kubelet decides
    by the grace period alone)."""

    signal: str
    value: str  # as given: "100Mi", "10%"
    quantity: int | None = None
    percentage: float | None = None  # of the capacity, in (0, 1)
    grace_period: float = 0.0

    @property
    def hard(self) -> bool:
        return self.grace_period == 0

    def amount(self, capacity: int) -> int:
        """The threshold as an amount of the resource, for a capacity."""
        if self.quantity is not None:
            return self.quantity
        return int(capacity * (self.percentage or 0.0))

    def __str__(self) -> str:
        grace = f" for {self.grace_period:g}s" if self.grace_period else ""
        return f"{self.signal}<{self.value}{grace}"


@dataclass(frozen=True, slots=True)
class EvictionConfig:
    """The eviction settings of one agent (seconds)."""

    thresholds: tuple[Threshold, ...] = ()
    pressure_transition_period: float = 300.0
    max_pod_grace_period: int = 0
    housekeeping_interval: float = 10.0

    @classmethod
    def default(cls) -> EvictionConfig:
        return cls(thresholds=parse_thresholds(None))


_DURATION_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str, flag: str) -> float:
    """A Go duration (`1m30s`, `300ms`, `5m`, `0`) in seconds, not negative."""
    word = text.strip()
    if word == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(word):
        m = _DURATION_PART.match(word, pos)
        if m is None:
            raise ValueError(f"{flag}: {text!r} is not a duration; write it like 30s, 1m30s or 5m")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not word:
        raise ValueError(f"{flag}: an empty duration; write it like 30s, 1m30s or 5m")
    return total


def _statements(value: str | Mapping[str, object], flag: str, sep: str) -> dict[str, str]:
    """`signal<sep>value` statements, comma-separated or as a mapping (a
    YAML config file); the signal is checked here, the value by the caller."""
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        pairs = []
        for word in str(value).split(","):
            word = word.strip()
            if not word:
                continue
            signal, found, amount = word.partition(sep)
            if not found or not signal or not amount:
                raise ValueError(
                    f"{flag}: {word!r} is not signal{sep}value (e.g. memory.available{sep}"
                    f"{'100Mi' if sep == '<' else '1m30s'})"
                )
            pairs.append((signal.strip(), amount.strip()))
    out: dict[str, str] = {}
    for signal, amount in pairs:
        if signal not in SIGNALS:
            raise ValueError(
                f"{flag}: unsupported eviction signal {signal!r}; use one of {', '.join(SIGNALS)}"
            )
        if signal in out:
            raise ValueError(f"{flag}: {signal} is given twice")
        out[signal] = amount
    return out


def _threshold(signal: str, value: str, flag: str) -> Threshold | None:
    """One threshold, or None for one the kubelet ignores (0% and 100%)."""
    if value.endswith("%"):
        if value in ("0%", "100%"):
            return None
        try:
            percentage = float(value[:-1]) / 100
        except ValueError:
            raise ValueError(
                f"{flag}: {signal}<{value}: {value!r} is not a percentage such as 10%"
            ) from None
        if not 0 <= percentage <= 1:
            raise ValueError(f"{flag}: {signal}<{value}: a percentage must be within 0% and 100%")
        return Threshold(signal, value, percentage=percentage)
    try:
        quantity = Quantity(value)
    except ValueError:
        raise ValueError(
            f"{flag}: {signal}<{value}: {value!r} is not a quantity (100Mi, 5000) "
            "nor a percentage (10%)"
        ) from None
    if quantity.sign() <= 0:
        raise ValueError(f"{flag}: eviction threshold {signal} must be positive: {value}")
    return Threshold(signal, value, quantity=quantity.value())


def parse_thresholds(
    hard: str | Mapping[str, object] | None,
    soft: str | Mapping[str, object] | None = None,
    soft_grace_period: str | Mapping[str, object] | None = None,
) -> tuple[Threshold, ...]:
    """The thresholds of the three flags; `hard` None: Kubernetes' defaults."""
    out: list[Threshold] = []
    for signal, value in _statements(
        DEFAULT_EVICTION_HARD if hard is None else hard, "--eviction-hard", "<"
    ).items():
        t = _threshold(signal, value, "--eviction-hard")
        if t is not None:
            out.append(t)
    graces = {
        signal: parse_duration(value, f"--eviction-soft-grace-period {signal}")
        for signal, value in _statements(
            soft_grace_period or "", "--eviction-soft-grace-period", "="
        ).items()
    }
    for signal, value in _statements(soft or "", "--eviction-soft", "<").items():
        if signal not in graces:
            raise ValueError(
                f"--eviction-soft: {signal}<{value} has no grace period; give one with "
                f"--eviction-soft-grace-period={signal}=1m30s"
            )
        t = _threshold(signal, value, "--eviction-soft")
        if t is not None:
            out.append(
                Threshold(t.signal, t.value, t.quantity, t.percentage, grace_period=graces[signal])
            )
    return tuple(out)


def parse_eviction_config(settings: Mapping[str, object]) -> EvictionConfig:
    """The eviction settings from the agent's settings (attribute names:
    `eviction_hard`, ...; absent: the defaults)."""

    def text(key: str) -> str | Mapping[str, object] | None:
        value = settings.get(key)
        if value is None or isinstance(value, Mapping):
            return value
        return str(value)

    thresholds = parse_thresholds(
        text("eviction_hard"), text("eviction_soft"), text("eviction_soft_grace_period")
    )
    transition = settings.get("eviction_pressure_transition_period")
    housekeeping = settings.get("housekeeping_interval")
    interval = 10.0
    if housekeeping is not None:
        interval = parse_duration(str(housekeeping), "--housekeeping-interval")
        if interval <= 0:
            raise ValueError(f"--housekeeping-interval must be positive, got {housekeeping}")
    max_grace = settings.get("eviction_max_pod_grace_period", 0)
    try:
        max_pod_grace = int(str(max_grace))
    except ValueError:
        raise ValueError(
            f"--eviction-max-pod-grace-period: {max_grace!r} is not a whole number of seconds"
        ) from None
    return EvictionConfig(
        thresholds=thresholds,
        pressure_transition_period=(
            300.0
            if transition is None
            else parse_duration(str(transition), "--eviction-pressure-transition-period")
        ),
        max_pod_grace_period=max_pod_grace,
        housekeeping_interval=interval,
    )

"""`kpyctl rollout status` for a DaemonSet: kubectl's DaemonSetStatusViewer
messages, case by case."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kpy.api import errors
from kpy.api.apps.v1 import DaemonSet
from kpy.cli._daemonset_rollout import status_message


def daemon_set(
    *,
    generation: int = 2,
    observed: int = 2,
    desired: int = 3,
    updated: int = 3,
    available: int = 3,
    strategy: str = "RollingUpdate",
) -> DaemonSet:
    ds = DaemonSet()
    ds.metadata.name = "fluentd"
    ds.metadata.generation = generation
    ds.spec.update_strategy.type = strategy
    s = ds.status
    s.observed_generation = observed
    s.desired_number_scheduled = desired
    s.updated_number_scheduled = updated
    s.number_available = available
    return ds


@dataclass(frozen=True)
class Case:
    name: str
    ds: DaemonSet
    message: str
    done: bool


CASES = [
    Case(
        "the new generation is not observed yet",
        daemon_set(generation=3),
        "Waiting for daemon set spec update to be observed...",
        False,
    ),
    Case(
        "some nodes still run old pods",
        daemon_set(updated=1),
        'Waiting for daemon set "fluentd" rollout to finish: '
        "1 out of 3 new pods have been updated...",
        False,
    ),
    Case(
        "updated but not all available",
        daemon_set(available=2),
        'Waiting for daemon set "fluentd" rollout to finish: 2 of 3 updated pods are available...',
        False,
    ),
    Case("done", daemon_set(), 'daemon set "fluentd" successfully rolled out', True),
    Case(
        "no node to run on is done too",
        daemon_set(desired=0, updated=0, available=0),
        'daemon set "fluentd" successfully rolled out',
        True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_status_message(case: Case) -> None:
    got = status_message(case.ds)
    assert got == (case.message, case.done), f"{case.name}: got {got}"


def test_on_delete_has_no_rollout_status() -> None:
    with pytest.raises(errors.BadRequest, match="only available for RollingUpdate strategy type"):
        status_message(daemon_set(strategy="OnDelete"))

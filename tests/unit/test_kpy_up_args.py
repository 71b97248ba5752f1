"""`kpy up --controller-manager-arg / --agent-arg / --dns-arg`: words handed to those
components' command lines, kept when the starter runs `kpy up` again
under the supervisor."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kpy.cluster.main import _extra_args, _parser, _up_words


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    controller_manager: tuple[str, ...]
    agent: tuple[str, ...]
    dns: tuple[str, ...] = ()


CASES = [
    Case("none", ["up"], (), ()),
    Case(
        "flag=value in one word",
        ["up", "--controller-manager-arg=--node-monitor-grace-period=12s"],
        ("--node-monitor-grace-period=12s",),
        (),
    ),
    Case(
        "a flag and its value as two words, in order",
        [
            "up",
            "--agent-arg=--heartbeat",
            "--agent-arg=2",
            "--controller-manager-arg=--node-monitor-period",
            "--controller-manager-arg",
            "1s",
        ],
        ("--node-monitor-period", "1s"),
        ("--heartbeat", "2"),
    ),
    Case(
        "kpy-dns's upstream",
        ["up", "--dns-arg=--upstream=10.0.0.53:53"],
        (),
        (),
        ("--upstream=10.0.0.53:53",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_component_args(case: Case) -> None:
    args = _parser().parse_args(case.argv)
    want = {
        "kpy-controller-manager": case.controller_manager,
        "kpy-agent": case.agent,
        "kpy-dns": case.dns,
    }
    assert _extra_args(args) == want, case.name
    # The supervised starter gets the same words.
    again = _parser().parse_args([*_up_words(args), "--supervised"])
    assert _extra_args(again) == want, case.name

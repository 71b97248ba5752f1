"""DefaultTolerationSeconds admission (Kubernetes'
plugin/pkg/admission/defaulttolerationseconds): every pod created tolerates
the not-ready and unreachable NoExecute taints for 300 s, or the API
server's flags' times, unless it already tolerates them."""

from __future__ import annotations

import pytest

from kpy.api.core.v1 import Pod, Toleration
from kpy.apiserver import main as apiserver_main
from kpy.apiserver.admission import AdmissionOptions, admit

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


def tol(key: str, effect: str = "NoExecute", seconds: int | None = None, op: str = "Exists") -> str:
    return f"{key}:{op}:{effect}:{seconds}"


def as_text(t: Toleration) -> str:
    seconds = t.toleration_seconds if t.HasField("toleration_seconds") else None
    return tol(t.key, t.effect, seconds, t.operator)


CASES = [
    (
        "no tolerations: both defaults, 300 s",
        [],
        AdmissionOptions(),
        [tol(NOT_READY, seconds=300), tol(UNREACHABLE, seconds=300)],
    ),
    (
        "the flags set the times",
        [],
        AdmissionOptions(not_ready_toleration_seconds=10, unreachable_toleration_seconds=5),
        [tol(NOT_READY, seconds=10), tol(UNREACHABLE, seconds=5)],
    ),
    (
        "its own unreachable toleration is kept, not-ready still added",
        [Toleration(key=UNREACHABLE, operator="Exists", effect="NoExecute", toleration_seconds=5)],
        AdmissionOptions(),
        [tol(UNREACHABLE, seconds=5), tol(NOT_READY, seconds=300)],
    ),
    (
        "a toleration of every effect for the key counts",
        [Toleration(key=NOT_READY, operator="Exists")],
        AdmissionOptions(),
        [tol(NOT_READY, effect=""), tol(UNREACHABLE, seconds=300)],
    ),
    (
        "tolerating everything (empty key, Exists): nothing added",
        [Toleration(operator="Exists")],
        AdmissionOptions(),
        [tol("", effect="")],
    ),
    (
        "a NoSchedule toleration does not count",
        [Toleration(key=NOT_READY, operator="Exists", effect="NoSchedule")],
        AdmissionOptions(),
        [
            tol(NOT_READY, effect="NoSchedule"),
            tol(NOT_READY, seconds=300),
            tol(UNREACHABLE, seconds=300),
        ],
    ),
]


@pytest.mark.parametrize(("name", "own", "options", "want"), CASES, ids=[c[0] for c in CASES])
def test_default_toleration_seconds(
    name: str, own: list[Toleration], options: AdmissionOptions, want: list[str]
) -> None:
    pod = Pod()
    pod.metadata.name = "p"
    pod.spec.tolerations.extend(own)
    admit(pod, options)
    got = [as_text(t) for t in pod.spec.tolerations]
    assert got == want, f"{name}: {got}"


def test_the_flags_reach_the_server_config(capsys: pytest.CaptureFixture[str]) -> None:
    parser = apiserver_main._parser()
    args = parser.parse_args(
        [
            "--default-not-ready-toleration-seconds",
            "7",
            "--default-unreachable-toleration-seconds",
            "9",
        ]
    )
    assert (
        args.default_not_ready_toleration_seconds,
        args.default_unreachable_toleration_seconds,
    ) == (7, 9)
    bad = parser.parse_args(["--default-unreachable-toleration-seconds", "-1"])
    with pytest.raises(SystemExit):
        apiserver_main._check(parser, bad)
    assert (
        "--default-unreachable-toleration-seconds must not be negative" in capsys.readouterr().err
    )

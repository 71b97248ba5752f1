"""`--etcd-compaction-interval`: seconds or a Kubernetes-style duration."""

from __future__ import annotations

import pytest

from kpy.apiserver.compaction import parse_interval

CASES = [
    ("seconds", "300", 300.0),
    ("fractional seconds", "0.5", 0.5),
    ("minutes", "5m", 300.0),
    ("seconds suffix", "90s", 90.0),
    ("hours", "1h", 3600.0),
    ("disabled", "0", 0.0),
    ("spaces", " 10s ", 10.0),
]

BAD = [
    ("negative", "-5"),
    ("word", "often"),
    ("unit only", "m"),
    ("infinite", "inf"),
    ("nan", "nan"),
]


def test_parse_interval() -> None:
    for name, text, want in CASES:
        assert parse_interval(text) == want, name


def test_parse_interval_refuses() -> None:
    for name, text in BAD:
        with pytest.raises(ValueError, match="5m") as caught:
            parse_interval(text)
        assert text.strip() in str(caught.value), name


def test_apiserver_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from kpy.apiserver.main import _check, _parser

    parser = _parser()
    assert parser.parse_args([]).etcd_compaction_interval == "5m"
    args = parser.parse_args(["--etcd-compaction-interval", "often"])
    with pytest.raises(SystemExit) as exited:
        _check(parser, args)
    assert exited.value.code == 2
    assert "--etcd-compaction-interval" in capsys.readouterr().err

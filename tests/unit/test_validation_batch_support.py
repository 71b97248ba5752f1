"""batch/v1 validation: the Job fields kpy's controller implements are
accepted; the CronJob schedule forms Kubernetes refuses are refused."""

from __future__ import annotations

import pytest

from tests.unit.test_validation_workloads import CRON_JOB, JOB, _errors, edit

CASES = [
    (
        "TZ in the schedule",
        edit(CRON_JOB, {"spec.schedule": "TZ=UTC 0 * * * *"}),
        "spec.schedule",
        "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
    ),
    (
        "CRON_TZ in the schedule beside timeZone",
        edit(CRON_JOB, {"spec.schedule": "CRON_TZ=UTC 0 * * * *", "spec.timeZone": "UTC"}),
        "spec.schedule",
        "use timeZone field instead",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "manifest", "path", "message"), CASES, ids=[c[0] for c in CASES])
def test_refused(name: str, manifest: dict[str, object], path: str, message: str) -> None:
    errs = [e for e in _errors(manifest) if e.path == path]
    assert errs, f"{name}: no error at {path}: {[str(e) for e in _errors(manifest)]}"
    assert any(message in str(e) for e in errs), f"{name}: {[str(e) for e in errs]}"


ACCEPTED = [
    ("successPolicy", {"spec.successPolicy": {"rules": [{"succeededCount": 1}]}}),
    ("backoffLimitPerIndex", {"spec.backoffLimitPerIndex": 1}),
    ("maxFailedIndexes", {"spec.backoffLimitPerIndex": 1, "spec.maxFailedIndexes": 1}),
]


@pytest.mark.parametrize(("name", "changes"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_indexed_job_features_are_accepted(name: str, changes: dict[str, object]) -> None:
    manifest = edit(JOB, {"spec.completionMode": "Indexed", "spec.completions": 3, **changes})
    assert _errors(manifest) == [], name


def test_every_is_accepted() -> None:
    assert _errors(edit(CRON_JOB, {"spec.schedule": "@every 90s"})) == []

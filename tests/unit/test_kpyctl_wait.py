"""`kpyctl wait`'s and `kpyctl create job --from`'s pure parts."""

from __future__ import annotations

import pytest

from kpy.api.batch.v1 import CronJob
from kpy.cli._create_job import INSTANTIATE_ANNOTATION, job_from_cron_job
from kpy.cli._manifests import UsageError
from kpy.cli.wait import Wanted, parse_for, parse_timeout

FOR = [
    ("condition", "condition=complete", Wanted("complete")),
    ("condition with value", "condition=Ready=false", Wanted("Ready", "false")),
    ("delete", "delete", Wanted(deleted=True)),
]


@pytest.mark.parametrize(("name", "text", "wanted"), FOR, ids=[c[0] for c in FOR])
def test_parse_for(name: str, text: str, wanted: Wanted) -> None:
    assert parse_for(text) == wanted, name


@pytest.mark.parametrize("text", ["condition=", "jsonpath={.x}", "ready"])
def test_parse_for_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="unrecognized condition"):
        parse_for(text)


TIMEOUTS = [("seconds", "30s", 30.0), ("minutes", "2m", 120.0), ("mixed", "1m30s", 90.0),
            ("bare number", "5", 5.0), ("zero", "0", 0.0), ("millis", "500ms", 0.5)]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "seconds"), TIMEOUTS, ids=[c[0] for c in TIMEOUTS])
def test_parse_timeout(name: str, text: str, seconds: float) -> None:
    assert parse_timeout(text) == seconds, name


@pytest.mark.parametrize("text", ["soon", "5d", "1m-"])
def test_parse_timeout_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        parse_timeout(text)


def test_job_from_cron_job() -> None:
    cj = CronJob()
    cj.metadata.name, cj.metadata.uid = "hello", "cj-uid"
    cj.spec.job_template.metadata.labels["app"] = "hello"
    cj.spec.job_template.metadata.annotations["note"] = "x"
    cj.spec.job_template.spec.backoff_limit = 2
    job = job_from_cron_job("hello-manual", cj)
    assert job["metadata"]["name"] == "hello-manual"
    assert job["metadata"]["labels"] == {"app": "hello"}
    assert job["metadata"]["annotations"] == {"note": "x", INSTANTIATE_ANNOTATION: "manual"}
    [owner] = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "CronJob", "hello", "cj-uid", True,
    )  # fmt: skip
    assert job["spec"]["backoffLimit"] == 2

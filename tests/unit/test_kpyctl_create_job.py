"""`kpyctl create job NAME --image=IMAGE [-- COMMAND...]`, as kubectl makes
the Job: run through kpyctl's own parser with `--dry-run=client -o yaml`
(no server needed), and kubectl's refusals of a wrong mix of flags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from kpy.cli import main


@dataclass(frozen=True)
class Made:
    name: str
    argv: list[str]
    container: dict[str, Any]  # the Job's one container, as printed
    namespace: str | None = None


MADE = [
    Made(
        "image and a command with its own flags",
        ["create", "job", "pi", "--image=perl", "--dry-run=client", "-o", "yaml",
         "--", "perl", "-Mbignum=bpi", "-wle", "print bpi(20)"],
        {"name": "pi", "image": "perl",
         "command": ["perl", "-Mbignum=bpi", "-wle", "print bpi(20)"]},
    ),
    Made(
        "image alone: the image's own command",
        ["create", "job", "hello", "--image=busybox", "--dry-run=client", "-o", "yaml"],
        {"name": "hello", "image": "busybox"},
    ),
    Made(
        "flags before the name and a namespace",
        ["create", "-n", "batch", "job", "--image", "busybox", "once", "--dry-run=client",
         "-o", "yaml", "--", "sh", "-c", "echo done --image=x"],
        {"name": "once", "image": "busybox", "command": ["sh", "-c", "echo done --image=x"]},
        namespace="batch",
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", MADE, ids=[c.name for c in MADE])
def test_create_job_from_an_image(case: Made, capsys: pytest.CaptureFixture[str]) -> None:
    args = main.parse(main.build_parser(), case.argv)
    code = args.run(args)
    out, err = capsys.readouterr()
    assert code == 0, f"{case.name}: exit {code}: {err}"
    job = yaml.safe_load(out)
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job"), f"{case.name}: {out}"
    assert job["metadata"]["name"] == case.container["name"], f"{case.name}: {out}"
    assert job["metadata"].get("namespace") == case.namespace, f"{case.name}: {out}"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never", f"{case.name}: {out}"
    assert len(pod["containers"]) == 1, f"{case.name}: {out}"
    container = {k: v for k, v in pod["containers"][0].items() if k in case.container}
    assert container == case.container, f"{case.name}: {out}"
    has_command = "command" in pod["containers"][0]
    assert has_command == ("command" in case.container), f"{case.name}: {out}"


def test_create_job_prints_what_it_made(capsys: pytest.CaptureFixture[str]) -> None:
    args = main.parse(main.build_parser(), ["create", "job", "x", "--image=b", "--dry-run=client"])
    assert args.run(args) == 0
    assert capsys.readouterr().out == "job.batch/x created (dry run)\n"


REFUSED = [
    ("neither image nor from", ["create", "job", "x"],
     "error: either --image or --from must be specified"),
    ("both image and from", ["create", "job", "x", "--image=b", "--from=cronjob/c"],
     "error: either --image or --from must be specified"),
    ("from and a command", ["create", "job", "x", "--from=cronjob/c", "--", "sh"],
     "error: cannot specify --from and command"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "argv", "message"), REFUSED, ids=[c[0] for c in REFUSED])
def test_create_job_refuses(
    name: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = main.parse(main.build_parser(), argv)
    code = args.run(args)
    err = capsys.readouterr().err
    assert code == 1, f"{name}: exit {code}"
    assert err == message + "\n", f"{name}: {err!r}"


def test_only_create_job_takes_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main.parse(main.build_parser(), ["create", "configmap", "x", "--", "y"])
    assert exit_.value.code == 2
    assert "error: unexpected arguments after --: y" in capsys.readouterr().err

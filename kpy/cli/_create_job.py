"""`kpyctl create job`: kubectl's create job, in its two forms.

    kpyctl create job NAME --image=IMAGE [-- COMMAND [ARG...]]
    kpyctl create job NAME --from=cronjob/CRONJOB

With `--image`, the Job runs one container named NAME from IMAGE, with the
words after `--` as its command (the image's own command without them) and
`restartPolicy: Never`; everything else is left to the server's defaults,
as kubectl leaves it. With `--from`, the Job runs a CronJob's job template
once, now: it gets the template's labels, annotations and spec, the
annotation `cronjob.kubernetes.io/instantiate: manual` and the CronJob as
its controlling owner (so deleting the CronJob deletes it too), as kubectl
makes it. Exactly one of the two is given, and a command only with
`--image`; otherwise kubectl's error. Prints `job.batch/NAME created`;
`--dry-run=client -o yaml` prints the Job instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kpy.api import codec
from kpy.api.batch.v1 import CronJob
from kpy.cli import _client
from kpy.cli._create_object import create_object
from kpy.cli._manifests import UsageError

__all__ = [
    "INSTANTIATE_ANNOTATION",
    "add_parser",
    "check_sources",
    "job_from_cron_job",
    "job_from_image",
]

INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"


def add_parser(what: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `job` to `kpyctl create`'s subcommands."""
    p = what.add_parser(
        "job",
        help="create a job running an image, or from a cron job's template",
        usage="kpyctl create job NAME --image=IMAGE [-- COMMAND [ARG...]]\n"
        "       kpyctl create job NAME --from=cronjob/NAME",
    )
    p.add_argument("name")
    p.add_argument("--image", default="", help="the image of the job's one container")
    p.add_argument(
        "--from",
        dest="from_",
        default="",
        metavar="cronjob/NAME",
        help="run this cron job's job template",
    )
    p.add_argument("-o", "--output", choices=["yaml", "json", "name"], default=None)
    p.add_argument("--dry-run", choices=["none", "client", "server"], default="none")
    # `create -n NS job ...` sets these on the parent parser: without a
    # default here the subcommand does not overwrite them.
    p.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="the namespace")
    p.add_argument("--server", default=argparse.SUPPRESS, help="comma-separated API servers")
    p.set_defaults(run=_run, command_words=[])


def job_from_cron_job(name: str, cj: CronJob) -> dict[str, Any]:
    """The Job manifest kubectl makes from `cj` (see the module docstring)."""
    template = codec.encode_object(cj)["spec"].get("jobTemplate", {})
    metadata = dict(template.get("metadata", {}))
    annotations = {**metadata.get("annotations", {}), INSTANTIATE_ANNOTATION: "manual"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": metadata.get("labels", {}),
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": cj.metadata.name,
                    "uid": cj.metadata.uid,
                    "controller": True,
                }
            ],
        },
        "spec": template.get("spec", {}),
    }


def job_from_image(name: str, image: str, command: list[str]) -> dict[str, Any]:
    """The Job manifest kubectl's `create job NAME --image=IMAGE -- COMMAND`
    makes: one container named `name`, the command (if any), never restarted."""
    container: dict[str, Any] = {"name": name, "image": image}
    if command:
        container["command"] = list(command)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}},
    }


def check_sources(image: str, from_: str, command: list[str]) -> None:
    """kubectl's checks of the two forms; UsageError in its words."""
    if bool(image) == bool(from_):
        raise UsageError("either --image or --from must be specified")
    if command and from_:
        raise UsageError("cannot specify --from and command")


def _run(args: argparse.Namespace) -> int:
    try:
        check_sources(args.image, args.from_, args.command_words)
    except UsageError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    if args.image:
        return create_object(args, job_from_image(args.name, args.image, args.command_words))
    kind, _, source = args.from_.partition("/")
    found: list[CronJob] = []

    async def fetch(client: Any, a: argparse.Namespace, out: Any, err: Any) -> int:
        if kind.lower() not in ("cronjob", "cronjobs", "cj", "cronjob.batch") or not source:
            raise UsageError(f"from must be of the form cronjob/NAME (got {a.from_!r})")
        ns = _client.namespace_of(client, a)
        found.append(await client.get(CronJob, source, namespace=ns))
        return 0

    code = _client.run(args, fetch)
    if code != 0:
        return code
    return create_object(args, job_from_cron_job(args.name, found[0]))

"""`kpyctl create job NAME --from=cronjob/CRONJOB`: kubectl's create job,
running a CronJob's job template once, now.

The Job gets the template's labels, annotations and spec, the annotation
`cronjob.kubernetes.io/instantiate: manual` and the CronJob as its
controlling owner (so deleting the CronJob deletes it too), as kubectl
makes it. Prints `job.batch/NAME created`; `--dry-run=client -o yaml`
prints the Job instead.
"""

from __future__ import annotations

import argparse
from typing import Any

from kpy.api import codec
from kpy.api.batch.v1 import CronJob
from kpy.cli import _client
from kpy.cli._create_object import create_object
from kpy.cli._manifests import UsageError

__all__ = ["INSTANTIATE_ANNOTATION", "add_parser", "job_from_cron_job"]

INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"


def add_parser(what: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `job` to `kpyctl create`'s subcommands."""
    p = what.add_parser("job", help="create a job from a cron job's template")
    p.add_argument("name")
    p.add_argument(
        "--from", dest="from_", required=True, metavar="cronjob/NAME", help="the cron job"
    )
    p.add_argument("-o", "--output", choices=["yaml", "json", "name"], default=None)
    p.add_argument("--dry-run", choices=["none", "client", "server"], default="none")
    # `create -n NS job ...` sets these on the parent parser: without a
    # default here the subcommand does not overwrite them.
    p.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="the namespace")
    p.add_argument("--server", default=argparse.SUPPRESS, help="comma-separated API servers")
    p.set_defaults(run=_run)


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


def _run(args: argparse.Namespace) -> int:
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

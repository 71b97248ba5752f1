"""`kpyctl run`: create a Pod from flags, as kubectl run does.

    kpyctl run NAME --image=IMAGE [--port=P] [--env=K=V]... [--labels=K=V,...]
               [--restart=Always|OnFailure|Never] [--command] [-- ARG...]

The Pod is named NAME, labelled `run=NAME` (or with `--labels` instead),
and has one container named NAME. The words after `--` are the container's
args, or its command with `--command`. Prints `pod/NAME created`;
`--dry-run=client -o yaml` prints the Pod without creating it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from kpy.api import codec
from kpy.cli import _client
from kpy.cli._create_object import create_object
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    import argparse

__all__ = ["add_parser", "pod_manifest"]

RESTART_POLICIES = ("Always", "OnFailure", "Never")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run a particular image in a pod",
        usage="kpyctl run NAME --image=IMAGE [flags] [--command] [-- ARG...]",
    )
    p.add_argument("name")
    p.add_argument("--image", required=True, help="the container image")
    p.add_argument("--port", type=int, default=None, help="the port the container exposes")
    p.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="an environment variable"
    )
    p.add_argument("-l", "--labels", default="", metavar="K=V,...", help="labels for the pod")
    p.add_argument("--restart", choices=RESTART_POLICIES, default="Always")
    p.add_argument("--image-pull-policy", choices=["Always", "IfNotPresent", "Never"], default=None)
    p.add_argument(
        "--command",
        action="store_true",
        help="the words after -- are the command (default: its args)",
    )
    p.add_argument("--dry-run", choices=["none", "client", "server"], default="none")
    p.add_argument("-o", "--output", choices=["yaml", "json", "name"], default=None)
    _client.add_flags(p)
    p.set_defaults(run=_run, command_words=[])


def pod_manifest(
    name: str,
    image: str,
    *,
    port: int | None = None,
    env: list[str] | None = None,
    labels: str = "",
    restart: str = "Always",
    image_pull_policy: str | None = None,
    words: list[str] | None = None,
    command: bool = False,
) -> dict[str, Any]:
    """The Pod kubectl run makes of these flags; UsageError for a bad flag."""
    container: dict[str, Any] = {"name": name, "image": image}
    if words:
        container["command" if command else "args"] = list(words)
    elif command:
        raise UsageError(
            "--command needs the command after --: kpyctl run NAME ... --command -- CMD"
        )
    if port is not None:
        container["ports"] = [{"containerPort": port}]
    if env:
        pairs = []
        for word in env:
            key, eq, value = word.partition("=")
            if not eq or not key:
                raise UsageError(f"invalid env: {word} (expected KEY=VALUE)")
            pairs.append({"name": key, "value": value})
        container["env"] = pairs
    if image_pull_policy:
        container["imagePullPolicy"] = image_pull_policy
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": _labels(labels) if labels else {"run": name}},
        "spec": {"containers": [container], "restartPolicy": restart},
    }


def _labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for word in text.split(","):
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise UsageError(f"invalid label spec: {word} (expected KEY=VALUE[,KEY=VALUE...])")
        labels[key.strip()] = value.strip()
    return labels


def _run(args: argparse.Namespace) -> int:
    try:
        body = pod_manifest(
            args.name,
            args.image,
            port=args.port,
            env=args.env,
            labels=args.labels,
            restart=args.restart,
            image_pull_policy=args.image_pull_policy,
            words=args.command_words,
            command=args.command,
        )
        codec.decode_object(body)
    except UsageError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    return create_object(args, body)

"""`kpyctl auth whoami`: who the API server takes this client to be.

As `kubectl auth whoami`, it asks the server (a SelfSubjectReview) rather
than reading the config: the answer is what the server's authenticators
made of the client certificate or token, groups included
(`system:authenticated` for every authenticated user). The default output
is kubectl's table:

    ATTRIBUTE   VALUE
    Username    admin
    Groups      [system:masters system:authenticated]

`-o yaml` and `-o json` print the SelfSubjectReview object. A server
without authenticators answers `system:anonymous`.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from kpy.cli import _client

if TYPE_CHECKING:
    import argparse

    from kpy.client import Client

__all__ = ["add_parser", "run_whoami"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("auth", help="inspect authentication")
    verbs = p.add_subparsers(dest="auth_verb", metavar="SUBCOMMAND")
    whoami = verbs.add_parser("whoami", help="print who the API server takes you to be")
    whoami.add_argument("-o", "--output", choices=["yaml", "json"], default=None)
    _client.add_flags(whoami)
    whoami.set_defaults(run=run_whoami)


def run_whoami(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    return _client.run(args, _whoami, out or sys.stdout, err or sys.stderr)


async def _whoami(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    answer = await client.whoami()
    groups = list(answer.groups)
    if args.output is None:
        rows = [("Username", answer.username)]
        if answer.uid:
            rows.append(("UID", answer.uid))
        if groups:
            rows.append(("Groups", f"[{' '.join(groups)}]"))
        width = max(len(name) for name, _ in [("ATTRIBUTE", ""), *rows]) + 3
        out.write(f"{'ATTRIBUTE':<{width}}VALUE\n")
        for name, value in rows:
            out.write(f"{name:<{width}}{value}\n")
        return 0
    user: dict[str, Any] = {"username": answer.username}
    if answer.uid:
        user["uid"] = answer.uid
    if groups:
        user["groups"] = groups
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "SelfSubjectReview",
        "metadata": {},
        "status": {"userInfo": user},
    }
    if args.output == "json":
        out.write(json.dumps(review, indent=4) + "\n")
    else:
        out.write(yaml.safe_dump(review, sort_keys=False))
    return 0

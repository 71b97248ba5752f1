"""`kpyctl auth whoami`: who the API server takes this client to be;
`kpyctl auth can-i`: may it do this?

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

`kpyctl auth can-i VERB RESOURCE[/SUBRESOURCE][.GROUP] [NAME]` (or
`VERB TYPE/NAME`, or `VERB /path` for a non-resource URL) asks the server
(a SelfSubjectAccessReview) and prints `yes` (exit 0) or `no` (exit 1), as
kubectl does; the resource may be a plural, singular, short name or kind
the server serves, and is asked in `-n` (default: the config's namespace),
in no namespace with `-A` or for a cluster-scoped resource. `--as USER`
and `--as-group G` ask about another user: the server checks, as it does
kubectl's Impersonate-User and Impersonate-Group headers, that the caller
may `impersonate` that user and those groups. `--list` prints what RBAC
allows in the namespace (a SelfSubjectRulesReview), kubectl's table.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from kpy.cli import _client
from kpy.rpc.apiserver import v1 as api

if TYPE_CHECKING:
    import argparse

    from kpy.client import Client

__all__ = ["add_parser", "run_can_i", "run_whoami"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("auth", help="inspect authentication and authorization")
    verbs = p.add_subparsers(dest="auth_verb", metavar="SUBCOMMAND")
    whoami = verbs.add_parser("whoami", help="print who the API server takes you to be")
    whoami.add_argument("-o", "--output", choices=["yaml", "json"], default=None)
    _client.add_flags(whoami)
    whoami.set_defaults(run=run_whoami)
    can_i = verbs.add_parser("can-i", help="check whether an action is allowed (yes: exit 0)")
    can_i.add_argument("verb", nargs="?", help="get, list, watch, create, update, patch, delete...")
    can_i.add_argument(
        "resource", nargs="?", help="RESOURCE[/SUBRESOURCE][.GROUP], TYPE/NAME or /path"
    )
    can_i.add_argument("name", nargs="?", default="", help="the object's name")
    can_i.add_argument("--subresource", default="", help="a subresource (status, log, exec...)")
    can_i.add_argument("--as", dest="as_user", default="", help="ask for this user")
    can_i.add_argument(
        "--as-group", action="append", default=[], help="ask for this group (repeatable)"
    )
    can_i.add_argument("--list", action="store_true", help="list what you may do in the namespace")
    can_i.add_argument("-q", "--quiet", action="store_true", help="print nothing; exit code only")
    _client.add_flags(can_i, all_namespaces=True)
    can_i.set_defaults(run=run_can_i)


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


def run_can_i(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    return _client.run(args, _can_i, out or sys.stdout, err or sys.stderr)


async def _can_i(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    impersonate = api.Impersonation(user=args.as_user, groups=args.as_group)
    if args.list:
        namespace = "" if args.all_namespaces else _client.namespace_of(client, args)
        rules = await client.rules_review(
            api.RulesReviewRequest(namespace=namespace, impersonate=impersonate)
        )
        _print_rules(rules, out)
        if rules.incomplete:
            err.write(f"warning: the list may be incomplete: {rules.evaluation_error}\n")
        return 0
    if not args.verb or not args.resource:
        err.write(
            "error: you must specify two arguments: verb resource or verb resource/resourceName "
            "(or --list)\n"
        )
        return 1
    if args.resource.startswith("/"):
        request = api.AccessReviewRequest(
            verb=args.verb, non_resource_path=args.resource, impersonate=impersonate
        )
    else:
        request = await _resource_request(client, args, err)
        request.impersonate.CopyFrom(impersonate)
    answer = await client.access_review(request)
    if not args.quiet:
        out.write("yes\n" if answer.allowed else "no\n")
    return 0 if answer.allowed else 1


async def _resource_request(
    client: Client, args: argparse.Namespace, err: TextIO
) -> api.AccessReviewRequest:
    """The access review of `VERB RESOURCE [NAME]`, the resource resolved as
    kubectl does (plural, singular, short name or kind, `.group`)."""
    text, name = args.resource, args.name
    if "/" in text and not name:  # TYPE/NAME, unless TYPE/SUBRESOURCE
        head, _, tail = text.partition("/")
        text, name = (head, tail) if not args.subresource else (text, name)
    resource, _, subresource = text.partition("/")
    subresource = subresource or args.subresource
    wanted, _, group = resource.partition(".")
    found = _resolve(await client.resources(), wanted.lower(), group)
    namespaced = True
    if found is not None:
        resource, group, namespaced = found.resource, found.group, found.namespaced
    elif wanted != "*":
        err.write(f"Warning: the server doesn't have a resource type '{wanted}'\n")
        resource = wanted
    namespace = ""
    if namespaced and not args.all_namespaces:
        namespace = _client.namespace_of(client, args)
    return api.AccessReviewRequest(
        verb=args.verb,
        group=group,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )


def _resolve(resources: list[api.APIResource], wanted: str, group: str) -> api.APIResource | None:
    for r in resources:
        if group and r.group != group:
            continue
        names = {r.resource, r.singular_name, r.kind.lower(), *r.short_names}
        if wanted in names:
            return r
    return None


def _print_rules(rules: api.RulesReviewResponse, out: TextIO) -> None:
    """kubectl's `auth can-i --list` table."""
    rows = [("Resources", "Non-Resource URLs", "Resource Names", "Verbs")]
    for rule in rules.resource_rules:
        for group in rule.api_groups or [""]:
            for resource in rule.resources:
                qualified = f"{resource}.{group}" if group else resource
                rows.append(
                    (qualified, "[]", _brackets(rule.resource_names), _brackets(rule.verbs))
                )
    for nr in rules.non_resource_rules:
        rows.append(("", _brackets(nr.non_resource_urls), "[]", _brackets(nr.verbs)))
    widths = [max(len(row[i]) for row in rows) + 3 for i in range(3)]
    for row in rows:
        out.write("".join(f"{cell:<{w}}" for cell, w in zip(row[:3], widths, strict=True)))
        out.write(row[3] + "\n")


def _brackets(items: Any) -> str:
    return f"[{' '.join(items)}]"

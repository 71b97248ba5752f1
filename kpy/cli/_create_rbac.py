"""`kpyctl create role|clusterrole|rolebinding|clusterrolebinding|serviceaccount`:
kubectl's RBAC create commands.

    kpyctl create role NAME --verb=VERB,... --resource=RES[.GROUP][/SUB],... [--resource-name=N]
    kpyctl create clusterrole NAME (same flags) [--non-resource-url=URL]
                                  [--aggregation-rule=K=V,...]
    kpyctl create rolebinding NAME --role=R|--clusterrole=R [--user=U] [--group=G]
                                  [--serviceaccount=NS:NAME]
    kpyctl create clusterrolebinding NAME --clusterrole=R [--user ...]
    kpyctl create serviceaccount NAME

Flags repeat or take comma-separated lists, as kubectl's do. A resource is
resolved with kpy's scheme (`pods`, `po`, `deployments.apps`, `pods/log`)
to its plural and group; a role gets one rule per API group, each with the
verbs and the resourceNames given, as kubectl builds it. Prints
`role.rbac.authorization.k8s.io/NAME created`; errors are kubectl's.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from kpy.api.rbac import GROUP_NAME
from kpy.api.scheme import scheme
from kpy.cli._create_object import create_object
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["add_parsers", "binding", "role"]

_RBAC = f"{GROUP_NAME}/v1"
_VERBS = (
    "*",
    "get",
    "delete",
    "list",
    "create",
    "update",
    "patch",
    "watch",
    "proxy",
    "deletecollection",
    "use",
    "bind",
    "escalate",
    "impersonate",
)
_NON_RESOURCE_VERBS = ("*", "get", "post", "put", "delete", "patch", "head", "options")


def add_parsers(what: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the RBAC kinds and `serviceaccount` to `kpyctl create`."""
    for kind in ("role", "clusterrole"):
        p = what.add_parser(kind, help=f"create a {kind} with a single rule")
        p.add_argument("name")
        p.add_argument("--verb", action="append", default=[], help="verbs the rule allows")
        p.add_argument("--resource", action="append", default=[], help="resources it applies to")
        p.add_argument("--resource-name", action="append", default=[], help="limits it to names")
        if kind == "clusterrole":
            p.add_argument("--non-resource-url", action="append", default=[], help="URL paths")
            p.add_argument("--aggregation-rule", default="", metavar="K=V,...")
        _output_flags(p)
        p.set_defaults(run=lambda args: _create(args, role))
    for kind in ("rolebinding", "clusterrolebinding"):
        p = what.add_parser(kind, help=f"create a {kind} for a role")
        p.add_argument("name")
        if kind == "rolebinding":
            p.add_argument("--role", default="", help="the Role to grant")
        p.add_argument("--clusterrole", default="", help="the ClusterRole to grant")
        p.add_argument("--user", action="append", default=[], help="users to grant it to")
        p.add_argument("--group", action="append", default=[], help="groups to grant it to")
        p.add_argument("--serviceaccount", action="append", default=[], metavar="NAMESPACE:NAME")
        _output_flags(p)
        p.set_defaults(run=lambda args: _create(args, binding))
    sa = what.add_parser("serviceaccount", aliases=["sa"], help="create a service account")
    sa.add_argument("name")
    _output_flags(sa)
    sa.set_defaults(
        run=lambda args: create_object(
            args, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": args.name}}
        )
    )


def _create(args: argparse.Namespace, build: Callable[[argparse.Namespace], Any]) -> int:
    try:
        body = build(args)
    except UsageError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    return create_object(args, body)


def _output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", choices=["none", "client", "server"], default="none")
    p.add_argument("-o", "--output", choices=["yaml", "json", "name"], default=None)
    # `create -n NS role ...` sets these on the parent parser: without a
    # default here the subcommand does not overwrite them.
    p.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="the namespace")
    p.add_argument("--server", default=argparse.SUPPRESS, help="comma-separated API servers")


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def role(args: argparse.Namespace) -> dict[str, Any]:
    """The Role or ClusterRole manifest of `create role|clusterrole`."""
    kind = "ClusterRole" if args.create_what == "clusterrole" else "Role"
    verbs = _split(args.verb)
    resources = _split(args.resource)
    urls = _split(getattr(args, "non_resource_url", []))
    body: dict[str, Any] = {"apiVersion": _RBAC, "kind": kind, "metadata": {"name": args.name}}
    aggregation = getattr(args, "aggregation_rule", "")
    if aggregation:
        if verbs or resources or urls:
            raise UsageError(
                "exactly one of --verb, --resource, --non-resource-url or --aggregation-rule "
                "must be specified"
            )
        body["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": _labels(aggregation)}]}
        return body
    if not verbs:
        raise UsageError("at least one verb must be specified")
    if not resources and not urls:
        raise UsageError(
            "one of resource or nonResourceURL must be specified"
            if kind == "ClusterRole"
            else "at least one resource must be specified"
        )
    rules = _resource_rules(verbs, resources, _split(args.resource_name)) if resources else []
    if urls:
        for verb in verbs:
            if verb not in _NON_RESOURCE_VERBS:
                raise UsageError(f"invalid verb: '{verb}' for nonResourceURL")
        rules.append({"verbs": verbs, "nonResourceURLs": urls})
    body["rules"] = rules
    return body


def _resource_rules(verbs: list[str], resources: list[str], names: list[str]) -> list[Any]:
    for verb in verbs:
        if verb not in _VERBS:
            raise UsageError(f"invalid verb: '{verb}'")
    by_group: dict[str, list[str]] = {}
    for text in resources:
        group, plural = _resource(text)
        if plural not in by_group.setdefault(group, []):
            by_group[group].append(plural)
    rules = []
    for group, plurals in by_group.items():
        rule: dict[str, Any] = {"verbs": verbs, "apiGroups": [group], "resources": plurals}
        if names:
            rule["resourceNames"] = names
        rules.append(rule)
    return rules


def _resource(text: str) -> tuple[str, str]:
    """`pods`, `po`, `deployments.apps`, `pods/log` or `*` as (group,
    resource as a rule spells it)."""
    name, _, sub = text.partition("/")
    if name == "*":
        return "*", text
    try:
        info = scheme.resolve(name)
    except KeyError as e:
        raise UsageError(e.args[0]) from None
    return info.group, f"{info.plural}/{sub}" if sub else info.plural


def _labels(text: str) -> dict[str, str]:
    labels = {}
    for pair in _split([text]):
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise UsageError(f"unexpected aggregation rule {text!r}: want KEY=VALUE,...")
        labels[key] = value
    return labels


def binding(args: argparse.Namespace) -> dict[str, Any]:
    """The RoleBinding or ClusterRoleBinding manifest of `create rolebinding|clusterrolebinding`."""
    namespaced = args.create_what == "rolebinding"
    role_name = getattr(args, "role", "")
    if namespaced and bool(role_name) == bool(args.clusterrole):
        raise UsageError("exactly one of clusterrole or role must be specified")
    if not namespaced and not args.clusterrole:
        raise UsageError('required flag(s) "clusterrole" not set')
    ref_kind = "Role" if role_name else "ClusterRole"
    subjects: list[dict[str, str]] = [
        {"kind": "User", "apiGroup": GROUP_NAME, "name": user} for user in _split(args.user)
    ]
    subjects += [
        {"kind": "Group", "apiGroup": GROUP_NAME, "name": group} for group in _split(args.group)
    ]
    for sa in _split(args.serviceaccount):
        namespace, colon, name = sa.partition(":")
        if not colon or not namespace or not name:
            raise UsageError(f"serviceaccount must be <namespace>:<name>, not {sa!r}")
        subjects.append({"kind": "ServiceAccount", "namespace": namespace, "name": name})
    body: dict[str, Any] = {
        "apiVersion": _RBAC,
        "kind": "RoleBinding" if namespaced else "ClusterRoleBinding",
        "metadata": {"name": args.name},
        "roleRef": {
            "apiGroup": GROUP_NAME,
            "kind": ref_kind,
            "name": role_name or args.clusterrole,
        },
    }
    if subjects:
        body["subjects"] = subjects
    return body

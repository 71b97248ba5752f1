"""`kpyctl api-resources`: every kind the cluster serves, as kubectl lists
them: kpy's built-in kinds and the custom kinds of the CRDs the API server
serves (asked through discovery, the `Resources` rpc).

- Columns NAME, SHORTNAMES, APIVERSION, NAMESPACED, KIND; `-o wide` adds
  VERBS and CATEGORIES; `-o name` prints `plural[.group]` one a line.
- Rows are ordered as kubectl orders them: by API group (the core group
  first), then by name.
- `--namespaced=true|false`, `--api-group=G` (`""` for core) and
  `--verbs=list,get` filter; `--sort-by=name|kind` orders;
  `--no-headers` drops the header line.
- The built-in kinds are the scheme kpy's API server is built with: when
  no API server answers, they are listed anyway, after a warning on stderr
  that custom kinds could not be asked for.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from kpy.api import errors
from kpy.api.scheme import scheme
from kpy.api.unstructured import is_custom
from kpy.cli import _client, _printers

if TYPE_CHECKING:
    import argparse

    from kpy.api.scheme import ResourceInfo
    from kpy.client import Client

__all__ = ["add_parser", "resource_rows", "run", "select"]

VERB_LIST = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
VERBS = "[" + " ".join(VERB_LIST) + "]"
CATEGORY_ALL = frozenset(
    {
        "pods",
        "replicationcontrollers",
        "services",
        "daemonsets",
        "deployments",
        "replicasets",
        "statefulsets",
        "horizontalpodautoscalers",
        "cronjobs",
        "jobs",
    }
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("api-resources", help="print the kinds the cluster serves")
    p.add_argument("-o", "--output", choices=["wide", "name"], default=None)
    p.add_argument(
        "--namespaced",
        choices=["true", "false"],
        default=None,
        help="only namespaced (true) or cluster-scoped (false) kinds",
    )
    p.add_argument("--api-group", default=None, help='only this API group ("" for core)')
    p.add_argument("--verbs", default="", help="only kinds that support these verbs, e.g. list,get")
    p.add_argument("--sort-by", choices=["name", "kind"], default=None, help="order by a column")
    p.add_argument("--no-headers", action="store_true", help="no header line")
    _client.add_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    return _client.run(args, _api_resources, out or sys.stdout, err or sys.stderr)


async def _api_resources(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        _client.register_served(await client.resources())
    except errors.Unavailable:
        where = ", ".join(client.config.servers)
        err.write(
            f"warning: cannot reach the API server at {where}: listing kpy's built-in kinds "
            "only; custom resources are listed when an API server answers\n"
        )
    return print_resources(args, out)


def print_resources(args: argparse.Namespace, out: TextIO) -> int:
    """Prints the kinds of the scheme the flags select."""
    infos = select(
        scheme.all(),
        namespaced=args.namespaced,
        api_group=args.api_group,
        verbs=[v for v in args.verbs.split(",") if v],
        sort_by=args.sort_by,
    )
    if args.output == "name":
        out.writelines(f"{info.group_resource}\n" for info in infos)
        return 0
    rows = resource_rows(infos, wide=args.output == "wide", headers=not args.no_headers)
    out.write(_printers.tabulate(rows))
    return 0


def select(
    infos: list[ResourceInfo],
    *,
    namespaced: str | None = None,
    api_group: str | None = None,
    verbs: list[str] | None = None,
    sort_by: str | None = None,
) -> list[ResourceInfo]:
    """The kinds the flags keep, in kubectl's order: by group (core first)
    then by name, or by `sort_by` (`name` or `kind`)."""
    if verbs and not set(verbs) <= set(VERB_LIST):
        return []  # every kind kpy serves supports the same verbs
    kept = [
        i
        for i in infos
        if (namespaced is None or i.namespaced == (namespaced == "true"))
        and (api_group is None or i.group == api_group)
    ]
    if sort_by == "name":
        return sorted(kept, key=lambda i: i.plural)
    if sort_by == "kind":
        return sorted(kept, key=lambda i: i.kind)
    return sorted(kept, key=lambda i: (i.group, i.plural))


def resource_rows(
    infos: list[ResourceInfo], *, wide: bool = False, headers: bool = True
) -> list[list[str]]:
    """The table `api-resources` prints for these kinds, in their order."""
    rows = []
    if headers:
        rows.append(
            ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
            + (["VERBS", "CATEGORIES"] if wide else [])
        )
    for info in infos:
        row = [
            info.plural,
            ",".join(info.short_names),
            info.api_version,
            "true" if info.namespaced else "false",
            info.kind,
        ]
        if wide:
            categories = (
                ",".join(info.categories)
                if is_custom(info.message)
                else ("all" if info.plural in CATEGORY_ALL else "")
            )
            row += [VERBS, categories]
        rows.append(row)
    return rows

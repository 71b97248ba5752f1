"""`kpyctl api-resources`: every kind kpy serves, from kpy's scheme, as
kubectl lists them.

- Columns NAME, SHORTNAMES, APIVERSION, NAMESPACED, KIND; `-o wide` adds
  VERBS and CATEGORIES; `-o name` prints `plural[.group]` one a line.
- Rows are ordered as kubectl orders them: by API group (the core group
  first), then by name.
- `--namespaced=true|false`, `--api-group=G` (`""` for core) and
  `--verbs=list,get` filter; `--sort-by=name|kind` orders;
  `--no-headers` drops the header line.
- The scheme is the one kpy's API server is built with, so this needs no
  server and answers the same offline.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from kpy.api.scheme import scheme
from kpy.cli import _client, _printers

if TYPE_CHECKING:
    import argparse

    from kpy.api.scheme import ResourceInfo

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
    _client.add_flags(p)  # accepted as on every verb; the answer needs no server
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
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
            row += [VERBS, "all" if info.plural in CATEGORY_ALL else ""]
        rows.append(row)
    return rows

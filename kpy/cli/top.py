"""`kpyctl top pods|nodes`: kubectl top's tables, from the usage figures the
node agents report through the API server (`Client.stats`).

    kpyctl top pods [NAME] [-n NS | -A] [--containers] [-l SELECTOR] [--sort-by cpu|memory]
    kpyctl top nodes [NAME] [-l SELECTOR] [--sort-by cpu|memory]

Contracts, as kubectl keeps them:
- Columns: `NAME  CPU(cores)  MEMORY(bytes)` for pods (NAMESPACE first with
  -A; `POD  NAME ...` per container with --containers), and `NAME
  CPU(cores)  CPU%  MEMORY(bytes)  MEMORY%` for nodes. CPU is whole
  millicores rounded up (`3m`), memory whole MiB rounded down (`12Mi`),
  percentages of the node's allocatable truncated (`12%`).
- A node whose agent did not answer is named on stderr (`Warning: no
  metrics from node "n1": why`): by `top nodes`, which still lists it with
  `<unknown>` figures, and by `top pods` when it runs pods of the namespace.
- Nothing to show prints `No resources found in NS namespace.` (or `No
  resources found`) on stderr, exit 0; pods that exist but have no figures
  yet are `error: metrics not available yet`, exit 1.
- The formatting functions are pure, for tables of tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, TextIO, TypeVar

from kpy.api.core.v1 import Node, Pod
from kpy.cli import _client, _printers

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable

    from kpy.client import Client
    from kpy.rpc.apiserver.v1 import NodeUsage, PodUsage, StatsResponse

__all__ = [
    "Usage",
    "add_parser",
    "cpu_text",
    "memory_text",
    "node_rows",
    "percent_text",
    "pod_rows",
    "unreachable_nodes",
    "usages",
]

UNKNOWN = "<unknown>"
_MI = 1024 * 1024
_NANO_PER_MILLI = 1_000_000
SortBy = Literal["", "cpu", "memory"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("top", help="show the CPU and memory use of pods or nodes")
    kinds = p.add_subparsers(dest="top_what", metavar="pods|nodes", required=True)
    pods = kinds.add_parser("pods", aliases=["pod", "po"], help="usage of pods")
    pods.add_argument("name", nargs="?", default="", metavar="NAME")
    pods.add_argument("--containers", action="store_true", help="one line per container")
    nodes = kinds.add_parser("nodes", aliases=["node", "no"], help="usage of nodes")
    nodes.add_argument("name", nargs="?", default="", metavar="NAME")
    for q, verb in ((pods, _top_pods), (nodes, _top_nodes)):
        q.add_argument("-l", "--selector", default="", help="only objects with these labels")
        q.add_argument("--sort-by", choices=["cpu", "memory"], default="", help="largest first")
        q.add_argument("--no-headers", action="store_true", help="leave out the header line")
        _client.add_flags(q, all_namespaces=q is pods)
        q.set_defaults(run=lambda args, verb=verb: _client.run(args, verb))


# -- formatting -------------------------------------------------------------------------------


def cpu_text(nanocores: int) -> str:
    """CPU as kubectl top shows it: millicores, rounded up (`1n` is `1m`)."""
    return f"{_millis(nanocores)}m"


def _millis(nanocores: int) -> int:
    return -(-nanocores // _NANO_PER_MILLI)  # rounded up, as Quantity.MilliValue


def memory_text(memory_bytes: int) -> str:
    """Memory as kubectl top shows it: whole MiB, rounded down."""
    return f"{memory_bytes // _MI}Mi"


def percent_text(used: int, allocatable: int) -> str:
    """`used` as a truncated percentage of `allocatable` (same units);
    `<unknown>` when the node did not say what it can allocate."""
    if allocatable <= 0:
        return UNKNOWN
    return f"{used * 100 // allocatable}%"


@dataclass(frozen=True, slots=True)
class Usage:
    """One line's figures: a pod's (its containers summed) or a container's."""

    namespace: str
    pod: str
    container: str
    cpu_nanocores: int
    memory_bytes: int


def usages(pods: Iterable[PodUsage], *, containers: bool) -> list[Usage]:
    """Lines per pod (or per container), sorted by namespace and pod name."""
    lines: list[Usage] = []
    for pod in sorted(pods, key=lambda p: (p.namespace, p.name)):
        if containers:
            lines.extend(
                Usage(pod.namespace, pod.name, c.name, c.cpu_nanocores, c.memory_bytes)
                for c in pod.containers
            )
        else:
            cpu = sum(c.cpu_nanocores for c in pod.containers)
            memory = sum(c.memory_bytes for c in pod.containers)
            lines.append(Usage(pod.namespace, pod.name, "", cpu, memory))
    return lines


def pod_rows(
    lines: list[Usage], *, containers: bool, namespace_column: bool, sort_by: SortBy = ""
) -> list[list[str]]:
    """The header and one row per line, as kubectl top pod prints them."""
    header = ["POD", "NAME"] if containers else ["NAME"]
    rows = [(["NAMESPACE"] if namespace_column else []) + [*header, "CPU(cores)", "MEMORY(bytes)"]]
    for u in _sorted(lines, sort_by):
        names = [u.pod, u.container] if containers else [u.pod]
        ns = [u.namespace] if namespace_column else []
        rows.append([*ns, *names, cpu_text(u.cpu_nanocores), memory_text(u.memory_bytes)])
    return rows


def node_rows(
    nodes: Iterable[NodeUsage], missing: Iterable[str] = (), *, sort_by: SortBy = ""
) -> list[list[str]]:
    """The header, a row per node with figures, then `<unknown>` rows for
    the `missing` nodes (whose agents did not answer), as kubectl top node."""
    rows = [["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]]
    for n in _sorted(sorted(nodes, key=lambda n: n.name), sort_by):
        rows.append(
            [
                n.name,
                cpu_text(n.cpu_nanocores),
                percent_text(_millis(n.cpu_nanocores), n.cpu_allocatable_millis),
                memory_text(n.memory_bytes),
                percent_text(n.memory_bytes, n.memory_allocatable_bytes),
            ]
        )
    rows.extend([name, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN] for name in sorted(missing))
    return rows


def unreachable_nodes(stats: StatsResponse) -> dict[str, str]:
    """Node name → why its agent did not answer (from `node: reason`)."""
    out = {}
    for entry in stats.unreachable:
        name, _, reason = entry.partition(": ")
        out[name] = reason or "no reason given"
    return out


class _Figures(Protocol):
    @property
    def cpu_nanocores(self) -> int: ...

    @property
    def memory_bytes(self) -> int: ...


F = TypeVar("F", bound=_Figures)


def _sorted(lines: list[F], sort_by: SortBy) -> list[F]:
    """Largest first by the figure asked for; the given order otherwise (and
    among equals)."""
    if sort_by == "cpu":
        return sorted(lines, key=lambda u: -u.cpu_nanocores)
    if sort_by == "memory":
        return sorted(lines, key=lambda u: -u.memory_bytes)
    return lines


# -- the verbs --------------------------------------------------------------------------------


def _warn_unreachable(missing: dict[str, str], err: TextIO) -> None:
    for name, reason in sorted(missing.items()):
        err.write(f'Warning: no metrics from node "{name}": {reason}\n')


def _print(rows: list[list[str]], args: argparse.Namespace, out: TextIO) -> None:
    out.write(_printers.tabulate(rows[1:] if args.no_headers else rows))


async def _top_pods(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    all_ns = bool(args.all_namespaces) and not args.name
    ns = "" if all_ns else _client.namespace_of(client, args)
    stats = await client.stats(namespace=ns)
    _warn_unreachable(await _hosting(client, ns, unreachable_nodes(stats)), err)
    pods = list(stats.pods)
    if args.selector:
        listed = await client.list(Pod, namespace=ns or None, label_selector=args.selector)
        chosen = {(p.metadata.namespace, p.metadata.name) for p in listed.items}
        pods = [p for p in pods if (p.namespace, p.name) in chosen]
    if args.name:
        pods = [p for p in pods if p.name == args.name]
        if not pods:
            await client.get(Pod, args.name, namespace=ns)  # NotFound when it does not exist
            err.write(f"error: metrics not available for pod {ns}/{args.name}\n")
            return 1
    if not pods:
        return await _no_pod_figures(client, ns, args.selector, err)
    lines = usages(pods, containers=args.containers)
    _print(
        pod_rows(lines, containers=args.containers, namespace_column=all_ns, sort_by=args.sort_by),
        args,
        out,
    )
    return 0


async def _hosting(client: Client, ns: str, missing: dict[str, str]) -> dict[str, str]:
    """Those of the `missing` nodes that run pods of `ns` ("": any): only
    their silence leaves figures out of a pod table."""
    if not missing:
        return missing
    pods = (await client.list(Pod, namespace=ns or None)).items
    hosts = {p.spec.node_name for p in pods}
    return {name: why for name, why in missing.items() if name in hosts}


async def _no_pod_figures(client: Client, ns: str, selector: str, err: TextIO) -> int:
    """kubectl's answer when no pod has figures: an error if some pod that
    should have them exists (its agent has not reported yet), else none found."""
    live = await client.list(
        Pod,
        namespace=ns or None,
        label_selector=selector,
        field_selector="status.phase!=Succeeded,status.phase!=Failed",
        limit=1,
    )
    if live.items:
        err.write("error: metrics not available yet\n")
        return 1
    err.write(f"No resources found in {ns} namespace.\n" if ns else "No resources found\n")
    return 0


async def _top_nodes(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    stats = await client.stats(node=args.name, nodes=True)
    missing = unreachable_nodes(stats)
    nodes = list(stats.nodes)
    if args.selector:
        listed = await client.list(Node, label_selector=args.selector)
        chosen = {n.metadata.name for n in listed.items}
        nodes = [n for n in nodes if n.name in chosen]
        missing = {k: v for k, v in missing.items() if k in chosen}
    _warn_unreachable(missing, err)
    if not nodes and not missing:
        err.write("No resources found\n")
        return 0
    _print(node_rows(nodes, missing, sort_by=args.sort_by), args, out)
    return 0

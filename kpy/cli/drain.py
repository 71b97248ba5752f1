"""`kpyctl drain NODE...`: kubectl drain, with deletes where kubectl evicts.

    kpyctl drain NODE... [--ignore-daemonsets] [--delete-emptydir-data] [--force]
                         [--grace-period N] [--timeout D] [--pod-selector SELECTOR]

What it does, in kubectl's order and words:
1. Cordons every node (`node/N cordoned`, or `node/N already cordoned`),
   as `kpyctl cordon` does (_cordon.py).
2. Per node, judges each of its pods (`judge`, pure): mirror pods are left
   alone (the API refuses to delete them; only their node's agent can);
   DaemonSet pods are refused unless --ignore-daemonsets, and then skipped
   (their controller would put them straight back); pods with emptyDir
   volumes are refused unless --delete-emptydir-data; pods no controller
   owns are refused unless --force. Finished pods (Succeeded, Failed) may
   always go. One refusal stops the drain before anything is deleted:
   `error: unable to drain node "N" due to error: cannot delete Pods that
   declare no controller (use --force to override): ns/p, continuing
   command...`, the nodes still pending, the refusals again; exit 1.
   What is skipped or deleted despite a concern is listed on stderr as
   `Warning: ignoring DaemonSet-managed Pods: ns/a; ...`.
3. Evicts every pod at once through the eviction API (pods/NAME/eviction,
   with --grace-period, -1: the pod's own), printing `evicting pod ns/p` at
   each attempt. An eviction that a PodDisruptionBudget refuses (429) is
   tried again every 5 s, with kubectl's line on stderr: `error when evicting
   pods/"p" -n "ns" (will retry after 5s): Cannot evict pod as it would
   violate the pod's disruption budget.`; so a budget makes the drain go one
   pod at a time as their replacements become ready elsewhere. Any other
   refusal fails that pod. --disable-eviction deletes the pods instead,
   bypassing every budget.
4. Waits until each evicted pod is gone (or replaced by a new one of the
   same name) printing `pod/p evicted` as each goes, a line on stderr every
   so often while some remain, and gives up after --timeout (0: a day) with
   kubectl's `drain did not complete within D` (`global timeout reached`
   while an eviction is still refused). Then `node/N drained`.
"""

from __future__ import annotations

import contextlib
import enum
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

import anyio

from kpy.api import errors
from kpy.api.apps.v1 import DaemonSet
from kpy.api.core.v1 import Pod
from kpy.cli import _client
from kpy.cli._cordon import set_unschedulable
from kpy.cli._manifests import UsageError
from kpy.controllers.ownership import get_controller_of

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from kpy.client import Client

__all__ = [
    "Plan",
    "Rules",
    "Verdict",
    "add_parser",
    "judge",
    "parse_duration",
    "plan",
    "wait_for_deletion",
]

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
UNBOUNDED_TIMEOUT = 24 * 3600.0  # what --timeout=0 ("forever") waits at most, in seconds
POLL_INTERVAL = 1.0  # seconds between looks at the pods still terminating
EVICTION_RETRY = 5.0  # seconds between evictions a disruption budget refuses, as kubectl
PROGRESS_INTERVAL = 10.0  # seconds between "still waiting" lines

# kubectl's words (k8s.io/kubectl/pkg/drain): refusals read "cannot delete <x>: pods".
DAEMONSET_FATAL = "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
DAEMONSET_WARNING = "ignoring DaemonSet-managed Pods"
ORPHAN_DAEMONSET_FATAL = "Pods of a DaemonSet that no longer exists (use --force to override)"
ORPHAN_DAEMONSET_WARNING = "deleting Pods of a DaemonSet that no longer exists"
MIRROR_WARNING = "ignoring mirror Pods"
LOCAL_STORAGE_FATAL = "Pods with local storage (use --delete-emptydir-data to override)"
LOCAL_STORAGE_WARNING = "deleting Pods with local storage"
UNMANAGED_FATAL = "Pods that declare no controller (use --force to override)"
UNMANAGED_WARNING = "deleting Pods that declare no controller"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("drain", help="cordon nodes and remove their pods for maintenance")
    p.add_argument("nodes", nargs="+", metavar="NODE")
    p.add_argument("--force", action="store_true", help="also delete pods no controller owns")
    p.add_argument(
        "--ignore-daemonsets", action="store_true", help="skip DaemonSet pods instead of refusing"
    )
    p.add_argument(
        "--delete-emptydir-data", action="store_true", help="also delete pods with emptyDir data"
    )
    p.add_argument(
        "--grace-period",
        type=int,
        default=-1,
        metavar="SECONDS",
        help="termination grace per pod (-1: the pod's own)",
    )
    p.add_argument("--timeout", default="0s", help="give up after this long, e.g. 5m (0: a day)")
    p.add_argument(
        "--disable-eviction",
        action="store_true",
        help="delete pods instead of evicting them, bypassing PodDisruptionBudgets",
    )
    p.add_argument("--pod-selector", default="", help="only drain the pods with these labels")
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _drain))


# -- durations --------------------------------------------------------------------------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (`90s`, `5m`, `1h30m`, `0`), as kubectl's
    flags take them; UsageError naming the flag's format otherwise."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _PART.match(text, pos)
        if m is None:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise UsageError(
            f'invalid duration "{text}" for --timeout: use a number with a unit, e.g. 90s, '
            "5m or 1h30m (0 for no limit)"
        )
    return total


# -- which pods go ----------------------------------------------------------------------------


class Action(enum.Enum):
    DELETE = "delete"
    SKIP = "skip"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class Rules:
    """The drain flags that decide which pods may go."""

    force: bool = False
    ignore_daemonsets: bool = False
    delete_emptydir_data: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """What happens to one pod, and kubectl's words for why (a warning when
    it is deleted or skipped, the refusal when refused; "" for no remark)."""

    action: Action
    message: str = ""


_DELETE = Verdict(Action.DELETE)


def judge(pod: Pod, rules: Rules, *, daemonset_exists: bool = True) -> Verdict:
    """The verdict on `pod` under `rules`. As kubectl's filters, the checks
    run in order (DaemonSet, mirror, local storage, controller); the first
    that keeps the pod decides, otherwise the last remark stands.
    `daemonset_exists`: whether the DaemonSet controlling the pod is there."""
    verdict = _DELETE
    for check in (_daemonset, _mirror, _local_storage, _unmanaged):
        found = check(pod, rules, daemonset_exists)
        if found.action is not Action.DELETE:
            return found
        verdict = found if found.message else verdict
    return verdict


def _finished(pod: Pod) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


def _daemonset(pod: Pod, rules: Rules, exists: bool) -> Verdict:
    ref = get_controller_of(pod)
    if ref is None or ref.kind != "DaemonSet" or _finished(pod):
        return _DELETE
    if not exists:
        if rules.force:
            return Verdict(Action.DELETE, ORPHAN_DAEMONSET_WARNING)
        return Verdict(Action.REFUSE, ORPHAN_DAEMONSET_FATAL)
    if not rules.ignore_daemonsets:
        return Verdict(Action.REFUSE, DAEMONSET_FATAL)
    return Verdict(Action.SKIP, DAEMONSET_WARNING)


def _mirror(pod: Pod, rules: Rules, exists: bool) -> Verdict:
    if MIRROR_ANNOTATION in pod.metadata.annotations:
        return Verdict(Action.SKIP, MIRROR_WARNING)
    return _DELETE


def _local_storage(pod: Pod, rules: Rules, exists: bool) -> Verdict:
    if _finished(pod) or not any(v.HasField("empty_dir") for v in pod.spec.volumes):
        return _DELETE
    if not rules.delete_emptydir_data:
        return Verdict(Action.REFUSE, LOCAL_STORAGE_FATAL)
    return Verdict(Action.DELETE, LOCAL_STORAGE_WARNING)


def _unmanaged(pod: Pod, rules: Rules, exists: bool) -> Verdict:
    if _finished(pod) or get_controller_of(pod) is not None:
        return _DELETE
    if not rules.force:
        return Verdict(Action.REFUSE, UNMANAGED_FATAL)
    return Verdict(Action.DELETE, UNMANAGED_WARNING)


@dataclass
class Plan:
    """The pods of a node to delete, and kubectl's lines about the rest:
    `warnings` (one `message: ns/a, ns/b` per message) and `refusals`
    (`cannot delete message: ns/a, ...`); nothing may go while any refusal
    stands."""

    delete: list[Pod] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


def plan(pods: list[Pod], rules: Rules, missing_daemonsets: set[tuple[str, str]]) -> Plan:
    """Judges every pod; `missing_daemonsets` holds (namespace, name) of the
    DaemonSets that control some pod but no longer exist. Messages keep the
    order of the first pod that raised them."""
    result = Plan()
    warned: dict[str, list[str]] = {}
    refused: dict[str, list[str]] = {}
    for pod in pods:
        ref = get_controller_of(pod)
        exists = ref is None or (pod.metadata.namespace, ref.name) not in missing_daemonsets
        verdict = judge(pod, rules, daemonset_exists=exists)
        if verdict.action is Action.DELETE:
            result.delete.append(pod)
        if verdict.message:
            remarks = refused if verdict.action is Action.REFUSE else warned
            remarks.setdefault(verdict.message, []).append(_key(pod))
    result.warnings = [f"{m}: {', '.join(keys)}" for m, keys in warned.items()]
    result.refusals = [f"cannot delete {m}: {', '.join(keys)}" for m, keys in refused.items()]
    return result


def _key(pod: Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


# -- the verb ---------------------------------------------------------------------------------


class DrainError(Exception):
    """A node could not be drained; `lines` repeat the details at the end."""

    def __init__(self, summary: str, lines: list[str]) -> None:
        super().__init__(summary)
        self.summary = summary
        self.lines = lines


@dataclass(frozen=True, slots=True)
class _Options:
    rules: Rules
    pod_selector: str
    grace: int | None  # None: each pod's own
    timeout: float
    evict: bool = True  # False: --disable-eviction
    retry_interval: float = EVICTION_RETRY


async def _drain(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    options = _Options(
        Rules(args.force, args.ignore_daemonsets, args.delete_emptydir_data),
        args.pod_selector,
        None if args.grace_period < 0 else args.grace_period,
        parse_duration(args.timeout) or UNBOUNDED_TIMEOUT,
        evict=not args.disable_eviction,
    )
    for name in args.nodes:
        await set_unschedulable(client, name, True, out)
    for i, name in enumerate(args.nodes):
        try:
            await _drain_node(client, name, options, out, err)
        except DrainError as e:
            err.write(
                f'error: unable to drain node "{name}" due to error: {e.summary}, '
                "continuing command...\n"
                "There are pending nodes to be drained:\n"
            )
            err.write("".join(f" {pending}\n" for pending in args.nodes[i:]))
            err.write("".join(f"{line}\n" for line in e.lines))
            return 1
        out.write(f"node/{name} drained\n")
        out.flush()
    return 0


async def _drain_node(
    client: Client, name: str, options: _Options, out: TextIO, err: TextIO
) -> None:
    listed = await client.list(
        Pod, label_selector=options.pod_selector, field_selector=f"spec.nodeName={name}"
    )
    pods = listed.items
    decided = plan(pods, options.rules, await _missing_daemonsets(client, pods))
    if decided.refusals:
        summary = decided.refusals[0]
        if len(decided.refusals) > 1:
            summary = f"[{', '.join(decided.refusals)}]"
        raise DrainError(summary, decided.refusals)
    if decided.warnings:
        err.write(f"Warning: {'; '.join(decided.warnings)}\n")
    if options.evict:
        await _evict_all(client, decided.delete, options, out, err)
        return
    for pod in decided.delete:
        out.write(f"evicting pod {_key(pod)}\n")
        out.flush()
        await _delete(client, pod, options.grace)
    await _wait(client, decided.delete, options.timeout, out, err)


async def _evict_all(
    client: Client, pods: list[Pod], options: _Options, out: TextIO, err: TextIO
) -> None:
    """Evicts every pod concurrently, each then waited for, as kubectl's
    evictPods; DrainError naming every pod that failed, after all are done."""
    deadline = anyio.current_time() + options.timeout
    failures: list[DrainError] = []
    async with anyio.create_task_group() as tg:
        for pod in pods:
            tg.start_soon(_evict_one, client, pod, options, deadline, failures, out, err)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        summary = f"[{', '.join(f.summary for f in failures)}]"
        raise DrainError(summary, [line for f in failures for line in f.lines])


async def _evict_one(
    client: Client,
    pod: Pod,
    options: _Options,
    deadline: float,
    failures: list[DrainError],
    out: TextIO,
    err: TextIO,
) -> None:
    """Evicts `pod`, again every `retry_interval` while a budget refuses, then
    waits for it to go; a failure is appended to `failures`, in kubectl's words."""
    name, ns = pod.metadata.name, pod.metadata.namespace
    while True:
        out.write(f"evicting pod {_key(pod)}\n")
        out.flush()
        try:
            await client.evict(name, namespace=ns, grace_period_seconds=options.grace)
            break
        except errors.NotFound:
            return  # gone already
        except errors.EvictionRefused as e:
            if anyio.current_time() + options.retry_interval > deadline:
                summary = (
                    f'error when evicting pods/"{name}" -n "{ns}": global timeout reached: '
                    f"{_duration_text(options.timeout)}"
                )
                failures.append(
                    DrainError(
                        summary,
                        [f"{summary}: {e} (see the budget: kpyctl get pdb; or raise --timeout)"],
                    )
                )
                return
            err.write(
                f'error when evicting pods/"{name}" -n "{ns}" (will retry after '
                f"{_duration_text(options.retry_interval)}): {e}\n"
            )
            err.flush()
            await anyio.sleep(options.retry_interval)
        except errors.StatusError as e:
            message = f'error when evicting pods/"{name}" -n "{ns}": {e}'
            failures.append(DrainError(message, [message]))
            return
    try:
        left = max(0.0, deadline - anyio.current_time())
        await _wait(client, [pod], left, out, err, reported=options.timeout)
    except DrainError as e:
        failures.append(e)


async def _delete(client: Client, pod: Pod, grace: int | None) -> None:
    with contextlib.suppress(errors.NotFound):  # gone already: the wait reports it
        await client.delete(
            Pod, pod.metadata.name, namespace=pod.metadata.namespace, grace_period_seconds=grace
        )


async def _wait(
    client: Client,
    pods: list[Pod],
    timeout: float,  # noqa: ASYNC109 (--timeout bounds the whole wait, as kubectl's)
    out: TextIO,
    err: TextIO,
    *,
    reported: float | None = None,
) -> None:
    """Waits for `pods` to go, reporting each; DrainError after `timeout`
    (named as `reported`, the whole --timeout, when the wait had only its rest)."""

    def gone(pod: Pod) -> None:
        out.write(f"pod/{pod.metadata.name} evicted\n")
        out.flush()

    def waiting(left: list[Pod], waited: float) -> None:
        names = ", ".join(_key(p) for p in left)
        err.write(f"waiting for {len(left)} pod(s) to terminate ({waited:.0f}s so far): {names}\n")
        err.flush()

    left = await wait_for_deletion(client, pods, timeout, on_gone=gone, on_wait=waiting)
    if left:
        names = ", ".join(_key(p) for p in left)
        limit = timeout if reported is None else reported
        summary = f"drain did not complete within {_duration_text(limit)}"
        raise DrainError(
            summary,
            [
                f"{summary}; still terminating: {names} (see why with kpyctl describe pod, "
                "or raise --timeout)"
            ],
        )


async def _missing_daemonsets(client: Client, pods: list[Pod]) -> set[tuple[str, str]]:
    wanted = set()
    for pod in pods:
        ref = get_controller_of(pod)
        if ref is not None and ref.kind == "DaemonSet":
            wanted.add((pod.metadata.namespace, ref.name))
    missing = set()
    for ns, ds in sorted(wanted):
        try:
            await client.get(DaemonSet, ds, namespace=ns)
        except errors.NotFound:
            missing.add((ns, ds))
    return missing


async def wait_for_deletion(
    client: Client,
    pods: list[Pod],
    timeout: float,  # noqa: ASYNC109 (the caller's whole budget, reported on failure)
    *,
    on_gone: Callable[[Pod], None],
    on_wait: Callable[[list[Pod], float], None],
    interval: float = POLL_INTERVAL,
    progress_every: float = PROGRESS_INTERVAL,
) -> list[Pod]:
    """Polls until every pod is gone (NotFound, or a new pod under its name)
    calling `on_gone` for each, and `on_wait(left, seconds)` every
    `progress_every` seconds; returns the pods still there after `timeout`.
    The deadline is checked between polls, never by cancelling one: a
    cancelled gRPC call raises a CancelledError that anyio's cancel scopes
    do not recognise as theirs, so it would escape them. A poll is bounded
    by the client's own call timeout."""
    left = list(pods)
    started = anyio.current_time()
    deadline = started + timeout
    next_progress = started + progress_every
    while True:
        still = []
        for pod in left:
            if await _gone(client, pod):
                on_gone(pod)
            else:
                still.append(pod)
        left = still
        now = anyio.current_time()
        if not left or now >= deadline:
            return left
        if now >= next_progress:
            on_wait(left, now - started)
            next_progress = now + progress_every
        await anyio.sleep(min(interval, deadline - now))


async def _gone(client: Client, pod: Pod) -> bool:
    try:
        live = await client.get(Pod, pod.metadata.name, namespace=pod.metadata.namespace)
    except errors.NotFound:
        return True
    return live.metadata.uid != pod.metadata.uid


def _duration_text(seconds: float) -> str:
    """Seconds as Go prints a duration (`30s`, `5m0s`, `1h0m0s`)."""
    if seconds < 60:
        return f"{seconds:g}s"
    whole = math.floor(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s"

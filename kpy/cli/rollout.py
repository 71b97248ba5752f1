"""`kpyctl rollout status|history|undo|pause|resume|restart`, with
kubectl's arguments, wording and exit codes.

- The object is named `TYPE/NAME` or `TYPE NAME` (`deployment/web`,
  `ds fluentd`, `sts/web`); rollout works on Deployments, and but for pause
  and resume on DaemonSets and StatefulSets (`_daemonset_rollout`,
  `_statefulset_rollout`: their history is ControllerRevisions).
- `rollout status` watches the Deployment (no polling) and prints what
  kubectl prints while it waits; it ends with `deployment "web"
  successfully rolled out` (exit 0), or an error when the progress deadline
  is exceeded or `--timeout` passes (exit 1).
- `rollout undo` is `_rollback.rollback`, the same as kubectl's: the old
  ReplicaSet's template is written back.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, TextIO

import anyio

from kpy.api import errors
from kpy.api.apps.v1 import DaemonSet, Deployment, ReplicaSet, StatefulSet
from kpy.cli import _client, _daemonset_rollout, _statefulset_rollout
from kpy.cli._manifests import UsageError
from kpy.cli._rollback import rollback
from kpy.controllers.deployment import util
from kpy.controllers.ownership import get_controller_of

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

    from kpy.api.core.v1 import PodTemplateSpec
    from kpy.client import Client

__all__ = ["add_parser", "status_message"]

CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

_KINDS: dict[str, type[Deployment | DaemonSet | StatefulSet]] = {
    "Deployment": Deployment,
    "DaemonSet": DaemonSet,
    "StatefulSet": StatefulSet,
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "rollout", help="manage the rollout of a deployment, daemon set or stateful set"
    )
    verbs = p.add_subparsers(dest="rollout_verb", metavar="SUBCOMMAND", required=True)
    for name, help_text, run in (
        ("status", "show the status of the rollout", _status),
        ("history", "view rollout history", _history),
        ("undo", "undo a previous rollout", _undo),
        ("pause", "mark the deployment as paused", _pause),
        ("resume", "resume a paused deployment", _resume),
        ("restart", "restart the deployment's pods with a rolling update", _restart),
    ):
        v = verbs.add_parser(name, help=help_text)
        v.add_argument("target", nargs="+", metavar="TYPE/NAME | TYPE NAME")
        _client.add_flags(v)
        if name == "status":
            v.add_argument(
                "--timeout",
                type=float,
                default=0,
                metavar="SECONDS",
                help="give up after this long (0: wait until it ends)",
            )
        if name in ("undo", "history"):
            v.add_argument("--to-revision" if name == "undo" else "--revision", type=int, default=0)
        v.set_defaults(run=lambda args, run=run: _client.run(args, run))


def _deployment(args: argparse.Namespace) -> str:
    info, name = _client.object_target(args.target)
    if info.kind != "Deployment":
        raise UsageError(f"rollout {args.rollout_verb} works on deployments, not {info.plural}")
    return name


def _target(args: argparse.Namespace) -> tuple[str, str]:
    """(kind, name) of a Deployment, DaemonSet or StatefulSet target."""
    info, name = _client.object_target(args.target)
    if info.kind not in _KINDS:
        raise UsageError(
            f"rollout works on deployments, daemonsets and statefulsets, not {info.plural}"
        )
    return info.kind, name


def _ref(name: str, kind: str = "Deployment") -> str:
    return f"{kind.lower()}.apps/{name}"


# -- status -------------------------------------------------------------------------------


def status_message(d: Deployment) -> tuple[str, bool]:
    """kubectl's rollout status line for `d`, and whether the rollout is done.
    Raises Timeout when its progress deadline was exceeded."""
    name = d.metadata.name
    if d.metadata.generation > d.status.observed_generation:
        return "Waiting for deployment spec update to be observed...", False
    progressing = util.get_deployment_condition(d.status, util.DEPLOYMENT_PROGRESSING)
    if progressing is not None and progressing.reason == util.TIMED_OUT_REASON:
        raise errors.Timeout(f'deployment "{name}" exceeded its progress deadline')
    desired = d.spec.replicas
    s = d.status
    if s.updated_replicas < desired:
        return (
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{s.updated_replicas} out of {desired} new replicas have been updated...",
            False,
        )
    if s.replicas > s.updated_replicas:
        return (
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{s.replicas - s.updated_replicas} old replicas are pending termination...",
            False,
        )
    if s.available_replicas < s.updated_replicas:
        return (
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{s.available_replicas} of {s.updated_replicas} updated replicas are available...",
            False,
        )
    return f'deployment "{name}" successfully rolled out', True


#: kubectl's status viewers: (the status line, whether the rollout is done)
_STATUS_MESSAGES: dict[str, Callable[[Any], tuple[str, bool]]] = {
    "Deployment": status_message,
    "DaemonSet": _daemonset_rollout.status_message,
    "StatefulSet": _statefulset_rollout.status_message,
}


async def _status(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    kind_name, name = _target(args)
    kind = _KINDS[kind_name]
    describe = _STATUS_MESSAGES[kind_name]
    ns = _client.namespace_of(client, args)
    timeout = args.timeout if args.timeout > 0 else float("inf")
    last = ""
    current = await client.get(kind, name, namespace=ns)  # NotFound, if it is not there
    if not isinstance(current, Deployment):
        describe(current)  # BadRequest: OnDelete has no rollout
    with anyio.move_on_after(timeout) as scope:
        async with client.watch(
            kind, namespace=ns, field_selector=f"metadata.name={name}"
        ) as events:
            async for event in events:
                if event.type == "DELETED":
                    plural = f"{kind_name.lower()}s.apps"
                    raise errors.NotFound(f'{plural} "{name}" not found', name=name)
                if event.type not in ("ADDED", "MODIFIED"):
                    continue
                try:
                    message, done = describe(event.object)
                except errors.Timeout as e:
                    err.write(f"error: {e.message}\n")
                    return 1
                if message != last:
                    out.write(message + "\n")
                    out.flush()
                    last = message
                if done:
                    return 0
    if scope.cancelled_caught:
        err.write(f"error: timed out waiting for the condition (after {args.timeout:g} s)\n")
    return 1


# -- history and undo ---------------------------------------------------------------------


async def _owned_replica_sets(client: Client, d: Deployment) -> list[ReplicaSet]:
    listed = await client.list(ReplicaSet, namespace=d.metadata.namespace)
    return [
        rs
        for rs in listed.items
        if (ref := get_controller_of(rs)) is not None and ref.uid == d.metadata.uid
    ]


async def _history(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    kind, name = _target(args)
    ns = _client.namespace_of(client, args)
    if kind != "Deployment":
        return await _revision_history(client, kind, name, ns, args.revision, out)
    d = await client.get(Deployment, name, namespace=ns)
    by_revision = {util.revision(rs): rs for rs in await _owned_replica_sets(client, d)}
    if args.revision:
        rs = by_revision.get(args.revision)
        if rs is None:
            raise errors.NotFound(f"unable to find the specified revision {args.revision}")
        out.write(f"{_ref(name)} with revision #{args.revision}\n")
        out.write(_template_summary(rs))
        return 0
    out.write(f"{_ref(name)} \nREVISION  CHANGE-CAUSE\n")
    for number in sorted(by_revision):
        if number <= 0:
            continue
        cause = by_revision[number].metadata.annotations.get(CHANGE_CAUSE, "<none>")
        out.write(f"{number:<9} {cause}\n")
    out.write("\n")
    return 0


async def _revision_history(
    client: Client, kind: str, name: str, ns: str, revision: int, out: TextIO
) -> int:
    """The history of a DaemonSet or StatefulSet: its ControllerRevisions."""
    owner = await client.get(_KINDS[kind], name, namespace=ns)
    by_number = await _statefulset_rollout.revisions(client, owner)
    if revision:
        found = by_number.get(revision)
        if found is None:
            raise errors.NotFound(f"unable to find the specified revision {revision}")
        out.write(f"{_ref(name, kind)} with revision #{revision}\n")
        out.write(_template_summary(_daemonset_rollout.revision_template(found)))
        return 0
    out.write(f"{_ref(name, kind)} \nREVISION  CHANGE-CAUSE\n")
    for number, cause in _daemonset_rollout.history_rows(by_number):
        out.write(f"{number:<9} {cause}\n")
    out.write("\n")
    return 0


def _template_summary(owner: ReplicaSet | PodTemplateSpec) -> str:
    t = owner.spec.template if isinstance(owner, ReplicaSet) else owner
    labels = ",".join(
        f"{k}={v}"
        for k, v in sorted(t.metadata.labels.items())
        if k not in ("pod-template-hash", "controller-revision-hash")
    )
    lines = ["Pod Template:", f"  Labels:\t{labels or '<none>'}", "  Containers:"]
    for c in t.spec.containers:
        lines += [f"   {c.name}:", f"    Image:\t{c.image}"]
    return "\n".join(lines) + "\n"


async def _undo(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    kind, name = _target(args)
    ns = _client.namespace_of(client, args)
    if kind == "DaemonSet":
        message = await _daemonset_rollout.undo(client, ns, name, args.to_revision)
        out.write(f"{_ref(name, kind)} {message}\n")
        return 0
    if kind == "StatefulSet":
        message = await _statefulset_rollout.undo(client, ns, name, args.to_revision)
        out.write(f"{_ref(name, kind)} {message}\n")
        return 0
    result = await rollback(client, ns, name, args.to_revision)
    out.write(f"{_ref(name)} {result.message}\n")
    return 0


# -- pause, resume, restart --------------------------------------------------------------


async def _set_paused(client: Client, args: argparse.Namespace, out: TextIO, paused: bool) -> int:
    name = _deployment(args)
    ns = _client.namespace_of(client, args)
    d = await client.get(Deployment, name, namespace=ns)
    word = "paused" if paused else "resumed"
    if d.spec.paused == paused:
        raise errors.BadRequest(
            f'deployments.apps "{name}" is {"already" if paused else "not"} paused'
        )
    await client.patch(Deployment, name, {"spec": {"paused": paused}}, namespace=ns)
    out.write(f"{_ref(name)} {word}\n")
    return 0


async def _pause(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    return await _set_paused(client, args, out, True)


async def _resume(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    return await _set_paused(client, args, out, False)


async def _restart(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    kind, name = _target(args)
    ns = _client.namespace_of(client, args)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}
    await client.patch(_KINDS[kind], name, patch, namespace=ns)
    out.write(f"{_ref(name, kind)} restarted\n")
    return 0

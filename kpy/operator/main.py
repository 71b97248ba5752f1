"""`kpy-operator MODULE:APP`: an operator written with kpy.operator, as a process.

Imports `APP` (an `Operator`; default attribute name `app`) from `MODULE`
(the current directory is on the import path), connects as every kpy
component does (`--server`, else `--kubeconfig`/`$KPY_CONFIG`/~/.kpy/config)
and runs it with kpy.component's process rules: metrics and /healthz served
at once, leader election on by default (a Lease named after the operator in
`--leader-elect-resource-namespace`, default the operator's namespace, else
"default"), a clean stop on SIGTERM/SIGINT that hands the Lease over, exit
code 1 when the Lease is lost. Prints `<operator> serving metrics on
HOST:PORT`, then `<operator> leading as IDENTITY` once its caches synced and
its workers run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from kpy import component
from kpy.metrics import Metrics
from kpy.operator._operator import Operator, Runtime

if TYPE_CHECKING:
    from kpy.client import Client


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kpy-operator",
        description="Run an operator written with kpy.operator (see docs/operators.md).",
    )
    p.add_argument("app", metavar="MODULE:APP", help="the Operator to run, e.g. pkg.mod:app")
    p.add_argument(
        "--namespace",
        default=None,
        help="watch only this namespace (default: every namespace)",
    )
    p.add_argument(
        "--workers", type=int, default=None, metavar="N", help="reconciles at once, per kind"
    )
    component.add_flags(p, lease_name="", metrics_port=8080)
    p.set_defaults(leader_elect_resource_namespace=os.environ.get("POD_NAMESPACE", "default"))
    return p


def load_operator(parser: argparse.ArgumentParser, spec: str) -> Operator:
    """The Operator `spec` ("module:attr") names; exits with code 2 saying why not."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        parser.error(f"MODULE:APP must name a module, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        parser.error(f"cannot import {module_name!r}: {e}; run from the directory that holds it")
    app = getattr(module, attr or "app", None)
    if not isinstance(app, Operator):
        parser.error(
            f"{module_name}:{attr or 'app'} is {type(app).__name__}, not a kpy.operator.Operator"
        )
    return app


class _Process:
    """The operator as kpy.component.main runs it (its `Elected` protocol)."""

    def __init__(self, app: Operator, client: Client, opts: component.Options) -> None:
        self.app, self.client, self.opts = app, client, opts
        self.metrics = Metrics()
        self.leading = anyio.Event()

    async def run(self, *, task_status: anyio.abc.TaskStatus[int | None]) -> None:
        async def lead() -> None:
            runtime = Runtime(self.app, self.client, metrics=self.metrics)
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.run)
                await runtime.started.wait()
                self.leading.set()

        await component.run_elected(
            self.app.name,
            self.client,
            self.metrics,
            self.opts.election,
            lead,
            metrics_host=self.opts.metrics_host,
            metrics_port=self.opts.metrics_port,
            task_status=task_status,
        )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    app = load_operator(parser, args.app)
    if args.workers is not None:
        if args.workers < 1:
            parser.error(f"--workers must be at least 1, got {args.workers}")
        app.set_workers(args.workers)
    if args.namespace:
        app.namespace = args.namespace
    if not args.leader_elect_resource_name:
        args.leader_elect_resource_name = app.name
    opts = component.options(parser, args)
    return component.main(app.name, opts, lambda client: _Process(app, client, opts))


if __name__ == "__main__":
    sys.exit(main())

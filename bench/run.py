"""`python -m bench.run`: start etcd and one API server, run the benchmarks,
print the table, write the JSON.

One etcd (single member, no fsync) and one `kpy-apiserver` process serve
every benchmark, each benchmark in namespaces of its own. Every figure comes
with a baseline measured in the same run against the same etcd, and the
table's ratio is kpy ÷ baseline. Results go to
`bench/results/<UTC timestamp>.json` and `bench/results/latest.json`.

By default the API server runs as a secure cluster's does (TLS, x509
client certificates, Node,RBAC authorization) and every client and
component calls it over TLS with a client certificate (`bench._security`:
the PKI is made once per run in the run's temporary directory).
`--insecure` runs it plaintext and open, as before, for comparison; the
result's `setup.tls` says which. The baselines are the same either way:
raw etcd calls over plaintext, so with TLS on the ratio includes its cost.

Every process the run starts (etcd, the API server, the watch benchmark's
workers) is stopped by its pid when the run ends, also on failure, Ctrl-C
or SIGTERM. A benchmark that fails is reported and the others still run;
the exit code is then 1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import bench.agent
import bench.controllers
import bench.create
import bench.docker
import bench.events
import bench.floor
import bench.get
import bench.job
import bench.list
import bench.operator
import bench.scale
import bench.scheduler
import bench.statefulset
import bench.watch
from bench._context import Children, Context, Progress
from bench._report import Result, format_aims, format_table
from bench._security import Security
from kpy.apiserver.process import APIServerProcess
from kpy.storage import EtcdServer

Benchmark = Callable[[Context], Awaitable[Result]]

BENCHMARKS: dict[str, Benchmark] = {
    "create": bench.create.run,
    "floor": bench.floor.run,
    "get": bench.get.run,
    "list": bench.list.run,
    "watch": bench.watch.run,
    "controllers": bench.controllers.run,
    "scheduler": bench.scheduler.run,
    "events": bench.events.run,
    "agent": bench.agent.run,
    "docker": bench.docker.run,
    "job": bench.job.run,
    "statefulset": bench.statefulset.run,
    "operator": bench.operator.run,
    "scale": bench.scale.run,
}
RESULTS = Path(__file__).resolve().parent / "results"
ETCD_PROGRESS_NOTIFY = 5.0  # seconds; the API server's bookmarks follow etcd's progress
BOOKMARK_INTERVAL = 5.0  # kpy's default


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark kpy's API against raw etcd, measured in the same run.",
    )
    p.add_argument("--quick", action="store_true", help="smaller counts: a smoke run")
    p.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext gRPC, no authentication or authorization (the comparison for TLS)",
    )
    p.add_argument(
        "--results", type=Path, default=RESULTS, help="directory for the JSON (%(default)s)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = [n for n in BENCHMARKS if not args.only or n in args.only]
    signal.signal(signal.SIGTERM, _interrupt)
    started = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="kpy-bench-"))
    security = Security.create(scratch / "pki", tls=not args.insecure)
    saved_environment = {name: os.environ.get(name) for name in security.environment()}
    os.environ.update(security.environment())  # every client of the run, children too
    etcd = EtcdServer(unsafe_no_fsync=True, progress_notify_interval=ETCD_PROGRESS_NOTIFY)
    api: APIServerProcess | None = None
    children = Children()
    failed = True
    try:
        quick = " (quick)" if args.quick else ""
        mode = "TLS, client certificates, Node,RBAC" if security.tls else "INSECURE: plaintext"
        print(f"kpy bench: {', '.join(names)}{quick}; {mode}", file=sys.stderr)
        etcd.start()
        api = APIServerProcess(
            etcd.endpoint,
            bookmark_interval=BOOKMARK_INTERVAL,
            log_path=scratch / "apiserver.log",
            extra_args=security.apiserver_args(),
        )
        api.start()
        ctx = Context(
            api_address=api.address,
            api_pid=api.pid,
            etcd_endpoint=etcd.endpoint,
            etcd_pid=etcd.pid,
            quick=args.quick,
            run_id=secrets.token_hex(3),
            progress=Progress(),
            children=children,
            security=security,
        )
        servers = f"etcd {etcd.endpoint} (pid {etcd.pid}), API {api.address} (pid {api.pid})"
        print(f"  {servers}", file=sys.stderr)
        try:
            results, errors = asyncio.run(_run_all(ctx, names))
        finally:
            signal.signal(signal.SIGTERM, _interrupt)  # the loop's handler is gone now
        duration = time.monotonic() - clock
        report = _json(args, names, started, duration, results, errors, security)
        path = _write(args.results, started, report)
        _print(results, errors, path, duration, security)
        failed = bool(errors)
        return 1 if errors else 0
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\nkpy bench: interrupted; stopping what it started", file=sys.stderr)
        return 130
    finally:
        children.stop_all()
        if api is not None:
            api.stop()
        etcd.stop()
        for name, value in saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if failed and api is not None:
            print(f"kpy bench: the API server's log is kept at {api.log_path}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _interrupt(signum: int, frame: object) -> NoReturn:
    """SIGTERM outside the event loop: unwind as Ctrl-C does."""
    raise KeyboardInterrupt


async def _run_all(ctx: Context, names: list[str]) -> tuple[dict[str, Result], dict[str, str]]:
    # SIGTERM inside the loop cancels the run, as asyncio.run does for Ctrl-C,
    # so that every benchmark's clean-up runs.
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, main.cancel)
    results: dict[str, Result] = {}
    errors: dict[str, str] = {}
    try:
        for name in names:
            try:
                results[name] = await BENCHMARKS[name](ctx)
            except Exception as e:
                ctx.progress.done("FAILED")
                traceback.print_exc()
                errors[name] = f"{type(e).__name__}: {e}"
            ctx.progress.done()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    return results, errors


def _print(
    results: dict[str, Result],
    errors: dict[str, str],
    path: Path,
    duration: float,
    security: Security,
) -> None:
    rows = [row for result in results.values() for row in result.rows]
    aims = [aim for result in results.values() for aim in result.aims]
    print()
    print(format_table(rows))
    print()
    print("ratio = kpy / baseline, baselines measured in this run; latency: lower is better.")
    if security.tls:
        print("kpy over TLS with client certificates, Node,RBAC; baselines raw etcd, plaintext.")
        for why in security.fallbacks.values():
            print(f"  note: {why}")
    else:
        print("INSECURE run: kpy over plaintext gRPC, no authentication (AlwaysAllow).")
    if aims:
        print(format_aims(aims))
    for name, error in errors.items():
        print(f"[FAIL] {name}: {error}")
    print(f"\nwrote {path} in {duration:.0f}s (latest.json only for full runs with TLS)")


def _json(
    args: argparse.Namespace,
    names: list[str],
    started: datetime.datetime,
    duration: float,
    results: dict[str, Result],
    errors: dict[str, str],
    security: Security,
) -> dict[str, Any]:
    return {
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(duration, 1),
        "quick": args.quick,
        "benchmarks": names,
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "git": _git(),
        "setup": {
            "etcd": "one member on 127.0.0.1, --unsafe-no-fsync",
            "apiserver": "one kpy-apiserver process",
            **security.setup(),
            "baseline": "raw etcd calls (aetcd) over plaintext gRPC, also with TLS on: "
            "the ratio then includes TLS's cost",
            "ratio": "kpy / baseline",
        },
        "rows": [row.as_json() for result in results.values() for row in result.rows],
        "aims": [
            {"name": a.name, "met": a.met, "detail": a.detail}
            for result in results.values()
            for a in result.aims
        ],
        "details": {name: result.details for name, result in results.items()},
        "errors": errors,
    }


def _write(directory: Path, started: datetime.datetime, report: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=1) + "\n"
    path = directory / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(text)
    # latest.json is the figure quoted in notes: partial (--quick, --only)
    # and --insecure runs never replace it.
    full = not report["quick"] and len(report["benchmarks"]) == len(BENCHMARKS)
    if full and report["setup"]["tls"]:
        (directory / "latest.json").write_text(text)
    return path


def _git() -> dict[str, Any]:
    """The commit measured, and whether the tree had changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": bool(status.strip())}


if __name__ == "__main__":
    sys.exit(main())

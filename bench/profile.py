"""`python -m bench.profile NAME`: one benchmark with cProfile on both ends.

Runs the benchmark NAME (create, get, list, watch) exactly as `bench.run`
does, but with the API server started under cProfile
(`bench._profiled_apiserver`) and this process (the SDK side: clients,
watchers) profiled too. Prints where each spends its time, top functions by
own time and by cumulative time, and keeps both .prof files for
`python -m pstats` or snakeviz.

cProfile slows Python code about 1.5-2x and not C code, so read the output
as shares of the time, not as absolute figures. Use `--quick` for the
smaller sizes. TLS is on as in `bench.run` (`--insecure`: plaintext), so
the TLS cost shows in both profiles.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench.create
import bench.get
import bench.list
import bench.watch
from bench._context import Children, Context, Progress, child_environment
from bench._report import format_table
from bench._security import Security
from kpy.storage import EtcdServer

BENCHMARKS = {
    "create": bench.create.run,
    "get": bench.get.run,
    "list": bench.list.run,
    "watch": bench.watch.run,
}
_SERVING = re.compile(r"kpy-apiserver serving on (\S+:\d+)")


class ProfiledAPIServer:
    """kpy-apiserver under cProfile as a child process, stopped by its pid
    (SIGTERM, so that it writes its profile; SIGKILL after a grace)."""

    def __init__(
        self, etcd_endpoint: str, profile: Path, log: Path, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.profile = profile
        self._args = [
            sys.executable,
            "-m",
            "bench._profiled_apiserver",
            str(profile),
            "--etcd-servers",
            etcd_endpoint,
            "--port",
            "0",
            *extra_args,
        ]
        self._log = log
        self._process: subprocess.Popen[str] | None = None
        self.address = ""

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, timeout: float = 60.0) -> None:
        with self._log.open("w") as log:
            self._process = subprocess.Popen(
                self._args, stdout=subprocess.PIPE, stderr=log, text=True, env=child_environment()
            )
        stdout = self._process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._process.poll() is None:
            ready, _, _ = select.select([stdout], [], [], 0.1)
            if ready and (match := _SERVING.search(stdout.readline())):
                self.address = match.group(1)
                return
        raise RuntimeError(f"the profiled API server did not start; see {self._log}")

    def stop(self, grace: float = 30.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def report(title: str, path: Path, top: int) -> str:
    """The top functions of a profile by own time and by cumulative time."""
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs()
    out.write(f"\n===== {title}: by own time (tottime) =====\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write(f"\n===== {title}: by cumulative time =====\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("name", choices=sorted(BENCHMARKS))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--insecure", action="store_true", help="plaintext, as bench.run --insecure")
    p.add_argument("--top", type=int, default=30, help="functions to show per listing")
    p.add_argument("--out", type=Path, help="directory for the .prof files (default: a temp dir)")
    args = p.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="kpy-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    server_prof, client_prof = out / f"{args.name}-apiserver.prof", out / f"{args.name}-sdk.prof"
    etcd = EtcdServer(unsafe_no_fsync=True, progress_notify_interval=5.0)
    api: ProfiledAPIServer | None = None
    children = Children()
    scratch = Path(tempfile.mkdtemp(prefix="kpy-profile-pki-"))
    security = Security.create(scratch, tls=not args.insecure)
    os.environ.update(security.environment())  # this process's clients, and its children's
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        etcd.start()
        api = ProfiledAPIServer(
            etcd.endpoint, server_prof, out / "apiserver.log", security.apiserver_args()
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
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            result = asyncio.run(BENCHMARKS[args.name](ctx))
        finally:
            profiler.disable()
            profiler.dump_stats(client_prof)
        ctx.progress.done()
    finally:
        children.stop_all()
        if api is not None:
            api.stop()
        etcd.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(format_table(result.rows))
    print(report("kpy-apiserver", server_prof, args.top))
    print(report("bench process (SDK)", client_prof, args.top))
    print(f"profiles kept in {out}")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())

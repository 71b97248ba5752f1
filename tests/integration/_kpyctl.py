"""Running `kpyctl` as a user does: the installed command in a subprocess,
pointed at a test's API server and namespace."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from kpy.apiserver.process import APIServerProcess

KPYCTL = str(Path(sys.executable).parent / "kpyctl")


async def kpyctl(
    server: APIServerProcess, ns: str, *words: str, stdin: str = ""
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `kpyctl WORDS --server S -n NS`."""
    done = await anyio.run_process(
        [KPYCTL, *words, "--server", server.address, "-n", ns], input=stdin.encode(), check=False
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()

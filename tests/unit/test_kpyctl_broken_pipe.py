"""A kpyctl verb whose reader goes away (`kpyctl get pods -o yaml | head`)
ends quietly with exit 0, as kubectl does, instead of a traceback."""

from __future__ import annotations

import subprocess
import sys

# A verb writing far more than a pipe holds, run the way every verb is run.
SCRIPT = """
import argparse, sys
from kpy.cli import _client

async def verb(client, args, out, err):
    for _ in range(10_000):
        out.write("x" * 1000 + "\\n")
        out.flush()
    return 0

sys.exit(_client.run(argparse.Namespace(server="127.0.0.1:1"), verb))
"""


def test_a_closed_pipe_ends_the_verb_quietly() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stderr is not None
            assert proc.stdout.read(10) == b"x" * 10
            proc.stdout.close()  # as `head` exits
            err = proc.stderr.read().decode()
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()  # this test's own child, by its pid
    assert (code, err) == (0, "")

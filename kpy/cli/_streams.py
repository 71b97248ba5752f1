"""Output of `logs` and `exec`: a container's bytes copied to ours as they
come, and the two ways such a stream ends badly (the pod's node agent cannot
be reached; whoever reads our output went away)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from kpy.api import errors

__all__ = ["agent_unavailable", "reader_gone", "write_bytes"]


def write_bytes(stream: TextIO, data: bytes) -> None:
    """Writes `data` as is (through the binary buffer under a text stream)
    and flushes, so a follower sees each chunk when it comes."""
    binary = getattr(stream, "buffer", None)
    if binary is None:
        stream.write(data.decode(errors="replace"))
        stream.flush()
        return
    stream.flush()  # text written before goes first
    binary.write(data)
    binary.flush()


def agent_unavailable(e: errors.Unavailable, err: TextIO) -> int:
    """Reports an unreachable node agent as the API server's answer it is
    (the shared handler would say the API server itself cannot be reached)."""
    if e.kind != "nodes":
        raise e
    err.write(f"Error from server (ServiceUnavailable): {e.message}\n")
    return 1


def reader_gone() -> int:
    """Ends quietly when whoever reads our output stopped (`| head`): stdout
    goes to /dev/null so that the final flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0

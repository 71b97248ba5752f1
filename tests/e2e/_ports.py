"""Ports for clusters the e2e tests start."""

from __future__ import annotations

import socket


def two_free_ports() -> int:
    """A port p such that p and p + 1 are free (two API servers)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")

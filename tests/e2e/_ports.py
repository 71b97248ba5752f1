"""Ports for the clusters the tests start with `kpy up`.

A cluster's API servers listen on consecutive ports from the one given.
Picking it with `bind(("127.0.0.1", 0))` raced: the kernel hands out
ports from its ephemeral range (/proc/sys/net/ipv4/ip_local_port_range,
32768-60999 here) to every other socket the suite binds or connects, so
the port after a free one was sometimes taken before the second API
server bound it. These ports come from below that range, where only an
explicit bind lands, and the tests that start clusters run one at a time
(tests/conftest.py).
"""

from __future__ import annotations

import random
import socket

_LOW, _HIGH = 20_000, 32_000  # below the kernel's ephemeral ports


def cluster_port(count: int = 2) -> int:
    """A port p such that p .. p + count - 1 are free now."""
    for _ in range(200):
        port = random.randrange(_LOW, _HIGH - count)
        if all(_free(port + i) for i in range(count)):
            return port
    raise RuntimeError(f"no {count} consecutive free ports in {_LOW}-{_HIGH}")


def two_free_ports() -> int:
    """A port p such that p and p + 1 are free (two API servers)."""
    return cluster_port(2)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True

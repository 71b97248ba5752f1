"""Plumbing every runtime's `exec` shares: its deadline and its stdin.

A timeout given to `exec` is a deadline on the whole command (output and
exit code), measured on anyio's clock; `feed` copies the caller's stdin to
the command and then closes the command's input, so that it sees end of
file while its output still comes.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable


def deadline_after(timeout: float | None) -> float | None:
    """The anyio time at which an exec given `timeout` seconds must end."""
    return None if timeout is None else anyio.current_time() + timeout


def remaining(deadline: float | None) -> float | None:
    """Seconds left until `deadline` (never negative), None for no deadline:
    what `anyio.fail_after` and `asyncio.wait` take."""
    return None if deadline is None else max(deadline - anyio.current_time(), 0.0)


async def feed(
    stdin: AsyncIterator[bytes],
    write: Callable[[bytes], Awaitable[None]],
    close: Callable[[], None],
) -> None:
    """Writes every chunk of `stdin`, then closes the input. A command that
    stopped reading (a broken pipe, a closed stream) ends the copy quietly:
    its exit code says the rest."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        async for data in stdin:
            await write(data)
        close()

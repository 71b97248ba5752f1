"""`pattern` regular expressions, run by CEL's `matches` (Rust's regex
crate): RE2 syntax and linear time like the Go regexp Kubernetes uses, so a
CRD's pattern cannot make the API server backtrack for ever (Python's `re`
could), and a pattern Kubernetes refuses (look-around, backreferences) is
refused here too."""

from __future__ import annotations

import functools
from typing import Any

from kpy.api.crd._cellib import lib


@functools.cache
def _matches() -> Any:
    return lib().compile("text.matches(pattern)")


def regex_error(pattern: str) -> str:
    """Why `pattern` is not a regular expression; "" when it is one."""
    try:
        _matches().execute({"text": "", "pattern": pattern})
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines()]
        reasons = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
        reason = reasons[0] if reasons else lines[0]
        return reason.removesuffix(". Check function arguments and their types.")
    return ""


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in `text` (unanchored, as in Kubernetes)."""
    return _matches().execute({"text": text, "pattern": pattern}) is True

"""The CEL library (`common-expression-language`), imported on first use.

Its package imports its command-line tool (rich, prompt_toolkit, typer) as
it loads: about a second of start-up on this machine, which every kpyctl
command and every component would pay whether or not it ever evaluates a
rule. Only code that compiles or runs CEL (a CRD's rules, `pattern`)
imports it, through `lib()`.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any


@functools.cache
def lib() -> Any:
    """The `cel` module."""
    return importlib.import_module("cel")

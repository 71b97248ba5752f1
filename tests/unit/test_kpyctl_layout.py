"""kpyctl's verbs are found by their names (issue 16): every command is the
module of its name in kpy/cli (uncordon shares cordon.py), every public
module there is a command, and helpers shared by several commands live in
private `_*.py` modules, never in another command's module."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import kpy.cli
from kpy.cli.main import build_parser

CLI = Path(kpy.cli.__file__).parent
# The one command whose module bears another name, and why: see cordon.py.
SHARED = {"uncordon": "cordon"}


def commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "verb")
    return [c.dest for c in sub._choices_actions]  # type: ignore[attr-defined]


def test_every_command_is_the_module_of_its_name() -> None:
    for command in commands():
        name = SHARED.get(command, command).replace("-", "_")
        module = importlib.import_module(f"kpy.cli.{name}")
        assert hasattr(module, "add_parser"), f"{command}: kpy/cli/{name}.py adds no parser"


def test_every_public_module_is_a_command() -> None:
    wanted = {SHARED.get(c, c).replace("-", "_") for c in commands()} | {"main"}
    public = {m.name for m in pkgutil.iter_modules([str(CLI)]) if not m.name.startswith("_")}
    assert public == wanted, "a public module in kpy/cli that is no command: make it _private"


def test_commands_share_only_private_modules() -> None:
    commands_ = {SHARED.get(c, c).replace("-", "_") for c in commands()}
    for path in sorted(CLI.glob("*.py")):
        if path.stem == "main":
            continue
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "kpy.cli":
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kpy.cli."):
                imported.add(node.module.removeprefix("kpy.cli.").split(".")[0])
        assert not imported & commands_, f"{path.name} imports commands {imported & commands_}"

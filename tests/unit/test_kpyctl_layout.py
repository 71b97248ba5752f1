"""kpyctl's verbs are found by their names (issue 16): every command is the
module of its name in kpy/cli (uncordon shares cordon.py), every public
module there is a command, and helpers shared by several commands live in
private `_*.py` modules, never in another command's module."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
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


def test_a_verb_s_parser_knows_that_verb_alone() -> None:
    for command in commands():
        sub = next(a for a in build_parser(command)._actions if a.dest == "verb")
        known = {c.dest for c in sub._choices_actions}  # type: ignore[attr-defined]
        module = SHARED.get(command, command)
        sharing = {c for c, m in SHARED.items() if m == module} | {module}
        assert known == sharing, f"{command}: its parser knows {known}"


def test_one_verb_imports_no_other_verb_s_module() -> None:
    """kpyctl logs starts without importing describe, apply, rollout...:
    the start-up of one command is its own module's imports."""
    script = (
        "import sys; from kpy.cli.main import build_parser; build_parser('logs'); "
        "print(sorted(m for m in sys.modules if m in {'kpy.cli.describe', 'kpy.cli.apply',"
        " 'kpy.cli.rollout', 'kpy.cli.create', 'kpy.cli.logs'}))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['kpy.cli.logs']", out.stdout + out.stderr

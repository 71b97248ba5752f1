"""The suite's own grouping (tests/conftest.py) reaches pytest-xdist: the
tests of a module with a shared (module-scoped) fixture run on one worker,
and the modules marked `cluster` take two lanes in turn (the first and
third module share one), whatever the pytest and xdist versions make of
node ids. Run as `make test` runs the suite, on a tiny copy."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

SUITE_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

MODULE = """
import os
import pytest
{mark}

@pytest.fixture(scope="module")
def shared() -> str:
    return "x"

{tests}
"""

TEST = """
def test_{i}(shared: str) -> None:
    with open(os.environ["WHERE"], "a") as f:
        f.write(f"{{__name__}} {{os.environ['PYTEST_XDIST_WORKER']}}\\n")
"""


def test_module_and_cluster_groups_each_run_on_one_worker(tmp_path: Path) -> None:
    shutil.copy(SUITE_CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    cluster: starts a whole kpy cluster\n"
    )
    tests = "\n".join(TEST.format(i=i) for i in range(6))
    for name in ("test_shared_a", "test_shared_b"):
        (tmp_path / f"{name}.py").write_text(MODULE.format(mark="", tests=tests))
    for name in ("test_cluster_a", "test_cluster_b", "test_cluster_c"):
        mark = "pytestmark = pytest.mark.cluster"
        (tmp_path / f"{name}.py").write_text(MODULE.format(mark=mark, tests=tests))
    where = tmp_path / "where.txt"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-n",
            "3",
            "--dist",
            "loadgroup",
            "-p",
            "no:cacheprovider",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={"WHERE": str(where), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    workers: dict[str, set[str]] = {}
    for line in where.read_text().splitlines():
        module, worker = line.split()
        workers.setdefault(module, set()).add(worker)
    assert len(workers) == 5, workers
    for module, seen in workers.items():
        assert len(seen) == 1, f"{module} ran on {sorted(seen)}"
    assert workers["test_cluster_a"] == workers["test_cluster_c"], workers


class _Item:
    """Just what `_group` reads of a pytest item."""

    def __init__(self, nodeid: str, *, cluster: bool) -> None:
        self.nodeid = nodeid
        self._cluster = cluster
        self._fixtureinfo = None
        self.groups: list[str] = []

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name == "cluster" and self._cluster else None

    def add_marker(self, marker: Any) -> None:
        self.groups.append(str(marker.args[0]))


def test_cluster_modules_take_the_lanes_in_turn() -> None:
    spec = importlib.util.spec_from_file_location("suite_conftest", SUITE_CONFTEST)
    assert spec is not None
    assert spec.loader is not None
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    items = [
        _Item("tests/e2e/test_c.py::test_1", cluster=True),
        _Item("tests/e2e/test_a.py::test_1", cluster=True),
        _Item("tests/e2e/test_a.py::test_2", cluster=True),
        _Item("tests/e2e/test_b.py::test_1", cluster=True),
        _Item("tests/unit/test_free.py::test_1", cluster=False),
    ]
    conftest._group(items)
    assert conftest.CLUSTER_LANES == 2
    assert [i.groups for i in items] == [
        ["whole-clusters-1"],  # test_c: third in path order
        ["whole-clusters-1"],  # test_a: first
        ["whole-clusters-1"],
        ["whole-clusters-2"],  # test_b: second
        [],
    ]

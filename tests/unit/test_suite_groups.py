"""The suite's own grouping (tests/conftest.py) reaches pytest-xdist: the
tests of a module with a shared (module-scoped) fixture run on one worker,
as do all tests marked `cluster`, whatever the pytest and xdist versions
make of node ids. Run as `make test` runs the suite, on a tiny copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

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
    for name in ("test_cluster_a", "test_cluster_b"):
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
    assert len(workers) == 4, workers
    for module, seen in workers.items():
        assert len(seen) == 1, f"{module} ran on {sorted(seen)}"
    assert workers["test_cluster_a"] == workers["test_cluster_b"], workers

"""Suite-wide collection rules.

`make test` runs the suite on several pytest-xdist workers (`--dist
loadgroup`). A test that uses a module-scoped fixture (an e2e module's
shared cluster, for instance) is grouped with the rest of its module, so
that the module's fixture is set up once, on one worker, as in a serial
run. The tests that drive kpy's Docker engine directly are one group too:
one engine serves them all, and several of them at once on a loaded
machine starve it past its clients' timeouts. Tests marked `cluster`
start a whole kpy cluster (`kpy up`: etcd, API servers, controller
managers, schedulers, agents): their modules take `CLUSTER_LANES` groups
in turn (in the order of their paths), so at most that many such clusters
run at once while the other workers take everything else. One lane made
the cluster tests the suite's critical path (about 570 s of the 620 s of a
loaded run); three or more at once on a loaded machine starved each other
past their deadlines. Every other test goes to whichever worker is free.

pytest-xdist 3.8 tells its scheduler a test's group by appending
`@<group>` to the nodeid it sends (`item._nodeid`), which pytest 9.2's
structured node ids no longer read (pytest-dev/pytest-xdist#1386): every
group was silently ignored, so a module's shared cluster was started once
on each worker. `_send_groups` appends the suffix to the id pytest 9.2
reads, after the groups are known; an xdist that does it itself leaves
nothing to do.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from _pytest.nodeid import NodeId

_SHARED_SCOPES = frozenset({"module", "package"})
#: Whole clusters that may run at once (see the docstring).
CLUSTER_LANES = 2


def _uses_docker(item: pytest.Item) -> bool:
    path, _, name = item.nodeid.partition("::")
    return "docker" in path.rsplit("/", 1)[-1] or "[docker" in name or "docker]" in name


def pytest_configure(config: pytest.Config) -> None:
    """The suite never reads the user's kpy config: `kpy up` writes
    ~/.kpy/config (the CA and admin certificate of the user's own cluster),
    and a client the tests build from a bare address would take that
    cluster's credentials. KPY_CONFIG names an empty config instead (the
    built-in defaults); tests that want a cluster's config say so."""
    if "KPY_CONFIG" not in os.environ:
        empty = Path(tempfile.mkdtemp(prefix="kpy-tests-")) / "config"
        empty.write_text("# the test suite's: no cluster of the user's\n")
        os.environ["KPY_CONFIG"] = str(empty)


@pytest.hookimpl(trylast=True)  # after xdist's own attempt, see the docstring
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _group(items)
    if getattr(config.option, "loadgroup", False):  # set on xdist workers, --dist loadgroup
        _send_groups(items)


def _send_groups(items: list[pytest.Item]) -> None:
    for item in items:
        names = sorted({str(m.args[0]) for m in item.iter_markers("xdist_group") if m.args})
        suffix = f"@{'_'.join(names)}"
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def _group(items: list[pytest.Item]) -> None:
    # Every worker collects every test, so each computes the same lanes.
    clusters = sorted({_module(i) for i in items if i.get_closest_marker("cluster") is not None})
    lane = {m: f"whole-clusters-{n % CLUSTER_LANES + 1}" for n, m in enumerate(clusters)}
    for item in items:
        if item.get_closest_marker("cluster") is not None:
            item.add_marker(pytest.mark.xdist_group(lane[_module(item)]))
            continue
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        scopes = {d.scope for defs in info.name2fixturedefs.values() for d in defs}
        if scopes & _SHARED_SCOPES:
            item.add_marker(pytest.mark.xdist_group(_module(item)))
        elif _uses_docker(item):
            item.add_marker(pytest.mark.xdist_group("docker-engine"))

"""Suite-wide collection rules.

`make test` runs the suite on several pytest-xdist workers (`--dist
loadgroup`). A test that uses a module-scoped fixture (an e2e module's
shared cluster, for instance) is grouped with the rest of its module, so
that the module's fixture is set up once, on one worker, as in a serial
run. The tests that drive kpy's Docker engine directly are one group too:
one engine serves them all, and several of them at once on a loaded
machine starve it past its clients' timeouts. Tests marked `cluster`
start a whole kpy cluster (`kpy up`: etcd, API servers, controller
managers, schedulers, agents): they form one group, so one such cluster
runs at a time while the other workers take everything else; several at
once on a loaded machine starved each other past their deadlines. Every
other test goes to whichever worker is free.
"""

from __future__ import annotations

import pytest

_SHARED_SCOPES = frozenset({"module", "package"})


def _uses_docker(item: pytest.Item) -> bool:
    path, _, name = item.nodeid.partition("::")
    return "docker" in path.rsplit("/", 1)[-1] or "[docker" in name or "docker]" in name


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("cluster") is not None:
            item.add_marker(pytest.mark.xdist_group("whole-clusters"))
            continue
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        scopes = {d.scope for defs in info.name2fixturedefs.values() for d in defs}
        if scopes & _SHARED_SCOPES:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
        elif _uses_docker(item):
            item.add_marker(pytest.mark.xdist_group("docker-engine"))

"""Suite-wide collection rules.

`make test` runs the suite on several pytest-xdist workers (`--dist
loadgroup`). A test that uses a module-scoped fixture (an e2e module's
shared cluster, for instance) is grouped with the rest of its module, so
that the module's fixture is set up once, on one worker, as in a serial
run; every other test goes to whichever worker is free.
"""

from __future__ import annotations

import pytest

_SHARED_SCOPES = frozenset({"module", "package"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        scopes = {d.scope for defs in info.name2fixturedefs.values() for d in defs}
        if scopes & _SHARED_SCOPES:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))

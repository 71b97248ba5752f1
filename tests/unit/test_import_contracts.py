"""The "private modules stay private" import-linter contract (tools/import_contracts.py)
on small import graphs: which imports of a `_module` it calls leaks."""

from __future__ import annotations

from dataclasses import dataclass

import grimp
import pytest

from tools.import_contracts import PrivateModulesContract, owner_of


@dataclass
class Case:
    name: str
    imports: list[tuple[str, str]]  # importer -> imported
    leaks: list[tuple[str, str]]
    ignore: list[str] | None = None


CASES = [
    Case("a package uses its own private module", [("k.storage.store", "k.storage._codec")], []),
    Case("a subpackage uses its parent's", [("k.api.validation._core", "k.api._limits")], []),
    Case(
        "another package reaches in",
        [("k.apiserver.watch_cache", "k.storage._codec")],
        [("k.apiserver.watch_cache", "k.storage._codec")],
    ),
    Case(
        "a sibling of a private subpackage reaches in",
        [("k.agent.main", "k.agent.runtime._ipam")],
        [("k.agent.main", "k.agent.runtime._ipam")],
    ),
    Case(
        "an ignored import is no leak",
        [("k.agent.main", "k.agent.runtime._ipam")],
        [],
        ignore=["k.agent.main -> k.agent.runtime._ipam"],
    ),
    Case("a module private to the root is everyone's", [("k.cli.main", "k._process")], []),
    Case("dunder segments are public", [("k.cli.main", "k.rpc.__about__")], []),
    Case("public modules are free", [("k.cli.main", "k.storage.codec")], []),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_private_modules_contract(case: Case) -> None:
    graph = grimp.ImportGraph()
    for importer, imported in case.imports:
        for module in (importer, imported):
            graph.add_module(module)
        graph.add_import(importer=importer, imported=imported, line_number=1, line_contents="")
    options = {"ignore_imports": case.ignore} if case.ignore else {}
    contract = PrivateModulesContract(name=case.name, session_options={}, contract_options=options)
    check = contract.check(graph, verbose=False)
    got = [(leak.importer, leak.imported) for leak in check.metadata.get("leaks", [])]
    assert got == case.leaks, case.name
    assert check.kept == (not case.leaks), case.name


def test_owner_of() -> None:
    assert owner_of("kpy.agent.runtime._ipam") == "kpy.agent.runtime"
    assert owner_of("kpy.api._descriptors") == "kpy.api"
    assert owner_of("kpy.cli._client.sub") == "kpy.cli"
    assert owner_of("kpy.storage.codec") is None
    assert owner_of("kpy.__main__") is None

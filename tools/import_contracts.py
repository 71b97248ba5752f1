"""kpy's own import-linter contract type: private modules stay private.

A module with a ``_name`` segment (``kpy.storage._keys``,
``kpy.agent.runtime._ipam``) belongs to the package that holds that segment
(``kpy.storage``, ``kpy.agent.runtime``): only that package and its
descendants may import it. Anyone else imports the package's public modules,
or the thing is made public. Dunder segments (``__init__``) are not private,
and ``kpy._process`` belongs to ``kpy``, so all of kpy may use it.

Ruff's ``PLC2701`` (import-private-name) does not see these leaks: it treats
every import inside one top-level package (``kpy``) as the same module's own
business. This contract does, from the same import graph as the others.

Options: ``ignore_imports`` as in import-linter's own contracts (each with
its reason beside it in pyproject.toml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from importlinter.application import contract_utils, output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck

if TYPE_CHECKING:
    from grimp import ImportGraph


@dataclass(frozen=True, slots=True)
class Leak:
    importer: str
    imported: str
    owner: str
    line_numbers: tuple[int, ...]


def owner_of(module: str) -> str | None:
    """The package a private module belongs to; None for a public module."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


class PrivateModulesContract(Contract):
    """See the module docstring."""

    type_name = "private_modules"

    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)
    unmatched_ignore_imports_alerting = fields.EnumField(
        contract_utils.AlertLevel, default=contract_utils.AlertLevel.ERROR
    )

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,  # type: ignore[arg-type]
            unmatched_alerting=self.unmatched_ignore_imports_alerting,  # type: ignore[arg-type]
        )
        leaks: list[Leak] = []
        for imported in sorted(graph.modules):
            owner = owner_of(imported)
            if owner is None:
                continue
            for importer in sorted(graph.find_modules_that_directly_import(imported)):
                if _inside(importer, owner):
                    continue
                details = graph.get_import_details(importer=importer, imported=imported)
                lines = tuple(d["line_number"] for d in details)
                leaks.append(Leak(importer, imported, owner, lines))
        return ContractCheck(
            kept=not leaks,
            warnings=list(removal.warnings),
            ignored_import_count=removal.ignored_import_count,
            metadata={"leaks": leaks},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        for leak in check.metadata["leaks"]:
            lines = ", ".join(f"l.{n}" for n in leak.line_numbers) or "?"
            output.print_error(
                f"{leak.importer} imports {leak.imported} ({lines}), private to {leak.owner}: "
                f"import a public module of {leak.owner}, or make the name public",
                bold=False,
            )
            output.new_line()

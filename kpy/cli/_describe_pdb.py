"""A PodDisruptionBudget as `kubectl describe` (1.3x) shows it, as rows for
describe's tabwriter (kpy.cli._printers.tabulate with padding 2).

Contracts:
- Pure: the budget is read, never mutated; events are the caller's,
  appended after these rows.
- `pdb_rows(pdb)`: Name, Namespace, then `Min available` when set, else
  `Max unavailable` when set (neither when the spec has neither), the
  Selector as metav1.FormatLabelSelector writes it (`<none>` for an empty
  one, `<error>` for one that does not parse, `<unset>` when missing), and
  Status with Allowed disruptions, Current, Desired and Total (healthy pods
  now, healthy pods needed, pods counted), indented as kubectl's LEVEL_2.
"""

from __future__ import annotations

from typing import Any

from kpy.api import labels
from kpy.cli._describe_pod import indent

__all__ = ["Rows", "pdb_rows"]

Rows = list[list[str]]
UNSET = "<unset>"


def pdb_rows(pdb: Any) -> Rows:
    """A budget's description up to its events (see the module docstring)."""
    spec, status = pdb.spec, pdb.status
    rows = [["Name:", pdb.metadata.name], ["Namespace:", pdb.metadata.namespace]]
    if spec.HasField("min_available"):
        rows.append(["Min available:", _int_or_string(spec.min_available)])
    elif spec.HasField("max_unavailable"):
        rows.append(["Max unavailable:", _int_or_string(spec.max_unavailable)])
    rows.append(
        ["Selector:", format_label_selector(spec.selector) if spec.HasField("selector") else UNSET]
    )
    rows.append(["Status:"])
    for label, value in (
        ("Allowed disruptions:", status.disruptions_allowed),
        ("Current:", status.current_healthy),
        ("Desired:", status.desired_healthy),
        ("Total:", status.expected_pods),
    ):
        rows.append([indent(2, label), str(value)])
    return rows


def format_label_selector(selector: Any) -> str:
    """metav1.FormatLabelSelector: the selector's text, `<none>` when it
    selects everything, `<error>` when it does not parse."""
    try:
        text = str(labels.selector_from_label_selector(selector))
    except ValueError:
        return "<error>"
    return text or "<none>"


def _int_or_string(value: Any) -> str:
    return str(value.str_val) if value.WhichOneof("value") == "str_val" else str(value.int_val)

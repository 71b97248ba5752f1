"""`kpyctl describe` of a custom kind's object: kubectl's generic describer.

Name, Namespace, Labels and Annotations as for every kind, then every other
field of the object's JSON, nested as key/values: keys in sorted order,
each written as kubectl's `smartLabelFor` writes it (`readyReplicas` ->
`Ready Replicas`, `apiVersion` -> `API Version`; a key with characters
other than letters and `-` as it is), two spaces per level, the items of
a list one after another below its key. metadata's name, namespace,
labels, annotations and managedFields are not repeated. The caller adds
the Events.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from kpy.cli import _describe_pod
from kpy.cli._columns import go_sprint

if TYPE_CHECKING:
    from kpy.api.unstructured import CustomObject

__all__ = ["custom_rows", "smart_label"]

Rows = list[list[str]]

_ACRONYMS = frozenset({"API", "URL", "UID", "OSB", "GUID"})
_SKIP = frozenset(
    {
        ".metadata.managedFields",
        ".metadata.name",
        ".metadata.namespace",
        ".metadata.labels",
        ".metadata.annotations",
    }
)
# Runs of one character class, as github.com/fatih/camelcase splits them.
_RUNS = re.compile(r"[a-z]+|[A-Z]+|[0-9]+|[^a-zA-Z0-9]+")


def custom_rows(obj: CustomObject) -> Rows:
    """The description of `obj` up to (not including) its events."""
    m = obj.metadata
    rows: Rows = [["Name:", m.name], ["Namespace:", m.namespace]]
    rows += _describe_pod.labels_rows("Labels:", dict(m.labels), "=")
    rows += _describe_pod.annotations_rows("Annotations:", dict(m.annotations))
    rows += _content(obj.to_object(), 0, "")
    return rows


def _content(content: dict[str, Any], level: int, prefix: str) -> Rows:
    rows: Rows = []
    for key in sorted(content):
        path = f"{prefix}.{key}"
        if path in _SKIP:
            continue
        value = content[key]
        label = "  " * level + smart_label(key) + ":"
        if isinstance(value, dict):
            rows.append([label])
            rows += _content(value, level + 1, path)
        elif isinstance(value, list):
            rows.append([label])
            for item in value:
                if isinstance(item, dict):
                    rows += _content(item, level + 1, path)
                else:
                    rows.append(["  " * (level + 1) + go_sprint(item)])
        else:
            rows.append([label, go_sprint(value)])
    return rows


def smart_label(field: str) -> str:
    """A JSON key as kubectl's describe labels it (see the module docstring)."""
    if any(not (c.isalpha() or c == "-") for c in field):
        return field
    parts: list[str] = []
    for run in _RUNS.findall(field):
        # an upper-case run before a lower-case one gives it its last
        # letter: "HTTPServer" is "HTTP" "Server"
        if parts and run[0].islower() and parts[-1].isupper() and len(parts[-1]) > 1:
            parts[-1], run = parts[-1][:-1], parts[-1][-1] + run
        elif parts and run[0].islower() and parts[-1].isupper():
            parts[-1], run = "", parts[-1] + run
        parts.append(run)
    words = []
    for part in parts:
        if not part or part == "_":
            continue
        words.append(part.upper() if part.upper() in _ACRONYMS else part[:1].upper() + part[1:])
    return " ".join(words)

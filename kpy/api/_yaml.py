"""Reading YAML manifests the way Kubernetes does, with positions kept.

Documents become plain Python values (dict, list, str, int, float, bool,
None) and, beside them, a map from each field path (`spec.containers[0]`)
to the line it starts on, so that a later error about a field can point at
the line a user must fix.

Differences from `yaml.safe_load`, all on purpose:
- a mapping that repeats a key is recorded in `Document.duplicates`, for
  the codec to refuse (Kubernetes' strict decoding refuses it too; a silent
  last-one-wins hides a user's mistake);
- timestamps stay strings (the codec parses the fields that are times);
- keys must be strings, ints or bools, as in JSON-compatible YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml


class YAMLError(ValueError):
    """A document that is not well-formed YAML, with its line."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        self.line = line
        super().__init__(message)


@dataclass(slots=True)
class Document:
    """One YAML document: its value, its 1-based index in the stream, and
    the line of every field path."""

    value: Any
    index: int
    line: int
    lines: dict[str, int] = field(default_factory=dict)
    duplicates: list[tuple[str, int]] = field(default_factory=list)
    """(path, line) of every key given twice in one mapping; the last wins."""

    def line_of(self, path: str) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return self.line


class _Loader(yaml.SafeLoader):
    """SafeLoader without the implicit timestamp type."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_documents(text: str) -> list[Document]:
    """Every non-empty document of a YAML (or JSON) stream, in order."""
    loader = _Loader(text)
    documents: list[Document] = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            index += 1
            if node is None:
                continue
            doc = Document(value=None, index=index, line=node.start_mark.line + 1)
            doc.value = _to_python(loader, node, "", doc)
            if doc.value is not None:
                documents.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise YAMLError(f"{problem} (the YAML is malformed here)", line=line) from None
    except yaml.YAMLError as exc:
        raise YAMLError(str(exc)) from None
    finally:
        loader.dispose()
    return documents


def _to_python(loader: _Loader, node: yaml.Node, path: str, doc: Document) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | bool) or key is None:
                raise YAMLError(
                    f"a mapping key must be a string, not {key!r}",
                    line=key_node.start_mark.line + 1,
                )
            child = f"{path}.{key}" if path else str(key)
            doc.lines.setdefault(child, key_node.start_mark.line + 1)
            if key in result:
                doc.duplicates.append((child, key_node.start_mark.line + 1))
            result[key] = _to_python(loader, value_node, child, doc)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(loader, item, f"{path}[{i}]", doc) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)

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
- keys must be strings, ints or bools, as in JSON-compatible YAML;
- a document nested deeper than `MAX_DEPTH` (see `kpy.api.limits`) is
  refused with its line, before the recursive composer can overflow the
  stack (a self-referencing anchor counts as infinitely deep);
- aliases are expanded, but only so far: a document whose aliases expand to
  more than `MAX_ALIAS_VALUES` values (a "billion laughs" bomb) is refused,
  as Kubernetes' YAML decoder refuses "excessive aliasing".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from kpy.api.limits import MAX_DEPTH, depth_message

MAX_ALIAS_VALUES: Final = 100_000
"""The most values that aliases may expand to in one document, beyond which
(or beyond ten per distinct node, whichever is more) it is refused."""


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
    """SafeLoader without the implicit timestamp type, refusing documents
    nested deeper than MAX_DEPTH while composing them."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        nests = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        if not nests:
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
                mark = event.start_mark
                raise YAMLError(depth_message(), line=None if mark is None else mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


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
            doc.value = _Converter(loader, doc).convert(node, "", 1, aliased=False)
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


class _Converter:
    """Turns one document's node graph into Python values, recording lines
    and duplicates in `doc`. The graph may share nodes (aliases) or even
    contain itself (an anchor used inside its own node): depth and alias
    expansion are bounded, so neither recurses without end."""

    def __init__(self, loader: _Loader, doc: Document) -> None:
        self.loader = loader
        self.doc = doc
        self.seen: set[int] = set()
        self.expanded = 0  # values built from a node met before (through an alias)

    def convert(self, node: yaml.Node, path: str, depth: int, *, aliased: bool) -> Any:
        aliased = aliased or id(node) in self.seen
        self.seen.add(id(node))
        if aliased:
            self.expanded += 1
            if self.expanded > max(MAX_ALIAS_VALUES, 10 * len(self.seen)):
                raise YAMLError(
                    f"the document's aliases expand to more than {self.expanded - 1} values "
                    "(excessive aliasing); write the repeated parts out, or use fewer aliases",
                    line=node.start_mark.line + 1,
                )
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and depth > MAX_DEPTH:
            raise YAMLError(depth_message(), line=node.start_mark.line + 1)
        doc = self.doc
        doc.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._key(key_node)
                child = f"{path}.{key}" if path else str(key)
                doc.lines.setdefault(child, key_node.start_mark.line + 1)
                if key in result:
                    doc.duplicates.append((child, key_node.start_mark.line + 1))
                result[key] = self.convert(value_node, child, depth + 1, aliased=aliased)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [
                self.convert(item, f"{path}[{i}]", depth + 1, aliased=aliased)
                for i, item in enumerate(node.value)
            ]
        return _joined_surrogates(self.loader.construct_object(node, deep=True))

    def _key(self, node: yaml.Node) -> str | int | bool:
        if not isinstance(node, yaml.ScalarNode):
            raise YAMLError(
                "a mapping key must be a string, not a mapping or a list",
                line=node.start_mark.line + 1,
            )
        key = _joined_surrogates(self.loader.construct_object(node, deep=True))
        if not isinstance(key, str | int | bool) or key is None:
            raise YAMLError(
                f"a mapping key must be a string, not {key!r}", line=node.start_mark.line + 1
            )
        return key


def _joined_surrogates(value: Any) -> Any:
    """A string whose escapes spelled a character as a UTF-16 surrogate pair
    ("\\ud83d\\ude00", as JSON writes it) joined into that character, as a
    JSON parser does; YAML leaves the halves apart. A lone half stays (the
    codec refuses it, naming its field)."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return value.encode("utf-16", "surrogatepass").decode("utf-16")
        except UnicodeDecodeError:
            return value
    return value

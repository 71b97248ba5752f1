"""Reading the manifests named by `-f`: files, directories and stdin, with
the size of what is read bounded before anything is decoded.

A manifest is text from the user, and YAML can make a small text very large
once read: aliases (`*name`) repeat a whole anchored subtree, so ten lines of
nested aliases expand to a billion nodes, and deep nesting exhausts Python's
stack. `check_bounds` walks the YAML's event stream (no objects are built,
no recursion, so any depth is safe to scan), counting what a loader would
build with every alias expanded, and refuses before the loader runs:

- a document longer than `Limits.document_bytes` (3 MiB, the API server's
  request limit: a longer object could never be stored);
- nesting deeper than `Limits.depth` levels (the codec's own bound,
  `kpy.api.limits.MAX_DEPTH`: no Kubernetes object comes near it);
- a document that expands to more than `Limits.nodes` nodes, counted with
  every alias expanded (this is what stops an alias bomb at once: the count
  of the expansion is known without building it);
- an alias to a collection that is still open (a recursive structure, which
  no manifest can mean).

Each refusal is a `UsageError` naming the file, the line and what to do.
Malformed YAML is left to the codec, which reports it with its line.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kpy.api import codec
from kpy.api.limits import MAX_DEPTH, depth_message

if TYPE_CHECKING:
    from collections.abc import Iterable

    from google.protobuf.message import Message

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

# libyaml's parser when present (fast); the pure Python one otherwise.
_EVENT_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UsageError(Exception):
    """A command-line problem; the message says what to do instead."""


@dataclass(frozen=True, slots=True)
class Limits:
    """How large one manifest may be once read; see the module docstring."""

    document_bytes: int = 3 * 1024 * 1024
    depth: int = MAX_DEPTH
    nodes: int = 250_000
    file_bytes: int = 64 * 1024 * 1024


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Source:
    """The text of one manifest file and the name to show in messages."""

    name: str
    text: str


def read_sources(
    paths: list[str], *, recursive: bool = False, limits: Limits = DEFAULT_LIMITS
) -> list[Source]:
    """The manifests behind each `-f` argument, in order: a file as is, a
    directory's .yaml/.yml/.json files sorted by name (its subdirectories
    too with `recursive`), `-` for standard input. Every source is checked
    with `check_bounds`."""
    if not paths:
        raise UsageError("must specify -f FILENAME (a file, a directory, or - for stdin)")
    sources: list[Source] = []
    for arg in paths:
        if arg == "-":
            text = sys.stdin.read(limits.file_bytes + 1)
            sources.append(_checked(Source("<stdin>", text), limits))
            continue
        path = Path(arg)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(
                p for p in path.glob(pattern) if p.is_file() and p.suffix in MANIFEST_SUFFIXES
            )
            if not files:
                raise UsageError(f'no .yaml, .yml or .json files in directory "{arg}"')
            sources.extend(read_file(p, limits=limits) for p in files)
        elif path.exists():
            sources.append(read_file(path, limits=limits))
        else:
            raise UsageError(f'the path "{arg}" does not exist')
    return sources


def read_file(path: Path, *, limits: Limits = DEFAULT_LIMITS) -> Source:
    """One file's text, checked with `check_bounds`."""
    try:
        with path.open(encoding="utf-8") as f:
            text = f.read(limits.file_bytes + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f'cannot read "{path}": {exc}') from None
    return _checked(Source(str(path), text), limits)


def _checked(source: Source, limits: Limits) -> Source:
    check_bounds(source, limits)
    return source


def load_objects(sources: Iterable[Source], *, verb: str) -> list[Message]:
    """Every object of every source, decoded strictly. `codec.ManifestError`
    lists the problems; UsageError `no objects passed to VERB` (kubectl's
    words) when the sources hold no object at all."""
    objects = [o for s in sources for o in codec.load_manifest(s.text, source=s.name)]
    if not objects:
        raise UsageError(f"no objects passed to {verb}")
    return objects


# -- bounds ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Open:
    """A collection being read: its anchor and its expanded node count so far."""

    anchor: str | None
    nodes: int = 1


@dataclass(slots=True)
class _Scan:
    source: Source
    limits: Limits
    stack: list[_Open] = field(default_factory=list)
    anchors: dict[str, int] = field(default_factory=dict)
    nodes: int = 0
    start: int = 0

    def where(self, event: Any) -> str:
        return f"{self.source.name} (line {event.start_mark.line + 1})"

    def refuse(self, event: Any, what: str, advice: str) -> UsageError:
        return UsageError(f"{self.where(event)}: {what}; {advice}")

    def add(self, event: Any, count: int) -> None:
        """Counts a node that expands to `count` nodes."""
        self.nodes += count
        if self.stack:
            self.stack[-1].nodes += count
        if self.nodes > self.limits.nodes:
            raise self.refuse(
                event,
                f"the document expands to more than {self.limits.nodes} YAML nodes"
                + (" through its aliases (*name)" if self.anchors else ""),
                "kpyctl refuses it to bound the memory it uses; write the repeated "
                "parts out or split the document",
            )

    def visit(self, event: Any) -> None:  # a yaml.Event; the parser marks every one
        if event.end_mark.index - self.start > self.limits.document_bytes:
            raise self.refuse(
                event,
                f"the document is longer than {self.limits.document_bytes} bytes, more "
                "than the API server accepts for one object",
                "move bulk data out of the object or split it into several",
            )
        if isinstance(event, yaml.DocumentStartEvent):
            self.anchors.clear()
            self.nodes = 0
            mark: Any = event.start_mark
            self.start = mark.index
        elif isinstance(event, yaml.ScalarEvent):
            self.add(event, 1)
            if event.anchor:
                self.anchors[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            self.alias(event)
        elif isinstance(event, yaml.CollectionStartEvent):
            self.stack.append(_Open(event.anchor))
            self.add(event, 1)
            self.stack[-1].nodes = 1  # add() counted the node in its own frame too
            if len(self.stack) > self.limits.depth:
                raise UsageError(f"{self.where(event)}: {depth_message(self.limits.depth)}")
        elif isinstance(event, yaml.CollectionEndEvent):
            done = self.stack.pop()
            if self.stack:
                self.stack[-1].nodes += done.nodes
            if done.anchor:
                self.anchors[done.anchor] = done.nodes

    def alias(self, event: Any) -> None:
        if any(o.anchor == event.anchor for o in self.stack):
            raise self.refuse(
                event,
                f"the alias *{event.anchor} refers to a collection that contains it "
                "(a recursive structure)",
                "no manifest can mean that; write the value out",
            )
        # An unknown anchor is the codec's to report, with its line.
        self.add(event, self.anchors.get(event.anchor, 1))


def check_bounds(source: Source, limits: Limits = DEFAULT_LIMITS) -> None:
    """UsageError, naming the file and line, when `source` is larger than
    `limits` once read (see the module docstring); None when it fits or is
    malformed (the codec reports that)."""
    if len(source.text) > limits.file_bytes:
        raise UsageError(
            f"{source.name}: the file is larger than {limits.file_bytes} bytes; "
            "split it into several files"
        )
    scan = _Scan(source, limits)
    try:
        for event in yaml.parse(source.text, Loader=_EVENT_LOADER):
            scan.visit(event)
    except yaml.YAMLError:
        return

"""Writes kpy/api/_descriptions.json: the comments of proto/kpy/api's
messages and fields, which `kpyctl explain` prints for built-in kinds.

The generated Python code keeps no comments, so `make proto` runs this
beside protoc and `make proto-check` fails when the committed file has
drifted from the .proto files. protoc itself reads the comments (a
descriptor set with source info): no hand-written .proto parsing.

Output: `{"kpy.api.apps.v1.DeploymentSpec": {"": "the message's comment",
"replicas": "the field's comment"}, ...}`, keyed by the message's full
name and the field's proto name; messages and fields without a comment are
left out. Keys are sorted, so the file only changes when a comment does.

Usage: python tools/proto_descriptions.py [--check]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
OUTPUT = ROOT / "kpy" / "api" / "_descriptions.json"

_MESSAGE = 4  # FileDescriptorProto.message_type
_FIELD = 2  # DescriptorProto.field
_NESTED = 3  # DescriptorProto.nested_type


def _comment(text: str) -> str:
    """A comment's lines joined into paragraphs (a blank line between)."""
    paragraphs: list[list[str]] = [[]]
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join(" ".join(p) for p in paragraphs if p)


def _file_set(protos: list[Path]) -> descriptor_pb2.FileDescriptorSet:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        args = [
            "protoc",
            f"-I{PROTO}",
            f"-I{Path(protoc.__file__).parent / '_proto'}",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *(str(p.relative_to(PROTO)) for p in protos),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed on proto/kpy/api")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def descriptions() -> dict[str, dict[str, str]]:
    """Every commented message and field of proto/kpy/api."""
    protos = sorted((PROTO / "kpy" / "api").rglob("*.proto"))
    found: dict[str, dict[str, str]] = {}
    for f in _file_set(protos).file:
        comments = {
            tuple(loc.path): _comment(loc.leading_comments)
            for loc in f.source_code_info.location
            if loc.leading_comments.strip()
        }
        for i, message in enumerate(f.message_type):
            _visit(message, f.package, (_MESSAGE, i), comments, found)
    return dict(sorted(found.items()))


def _visit(
    message: descriptor_pb2.DescriptorProto,
    prefix: str,
    path: tuple[int, ...],
    comments: dict[tuple[int, ...], str],
    found: dict[str, dict[str, str]],
) -> None:
    name = f"{prefix}.{message.name}"
    entry: dict[str, str] = {}
    if path in comments:
        entry[""] = comments[path]
    for i, field in enumerate(message.field):
        text = comments.get((*path, _FIELD, i))
        if text:
            entry[field.name] = text
    if entry:
        found[name] = entry
    for j, nested in enumerate(message.nested_type):
        _visit(nested, name, (*path, _NESTED, j), comments, found)


def render() -> str:
    return json.dumps(descriptions(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} differs from proto/: run 'make proto'")
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`kpyctl edit TYPE NAME | TYPE/NAME`: kubectl's edit. The live object
opens in the user's editor ($KPY_EDITOR, $KUBE_EDITOR or $EDITOR) as YAML;
what is saved goes back as one merge patch of the differences, so a
concurrent writer's other fields are never lost.

A refusal the user can fix (invalid, conflict, a changed apiVersion, kind
or name) opens the file again with the reasons on top, as kubectl does;
an empty or unchanged file edits nothing, and when the user gives up on a
rejected edit the file is kept and named (`A copy of your changes has been
stored to "..."`). The editor loop itself is _editor.py's. Prints kubectl's
`pod/web edited`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from kpy.api import codec, errors
from kpy.cli import _client, _editor

if TYPE_CHECKING:
    import argparse

    from kpy.client import Client

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "edit", help="edit a resource in your editor ($KPY_EDITOR, $KUBE_EDITOR or $EDITOR)"
    )
    p.add_argument("target", nargs="+", metavar="TYPE NAME | TYPE/NAME")
    _client.add_flags(p)
    p.set_defaults(run=lambda args: _client.run(args, _edit))


# Refusals the user can fix in the editor, so the file is opened again.
_FIXABLE = (errors.Invalid, errors.BadRequest, errors.Conflict, errors.Forbidden)


async def _edit(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    await _client.discover(client, _client.type_words(args.target[:1]))
    info, name = _client.one_target(args.target)
    ns = _client.namespace_of(client, args) if info.namespaced else None
    kind: Any = info.message
    original = codec.encode_object(await client.get(kind, name, namespace=ns))
    resource = f"{info.plural}.{info.group}" if info.group else info.plural
    title = f'{resource} "{name}" was not valid:'
    command = _editor.editor_command()
    path = _editor.temporary_file()

    async def save(value: dict[str, Any], text: str) -> None:
        if _identity(value) != _identity(original):
            raise _editor.EditRejected(
                title, ["At least one of apiVersion, kind and name was changed"]
            )
        try:
            codec.load_manifest(text, source=str(path))
        except codec.ManifestError as e:
            raise _editor.EditRejected(title, [_problem(p) for p in e.problems]) from None
        patch = _editor.merge_diff(original, value)
        try:
            await client.patch(kind, name, patch, namespace=ns, patch_type="merge")
        except _FIXABLE as e:
            causes = getattr(e, "causes", None)
            raise _editor.EditRejected(
                title, [str(c) for c in causes] if causes else [e.message]
            ) from None

    keep = False
    try:
        outcome = await _editor.edit_loop(
            original,
            edit=lambda text: _editor.run_editor(text, path, command),
            save=save,
            name=str(path),
        )
        if outcome.saved:
            out.write(f"{_client.ref(info, name)} edited\n")
            return 0
        if outcome.code:
            keep = True
            err.write(f'A copy of your changes has been stored to "{path}"\n')
        err.write(outcome.message + "\n")
        return outcome.code
    finally:
        if not keep:
            path.unlink(missing_ok=True)


def _identity(obj: dict[str, Any]) -> tuple[Any, Any, Any]:
    meta = obj.get("metadata")
    return (
        obj.get("apiVersion"),
        obj.get("kind"),
        meta.get("name") if isinstance(meta, dict) else None,
    )


def _problem(problem: codec.DecodeProblem) -> str:
    where = f"line {problem.line}: " if problem.line is not None else ""
    return f"{where}{problem.error}"

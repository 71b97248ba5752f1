"""`kpyctl create token`: kubectl's create token, a ServiceAccount's token
through the TokenRequest API (`serviceaccounts/NAME/token`).

    kpyctl create token SA [-n NS] [--audience A]... [--duration 1h]
                          [--bound-object-kind Pod|Secret --bound-object-name N
                           [--bound-object-uid UID]]

Prints the token alone on a line, as kubectl does, so that
`TOKEN=$(kpyctl create token build-robot)` works. `--duration` is a Go
duration (`10m`, `1h`, `1h30m`, `600s`; 0 or unset: the server's default,
an hour); the server refuses less than 10 minutes and shortens more than
48 hours. A bound object's uid, when not given, is the object's current
one (the server fills it in); the token then stops working when that
object goes. Errors are kubectl's.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Final, TextIO

from kpy.api.authentication.v1 import TokenRequest
from kpy.cli import _client
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    from kpy.client import Client

__all__ = ["add_parser", "parse_duration", "token_request"]

_BOUND_KINDS: Final = ("Pod", "Secret")
_UNITS: Final = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")


def add_parser(what: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `token` to `kpyctl create`'s subcommands."""
    p = what.add_parser(
        "token",
        help="request a service account token",
        usage="kpyctl create token SERVICE_ACCOUNT_NAME [--audience=A]... [--duration=1h] "
        "[--bound-object-kind=Pod|Secret --bound-object-name=NAME]",
    )
    p.add_argument("name", metavar="SERVICE_ACCOUNT_NAME")
    p.add_argument(
        "--audience",
        action="append",
        default=[],
        help="an audience of the token (repeatable; default: the API server's)",
    )
    p.add_argument(
        "--duration",
        default="0s",
        help="how long the token is valid (10m, 1h, ...); 0: the server's default",
    )
    p.add_argument("--bound-object-kind", default="", help="Pod or Secret: bind the token to it")
    p.add_argument("--bound-object-name", default="", help="the name of the object to bind to")
    p.add_argument(
        "--bound-object-uid", default="", help="its uid (default: the object's current uid)"
    )
    # `create -n NS token ...` sets these on the parent parser: without a
    # default here the subcommand does not overwrite them.
    p.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="the namespace")
    p.add_argument("--server", default=argparse.SUPPRESS, help="comma-separated API servers")
    p.set_defaults(run=lambda args: _client.run(args, _run))


def parse_duration(text: str) -> int:
    """Whole seconds of a Go duration (`1h30m`, `600s`, `0`); UsageError in
    kubectl's words otherwise."""
    text = text.strip()
    if text in ("0", ""):
        return 0
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise UsageError(f'invalid argument "{text}" for "--duration" flag: invalid duration')
    if total != int(total):
        raise UsageError("--duration must be a whole number of seconds")
    return int(total)


def token_request(args: argparse.Namespace) -> TokenRequest:
    """The TokenRequest the flags ask for; UsageError in kubectl's words."""
    kind, name, uid = args.bound_object_kind, args.bound_object_name, args.bound_object_uid
    if not kind and (name or uid):
        flag = "--bound-object-name" if name else "--bound-object-uid"
        raise UsageError(f"{flag} can only be set if --bound-object-kind is provided")
    if kind and kind not in _BOUND_KINDS:
        raise UsageError(
            f"supported --bound-object-kind values are {', '.join(_BOUND_KINDS)}, got {kind!r}"
        )
    if kind and not name:
        raise UsageError("--bound-object-name is required if --bound-object-kind is provided")
    request = TokenRequest()
    request.spec.audiences.extend(a for a in args.audience if a)
    seconds = parse_duration(args.duration)
    if seconds:
        request.spec.expiration_seconds = seconds
    if kind:
        ref = request.spec.bound_object_ref
        ref.kind, ref.api_version, ref.name = kind, "v1", name
        if uid:
            ref.uid = uid
    return request


async def _run(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    request = token_request(args)
    answer = await client.create_token(_client.namespace_of(client, args), args.name, request)
    out.write(answer.status.token + "\n")
    return 0

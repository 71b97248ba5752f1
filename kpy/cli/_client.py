"""What every kpyctl verb that talks to a cluster shares: the connection
flags, the client, and kubectl's way of reporting errors.

- `add_flags(p)` adds `-n/--namespace`, `-A/--all-namespaces` (when asked),
  `--server` (comma-separated API servers; default: ~/.kpy/config or
  KPY_CONFIG, else 127.0.0.1:6443), and kubectl's `--certificate-authority`,
  `--client-certificate`, `--client-key` and `--token`, which win over the
  config's fields of the same names.
- `run(args, verb)` loads the configuration, opens a `Client`, runs
  `verb(client, args, out, err)` and turns errors into kubectl's output and
  exit codes: `Error from server (NotFound): pods "x" not found` and exit 1;
  a configuration or usage problem is exit 1 with what to do. Which part is
  down is told apart: an API server that cannot be reached says which
  address and how to start one; an API server that answers that its
  storage (etcd) is unavailable says that etcd is down, not the server.
  A reader that goes away (`kpyctl get pods -o yaml | head`) ends the verb
  quietly, exit 0, as kubectl does.
- `discover(client, words)` / `discover_kinds(client, pairs)`: when a
  resource name (or a manifest's apiVersion/kind) is not a kind kpy is
  built with, the server's discovery (the `Resources` rpc) is asked once,
  and every custom kind it serves is registered in the process's scheme
  (`kpy.api.unstructured.custom_kind`), so `resolve`, the codec and the
  printers then know it as they know a built-in kind.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any, TextIO

import anyio
import grpc.aio
import yaml

from kpy.api import codec, errors
from kpy.api.scheme import scheme
from kpy.api.unstructured import is_custom
from kpy.cli._manifests import UsageError
from kpy.cli._streams import reader_gone
from kpy.client import Client
from kpy.client.client import TLSHandshakeFailed
from kpy.client.config import ConfigError, TLSCredentials, load_config
from kpy.client.discovery import register_served
from kpy.rpc import status

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable, Iterable

    from kpy.api.scheme import ResourceInfo
    from kpy.client import ClientConfig

__all__ = [
    "add_flags",
    "answered_by_server",
    "discover",
    "discover_kinds",
    "get_named",
    "in_category",
    "manifest_kinds",
    "namespace_of",
    "one_target",
    "ref",
    "register_served",
    "resolve",
    "run",
    "server_error_message",
    "storage_down",
    "unauthorized_message",
    "unavailable_message",
]


def add_flags(p: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    p.add_argument("-n", "--namespace", default=None, help="the namespace (default: the config's)")
    if all_namespaces:
        p.add_argument(
            "-A", "--all-namespaces", action="store_true", help="list across all namespaces"
        )
    p.add_argument(
        "--server",
        default=None,
        help="comma-separated API servers host:port (default: ~/.kpy/config, else 127.0.0.1:6443)",
    )
    p.add_argument(
        "--certificate-authority", metavar="FILE", help="the cluster CA's PEM file: speak TLS"
    )
    p.add_argument("--client-certificate", metavar="FILE", help="a PEM client certificate")
    p.add_argument("--client-key", metavar="FILE", help="the PEM key of --client-certificate")
    p.add_argument("--token", default=None, help="a bearer token (sent only over TLS)")


def resolve(word: str) -> ResourceInfo:
    """The kind a user means by `pods`, `po`, `deploy`, `deployments.apps`;
    UsageError in kubectl's words when it is unknown."""
    try:
        return scheme.resolve(word)
    except KeyError as e:
        # what else kubectl accepts: a kind by its name (`WebApp`) when the
        # CRD's singular is not its lower case, and `singular.group` or
        # `shortname.group` (`webapp.example.com`)
        name, _, group = word.lower().partition(".")
        for info in scheme.all():
            names = {info.kind.lower(), info.singular, *info.short_names}
            if (not group and info.kind.lower() == name) or (
                group and info.group == group and name in names
            ):
                return info
        raise UsageError(str(e.args[0])) from None


def _known(word: str) -> bool:
    try:
        scheme.resolve(word)
    except KeyError:
        return False
    return True


def type_words(words: Iterable[str]) -> list[str]:
    """The resource names in `TYPE`, `TYPE,TYPE` and `TYPE/NAME` words
    (categories such as `all` included: custom kinds may be in them)."""
    return [t for w in words for t in w.partition("/")[0].split(",") if t]


def in_category(category: str) -> list[ResourceInfo]:
    """The custom kinds (one version each, the preferred) whose CRDs put
    them in `category` (`all`, or a name of the CRD's `categories`)."""
    found: dict[tuple[str, str], ResourceInfo] = {}
    for info in scheme.all():
        if is_custom(info.message) and category in info.categories:
            found.setdefault((info.group, info.kind), info)
    return list(found.values())


async def discover(client: Client, words: Iterable[str]) -> None:
    """Makes every resource name in `words` (as typed: `webapps`, `wa`,
    `webapps.example.com`, `WebApp`) resolvable: if any is not a kind this
    process knows, the server's custom kinds are registered. Names still
    unknown afterwards are left for `resolve` to refuse in kubectl's words."""
    if all(_known(w) for w in words):
        return
    register_served(await client.resources())


async def discover_kinds(client: Client, pairs: Iterable[tuple[str, str]]) -> None:
    """As `discover`, for manifests' (apiVersion, kind) pairs: the codec can
    decode a custom kind's manifest only once the kind is registered."""
    if all(scheme.lookup(api_version, kind) is not None for api_version, kind in pairs):
        return
    register_served(await client.resources())


def manifest_kinds(texts: Iterable[str]) -> list[tuple[str, str]]:
    """The (apiVersion, kind) of each object in these manifests (items of a
    `List` too), read loosely: a document that does not parse is skipped,
    the codec reports it when it decodes the manifest."""
    found: list[tuple[str, str]] = []
    for text in texts:
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            continue
        for doc in documents:
            is_list = isinstance(doc, dict) and doc.get("kind") == "List"
            items = doc.get("items") if is_list else [doc]
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict):
                    found.append((str(item.get("apiVersion", "")), str(item.get("kind", ""))))
    return found


async def get_named(
    client: Client, info: ResourceInfo, names: list[str], namespace: str | None, err: TextIO
) -> tuple[list[Any], int]:
    """The named objects that exist, and exit code 1 if any did not (each
    missing one reported as kubectl does)."""
    found: list[Any] = []
    code = 0
    kind: Any = info.message
    for name in names:
        try:
            found.append(await client.get(kind, name, namespace=namespace))
        except errors.NotFound as e:
            err.write(f"Error from server (NotFound): {e.message}\n")
            code = 1
    return found, code


def namespace_of(client: Client, args: argparse.Namespace) -> str:
    ns: str = args.namespace or client.namespace
    return ns


def run(
    args: argparse.Namespace,
    verb: Callable[[Client, argparse.Namespace, TextIO, TextIO], Awaitable[int]],
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    servers = [s.strip() for s in args.server.split(",") if s.strip()] if args.server else None
    try:
        config = load_config(servers=servers) if servers else load_config()
        config = with_credential_flags(config, args)
    except ConfigError as e:
        err.write(f"error: {e}\n")
        return 1

    async def main() -> int:
        async with Client(config, retry_timeout=5.0) as client:
            return await verb(client, args, out, err)

    try:
        return anyio.run(main)
    except UsageError as e:
        err.write(f"error: {e}\n")
        return 1
    except codec.ManifestError as e:  # a file's problem, found here, not the server's
        for problem in e.problems:
            err.write(f"error: {problem}\n")
        return 1
    except TLSHandshakeFailed as e:
        err.write(f"error: {e}\n")
        return 1
    except errors.Unauthorized:
        err.write(unauthorized_message(config))
        return 1
    except errors.Unavailable as e:
        err.write(unavailable_message(e, ", ".join(config.servers)))
        return 1
    except errors.StatusError as e:
        err.write(server_error_message(e, ", ".join(config.servers)))
        return 1
    except BrokenPipeError:  # whoever read our output stopped (`| head`): not an error
        return reader_gone()


def answered_by_server(e: errors.StatusError) -> bool:
    """Whether an API server sent `e` (the failed call carried its Status),
    rather than the transport failing to reach one."""
    cause = e.__context__
    if not isinstance(cause, grpc.aio.AioRpcError):
        return False
    return any(key == status.STATUS_KEY for key, _ in cause.trailing_metadata() or ())


# What the API server's storage layer says when etcd is down or slow
# (kpy.storage's error texts); a message with one of them means the API
# server answered and its storage is the part that is down.
_STORAGE_DOWN = ("etcd is unavailable", "cannot connect to etcd", "etcd did not answer")


def with_credential_flags(config: ClientConfig, args: argparse.Namespace) -> ClientConfig:
    """`config` with the TLS and credential flags given in `args` (kubectl's
    --certificate-authority, --client-certificate, --client-key, --token)
    in place of its own; ConfigError as the config file's fields would."""
    ca = getattr(args, "certificate_authority", None)
    cert = getattr(args, "client_certificate", None)
    key = getattr(args, "client_key", None)
    token = getattr(args, "token", None)
    if (cert is None) != (key is None):
        raise ConfigError("--client-certificate and --client-key go together: give both")
    tls = config.tls
    if ca:
        authority = TLSCredentials.from_files(ca)
        if tls is not None:
            authority = dataclasses.replace(
                tls, ca_pem=authority.ca_pem, ca_source=authority.ca_source
            )
        tls = authority
    if cert and key:
        if tls is None:
            raise ConfigError(
                "--client-certificate needs --certificate-authority (or certificate-authority "
                "in the kpy config): a client certificate is presented only over TLS"
            )
        tls = tls.with_client(cert, key)
    if token is not None and tls is None:
        raise ConfigError(
            "--token is sent only over TLS: give --certificate-authority too (or "
            "certificate-authority in the kpy config)"
        )
    if token is None:
        return dataclasses.replace(config, tls=tls)
    return dataclasses.replace(config, tls=tls, token=token, token_file="")


def unauthorized_message(config: ClientConfig) -> str:
    """kubectl's words for a 401, and which credentials to check."""
    source = config.source or "the kpy config"
    if config.tls is not None and (config.tls.cert_pem is not None or config.token):
        hint = (
            f"The API server accepts neither the client certificate nor the token of {source}: "
            "check client-certificate and client-key, or token."
        )
    else:
        hint = (
            f"{source} holds no credentials: set client-certificate and client-key, or token "
            "(with certificate-authority: they are sent only over TLS)."
        )
    return f"error: You must be logged in to the server (Unauthorized)\n{hint}\n"


def unavailable_message(e: errors.Unavailable, where: str) -> str:
    """What to tell the user about an Unavailable error, naming the part
    that is down and what to do next."""
    if not answered_by_server(e):
        return (
            f"error: cannot reach the API server at {where}: {e}\n"
            "Is the cluster running? Start one with 'kpy up', or point --server "
            "(or ~/.kpy/config) at a running kpy-apiserver.\n"
        )
    return server_error_message(e, where)


def storage_down(e: errors.StatusError) -> bool:
    """Whether `e` says the API server's storage (etcd) is down: no use
    sending more requests until it is back."""
    return any(words in e.message for words in _STORAGE_DOWN)


def server_error_message(e: errors.StatusError, where: str) -> str:
    """kubectl's `Error from server (Reason): message`, and when the message
    says the API server's storage (etcd) is down, a line saying so and what
    to do (whatever the error's class: a write whose answer was lost to it
    comes back as a Timeout)."""
    text = f"Error from server ({e.reason}): {e.message}\n"
    if storage_down(e):
        text += (
            f"The API server at {where} is up, but its storage (etcd) is unavailable: "
            "start etcd again ('kpy status' shows which processes of a local cluster run), "
            "then retry.\n"
        )
    return text


def ref(info: ResourceInfo, name: str) -> str:
    """kubectl's name of an object in messages: `deployment.apps/web`."""
    group = f".{info.group}" if info.group else ""
    return f"{info.singular}{group}/{name}"


def one_target(words: list[str]) -> tuple[ResourceInfo, str]:
    """The object named by `TYPE/NAME` or `TYPE NAME`; UsageError otherwise."""
    if len(words) == 1 and "/" in words[0]:
        kind, _, name = words[0].partition("/")
        if kind and name:
            return resolve(kind), name
    if len(words) == 2 and "/" not in words[0]:
        return resolve(words[0]), words[1]
    shown = " ".join(words) or "nothing"
    raise UsageError(f"name one object as TYPE/NAME or TYPE NAME, e.g. pod/web (got {shown})")


def object_target(words: list[str]) -> tuple[ResourceInfo, str]:
    """`TYPE/NAME` or `TYPE NAME` → (the kind, the name), for `rollout` and
    `scale`; UsageError otherwise. (`one_target` with those verbs' wording.)"""
    if len(words) == 1 and "/" in words[0]:
        kind, _, name = words[0].partition("/")
    elif len(words) == 2:
        kind, name = words
    else:
        raise UsageError("name the object as TYPE/NAME or TYPE NAME, e.g. deployment/web")
    info = resolve(kind)
    if not name:
        raise UsageError(f"give the name of the {kind}, as {kind}/NAME")
    return info, name


def slash_target(target: str) -> tuple[ResourceInfo, str]:
    """`TYPE/NAME` → (the kind, the name), for `label`, `annotate` and
    `set image`; UsageError naming what was given otherwise."""
    kind, _, name = target.partition("/")
    if not name:
        raise UsageError(f"name the object as TYPE/NAME, e.g. pod/web (got {target!r})")
    return resolve(kind), name


def resolve_type(spec: str, names: list[str]) -> tuple[ResourceInfo, list[str]]:
    """The resource and names of `TYPE NAME...` or `TYPE/NAME`; UsageError
    (kubectl's wording) when the type is unknown."""
    if "/" in spec:
        spec, name = spec.split("/", 1)
        names = [name, *names]
    return resolve(spec), names

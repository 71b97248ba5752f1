"""`kpyctl get TYPE[,TYPE...] [NAME...]`: kubectl's get, with its columns,
flags, wording and exit codes.

- TYPE is anything `scheme.resolve` knows (`pods`, `po`, `deploy`,
  `deployments.apps`), several joined by commas (`deploy,po`), or `all`
  (kubectl's `all` category: pods, replication controllers, services,
  daemon sets, deployments, replica sets, stateful sets, HPAs, cron jobs,
  jobs, and the custom kinds whose CRDs list `all` in their `categories`;
  a CRD's other categories name their kinds the same way). `TYPE/NAME`
  works too, several of them of any types. An unknown
  type is `error: the server doesn't have a resource type "xyz"`, exit 1.
- Without NAME it lists (`-l`, `--field-selector`, `-n`, `-A`). With NAMEs
  each is read; a missing one is `Error from server (NotFound): pods "x"
  not found` on stderr, the others are still printed, and the exit code
  is 1.
- Tables (default and `-o wide`): one per type that has objects, separated
  by a blank line (not with `--no-headers`); when more than one type was
  asked (or `--show-kind`) names are written `KIND[.GROUP]/NAME`.
  `--show-labels` adds LABELS, `-L k1,k2` a column per label key,
  `--no-headers` drops the header line, `--sort-by` orders rows by a
  JSONPath. Nothing found prints `No resources found in NS
  namespace.` (or `No resources found`) on stderr and exits 0.
- `-o yaml|json` print the manifest form (one object when one NAME was
  asked, else a `List`), which `kpy.api.codec.load_manifest` reads back;
  `-o jsonpath=TEMPLATE` (or `jsonpath-file=`, or `-o jsonpath
  --template=...`) renders that same object or List through
  kpy.cli._jsonpath; `-o custom-columns=H:PATH,...` (or
  `custom-columns-file=`) prints one column per path; `-o name` prints
  `KIND[.GROUP]/NAME`. These print nothing on stderr when nothing is found.
- `-w` (one type only) prints the table, then one line per change from a
  watch that starts at the list's resourceVersion, until interrupted.
- Custom kinds (a CRD's): TYPE is resolved through the server's discovery
  (kpy.cli._client.discover), and the table's columns are the served
  version's `additionalPrinterColumns`, read from the CRD
  (kpy.cli._columns.crd_printer).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from kpy.api import codec, errors
from kpy.api.apiextensions.v1 import CustomResourceDefinition
from kpy.api.unstructured import is_custom
from kpy.cli import _client, _columns, _jsonpath, _printers
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    import argparse

    from google.protobuf.message import Message

    from kpy.api.scheme import ResourceInfo
    from kpy.client import Client

__all__ = ["ALL_CATEGORY", "Output", "add_parser", "name_of", "parse_output", "run"]

ALL_CATEGORY = (
    *("pods", "replicationcontrollers", "services"),
    *("daemonsets.apps", "deployments.apps", "replicasets.apps", "statefulsets.apps"),
    *("horizontalpodautoscalers.autoscaling", "cronjobs.batch", "jobs.batch"),
)
"""kubectl's `all` category, in the order kubectl prints it."""

FORMATS = (
    "custom-columns",
    "custom-columns-file",
    "json",
    "jsonpath",
    "jsonpath-file",
    "name",
    "wide",
    "yaml",
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("get", help="display one or many resources")
    p.add_argument(
        "type", metavar="TYPE[,TYPE][/NAME]", help="pods, deploy,svc, all, ... or TYPE/NAME"
    )
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument(
        "-o",
        "--output",
        default="",
        metavar="FORMAT",
        help="wide, yaml, json, name, jsonpath=TEMPLATE, jsonpath-file=FILE, "
        "custom-columns=HEADER:PATH,..., custom-columns-file=FILE",
    )
    p.add_argument("--template", default="", help="the template of -o jsonpath")
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web,tier!=db")
    p.add_argument("--field-selector", default="", help="field selector, e.g. spec.nodeName=n1")
    p.add_argument("-w", "--watch", action="store_true", help="after listing, print every change")
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    p.add_argument("--show-kind", action="store_true", help="write names as KIND/NAME")
    p.add_argument(
        "-L",
        "--label-columns",
        action="append",
        default=[],
        metavar="KEY[,KEY]",
        help="a column with the value of each label key",
    )
    p.add_argument("--no-headers", action="store_true", help="no header line in tables")
    p.add_argument(
        "--sort-by", default="", metavar="JSONPATH", help="order by a field, e.g. .metadata.name"
    )
    _client.add_flags(p, all_namespaces=True)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return _client.run(args, _get)


# ------------------------------------------------------------------ what is asked


@dataclass(frozen=True, slots=True)
class Output:
    """The parsed `-o`: its format and, for templates and columns, what to print."""

    format: str  # "" (a table), wide, yaml, json, name, jsonpath, custom-columns
    template: _jsonpath.Template | None = None
    columns: tuple[_columns.Column, ...] = ()


def parse_output(value: str, template: str = "") -> Output:
    """`-o VALUE` as kubectl reads it; UsageError for an unknown format, a
    bad template or columns, or a file that cannot be read."""
    name, _, arg = value.partition("=")
    if name not in ("", *FORMATS):
        raise UsageError(
            f'unable to match a printer suitable for the output format "{value}", '
            f"allowed formats are: {','.join(FORMATS)}"
        )
    if name.endswith("-file"):
        try:
            arg = Path(arg).read_text()
        except OSError as e:
            raise UsageError(f"error reading {name} {arg!r}: {e.strerror}") from None
        name = name.removesuffix("-file")
    try:
        if name == "jsonpath":
            text = arg or template
            if not text:
                raise UsageError("template format specified but no template given")
            return Output("jsonpath", template=_jsonpath.parse(text))
        if name == "custom-columns":
            if "-file" in value.partition("=")[0]:
                columns = _columns.parse_custom_columns_file(arg)
            else:
                columns = _columns.parse_custom_columns(arg)
            return Output("custom-columns", columns=tuple(columns))
    except (_jsonpath.JSONPathError, ValueError) as e:
        raise UsageError(str(e)) from None
    return Output(name)


@dataclass(frozen=True, slots=True)
class Request:
    """One type and the names asked of it (none: list them all)."""

    info: ResourceInfo
    names: list[str]


def requests_of(spec: str, names: list[str]) -> tuple[list[Request], bool]:
    """The types and names the arguments ask for, in kubectl's order, and
    whether more than one type was asked (names are then `KIND/NAME`)."""
    if "/" in spec:
        words = [spec, *names]
        if any("/" not in w for w in words):
            raise UsageError(
                "there is no need to specify a resource type as a separate argument when "
                "passing arguments in resource/name form (e.g. 'kpyctl get resource/<name>' "
                "instead of 'kpyctl get resource resource/<name>')"
            )
        grouped: dict[str, Request] = {}
        for word in words:
            kind, name = word.split("/", 1)
            info = _client.resolve(kind)
            grouped.setdefault(info.group_resource, Request(info, [])).names.append(name)
        return list(grouped.values()), len(grouped) > 1
    kinds = [k for k in spec.split(",") if k]
    if not kinds:
        raise UsageError("you must specify the type of resource to get")
    infos: list[ResourceInfo] = []
    categories = False
    for kind in kinds:
        if kind == "all":
            expanded = [_client.resolve(w) for w in ALL_CATEGORY] + _client.in_category(kind)
        else:
            try:
                expanded = [_client.resolve(kind)]
            except UsageError:
                expanded = _client.in_category(kind)  # a CRD's category, e.g. `kpyctl get web`
                if not expanded:
                    raise
        categories = categories or kind == "all" or len(expanded) != 1
        for info in expanded:
            if info not in infos:
                infos.append(info)
    multiple = len(infos) > 1 or categories
    return [Request(info, list(names)) for info in infos], multiple


# ------------------------------------------------------------------ get


async def _get(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    output = parse_output(args.output, args.template)
    slashed = [n for n in args.names if "/" in n]
    await _client.discover(client, _client.type_words([args.type, *slashed]))
    requests, multiple = requests_of(args.type, args.names)
    if args.watch and len(requests) > 1:
        raise UsageError("you may only specify a single resource type when watching")
    printers: dict[str, _printers.Printer] = {}
    if output.format in ("", "wide"):
        for request in requests:
            if is_custom(request.info.message):
                printers[request.info.group_resource] = await crd_printer(client, request.info)
    sort = _sort_template(args.sort_by)
    named = any(r.names for r in requests)
    all_ns = bool(args.all_namespaces) and not named
    namespace = None if all_ns else _client.namespace_of(client, args)
    code = 0
    fetched: list[tuple[ResourceInfo, list[Message]]] = []
    resource_version = ""
    for request in requests:
        if request.names:
            objects, failed = await _client.get_named(
                client, request.info, request.names, namespace, err
            )
            code = code or failed
        else:
            objects, resource_version = await _list_all(client, request.info, namespace, args)
        if sort is not None:
            objects = _sort(objects, sort)
        fetched.append((request.info, objects))
    single = len(requests) == 1 and len(requests[0].names) == 1
    if output.format in ("", "wide"):
        with_kind = multiple or args.show_kind
        widths = _print_tables(
            fetched, args, output, out, all_ns=all_ns, with_kind=with_kind, printers=printers
        )
        if not any(objects for _, objects in fetched) and not named:
            namespaced = all(info.namespaced for info, _ in fetched)
            where = f" in {namespace} namespace" if namespaced and not all_ns else ""
            err.write(f"No resources found{where}.\n")
    else:
        _print_generic(fetched, output, args, out, single=single)
        widths = []
    if args.watch:
        out.flush()
        info = requests[0].info
        await _watch(
            client,
            info,
            namespace,
            args,
            out,
            resource_version,
            requests[0].names,
            widths,
            printers.get(info.group_resource),
        )
    return code


async def crd_printer(client: Client, info: ResourceInfo) -> _printers.Printer:
    """The table of custom kind `info`: its CRD's printer columns for the
    version `info` names (NAME AGE when the CRD cannot be read)."""
    try:
        crd = await client.get(CustomResourceDefinition, f"{info.plural}.{info.group}")
    except errors.NotFound:
        return _columns.crd_printer([], codec.encode_object)
    columns = [
        _columns.PrinterColumn(c.name, c.type, c.json_path, c.priority)
        for v in crd.spec.versions
        if v.name == info.version
        for c in v.additional_printer_columns
    ]
    return _columns.crd_printer(columns, codec.encode_object)


async def _list_all(
    client: Client, info: ResourceInfo, namespace: str | None, args: argparse.Namespace
) -> tuple[list[Message], str]:
    objects: list[Message] = []
    token: str | None = None
    while True:
        page = await client.list(
            info.message,
            namespace=namespace,
            label_selector=args.selector,
            field_selector=args.field_selector,
            limit=500,
            continue_token=token,
        )
        objects.extend(page.items)
        token = page.continue_token
        if not token:
            return objects, page.resource_version


def _sort_template(expression: str) -> _jsonpath.Template | None:
    if not expression:
        return None
    try:
        return _jsonpath.parse(_jsonpath.relaxed(expression))
    except _jsonpath.JSONPathError as e:
        raise UsageError(f"--sort-by: {e}") from None


def _sort(objects: list[Message], template: _jsonpath.Template) -> list[Message]:
    if not objects:
        return objects
    try:
        return _columns.sort_by(objects, template, codec.encode_object)
    except ValueError as e:
        raise UsageError(str(e)) from None


# ------------------------------------------------------------------ tables


def _print_tables(
    fetched: list[tuple[ResourceInfo, list[Message]]],
    args: argparse.Namespace,
    output: Output,
    out: TextIO,
    *,
    all_ns: bool,
    with_kind: bool,
    printers: dict[str, _printers.Printer],
) -> list[int]:
    """One table per type that has objects, a blank line between them;
    returns the last table's column widths (for -w)."""
    widths: list[int] = []
    written = False
    now = time.time()
    label_keys = [k for value in args.label_columns for k in value.split(",") if k]
    for info, objects in fetched:
        if not objects:
            continue
        rows = _printers.table(
            info.kind,
            objects,
            now,
            wide=output.format == "wide",
            namespace_column=all_ns and info.namespaced,
            printer=printers.get(info.group_resource),
        )
        rows = _decorate(rows, objects, info, label_keys, args.show_labels, with_kind=with_kind)
        if args.no_headers:
            rows = rows[1:]
        if written and not args.no_headers:  # kubectl separates tables only with headers
            out.write("\n")
        out.write(_printers.tabulate(rows))
        widths = _printers.table_widths(rows)
        written = True
    return widths


def _decorate(
    rows: list[list[str]],
    objects: list[Message],
    info: ResourceInfo,
    label_keys: list[str],
    show_labels: bool,
    *,
    with_kind: bool,
) -> list[list[str]]:
    """kubectl's additions to a table: KIND/NAME names, -L and LABELS columns."""
    header = rows[0]
    name_at = header.index("NAME") if "NAME" in header else -1
    out = [header + _columns.label_headers(label_keys) + (["LABELS"] if show_labels else [])]
    for row, obj in zip(rows[1:], objects, strict=True):
        labels = dict(obj.metadata.labels)  # type: ignore[attr-defined]
        cells = list(row)
        if with_kind and name_at >= 0 and info.kind != "Event":
            cells[name_at] = _kind_prefix(info) + cells[name_at]
        cells += [labels.get(key, "") for key in label_keys]
        if show_labels:
            cells.append(_columns.format_labels(labels))
        out.append(cells)
    return out


def _kind_prefix(info: ResourceInfo) -> str:
    suffix = f".{info.group}" if info.group else ""
    return f"{info.singular}{suffix}/"


def name_of(info: ResourceInfo, obj: Message) -> str:
    """`pod/web-0`, `deployment.apps/web`: kubectl's -o name."""
    name: str = obj.metadata.name  # type: ignore[attr-defined]
    return _kind_prefix(info) + name


# ------------------------------------------------------------------ other formats


def _print_generic(
    fetched: list[tuple[ResourceInfo, list[Message]]],
    output: Output,
    args: argparse.Namespace,
    out: TextIO,
    *,
    single: bool,
) -> None:
    objects = [(info, obj) for info, found in fetched for obj in found]
    if output.format == "name":
        out.writelines(name_of(info, obj) + "\n" for info, obj in objects)
        return
    if output.format == "custom-columns":
        rows = [] if args.no_headers else [[c.header for c in output.columns]]
        for _, obj in objects:
            data = codec.encode_object(obj)
            rows.append([_columns.custom_column_cell(c, data) for c in output.columns])
        out.write(_printers.tabulate(rows))
        return
    if single and len(objects) == 1:
        body: Any = codec.encode_object(objects[0][1])
    else:
        body = {
            "apiVersion": "v1",
            "items": [codec.encode_object(obj) for _, obj in objects],
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        }
    if output.format == "jsonpath":
        assert output.template is not None
        out.write(output.template.execute(body))
        return
    out.write(_serialize(body, output.format))


def _serialize(body: Any, output: str) -> str:
    if output == "json":
        return json.dumps(body, indent=4) + "\n"
    return yaml.safe_dump(body, sort_keys=False, default_flow_style=False, allow_unicode=True)


# ------------------------------------------------------------------ watch


async def _watch(
    client: Client,
    info: ResourceInfo,
    namespace: str | None,
    args: argparse.Namespace,
    out: TextIO,
    resource_version: str,
    names: list[str],
    widths: list[int],
    printer: _printers.Printer | None = None,
) -> None:
    output = parse_output(args.output, args.template)
    wide = output.format == "wide"
    namespace_column = namespace is None and info.namespaced
    header_printed = bool(widths) or args.no_headers
    async with client.watch(
        info.message,
        namespace=namespace,
        resource_version=resource_version,
        label_selector=args.selector,
        field_selector=args.field_selector,
    ) as events:
        async for event in events:
            if event.type == "BOOKMARK":
                continue
            obj = event.object
            if names and obj.metadata.name not in names:  # type: ignore[attr-defined]
                continue
            if output.format == "name":
                out.write(name_of(info, obj) + "\n")
            elif output.format in ("yaml", "json"):
                separator = "---\n" if output.format == "yaml" else ""
                out.write(separator + _serialize(codec.encode_object(obj), output.format))
            elif output.format in ("jsonpath", "custom-columns"):
                _print_generic([(info, [obj])], output, args, out, single=True)
            else:
                rows = _printers.table(
                    info.kind,
                    [obj],
                    time.time(),
                    wide=wide,
                    namespace_column=namespace_column,
                    printer=printer,
                )
                label_keys = [k for v in args.label_columns for k in v.split(",") if k]
                rows = _decorate(rows, [obj], info, label_keys, args.show_labels, with_kind=False)
                if not header_printed:
                    widths = _printers.table_widths(rows)
                    out.write(_printers.pad_row(rows[0], widths))
                    header_printed = True
                if not widths:
                    widths = _printers.table_widths(rows)
                out.write(_printers.pad_row(rows[1], widths))
            out.flush()

"""The kustomize build behind `kpyctl kustomize DIR`, `apply -k DIR` and
`diff -k DIR`.

The kustomization file of DIR (`kustomization.yaml`, `.yml` or
`Kustomization`) is built as kustomize builds it, for the fields kpy
supports; any other field is refused by name rather than silently ignored:

- `resources` (and the legacy `bases`): manifest files, and directories
  holding their own kustomization, built first (so an overlay's prefix
  comes before its base's);
- `configMapGenerator` / `secretGenerator` (`literals`, `files` as
  `[key=]path`, `envs`; `type` for secrets, base64 into `data`;
  `options` and `generatorOptions` with `labels`, `annotations`,
  `disableNameSuffixHash`, `immutable`), named `NAME-<hash>` where the hash
  is kustomize's content hash;
- `namespace`, `namePrefix`, `nameSuffix` (not on Namespaces or CRDs);
- `commonLabels` on every object and on the selectors and pod templates
  that must carry them (as kustomize's field specs list), and
  `commonAnnotations` on objects and pod templates;
- `images` (`name`, `newName`, `newTag`, `digest`) in every container and
  init container;
- references to renamed ConfigMaps, Secrets, PersistentVolumeClaims and
  ServiceAccounts in pod specs follow the new names.

The output is kustomize's: objects in its legacy kind order, keys sorted,
documents separated by `---`. Differences from kustomize, on purpose of
size: a generator's hash is added in the kustomization that declares it
(kustomize adds it once, at the top), and no remote resources or patches.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kpy.api.scheme import scheme
from kpy.cli._manifests import Source, UsageError, read_file

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["build", "build_source", "content_hash", "parse_env_file", "set_image"]

FILE_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED = frozenset(
    {
        "apiVersion",
        "kind",
        "resources",
        "bases",
        "namespace",
        "namePrefix",
        "nameSuffix",
        "commonLabels",
        "commonAnnotations",
        "images",
        "configMapGenerator",
        "secretGenerator",
        "generatorOptions",
    }
)
# kustomize's legacy output order; kinds not listed come after, by kind.
_ORDER_FIRST = (
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
_ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
_NOT_RENAMED = ("Namespace", "CustomResourceDefinition")
# Where commonLabels go besides metadata.labels: (kinds, path, create when missing).
_LABEL_PATHS: tuple[tuple[tuple[str, ...], str, bool], ...] = (
    (("Service", "ReplicationController"), "spec.selector", True),
    (("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"), "spec.selector.matchLabels", True),
    (("Job", "PodDisruptionBudget"), "spec.selector.matchLabels", False),
    (
        ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "ReplicationController"),
        "spec.template.metadata.labels",
        True,
    ),
    (("CronJob",), "spec.jobTemplate.metadata.labels", True),
    (("CronJob",), "spec.jobTemplate.spec.selector.matchLabels", False),
    (("CronJob",), "spec.jobTemplate.spec.template.metadata.labels", True),
)
_TEMPLATE_KINDS = (
    "Deployment",
    "ReplicaSet",
    "DaemonSet",
    "StatefulSet",
    "Job",
    "ReplicationController",
)


def build_source(directory: str) -> Source:
    """The build of `directory` as one YAML stream, named for messages."""
    docs = build(Path(directory))
    text = yaml.safe_dump_all(docs, sort_keys=True, default_flow_style=False, allow_unicode=True)
    return Source(f"{directory} (kustomized; see `kpyctl kustomize {directory}`)", text)


def build(directory: Path) -> list[dict[str, Any]]:
    """The objects the kustomization in `directory` makes, in output order."""
    built = _Build(directory, ()).run()
    return sorted(built, key=_order)


def _order(obj: dict[str, Any]) -> tuple[int, str, str, str]:
    kind = str(obj.get("kind", ""))
    if kind in _ORDER_FIRST:
        rank = _ORDER_FIRST.index(kind)
    elif kind in _ORDER_LAST:
        rank = len(_ORDER_FIRST) + 1 + _ORDER_LAST.index(kind)
    else:
        rank = len(_ORDER_FIRST)
    meta = obj.get("metadata") or {}
    return rank, kind, str(meta.get("namespace", "")), str(meta.get("name", ""))


# -- one kustomization ---------------------------------------------------------------------


@dataclass
class _Build:
    directory: Path
    parents: tuple[Path, ...]
    k: dict[str, Any] = field(default_factory=dict)
    where: str = ""
    renames: dict[tuple[str, str], str] = field(default_factory=dict)

    def run(self) -> list[dict[str, Any]]:
        self.k = self._load()
        objects = self._resources()
        generated = self._generated()
        objects.extend(o for o, _ in generated)
        self._namespace(objects)
        self._names(objects)
        for obj in objects:
            self._labels(obj)
            self._annotations(obj)
            for spec in _pod_specs(obj):
                self._images(spec)
        for obj, hashed in generated:
            if hashed:
                meta = obj["metadata"]
                old = meta["name"]
                meta["name"] = f"{old}-{content_hash(obj)}"
                self._rename(obj, old, meta["name"])
        for obj in objects:
            for spec in _pod_specs(obj):
                self._references(spec)
        return objects

    def _load(self) -> dict[str, Any]:
        if not self.directory.is_dir():
            raise UsageError(f'"{self.directory}" is not a directory with a kustomization file')
        path = next(
            (self.directory / n for n in FILE_NAMES if (self.directory / n).is_file()), None
        )
        if path is None:
            raise UsageError(
                f"unable to find one of {', '.join(repr(n) for n in FILE_NAMES)} in directory "
                f'"{self.directory}"'
            )
        self.where = str(path)
        source = read_file(path)
        try:
            k = yaml.safe_load(source.text)
        except yaml.YAMLError as e:
            raise UsageError(f"{path}: {e}") from None
        if k is None:
            return {}
        if not isinstance(k, dict):
            raise UsageError(f"{path}: a kustomization must be a mapping of fields")
        unknown = sorted(set(k) - SUPPORTED)
        if unknown:
            raise UsageError(
                f"{path}: kpyctl's kustomize does not support {', '.join(unknown)}; "
                f"it supports {', '.join(sorted(SUPPORTED))}"
            )
        return k

    def _list(self, name: str) -> list[Any]:
        value = self.k.get(name) or []
        if not isinstance(value, list):
            raise UsageError(f"{self.where}: {name} must be a list")
        return value

    def _map(self, name: str, within: dict[str, Any] | None = None) -> dict[str, str]:
        value = (self.k if within is None else within).get(name) or {}
        if not isinstance(value, dict):
            raise UsageError(f"{self.where}: {name} must be a mapping")
        return {str(k): "" if v is None else _text(v) for k, v in value.items()}

    # resources

    def _resources(self) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = []
        for entry in self._list("resources") + self._list("bases"):
            if not isinstance(entry, str) or "://" in entry or entry.startswith("github.com/"):
                raise UsageError(
                    f"{self.where}: resource {entry!r}: only local files and directories "
                    "are supported"
                )
            path = (self.directory / entry).resolve()
            if path.is_dir():
                if path in self.parents or path == self.directory.resolve():
                    raise UsageError(f"{self.where}: resource {entry!r} cycles back to {path}")
                inner = _Build(path, (*self.parents, self.directory.resolve()))
                objects.extend(inner.run())
            elif path.is_file():
                objects.extend(_documents(read_file(path)))
            else:
                raise UsageError(f"{self.where}: resource {entry!r}: {path} does not exist")
        return objects

    # generators

    def _generated(self) -> list[tuple[dict[str, Any], bool]]:
        options = self.k.get("generatorOptions") or {}
        made: list[tuple[dict[str, Any], bool]] = []
        for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
            for spec in self._list(key):
                if not isinstance(spec, dict) or not spec.get("name"):
                    raise UsageError(f"{self.where}: every {key} entry needs a name")
                behavior = spec.get("behavior", "create")
                if behavior != "create":
                    raise UsageError(
                        f"{self.where}: {key} {spec['name']!r}: behavior {behavior!r} is not "
                        "supported (only create)"
                    )
                made.append(self._generate(kind, spec, options))
        return made

    def _generate(
        self, kind: str, spec: dict[str, Any], global_options: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        data: dict[str, str] = {}
        for word in spec.get("literals") or []:
            key, value = _literal(str(word), self.where)
            data[key] = value
        for word in spec.get("files") or []:
            key, _, rel = str(word).rpartition("=")
            path = self.directory / rel
            data[key or Path(rel).name] = _read_text(path, self.where)
        for env in (spec.get("envs") or []) + ([spec["env"]] if spec.get("env") else []):
            data.update(parse_env_file(_read_text(self.directory / str(env), self.where)))
        options = spec.get("options") or {}
        meta: dict[str, Any] = {"name": str(spec["name"])}
        labels = {**self._map("labels", global_options), **self._map("labels", options)}
        annotations = {
            **self._map("annotations", global_options),
            **self._map("annotations", options),
        }
        if labels:
            meta["labels"] = labels
        if annotations:
            meta["annotations"] = annotations
        obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": meta}
        if kind == "Secret":
            obj["type"] = str(spec.get("type") or "Opaque")
            encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
            if encoded:
                obj["data"] = encoded
        elif data:
            obj["data"] = data
        if options.get("immutable") or global_options.get("immutable"):
            obj["immutable"] = True
        no_hash = global_options.get("disableNameSuffixHash") or options.get(
            "disableNameSuffixHash"
        )
        return obj, not no_hash

    # transformers

    def _namespace(self, objects: list[dict[str, Any]]) -> None:
        ns = self.k.get("namespace")
        if not ns:
            return
        for obj in objects:
            if _namespaced(obj):
                obj.setdefault("metadata", {})["namespace"] = str(ns)

    def _names(self, objects: list[dict[str, Any]]) -> None:
        prefix, suffix = str(self.k.get("namePrefix") or ""), str(self.k.get("nameSuffix") or "")
        if not (prefix or suffix):
            return
        for obj in objects:
            if obj.get("kind") in _NOT_RENAMED:
                continue
            meta = obj.setdefault("metadata", {})
            old = str(meta.get("name", ""))
            meta["name"] = f"{prefix}{old}{suffix}"
            self._rename(obj, old, meta["name"])

    def _rename(self, obj: dict[str, Any], old: str, new: str) -> None:
        """Records `old` -> `new`, and makes earlier renames to `old` lead to
        `new` (a prefix, then a hash: references follow both)."""
        kind = str(obj.get("kind"))
        for key, value in self.renames.items():
            if key[0] == kind and value == old:
                self.renames[key] = new
        self.renames[(kind, old)] = new

    def _labels(self, obj: dict[str, Any]) -> None:
        labels = self._map("commonLabels")
        if not labels:
            return
        obj.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
        kind = obj.get("kind")
        for kinds, path, create in _LABEL_PATHS:
            if kind in kinds:
                target = _at(obj, path, create=create)
                if target is not None:
                    target.update(labels)
        if kind == "StatefulSet":
            for claim in _at(obj, "spec", create=False, default={}).get("volumeClaimTemplates", []):
                claim.setdefault("metadata", {}).setdefault("labels", {}).update(labels)

    def _annotations(self, obj: dict[str, Any]) -> None:
        notes = self._map("commonAnnotations")
        if not notes:
            return
        obj.setdefault("metadata", {}).setdefault("annotations", {}).update(notes)
        paths: tuple[str, ...] = {
            "CronJob": (
                "spec.jobTemplate.metadata.annotations",
                "spec.jobTemplate.spec.template.metadata.annotations",
            )
        }.get(str(obj.get("kind")), ())
        if obj.get("kind") in _TEMPLATE_KINDS:
            paths = ("spec.template.metadata.annotations",)
        for path in paths:
            target = _at(obj, path, create=True)
            assert target is not None
            target.update(notes)

    def _images(self, spec: dict[str, Any]) -> None:
        for image in self._list("images"):
            if not isinstance(image, dict) or not image.get("name"):
                raise UsageError(f"{self.where}: every images entry needs a name")
            for container in _containers(spec):
                container["image"] = set_image(
                    str(container.get("image", "")),
                    str(image["name"]),
                    new_name=str(image.get("newName") or ""),
                    new_tag=_text(image.get("newTag") or ""),
                    digest=str(image.get("digest") or ""),
                )

    def _references(self, spec: dict[str, Any]) -> None:
        def follow(holder: Any, key: str, kind: str) -> None:
            if isinstance(holder, dict) and isinstance(holder.get(key), str):
                holder[key] = self.renames.get((kind, holder[key]), holder[key])

        follow(spec, "serviceAccountName", "ServiceAccount")
        for secret in spec.get("imagePullSecrets") or []:
            follow(secret, "name", "Secret")
        for container in _containers(spec):
            for env in container.get("env") or []:
                source = env.get("valueFrom") or {}
                follow(source.get("configMapKeyRef"), "name", "ConfigMap")
                follow(source.get("secretKeyRef"), "name", "Secret")
            for env_from in container.get("envFrom") or []:
                follow(env_from.get("configMapRef"), "name", "ConfigMap")
                follow(env_from.get("secretRef"), "name", "Secret")
        for volume in spec.get("volumes") or []:
            follow(volume.get("configMap"), "name", "ConfigMap")
            follow(volume.get("secret"), "secretName", "Secret")
            follow(volume.get("persistentVolumeClaim"), "claimName", "PersistentVolumeClaim")
            for projected in (volume.get("projected") or {}).get("sources") or []:
                follow(projected.get("configMap"), "name", "ConfigMap")
                follow(projected.get("secret"), "name", "Secret")


# -- helpers --------------------------------------------------------------------------------


def content_hash(obj: dict[str, Any]) -> str:
    """kustomize's name suffix for a generated ConfigMap or Secret: the
    SHA-256 of its kind, name and data (and type) as Go's json.Marshal writes
    them, the first 10 hex digits with 0 1 3 a e mapped to g h k m t (so the
    suffix never reads as a number or a word)."""
    meta = obj.get("metadata") or {}
    body: dict[str, Any] = {"kind": obj["kind"], "name": meta.get("name", "")}
    if obj["kind"] == "Secret":
        body["type"] = obj.get("type", "")
    body["data"] = obj.get("data") or {}
    if obj.get("binaryData"):
        body["binaryData"] = obj["binaryData"]
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def set_image(image: str, name: str, *, new_name: str, new_tag: str, digest: str) -> str:
    """`image` with kustomize's `images` entry applied when its name is
    `name` (the image without tag or digest); unchanged otherwise."""
    base, at, old_digest = image.partition("@")
    slash = base.rfind("/")
    colon = base.rfind(":")
    repo, tag = (base[:colon], base[colon + 1 :]) if colon > slash else (base, "")
    if repo != name:
        return image
    result = new_name or repo
    if digest:
        return f"{result}@{digest}"
    if new_tag:
        return f"{result}:{new_tag}"
    if tag:
        result += f":{tag}"
    return f"{result}@{old_digest}" if at else result


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines of an env file; blank lines and # comments skipped."""
    data: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        data[key.strip()] = value
    return data


def _literal(word: str, where: str) -> tuple[str, str]:
    key, eq, value = word.partition("=")
    if not eq or not key:
        raise UsageError(f"{where}: literal {word!r} must be KEY=VALUE")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return key, value


def _read_text(path: Path, where: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{where}: cannot read {path}: {e}") from None


def _text(value: Any) -> str:
    """A YAML scalar as the string kustomize would see (`true`, `1.2`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _documents(source: Source) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(source.text) if d is not None]
    except yaml.YAMLError as e:
        raise UsageError(f"{source.name}: {e}") from None
    objects: list[dict[str, Any]] = []
    for doc in docs:
        items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
        for item in items or []:
            if not isinstance(item, dict) or not item.get("kind"):
                raise UsageError(f"{source.name}: every document must be an object with a kind")
            objects.append(item)
    return objects


def _namespaced(obj: dict[str, Any]) -> bool:
    info = scheme.lookup(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    return info.namespaced if info is not None else obj.get("kind") != "Namespace"


def _at(
    obj: dict[str, Any], path: str, *, create: bool, default: Any = None
) -> dict[str, Any] | Any:
    """The mapping at dotted `path`, made on the way when `create`."""
    node: Any = obj
    for key in path.split("."):
        if not isinstance(node, dict):
            return default
        if key not in node or node[key] is None:
            if not create:
                return default
            node[key] = {}
        node = node[key]
    return node if isinstance(node, dict) else default


def _pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    kind = obj.get("kind")
    paths = {
        "Pod": "spec",
        "CronJob": "spec.jobTemplate.spec.template.spec",
    }
    path = paths.get(str(kind), "spec.template.spec" if kind in _TEMPLATE_KINDS else "")
    if path:
        spec = _at(obj, path, create=False)
        if spec is not None:
            yield spec


def _containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                yield container

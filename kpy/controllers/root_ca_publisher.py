"""The root CA certificate publisher (Kubernetes' pkg/controller/certificates/
rootcacertpublisher): every active namespace has a ConfigMap
`kube-root-ca.crt` whose key `ca.crt` holds the cluster CA's PEM (the
controller manager's `--root-ca-file`), so a pod's projected
`kube-api-access-*` volume can give it the CA that verifies the API server.

- A ConfigMap whose data or description annotation someone changed is set
  back (its data is exactly `{"ca.crt": PEM}`, as Kubernetes'); one
  deleted is made again.
- The file is read when the controller starts and again every
  `reload_interval` seconds: when its content changes (a CA rotated), every
  namespace's ConfigMap is updated. A file that cannot be read, or holds no
  PEM certificate, keeps the last good content and is logged.
- Without `--root-ca-file` the controller publishes nothing and says so in
  its log, once.

The shape is `every_namespace.PerNamespaceObjectController`'s.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import anyio

from kpy.api.core.v1 import ConfigMap, Namespace
from kpy.controllers.every_namespace import PerNamespaceObjectController

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.cache.informer import SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.root_ca_publisher")

__all__ = [
    "CA_KEY",
    "DESCRIPTION",
    "DESCRIPTION_ANNOTATION",
    "ROOT_CA_CONFIG_MAP",
    "RootCACertPublisher",
    "new_root_ca_cert_publisher",
    "read_root_ca",
]

ROOT_CA_CONFIG_MAP: Final = "kube-root-ca.crt"
CA_KEY: Final = "ca.crt"
DESCRIPTION_ANNOTATION: Final = "kubernetes.io/description"
DESCRIPTION: Final = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)
RELOAD_INTERVAL: Final = 10.0
_PEM_CERTIFICATE: Final = "-----BEGIN CERTIFICATE-----"


def read_root_ca(path: Path) -> str:
    """The PEM text of `path`; ValueError naming the file when it cannot be
    read or holds no PEM certificate."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--root-ca-file {path}: cannot read it: {e}") from None
    if _PEM_CERTIFICATE not in text:
        raise ValueError(
            f"--root-ca-file {path}: holds no PEM certificate ({_PEM_CERTIFICATE} ...); "
            "give the cluster CA's certificate (ca.crt), not its key"
        )
    return text


class RootCACertPublisher(PerNamespaceObjectController[ConfigMap]):
    """See the module docstring. `root_ca_file` None: publishes nothing."""

    name = "root-ca-cert-publisher"
    kind = ConfigMap
    object_name = ROOT_CA_CONFIG_MAP

    def __init__(
        self,
        client: ClientProtocol,
        namespaces: SharedInformer[Namespace],
        root_ca_file: Path | None,
        config_maps: SharedInformer[ConfigMap] | None = None,
        *,
        metrics: Metrics | None = None,
        reload_interval: float = RELOAD_INTERVAL,
    ) -> None:
        super().__init__(client, namespaces, config_maps, metrics=metrics)
        self._file = root_ca_file
        self._reload_interval = reload_interval
        self.root_ca = ""
        if root_ca_file is not None:
            self.root_ca = read_root_ca(root_ca_file)

    async def run(self, workers: int) -> None:
        if self._file is None:
            log.info(
                "no --root-ca-file given: not publishing ConfigMap kube-root-ca.crt; pods' "
                "kube-api-access volumes will wait for it",
                extra={"controller": self.name},
            )
            self.queue.shut_down()
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_file)
            await super().run(workers)
            tg.cancel_scope.cancel()

    async def _watch_file(self) -> None:
        while True:
            await anyio.sleep(self._reload_interval)
            self.reload()

    def reload(self) -> bool:
        """Reads the file again; when its content changed, enqueues every
        namespace and returns True."""
        if self._file is None:
            return False
        try:
            text = read_root_ca(self._file)
        except ValueError as e:
            log.warning(
                "keeping the last root CA read", extra={"controller": self.name, "error": str(e)}
            )
            return False
        if text == self.root_ca:
            return False
        log.info("the root CA file changed: publishing it", extra={"controller": self.name})
        self.root_ca = text
        for ns in self._namespaces.list():
            self.enqueue_key(ns.metadata.name)
        return True

    def desired(self) -> ConfigMap:
        cm = ConfigMap(data={CA_KEY: self.root_ca})
        cm.metadata.annotations[DESCRIPTION_ANNOTATION] = DESCRIPTION
        return cm

    def repaired(self, current: ConfigMap) -> ConfigMap | None:
        right = dict(current.data) == {CA_KEY: self.root_ca}
        if right and current.metadata.annotations.get(DESCRIPTION_ANNOTATION):
            return None
        fixed = ConfigMap()
        fixed.CopyFrom(current)  # never change the cache's copy
        fixed.data.clear()
        fixed.data[CA_KEY] = self.root_ca
        fixed.metadata.annotations[DESCRIPTION_ANNOTATION] = DESCRIPTION
        return fixed

    async def sync(self, key: str) -> None:
        if self._file is None:
            return
        await super().sync(key)


def new_root_ca_cert_publisher(
    ctx: ControllerContext, root_ca_file: Path | None
) -> RootCACertPublisher:
    return RootCACertPublisher(
        ctx.client, ctx.cluster_informers.informer(Namespace), root_ca_file, metrics=ctx.metrics
    )

"""The local-path provisioner (rancher's local-path-provisioner, run inside
kpy's controller manager): a directory on one node for each claim of a
StorageClass whose provisioner is `kpy.io/local-path` (or
`rancher.io/local-path`).

- A Pending, unbound claim of such a class gets a PersistentVolume named
  `pvc-<claim uid>`: hostPath `<dir>/<namespace>_<claim>_<volume>` of type
  DirectoryOrCreate (the agent makes the directory when a pod mounts it),
  required node affinity `kubernetes.io/hostname` = the node, claimRef to
  the claim, the claim's size and access modes, the class's reclaim policy,
  and `pv.kubernetes.io/provisioned-by`. `<dir>` is the class parameter
  `path` (rancher's `nodePath` too), else the directory this controller
  manages (`--local-path-dir`). The binder then binds the two.
- The node: for a WaitForFirstConsumer class, the one the scheduler chose
  (`volume.kubernetes.io/selected-node`), and nothing before it is chosen;
  for Immediate, the Ready, schedulable node holding the fewest local-path
  volumes (then by name). A directory lives on one node, so only
  ReadWriteOnce and ReadWriteOncePod are offered.
- A volume it made that the binder Released under policy Delete: its
  directory is removed, then the volume deleted. Every kpy up node shares
  this machine, so the controller manager removes the directory itself,
  but only one it recognises as its own: named for that volume, directly
  under its own directory or the class's `path`. Anything else is left,
  with a `VolumeFailedDelete` event, for an administrator. (On several
  machines the removal must run on the volume's node: rancher's runs a
  helper pod there; the agent could do it as well.)
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio.to_thread

from kpy.api import errors
from kpy.api.core.v1 import (
    Node,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    ObjectReference,
    PersistentVolume,
    PersistentVolumeClaim,
)
from kpy.api.meta.v1 import Preconditions
from kpy.api.storage.v1 import StorageClass
from kpy.cache.informer import EventHandler
from kpy.cache.store import split_key
from kpy.controllers.base import Controller
from kpy.controllers.volume import (
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    DEFAULT_LOCAL_PATH_DIR,
    HOSTNAME_LABEL,
    LOCAL_PATH_PROVISIONERS,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.cache.events import EventRecorder
    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.volume.local_path")

__all__ = ["LocalPathProvisioner", "new_local_path_provisioner", "volume_name"]

#: access modes a directory on one node can honour.
SUPPORTED_MODES: Final = frozenset({"ReadWriteOnce", "ReadWriteOncePod"})
#: seconds before a claim that found no Ready node is tried again.
NO_NODE_RETRY: Final = 5.0


def volume_name(claim: PersistentVolumeClaim) -> str:
    """The name of the volume provisioned for `claim`, as Kubernetes names them."""
    return f"pvc-{claim.metadata.uid}"


def _is_ready(node: Node) -> bool:
    ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
    return ready and not node.spec.unschedulable


def _node_of(pv: PersistentVolume) -> str:
    for term in pv.spec.node_affinity.required.node_selector_terms:
        for req in term.match_expressions:
            if req.key == HOSTNAME_LABEL and req.operator == "In" and req.values:
                return str(req.values[0])
    return ""


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path)


class LocalPathProvisioner(Controller):
    """See the module docstring. Keys are claims (`namespace/name`) and
    volumes (`name`), as in the binder."""

    name = "local-path-provisioner"

    def __init__(
        self,
        client: ClientProtocol,
        claims: SharedInformer[PersistentVolumeClaim],
        volumes: SharedInformer[PersistentVolume],
        classes: SharedInformer[StorageClass],
        nodes: SharedInformer[Node],
        *,
        directory: Path = Path(DEFAULT_LOCAL_PATH_DIR),
        remove: Callable[[Path], None] = _remove_tree,
        metrics: Metrics | None = None,
        recorder: EventRecorder | None = None,
    ) -> None:
        super().__init__(metrics=metrics, recorder=recorder)
        self._client = client
        self._claims: Lister[PersistentVolumeClaim] = claims.lister()
        self._volumes: Lister[PersistentVolume] = volumes.lister()
        self._classes: Lister[StorageClass] = classes.lister()
        self._nodes: Lister[Node] = nodes.lister()
        self.directory = directory
        self._remove = remove
        claims.add_event_handler(
            EventHandler(
                on_add=lambda claim, _initial: self._claim_changed(claim),
                on_update=lambda _old, claim: self._claim_changed(claim),
            )
        )
        volumes.add_event_handler(
            EventHandler(
                on_add=lambda pv, _initial: self._volume_changed(pv),
                on_update=lambda _old, pv: self._volume_changed(pv),
            )
        )
        classes.add_event_handler(
            EventHandler(on_add=lambda _sc, _initial: self._enqueue_unbound_claims())
        )

    def _claim_changed(self, claim: PersistentVolumeClaim) -> None:
        if not claim.spec.volume_name:
            self.enqueue(claim)

    def _volume_changed(self, pv: PersistentVolume) -> None:
        if pv.metadata.annotations.get(ANN_PROVISIONED_BY) in LOCAL_PATH_PROVISIONERS:
            self.enqueue(pv)

    def _enqueue_unbound_claims(self) -> None:
        for claim in self._claims.list():
            self._claim_changed(claim)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        if namespace:
            claim = self._claims.get(namespace, name)
            if claim is not None:
                await self._provision(key, claim)
            return
        pv = self._volumes.get("", name)
        if pv is not None:
            await self._reclaim(pv)

    # -- provisioning -----------------------------------------------------------------

    def _class_of(self, claim: PersistentVolumeClaim) -> StorageClass | None:
        name = claim.spec.storage_class_name
        sc = self._classes.get("", name) if name else None
        if sc is None or sc.provisioner not in LOCAL_PATH_PROVISIONERS:
            return None
        return sc

    async def _provision(self, key: str, claim: PersistentVolumeClaim) -> None:
        if claim.spec.volume_name or claim.metadata.HasField("deletion_timestamp"):
            return
        sc = self._class_of(claim)
        if sc is None or self._volumes.get("", volume_name(claim)) is not None:
            return
        if not set(claim.spec.access_modes) <= SUPPORTED_MODES:
            self.record(
                claim,
                "Warning",
                "ProvisioningFailed",
                "failed to provision volume with StorageClass "
                f'"{sc.metadata.name}": local-path volumes only support the ReadWriteOnce '
                "and ReadWriteOncePod access modes",
            )
            return
        if sc.volume_binding_mode == "WaitForFirstConsumer":
            node = claim.metadata.annotations.get(ANN_SELECTED_NODE, "")
            if not node:
                return  # the scheduler has not placed the claim's first pod yet
        else:
            node = self._pick_node()
            if not node:
                self.record(
                    claim,
                    "Warning",
                    "ProvisioningFailed",
                    f'failed to provision volume with StorageClass "{sc.metadata.name}": '
                    "no Ready node to create the volume's directory on",
                )
                self.enqueue_after(key, NO_NODE_RETRY)
                return
        ref = f"{claim.metadata.namespace}/{claim.metadata.name}"
        self.record(
            claim,
            "Normal",
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{ref}"',
        )
        pv = self._volume_for(claim, sc, node)
        try:
            await self._client.create(pv)
        except errors.AlreadyExists:
            return
        log.info(
            "provisioned a local-path volume",
            extra={"claim": ref, "volume": pv.metadata.name, "node": node},
        )
        self.record(
            claim,
            "Normal",
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {pv.metadata.name}",
        )

    def _base_dir(self, sc: StorageClass | None) -> Path:
        if sc is not None:
            for parameter in ("path", "nodePath"):
                if sc.parameters.get(parameter):
                    return Path(sc.parameters[parameter])
        return self.directory

    def _volume_for(
        self, claim: PersistentVolumeClaim, sc: StorageClass, node: str
    ) -> PersistentVolume:
        m = claim.metadata
        name = volume_name(claim)
        pv = PersistentVolume()
        pv.metadata.name = name
        pv.metadata.annotations[ANN_PROVISIONED_BY] = sc.provisioner
        spec = pv.spec
        spec.capacity["storage"].CopyFrom(claim.spec.resources.requests["storage"])
        spec.access_modes.extend(claim.spec.access_modes)
        spec.persistent_volume_reclaim_policy = sc.reclaim_policy or "Delete"
        spec.storage_class_name = sc.metadata.name
        spec.volume_mode = claim.spec.volume_mode or "Filesystem"
        spec.host_path.path = str(self._base_dir(sc) / f"{m.namespace}_{m.name}_{name}")
        spec.host_path.type = "DirectoryOrCreate"
        spec.node_affinity.required.node_selector_terms.append(
            NodeSelectorTerm(
                match_expressions=[
                    NodeSelectorRequirement(key=HOSTNAME_LABEL, operator="In", values=[node])
                ]
            )
        )
        spec.claim_ref.CopyFrom(
            ObjectReference(
                kind="PersistentVolumeClaim",
                api_version="v1",
                namespace=m.namespace,
                name=m.name,
                uid=m.uid,
                resource_version=m.resource_version,
            )
        )
        return pv

    def _pick_node(self) -> str:
        """The Ready node with the fewest local-path volumes; "" if none is Ready."""
        held: dict[str, int] = {}
        for pv in self._volumes.list():
            if pv.metadata.annotations.get(ANN_PROVISIONED_BY) in LOCAL_PATH_PROVISIONERS:
                node = _node_of(pv)
                held[node] = held.get(node, 0) + 1
        ready = [n.metadata.name for n in self._nodes.list() if _is_ready(n)]
        return min(ready, key=lambda n: (held.get(n, 0), n), default="")

    # -- reclaiming -------------------------------------------------------------------

    async def _reclaim(self, pv: PersistentVolume) -> None:
        if (
            pv.status.phase != "Released"
            or pv.spec.persistent_volume_reclaim_policy != "Delete"
            or pv.metadata.HasField("deletion_timestamp")
        ):
            return
        path = Path(pv.spec.host_path.path)
        if not self._owns(pv, path):
            self.record(
                pv,
                "Warning",
                "VolumeFailedDelete",
                f"{path} is not a local-path directory of this controller manager "
                f"(under {self.directory} or its class's path): remove it on node "
                f'"{_node_of(pv)}", then delete the volume',
            )
            return
        try:
            await anyio.to_thread.run_sync(self._remove, path)
        except FileNotFoundError:
            pass  # never mounted, or removed already
        except OSError as e:
            self.record(pv, "Warning", "VolumeFailedDelete", f"could not remove {path}: {e}")
            raise
        log.info("deleting a released local-path volume", extra={"volume": pv.metadata.name})
        try:
            await self._client.delete(
                PersistentVolume, pv.metadata.name, preconditions=Preconditions(uid=pv.metadata.uid)
            )
        except errors.NotFound:
            return

    def _owns(self, pv: PersistentVolume, path: Path) -> bool:
        if not pv.spec.HasField("host_path") or not path.name.endswith(f"_{pv.metadata.name}"):
            return False
        sc = self._classes.get("", pv.spec.storage_class_name)
        bases = {self.directory.resolve(), self._base_dir(sc).resolve()}
        return path.resolve().parent in bases


def new_local_path_provisioner(ctx: ControllerContext, directory: Path) -> LocalPathProvisioner:
    cluster = ctx.cluster_informers
    return LocalPathProvisioner(
        ctx.client,
        ctx.informers.informer(PersistentVolumeClaim),
        cluster.informer(PersistentVolume),
        cluster.informer(StorageClass),
        cluster.informer(Node),
        directory=directory,
        metrics=ctx.metrics,
        recorder=ctx.events.new_recorder("local-path-provisioner"),
    )

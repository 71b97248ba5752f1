"""The ServiceAccount controller (Kubernetes' pkg/controller/serviceaccount,
`ServiceAccountsController`): every active namespace has a ServiceAccount
named `default`, made again if deleted, so that a pod naming no account
(admission gives it `default`) always finds one.

An account that exists is left as it is (its labels, automount setting and
image pull secrets are its owner's). The shape is
`every_namespace.PerNamespaceObjectController`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from kpy.api.core.v1 import Namespace, ServiceAccount
from kpy.controllers.every_namespace import PerNamespaceObjectController

if TYPE_CHECKING:
    from kpy.controllers.base import ControllerContext

__all__ = ["DEFAULT_SERVICE_ACCOUNT", "ServiceAccountsController", "new_serviceaccount_controller"]

DEFAULT_SERVICE_ACCOUNT: Final = "default"


class ServiceAccountsController(PerNamespaceObjectController[ServiceAccount]):
    name = "serviceaccount"
    kind = ServiceAccount
    object_name = DEFAULT_SERVICE_ACCOUNT

    def desired(self) -> ServiceAccount:
        return ServiceAccount()


def new_serviceaccount_controller(ctx: ControllerContext) -> ServiceAccountsController:
    return ServiceAccountsController(
        ctx.client, ctx.cluster_informers.informer(Namespace), metrics=ctx.metrics
    )

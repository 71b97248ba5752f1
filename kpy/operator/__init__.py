"""kpy's operator SDK: write a Kubernetes operator as one async function per kind.

    from kpy.operator import Context, Operator, Result, set_condition

    app = Operator("webapp-operator")

    @app.reconcile(WebApp, owns=[Deployment, Service])
    async def reconcile(ctx: Context, web: WebApp) -> Result | None:
        deployment = await ctx.apply_owned(Deployment(...))
        await ctx.set_status(web, {"readyReplicas": deployment.status.ready_replicas})
        return None

    @app.on_delete(WebApp)
    async def cleanup(ctx: Context, web: WebApp) -> None: ...

Run it with `kpy-operator module:app` (leader election, metrics and
/healthz on by default), from Python with `await app.run(client)`, and test
it without a cluster with `kpy.operator.testing.Harness`. Underneath is
client-go's machinery as kpy has it: shared informers, a rate-limited work
queue per kind, leader election over a Lease, an event recorder
(kpy.cache, kpy.controllers.base). docs/operators.md is the guide.
"""

from kpy.component import ElectionOptions, LeadershipLost
from kpy.operator._context import Context, PermanentError
from kpy.operator._operator import Operator
from kpy.operator._types import (
    DeleteHandler,
    Mapper,
    ReconcileHandler,
    Result,
    set_condition,
)

__all__ = [
    "Context",
    "DeleteHandler",
    "ElectionOptions",
    "LeadershipLost",
    "Mapper",
    "Operator",
    "PermanentError",
    "ReconcileHandler",
    "Result",
    "set_condition",
]

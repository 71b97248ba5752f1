"""The operator the `operator` benchmark runs (`kpy-operator
bench._operator_app:app`): for each BenchItem, write `status.observed` =
`spec.value`, the smallest reconcile that still reads the object and writes
its status, so the figure is the SDK's own cost."""

from __future__ import annotations

from kpy.api.unstructured import CustomObject, custom_kind
from kpy.operator import Context, Operator

GROUP = "bench.kpy.io"
BenchItem = custom_kind(f"{GROUP}/v1", "BenchItem", plural="benchitems", status_subresource=True)

app = Operator("bench-operator")


@app.reconcile(BenchItem)
async def reconcile(ctx: Context, item: CustomObject) -> None:
    await ctx.set_status(item, {"observed": item.get("spec", {}).get("value")})

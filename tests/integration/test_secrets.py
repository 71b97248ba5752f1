"""Secrets as Kubernetes stores them: `stringData` is a write-only
convenience merged into `data` on every write, never stored nor returned."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kpy.api import codec
from kpy.api.core.v1 import Secret

if TYPE_CHECKING:
    from kpy.client import Client

pytestmark = pytest.mark.etcd


def _secret(namespace: str, **fields: object) -> Secret:
    body = {"metadata": {"name": "creds", "namespace": namespace}, **fields}
    return codec.from_dict(Secret, body)


CASES = [
    # name, manifest fields, data expected after create (decoded)
    ("stringData only", {"stringData": {"user": "admin"}}, {"user": b"admin"}),
    (
        "stringData wins over data of the same key",
        {"data": {"user": "b2xk", "keep": "eA=="}, "stringData": {"user": "new"}},
        {"user": b"new", "keep": b"x"},
    ),
    ("no stringData", {"data": {"k": "dg=="}}, {"k": b"v"}),
]


@pytest.mark.parametrize(("name", "fields", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_string_data_is_merged_into_data_on_create(
    client: Client, api_namespace: str, name: str, fields: dict[str, object], expected: dict
) -> None:
    created = await client.create(_secret(api_namespace, **fields))
    stored = await client.get(Secret, "creds", namespace=api_namespace)
    for obj in (created, stored):
        assert dict(obj.data) == expected, name
        assert not obj.string_data, f"{name}: stringData is never returned"
        assert "stringData" not in codec.to_dict(obj), name


async def test_string_data_in_update_and_patch_is_merged(
    client: Client, api_namespace: str
) -> None:
    await client.create(_secret(api_namespace, data={"a": "MQ=="}))
    patched = await client.patch(
        Secret, "creds", {"stringData": {"b": "two"}}, namespace=api_namespace, patch_type="merge"
    )
    assert dict(patched.data) == {"a": b"1", "b": b"two"}
    assert not patched.string_data

    patched.string_data["a"] = "one"
    updated = await client.update(patched)
    assert dict(updated.data) == {"a": b"one", "b": b"two"}
    assert not (await client.get(Secret, "creds", namespace=api_namespace)).string_data

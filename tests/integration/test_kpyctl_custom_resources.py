"""kpyctl on custom resources, as a user runs it against a real API server:
a CRD applied with kpyctl, then its objects applied, listed with the CRD's
printer columns, read back as YAML, labelled, patched, edited, described,
explained and deleted."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from typing import TYPE_CHECKING

import anyio
import yaml

from kpy.api import errors
from kpy.api.apiextensions.v1 import CustomResourceDefinition
from tests.integration._kpyctl import KPYCTL, kpyctl

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client

SERVED_WITHIN = 10.0  # seconds a new CRD may take to be served (generous: a loaded machine)


def _crd(group: str, kind: str, plural: str, singular: str) -> str:
    return f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{kind: {kind}, plural: {plural}, singular: {singular}}}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {{name: Replicas, type: integer, jsonPath: .spec.replicas}}
    - {{name: Image, type: string, jsonPath: .spec.image}}
    - {{name: Ratio, type: number, jsonPath: .spec.ratio, priority: 1}}
    - {{name: Age, type: date, jsonPath: .metadata.creationTimestamp}}
    schema:
      openAPIV3Schema:
        type: object
        description: {kind} runs a web application.
        properties:
          spec:
            type: object
            required: [image]
            properties:
              replicas: {{type: integer, description: How many pods run the app.}}
              image: {{type: string, description: The container image.}}
              ratio: {{type: number}}
"""


EDITOR = """\
import sys
path = sys.argv[-1]
text = open(path).read()
open(path, "w").write(text.replace("replicas: 3", "replicas: 4"))
"""


async def _kpyctl_env(
    server: APIServerProcess, ns: str, *words: str, env: dict[str, str]
) -> tuple[int, str, str]:
    done = await anyio.run_process(
        [KPYCTL, *words, "--server", server.address, "-n", ns],
        check=False,
        env={**os.environ, **env},
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_kpyctl_verbs_on_a_custom_resource(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    suffix = "".join(c for c in uuid.uuid4().hex if c.isalpha())[:6] or "x"
    group = f"kpyctl-{suffix}.example.com"
    kind, plural, singular = f"Gizmo{suffix.capitalize()}", f"gizmo{suffix}s", f"gizmo{suffix}"
    ref = f"{singular}.{group}/shop"
    crd_file = tmp_path / "crd.yaml"
    crd_file.write_text(_crd(group, kind, plural, singular))
    try:
        assert await kpyctl(apiserver, ns, "apply", "-f", str(crd_file)) == (
            0,
            f"customresourcedefinition.apiextensions.k8s.io/{plural}.{group} created\n",
            "",
        )
        # The CRD is served within a few seconds: `get <plural>` then works.
        with anyio.fail_after(SERVED_WITHIN):
            while True:
                code, out, err = await kpyctl(apiserver, ns, "get", plural)
                if code == 0:
                    break
                assert err == f'error: the server doesn\'t have a resource type "{plural}"\n'
                await anyio.sleep(0.2)
        assert (out, err) == ("", f"No resources found in {ns} namespace.\n")

        obj = tmp_path / "shop.yaml"
        obj.write_text(
            f"apiVersion: {group}/v1\nkind: {kind}\nmetadata: {{name: shop}}\n"
            "spec: {replicas: 2, image: 'nginx:1.25', ratio: 0.5}\n"
        )
        assert await kpyctl(apiserver, ns, "apply", "-f", str(obj)) == (0, f"{ref} created\n", "")
        assert await kpyctl(apiserver, ns, "apply", "-f", str(obj)) == (
            0,
            f"{ref} unchanged\n",
            "",
        )

        # get: the printer columns (priority 1 only with -o wide), by every name
        code, out, err = await kpyctl(apiserver, ns, "get", plural)
        assert (code, err) == (0, "")
        header, row = (line.split() for line in out.splitlines())
        assert header == ["NAME", "REPLICAS", "IMAGE", "AGE"]
        assert row[:3] == ["shop", "2", "nginx:1.25"]
        code, out, _ = await kpyctl(apiserver, ns, "get", f"{plural}.{group}", "-o", "wide")
        assert out.splitlines()[0].split() == ["NAME", "REPLICAS", "IMAGE", "RATIO", "AGE"]
        assert out.splitlines()[1].split()[:4] == ["shop", "2", "nginx:1.25", "0.5"]
        for name in (singular, kind, f"{kind}/shop"):
            code, out, err = await kpyctl(apiserver, ns, "get", name, "-o", "name")
            assert (code, out, err) == (0, f"{ref}\n", ""), name
        code, out, _ = await kpyctl(
            apiserver, ns, "get", plural, "-A", "--field-selector", "metadata.name=shop"
        )
        assert out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
        assert out.splitlines()[1].split()[:2] == [ns, "shop"]

        # -o yaml round-trips: the same object, applied back
        code, out, _ = await kpyctl(apiserver, ns, "get", plural, "shop", "-o", "yaml")
        doc = yaml.safe_load(out)
        assert (doc["apiVersion"], doc["kind"], doc["metadata"]["name"]) == (
            f"{group}/v1",
            kind,
            "shop",
        )
        assert doc["spec"] == {"replicas": 2, "image": "nginx:1.25", "ratio": 0.5}
        code, _, err = await kpyctl(apiserver, ns, "apply", "-f", "-", stdin=out)
        assert (code, err) == (0, "")

        # label, patch (strategic refused as kubectl refuses it; merge works), edit
        assert await kpyctl(apiserver, ns, "label", f"{plural}/shop", "tier=web") == (
            0,
            f"{ref} labeled\n",
            "",
        )
        code, out, _ = await kpyctl(apiserver, ns, "get", plural, "-l", "tier=web", "-o", "name")
        assert out == f"{ref}\n"
        code, out, err = await kpyctl(
            apiserver, ns, "patch", plural, "shop", "-p", '{"spec":{"replicas":3}}'
        )
        assert (code, out) == (1, "")
        assert err == (
            f"error: application/strategic-merge-patch+json is not supported by {group}/v1, "
            f"Kind={kind}: the body of the request was in an unknown format - accepted media "
            "types include: application/json-patch+json, application/merge-patch+json, "
            "application/apply-patch+yaml; use --type merge or --type json\n"
        )
        assert await kpyctl(
            apiserver,
            ns,
            "patch",
            plural,
            "shop",
            "--type",
            "merge",
            "-p",
            '{"spec":{"replicas":3}}',
        ) == (0, f"{ref} patched\n", "")
        editor = tmp_path / "editor.py"
        editor.write_text(EDITOR)
        assert await _kpyctl_env(
            apiserver,
            ns,
            "edit",
            f"{plural}/shop",
            env={"KPY_EDITOR": f"{sys.executable} {editor}"},
        ) == (0, f"{ref} edited\n", "")
        code, out, _ = await kpyctl(
            apiserver, ns, "get", plural, "shop", "-o", "jsonpath={.spec.replicas}"
        )
        assert out == "4"

        # describe: kubectl's generic description
        code, out, err = await kpyctl(apiserver, ns, "describe", plural, "shop")
        assert (code, err) == (0, "")
        lines = out.splitlines()
        for line in (
            "Name:         shop",
            f"Namespace:    {ns}",
            "Labels:       tier=web",
            f"API Version:  {group}/v1",
            f"Kind:         {kind}",
            "Spec:",
            "  Image:     nginx:1.25",
            "  Replicas:  4",
        ):
            assert line in lines, (line, out)
        assert lines[-1].startswith("Events:")

        # explain, from the CRD's schema
        code, out, err = await kpyctl(apiserver, ns, "explain", f"{plural}.spec.replicas")
        assert (code, err) == (0, "")
        assert out == (
            f"KIND:     {kind}\nVERSION:  {group}/v1\n\nFIELD:    replicas <integer>\n\n"
            "DESCRIPTION:\n     How many pods run the app.\n"
        )
        code, out, _ = await kpyctl(apiserver, ns, "explain", f"{plural}.spec")
        assert "   image\t<string> -required-" in out.splitlines()

        # api-resources lists it
        code, out, _ = await kpyctl(apiserver, ns, "api-resources", "--api-group", group)
        assert out.splitlines()[1].split() == [plural, f"{group}/v1", "true", kind]

        # delete, then it is gone
        assert await kpyctl(apiserver, ns, "delete", plural, "shop") == (
            0,
            f'{singular} "shop" deleted\n',
            "",
        )
        code, out, err = await kpyctl(apiserver, ns, "get", plural)
        assert (code, out, err) == (0, "", f"No resources found in {ns} namespace.\n")
        code, _, err = await kpyctl(apiserver, ns, "get", f"nosuch{suffix}")
        assert (code, err) == (
            1,
            f'error: the server doesn\'t have a resource type "nosuch{suffix}"\n',
        )
    finally:
        with contextlib.suppress(errors.NotFound):
            await client.delete(CustomResourceDefinition, f"{plural}.{group}")

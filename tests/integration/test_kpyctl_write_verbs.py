"""kpyctl's write verbs as a user runs them against the real API server:
`create namespace|configmap|secret`, `patch`, `run`, `edit`, `diff`,
`apply -k`, and the messages when the API server's storage is down."""

from __future__ import annotations

import base64
import os
import signal
import sys
from typing import TYPE_CHECKING

import anyio

from kpy.api.apps.v1 import Deployment
from kpy.api.codec import from_dict
from kpy.api.core.v1 import ConfigMap, Namespace, Pod, Secret
from kpy.apiserver.process import APIServerProcess
from kpy.storage import EtcdServer
from tests.integration._controllers import workload
from tests.integration._kpyctl import KPYCTL, kpyctl

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.client import Client


async def kpyctl_env(
    server: APIServerProcess,
    ns: str,
    *words: str,
    env: dict[str, str] | None = None,
    after: tuple[str, ...] = (),
) -> tuple[int, str, str]:
    """`kpyctl WORDS --server S -n NS [AFTER]` with `env` added to ours."""
    done = await anyio.run_process(
        [KPYCTL, *words, "--server", server.address, "-n", ns, *after],
        env={**os.environ, **(env or {})},
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


# -- create ---------------------------------------------------------------------------------


async def test_create_namespace_configmap_and_secret(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    (tmp_path / "app.conf").write_text("port=80\n")
    new_ns = f"{ns[:50]}-x"
    assert await kpyctl(apiserver, ns, "create", "namespace", new_ns) == (
        0,
        f"namespace/{new_ns} created\n",
        "",
    )
    assert (await client.get(Namespace, new_ns)).metadata.name == new_ns
    conf = str(tmp_path / "app.conf")
    words = ("create", "configmap", "cfg", "--from-literal=mode=fast", f"--from-file={conf}")
    assert await kpyctl(apiserver, ns, *words) == (0, "configmap/cfg created\n", "")
    cm = await client.get(ConfigMap, "cfg")
    assert dict(cm.data) == {"mode": "fast", "app.conf": "port=80\n"}
    assert await kpyctl(apiserver, ns, *words) == (
        1,
        "",
        'Error from server (AlreadyExists): configmaps "cfg" already exists\n',
    )
    code, out, _ = await kpyctl(
        apiserver, ns, "create", "secret", "generic", "db", "--from-literal=pw=s3cret"
    )
    assert (code, out) == (0, "secret/db created\n")
    secret = await client.get(Secret, "db")
    assert dict(secret.data) == {"pw": b"s3cret"}
    assert base64.b64encode(secret.data["pw"]).decode() == "czNjcmV0"


# -- patch ----------------------------------------------------------------------------------


async def test_patch_strategic_merge_json_and_no_change(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    deploy = workload(Deployment, "web", 1)
    await client.create(deploy)
    sidecar = '{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox"}]}}}}'
    # strategic (the default): the container list merges on name.
    assert await kpyctl(apiserver, ns, "patch", "deployment", "web", "-p", sidecar) == (
        0,
        "deployment.apps/web patched\n",
        "",
    )
    names = [c.name for c in (await client.get(Deployment, "web")).spec.template.spec.containers]
    assert len(names) == 2
    assert "side" in names
    # merge: the list is replaced whole.
    code, out, _ = await kpyctl(
        apiserver, ns, "patch", "deploy/web", "--type", "merge", "-p", sidecar
    )
    assert (code, out) == (0, "deployment.apps/web patched\n")
    containers = (await client.get(Deployment, "web")).spec.template.spec.containers
    assert [c.name for c in containers] == ["side"]
    replicas = '[{"op": "replace", "path": "/spec/replicas", "value": 3}]'
    code, out, _ = await kpyctl(apiserver, ns, "patch", "deploy/web", "--type=json", "-p", replicas)
    assert (code, out) == (0, "deployment.apps/web patched\n")
    assert (await client.get(Deployment, "web")).spec.replicas == 3
    assert await kpyctl(apiserver, ns, "patch", "deploy/web", "--type=json", "-p", replicas) == (
        0,
        "deployment.apps/web patched (no change)\n",
        "",
    )
    code, _, err = await kpyctl(
        apiserver, ns, "patch", "deploy/web", "-p", '{"spec":{"replicas":-1}}'
    )
    assert code == 1
    assert err.startswith("Error from server (Invalid): ")
    assert "spec.replicas" in err
    assert await kpyctl(apiserver, ns, "patch", "deploy/web") == (
        1,
        "",
        "error: must specify --patch or --patch-file containing the contents of the patch\n",
    )
    code, _, err = await kpyctl(apiserver, ns, "patch", "deploy/nope", "-p", "{}")
    assert (code, err) == (1, 'Error from server (NotFound): deployments.apps "nope" not found\n')


async def test_patch_a_subresource(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    """`--subresource status|scale`, as kubectl 1.24+: the status path writes
    only the status, the scale path only the replicas."""
    ns = api_namespace
    await client.create(workload(Deployment, "web", 1))
    status = '{"status":{"observedGeneration":7}}'
    code, out, err = await kpyctl(
        apiserver, ns, "patch", "deploy/web", "--subresource=status", "--type=merge", "-p", status
    )
    assert (code, out, err) == (0, "deployment.apps/web patched\n", "")
    assert (await client.get(Deployment, "web")).status.observed_generation == 7
    # The main path keeps the stored status: the same patch there changes nothing.
    code, out, _ = await kpyctl(apiserver, ns, "patch", "deploy/web", "--type=merge", "-p", status)
    assert (code, out) == (0, "deployment.apps/web patched (no change)\n")
    scale = '{"spec":{"replicas":4}}'
    code, out, _ = await kpyctl(
        apiserver, ns, "patch", "deploy/web", "--subresource", "scale", "--type=merge", "-p", scale
    )
    assert (code, out) == (0, "deployment.apps/web patched\n")
    assert (await client.get(Deployment, "web")).spec.replicas == 4


# -- run ------------------------------------------------------------------------------------


async def test_run_creates_a_pod_as_kubectl_does(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    assert await kpyctl_env(
        apiserver,
        ns,
        "run",
        "hello",
        "--image=busybox",
        "--restart=Never",
        "--env=GREETING=hi",
        "--port=8080",
        after=("--", "sh", "-c", "echo $GREETING"),
    ) == (0, "pod/hello created\n", "")
    pod = await client.get(Pod, "hello")
    assert dict(pod.metadata.labels) == {"run": "hello"}
    [c] = pod.spec.containers
    assert (c.name, c.image, list(c.args)) == ("hello", "busybox", ["sh", "-c", "echo $GREETING"])
    assert [(e.name, e.value) for e in c.env] == [("GREETING", "hi")]
    assert c.ports[0].container_port == 8080
    assert pod.spec.restart_policy == "Never"


# -- edit -----------------------------------------------------------------------------------

# An editor that applies a sed-like replacement given in the environment;
# when EDIT_LOG is set it appends every text it was shown there.
EDITOR = """\
import os, sys
path = sys.argv[1]
text = open(path).read()
if os.environ.get("EDIT_LOG"):
    with open(os.environ["EDIT_LOG"], "a") as log:
        log.write(text + "\\n=====\\n")
counter = os.environ["EDIT_COUNT"]
count = int(open(counter).read()) if os.path.exists(counter) else 0
open(counter, "w").write(str(count + 1))
old, new = os.environ["EDIT_STEPS"].split(";")[min(count, 1)].split("=>")
open(path, "w").write(text.replace(old, new))
"""


async def test_edit_saves_reopens_on_error_and_cancels_unchanged(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    await client.create(from_dict(ConfigMap, {"metadata": {"name": "cfg"}, "data": {"k": "v"}}))
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)

    def env(steps: str, name: str) -> dict[str, str]:
        return {
            "KPY_EDITOR": f"{sys.executable} {editor}",
            "EDIT_STEPS": steps,
            "EDIT_COUNT": str(tmp_path / f"{name}.count"),
            "EDIT_LOG": str(tmp_path / f"{name}.log"),
        }

    assert await kpyctl_env(apiserver, ns, "edit", "cm/cfg", env=env("k: v=>k: w;x=>x", "a")) == (
        0,
        "configmap/cfg edited\n",
        "",
    )
    assert dict((await client.get(ConfigMap, "cfg")).data) == {"k": "w"}

    assert await kpyctl_env(
        apiserver, ns, "edit", "configmap", "cfg", env=env("x=>x;x=>x", "b")
    ) == (
        0,
        "",
        "Edit cancelled, no changes made.\n",
    )

    # An unknown field is refused; the file comes back with the error on top,
    # and the second save (which removes it) goes through.
    steps = "k: w=>k: z\n  bogus: 1;  bogus: 1\n=>"
    assert await kpyctl_env(apiserver, ns, "edit", "cm/cfg", env=env(steps, "c")) == (
        0,
        "configmap/cfg edited\n",
        "",
    )
    shown = (tmp_path / "c.log").read_text().split("\n=====\n")
    assert shown[1].startswith("# Please edit the object below.")
    assert '# configmaps "cfg" was not valid:\n# * ' in shown[1]
    assert "bogus: 1" in shown[1]
    assert dict((await client.get(ConfigMap, "cfg")).data) == {"k": "z"}

    # Saving the same invalid text twice gives up, keeping the user's file.
    code, out, err = await kpyctl_env(
        apiserver, ns, "edit", "cm/cfg", env=env("k: z=>k: z\n  bogus: 1;x=>x", "d")
    )
    assert (code, out) == (1, "")
    kept = err.split('"')[1]
    assert err == (
        f'A copy of your changes has been stored to "{kept}"\n'
        "error: Edit cancelled, no valid changes were saved.\n"
    )
    copy = anyio.Path(kept)
    assert "bogus" in await copy.read_text()
    await copy.unlink()
    code, _, err = await kpyctl_env(apiserver, ns, "edit", "cm/cfg", env={"KPY_EDITOR": "false"})
    assert code == 1
    assert err.startswith('error: there was a problem with the editor "false"')


# -- diff and apply -k ----------------------------------------------------------------------

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast}\n"


async def test_diff_exit_codes_follow_kubectl(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    path = tmp_path / "cm.yaml"
    path.write_text(CONFIGMAP)
    code, out, err = await kpyctl(apiserver, ns, "diff", "-f", str(path))
    assert (code, err) == (1, "")
    name = f"v1.ConfigMap.{ns}.settings"
    assert out.startswith("diff -u -N /tmp/LIVE-")
    assert f"/{name}\n+++ /tmp/MERGED-" in out
    assert "+  mode: fast\n" in out
    with_nothing_stored = await client.list(ConfigMap, namespace=ns)
    assert not [c for c in with_nothing_stored.items if c.metadata.name == "settings"]

    assert (await kpyctl(apiserver, ns, "apply", "-f", str(path)))[0] == 0
    assert await kpyctl(apiserver, ns, "diff", "-f", str(path)) == (0, "", "")
    path.write_text(CONFIGMAP.replace("fast", "slow"))
    code, out, _ = await kpyctl(apiserver, ns, "diff", "-f", str(path))
    assert code == 1
    assert "-  mode: fast\n+  mode: slow\n" in out
    assert (await client.get(ConfigMap, "settings")).data["mode"] == "fast"
    code, _, err = await kpyctl(apiserver, ns, "diff", "-f", str(tmp_path / "nope.yaml"))
    assert (code, err) == (2, f'error: the path "{tmp_path / "nope.yaml"}" does not exist\n')


async def test_apply_k_creates_generated_names_and_is_then_unchanged(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    (tmp_path / "deploy.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n"
        "  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n"
        "    spec:\n      containers:\n      - name: web\n        image: busybox:1\n"
        "        envFrom: [{configMapRef: {name: conf}}]\n"
    )
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [deploy.yaml]\nnamePrefix: dev-\ncommonLabels: {env: dev}\n"
        "configMapGenerator:\n- name: conf\n  literals: [MODE=fast]\n"
        "images:\n- {name: busybox, newTag: '2'}\n"
    )
    code, out, err = await kpyctl(apiserver, ns, "apply", "-k", str(tmp_path))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("configmap/dev-conf-")
    assert lines[0].endswith(" created")
    assert lines[1] == "deployment.apps/dev-web created"
    generated = lines[0].split()[0].split("/")[1]
    d = await client.get(Deployment, "dev-web")
    assert dict(d.spec.selector.match_labels) == {"app": "web", "env": "dev"}
    [c] = d.spec.template.spec.containers
    assert (c.image, c.env_from[0].config_map_ref.name) == ("busybox:2", generated)
    assert (await client.get(ConfigMap, generated)).data["MODE"] == "fast"
    assert (await kpyctl(apiserver, ns, "apply", "-k", str(tmp_path)))[1] == (
        f"configmap/{generated} unchanged\ndeployment.apps/dev-web unchanged\n"
    )
    assert (await kpyctl(apiserver, ns, "diff", "-k", str(tmp_path)))[0] == 0


# -- which part is down ---------------------------------------------------------------------


async def test_storage_down_is_told_apart_from_server_down(tmp_path: Path) -> None:
    """Its own etcd and API server, as the test stops etcd under the server."""
    etcd = EtcdServer(unsafe_no_fsync=True)
    etcd.start()
    server = APIServerProcess(etcd.endpoint)
    try:
        server.start()
        etcd.stop()
        code, out, err = await kpyctl(server, "default", "get", "configmap", "x")
        assert (code, out) == (1, "")
        assert err.startswith("Error from server (ServiceUnavailable): etcd is unavailable")
        assert err.endswith(
            f"The API server at {server.address} is up, but its storage (etcd) is unavailable: "
            "start etcd again ('kpy status' shows which processes of a local cluster run), "
            "then retry.\n"
        )
        code, _, err = await kpyctl(server, "default", "create", "namespace", "x")
        assert code == 1
        assert "its storage (etcd) is unavailable" in err
        address = server.address
        server.stop()
        code, _, err = await kpyctl(server, "default", "get", "configmap", "x")
        assert code == 1
        assert err.startswith(f"error: cannot reach the API server at {address}")
        assert "Start one with 'kpy up'" in err
    finally:
        if server.running:
            server.stop()
        if etcd.running:
            etcd.stop()


async def test_frozen_storage_is_named_before_the_client_gives_up() -> None:
    """An etcd that hangs (stopped, not gone) makes the API server answer
    Timeout after --etcd-request-timeout, naming etcd, well before the
    client's own 30 s deadline would leave the user guessing."""
    etcd = EtcdServer(unsafe_no_fsync=True)
    etcd.start()
    server = APIServerProcess(etcd.endpoint, extra_args=("--etcd-request-timeout", "1"))
    try:
        server.start()
        os.kill(etcd.pid, signal.SIGSTOP)
        try:
            with anyio.fail_after(25):
                code, out, err = await kpyctl(server, "default", "get", "configmap", "x")
        finally:
            os.kill(etcd.pid, signal.SIGCONT)
        assert (code, out) == (1, "")
        assert "etcd" in err
        assert "its storage (etcd) is unavailable" in err, err
    finally:
        if server.running:
            server.stop()
        etcd.stop()


async def test_missing_object_is_not_found_for_edit(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    code, _, err = await kpyctl_env(
        apiserver, api_namespace, "edit", "cm/nope", env={"KPY_EDITOR": "true"}
    )
    assert (code, err) == (1, 'Error from server (NotFound): configmaps "nope" not found\n')

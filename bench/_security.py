"""How a run secures its API server and its clients: by default as a secure
cluster runs (TLS, x509 client certificates, Node,RBAC authorization);
with `--insecure`, plaintext gRPC and no authentication, as before, for
comparison.

`Security.create` makes everything once per run, in the run's temporary
directory (`kpy.pki`; the names of `kpy up`'s `<dir>/pki/`):
- `ca.crt`/`ca.key`: the run's CA; `apiserver.crt`/`.key`: the API
  server's serving certificate (SANs `localhost`, `127.0.0.1`);
- client certificates, each with a kpy config file (`<name>.yaml`: the
  CA, the certificate, the key; no servers, every caller names its own):
  `admin` (CN `kubernetes-admin`, O `system:masters`), `controller-manager`
  (`system:kube-controller-manager`), `scheduler` (`system:kube-scheduler`),
  and, when asked, `nodes/<node>` (`node_args`: `system:node:<node>`, O
  `system:nodes`) and `simulated-nodes` (`simulated_nodes_args`:
  `system:kpy-simulated-nodes`);
- `plaintext.yaml`: a config without TLS (the `--insecure` run's, and
  the floor's plaintext no-op side).
Keys are written 0600 (`kpy.pki.write`).

Who uses what:
- every client of the run that is given only server addresses (the
  benchmark process's `Client`s, the load workers, the watch writer, the
  operator) reads the config `KPY_CONFIG` names, as the SDK does:
  `environment()` is what `bench.run` puts in its environment, for itself
  and every child it starts (the admin's config, or `plaintext.yaml`);
- the API server takes `apiserver_args()`;
- a component takes `component_args(...)`, `node_args(...)` or
  `simulated_nodes_args()`: `--kubeconfig FILE` of its own user, when its
  command has that flag (and, for the simulated nodes, when the bootstrap
  policy binds their user). Otherwise it runs with the admin's config from
  the environment, and `fallbacks` says so (the result's setup records it).
"""

from __future__ import annotations

import functools
import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import yaml

from kpy import pki
from kpy.auth import bootstrap

if TYPE_CHECKING:
    from pathlib import Path

CONFIG_ENV: Final = "KPY_CONFIG"

ADMIN: Final = ("kubernetes-admin", ("system:masters",))
COMPONENTS: Final = {
    # name: (module, user, groups)
    "controller-manager": ("kpy.controllers.main", "system:kube-controller-manager", ()),
    "scheduler": ("kpy.scheduler.main", "system:kube-scheduler", ()),
}
AGENT_MODULE: Final = "kpy.agent.main"
NODES_GROUP: Final = "system:nodes"
SIMULATED_NODES_USER: Final = "system:kpy-simulated-nodes"


def simulated_nodes_bound() -> bool:
    """Whether the API server's bootstrap policy binds a role to
    SIMULATED_NODES_USER (kpy/auth/bootstrap.py)."""
    return any(
        subject.name == SIMULATED_NODES_USER
        for binding in bootstrap.cluster_role_bindings()
        for subject in binding.subjects
    )


@functools.cache
def takes_kubeconfig(module: str) -> bool:
    """Whether `python -m module` has a `--kubeconfig` flag (from its --help)."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return "--kubeconfig" in done.stdout


def _config(directory: Path, name: str, data: dict[str, Any]) -> Path:
    path = directory / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass(slots=True)
class Security:
    """One run's PKI and configs (see the module docstring)."""

    directory: Path
    tls: bool
    plaintext_config: Path
    _ca: pki.CertKey | None = None
    #: components that ran as the admin because their command has no
    #: --kubeconfig yet, with why; recorded in the result's setup
    fallbacks: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, directory: Path, *, tls: bool) -> Security:
        """Makes the CA, the serving certificate, the admin's and the
        components' client certificates and configs under `directory`
        (with `tls`), or only `plaintext.yaml` (without)."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        security = cls(directory, tls, _config(directory, "plaintext", {}))
        if not tls:
            return security
        ca = pki.new_ca("kpy-bench-ca")
        pki.write(ca, security.ca_file, directory / "ca.key")
        pki.write(pki.issue_server(ca), security.serving_cert, security.serving_key)
        security._ca = ca
        security._client("admin", *ADMIN)
        for name, (_, user, groups) in COMPONENTS.items():
            security._client(name, user, groups)
        return security

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def serving_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def admin_config(self) -> Path:
        """The config every plain client of the run uses (KPY_CONFIG)."""
        return self.directory / "admin.yaml" if self.tls else self.plaintext_config

    def _client(self, name: str, user: str, groups: tuple[str, ...]) -> Path:
        """Issues `name`.crt/.key for `user` in `groups`; its config's path."""
        assert self._ca is not None
        cert, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        pki.write(pki.issue_client(self._ca, user, groups), cert, key)
        return _config(
            self.directory,
            name,
            {
                "certificate-authority": str(self.ca_file),
                "client-certificate": str(cert),
                "client-key": str(key),
            },
        )

    def environment(self) -> dict[str, str]:
        """What the run's environment needs: KPY_CONFIG, the admin's config
        (so also a ~/.kpy/config of another cluster is never read)."""
        return {CONFIG_ENV: str(self.admin_config)}

    def apiserver_args(self) -> tuple[str, ...]:
        """kpy-apiserver's flags for a secure cluster (none without TLS)."""
        if not self.tls:
            return ()
        return (
            "--tls-cert-file", str(self.serving_cert),
            "--tls-private-key-file", str(self.serving_key),
            "--client-ca-file", str(self.ca_file),
            "--authorization-mode", "Node,RBAC",
        )  # fmt: skip

    def component_args(self, name: str) -> tuple[str, ...]:
        """`--kubeconfig` of component `name` (a key of COMPONENTS) as its
        own user, when TLS is on and its command takes the flag."""
        module, user, _ = COMPONENTS[name]
        return self._kubeconfig(module, f"kpy-{name}", user, self.directory / f"{name}.yaml")

    def node_args(self, node: str) -> tuple[str, ...]:
        """`--kubeconfig` for a kpy-agent of node `node`, as
        `system:node:<node>` in `system:nodes` (issued on first use)."""
        if not self.tls:
            return ()
        user = f"system:node:{node}"
        path = self.directory / "nodes" / f"{node}.yaml"
        if not path.exists():
            path = self._client(f"nodes/{node}", user, (NODES_GROUP,))
        return self._kubeconfig(AGENT_MODULE, "kpy-agent", user, path)

    def simulated_nodes_args(self) -> tuple[str, ...]:
        """`--kubeconfig` for `kpy-agent --simulated-nodes` (one process, many
        nodes: no node identity fits it) as `system:kpy-simulated-nodes`, the
        user the bootstrap policy grants what nodes need cluster-wide. If
        the policy has no binding for that user, it runs as the admin, and
        `fallbacks` says so."""
        if not self.tls:
            return ()
        if not simulated_nodes_bound():
            self.fallbacks["kpy-agent --simulated-nodes"] = (
                f"the bootstrap policy binds no role to {SIMULATED_NODES_USER}: ran as {ADMIN[0]}"
            )
            return ()
        path = self.directory / "simulated-nodes.yaml"
        if not path.exists():
            path = self._client("simulated-nodes", SIMULATED_NODES_USER, ())
        return self._kubeconfig(AGENT_MODULE, "kpy-agent", SIMULATED_NODES_USER, path)

    def _kubeconfig(self, module: str, command: str, user: str, path: Path) -> tuple[str, ...]:
        if not self.tls:
            return ()
        if takes_kubeconfig(module):
            return ("--kubeconfig", str(path))
        self.fallbacks[command] = (
            f"{command} has no --kubeconfig flag yet: ran as {ADMIN[0]} (the environment's "
            f"{CONFIG_ENV}), not as {user}"
        )
        return ()

    def setup(self) -> dict[str, Any]:
        """What the result's `setup` says about security."""
        if not self.tls:
            return {
                "tls": False,
                "apiserver_security": "none (--insecure): plaintext gRPC, no authentication, "
                "AlwaysAllow",
            }
        return {
            "tls": True,
            "apiserver_security": "TLS (ECDSA P-256 serving certificate), x509 client "
            "authentication (--client-ca-file), --authorization-mode Node,RBAC",
            "clients": f"TLS with a client certificate: load and benchmark clients as "
            f"{ADMIN[0]} (system:masters); components as their own users where their "
            "command takes --kubeconfig",
            "identity_fallbacks": dict(self.fallbacks),
        }

"""ServiceAccount admission (Kubernetes' plugin/pkg/admission/serviceaccount,
after its admission_test.go): the default account, the refusal of a
missing one, the kube-api-access volume and its mounts, automount, image
pull secrets, mirror pods."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from kpy.api import codec, errors
from kpy.api.core.v1 import Pod, ServiceAccount
from kpy.apiserver.admission import (
    API_ACCESS_TOKEN_SECONDS,
    SERVICE_ACCOUNT_MOUNT_PATH,
    admit,
    admit_service_account,
)

NS = "dev"
SUFFIX = "x7k2q"
VOLUME = f"kube-api-access-{SUFFIX}"
MOUNT = {"name": VOLUME, "readOnly": True, "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}


class Accounts:
    """A ServiceAccounts lookup over a dict, counting the questions."""

    def __init__(self, *accounts: ServiceAccount, appears_after: int = 0) -> None:
        self._accounts = {(a.metadata.namespace, a.metadata.name): a for a in accounts}
        self._appears_after = appears_after
        self.asked = 0

    async def get(self, namespace: str, name: str) -> ServiceAccount | None:
        self.asked += 1
        if self.asked <= self._appears_after:
            return None
        return self._accounts.get((namespace, name))


def account(name: str = "default", **fields: Any) -> ServiceAccount:
    sa = codec.decode_object({"apiVersion": "v1", "kind": "ServiceAccount", **fields})
    assert isinstance(sa, ServiceAccount)
    sa.metadata.name, sa.metadata.namespace = name, NS
    return sa


def pod(spec: dict[str, Any] | None = None, *, mirror: bool = False) -> Pod:
    spec = spec if spec is not None else {"containers": [{"name": "app", "image": "busybox"}]}
    meta: dict[str, Any] = {"name": "web", "namespace": NS}
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    p = codec.decode_object({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
    assert isinstance(p, Pod)
    return p


def api_access_volume(name: str = VOLUME) -> dict[str, Any]:
    return {
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def spec_of(p: Pod) -> dict[str, Any]:
    out: dict[str, Any] = codec.to_dict(p)["spec"]
    return out


@dataclass(frozen=True)
class Case:
    name: str
    pod: Pod
    accounts: Accounts
    #: the spec after admission (None: only checked not to raise)
    spec: dict[str, Any] | None = None
    refused: str = ""
    asked: int | None = None


APP = {"name": "app", "image": "busybox"}
CASES = [
    Case(
        "no account named: default, with the kube-api-access volume mounted",
        pod(),
        Accounts(account()),
        spec={
            "serviceAccountName": "default",
            "containers": [{**APP, "volumeMounts": [MOUNT]}],
            "volumes": [api_access_volume()],
        },
    ),
    Case(
        "every container and init container gets the mount",
        pod(
            {
                "serviceAccountName": "builder",
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [APP, {"name": "side", "image": "busybox"}],
            }
        ),
        Accounts(account("builder")),
        spec={
            "serviceAccountName": "builder",
            "initContainers": [{"name": "init", "image": "busybox", "volumeMounts": [MOUNT]}],
            "containers": [
                {**APP, "volumeMounts": [MOUNT]},
                {"name": "side", "image": "busybox", "volumeMounts": [MOUNT]},
            ],
            "volumes": [api_access_volume()],
        },
    ),
    Case(
        "a container with its own mount at the path keeps it",
        pod(
            {
                "containers": [
                    {
                        **APP,
                        "volumeMounts": [{"name": "mine", "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}],
                    },
                    {"name": "side", "image": "busybox"},
                ],
                "volumes": [{"name": "mine", "emptyDir": {}}],
            }
        ),
        Accounts(account()),
        spec={
            "serviceAccountName": "default",
            "containers": [
                {
                    **APP,
                    "volumeMounts": [{"name": "mine", "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}],
                },
                {"name": "side", "image": "busybox", "volumeMounts": [MOUNT]},
            ],
            "volumes": [{"name": "mine", "emptyDir": {}}, api_access_volume()],
        },
    ),
    Case(
        "every container mounts its own there: no volume added",
        pod(
            {
                "containers": [
                    {
                        **APP,
                        "volumeMounts": [{"name": "mine", "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}],
                    }
                ],
                "volumes": [{"name": "mine", "emptyDir": {}}],
            }
        ),
        Accounts(account()),
        spec={
            "serviceAccountName": "default",
            "containers": [
                {**APP, "volumeMounts": [{"name": "mine", "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}]}
            ],
            "volumes": [{"name": "mine", "emptyDir": {}}],
        },
    ),
    Case(
        "a kube-api-access volume already there is reused, not added again",
        pod({"containers": [APP], "volumes": [api_access_volume("kube-api-access-abcde")]}),
        Accounts(account()),
        spec={
            "serviceAccountName": "default",
            "containers": [{**APP, "volumeMounts": [{**MOUNT, "name": "kube-api-access-abcde"}]}],
            "volumes": [api_access_volume("kube-api-access-abcde")],
        },
    ),
    Case(
        "the pod says automountServiceAccountToken false: nothing mounted",
        pod({"automountServiceAccountToken": False, "containers": [APP]}),
        Accounts(account()),
        spec={
            "serviceAccountName": "default",
            "automountServiceAccountToken": False,
            "containers": [APP],
        },
    ),
    Case(
        "the account says false: nothing mounted",
        pod(),
        Accounts(account(automountServiceAccountToken=False)),
        spec={"serviceAccountName": "default", "containers": [APP]},
    ),
    Case(
        "the pod's true wins over the account's false",
        pod({"automountServiceAccountToken": True, "containers": [APP]}),
        Accounts(account(automountServiceAccountToken=False)),
        spec={
            "serviceAccountName": "default",
            "automountServiceAccountToken": True,
            "containers": [{**APP, "volumeMounts": [MOUNT]}],
            "volumes": [api_access_volume()],
        },
    ),
    Case(
        "the account's image pull secrets go to a pod that has none",
        pod({"automountServiceAccountToken": False, "containers": [APP]}),
        Accounts(account(imagePullSecrets=[{"name": "registry"}])),
        spec={
            "serviceAccountName": "default",
            "automountServiceAccountToken": False,
            "containers": [APP],
            "imagePullSecrets": [{"name": "registry"}],
        },
    ),
    Case(
        "a pod's own image pull secrets are kept",
        pod(
            {
                "automountServiceAccountToken": False,
                "imagePullSecrets": [{"name": "mine"}],
                "containers": [APP],
            }
        ),
        Accounts(account(imagePullSecrets=[{"name": "registry"}])),
        spec={
            "serviceAccountName": "default",
            "automountServiceAccountToken": False,
            "containers": [APP],
            "imagePullSecrets": [{"name": "mine"}],
        },
    ),
    Case(
        "a missing account is refused, asked once",
        pod({"serviceAccountName": "builder", "containers": [APP]}),
        Accounts(account()),
        refused='pods "web" is forbidden: error looking up service account dev/builder: '
        'serviceaccount "builder" not found',
        asked=1,
    ),
    Case(
        "a missing default is asked for 10 times, then refused",
        pod(),
        Accounts(),
        refused='pods "web" is forbidden: error looking up service account dev/default: '
        'serviceaccount "default" not found',
        asked=10,
    ),
    Case(
        "a default made a moment later is found",
        pod({"automountServiceAccountToken": False, "containers": [APP]}),
        Accounts(account(), appears_after=3),
        spec={
            "serviceAccountName": "default",
            "automountServiceAccountToken": False,
            "containers": [APP],
        },
        asked=4,
    ),
    Case(
        "a mirror pod is left alone, even naming no account that exists",
        pod(mirror=True),
        Accounts(),
        spec={"containers": [APP]},
        asked=0,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_admit_service_account(case: Case) -> None:
    p = case.pod
    call = admit_service_account(
        p, case.accounts, retry_interval=lambda: 0.0, suffix=lambda: SUFFIX
    )
    if case.refused:
        with pytest.raises(errors.Forbidden) as refused:
            await call
        assert str(refused.value) == case.refused, case.name
    else:
        await call
        assert spec_of(p) == case.spec, case.name
    if case.asked is not None:
        assert case.accounts.asked == case.asked, case.name


def test_the_token_lives_3607_seconds() -> None:
    assert API_ACCESS_TOKEN_SECONDS == 3607


@pytest.mark.parametrize(
    ("name", "mirror", "want"),
    [
        ("a pod naming no account runs as default", False, "default"),
        ("a mirror pod keeps its spec", True, ""),
    ],
)
def test_admit_defaults_the_account_without_token_issuing(
    name: str, mirror: bool, want: str
) -> None:
    """Without a signing key only the create-time default applies (no lookup)."""
    p = pod(mirror=mirror)
    admit(p)
    assert p.spec.service_account_name == want, name

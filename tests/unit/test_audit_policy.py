"""The audit policy (kpy.apiserver.audit): strict parsing, each refusal
naming its field, and Kubernetes' matching (first matching rule wins)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpy.apiserver.audit import Policy, PolicyError, load_policy, parse_policy
from kpy.auth.attributes import Attributes, UserInfo

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "audit-policy.yaml"


def policy(*rules: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": list(rules), **top}


# --- parsing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    name: str
    data: Any
    names: str  # what the message must contain


REFUSALS = [
    Refusal("not a mapping", ["x"], "a mapping"),
    Refusal("wrong apiVersion", {**policy({"level": "None"}), "apiVersion": "v1"}, "apiVersion"),
    Refusal("wrong kind", {**policy({"level": "None"}), "kind": "Pol"}, "kind"),
    Refusal("no rules", policy(), "rules"),
    Refusal("unknown top-level field", policy({"level": "None"}, rule=[]), "rule: unknown field"),
    Refusal("unknown level", policy({"level": "Everything"}), "rules[0].level"),
    Refusal("missing level", policy({"verbs": ["get"]}), "rules[0].level"),
    Refusal(
        "unknown rule field",
        policy({"level": "None"}, {"level": "Metadata", "user": ["a"]}),
        "rules[1].user: unknown field",
    ),
    Refusal("verbs not a list", policy({"level": "None", "verbs": "get"}), "rules[0].verbs"),
    Refusal(
        "unknown field in resources",
        policy({"level": "None", "resources": [{"group": "", "resource": ["pods"]}]}),
        "rules[0].resources[0].resource: unknown field",
    ),
    Refusal(
        "resource names not strings",
        policy({"level": "None", "resources": [{"resourceNames": [1]}]}),
        "rules[0].resources[0].resourceNames",
    ),
    Refusal(
        "unknown stage in a rule",
        policy({"level": "None", "omitStages": ["Started"]}),
        "rules[0].omitStages[0]",
    ),
    Refusal(
        "unknown top-level stage",
        policy({"level": "None"}, omitStages=["RequestReceived", "Done"]),
        "omitStages[1]",
    ),
    Refusal(
        "URLs with resources",
        policy({"level": "None", "nonResourceURLs": ["/healthz"], "resources": [{}]}),
        "rules[0].nonResourceURLs",
    ),
    Refusal(
        "relative URL",
        policy({"level": "None", "nonResourceURLs": ["healthz"]}),
        "rules[0].nonResourceURLs[0]",
    ),
    Refusal(
        "omitManagedFields not a bool",
        policy({"level": "None", "omitManagedFields": "yes"}),
        "rules[0].omitManagedFields",
    ),
]


@pytest.mark.parametrize("case", REFUSALS, ids=lambda c: c.name)
def test_a_bad_policy_is_refused_naming_the_field(case: Refusal) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(case.data)
    assert case.names in str(raised.value), f"{case.name}: {raised.value}"


def test_a_full_policy_parses() -> None:
    parsed = parse_policy(
        policy(
            {
                "level": "RequestResponse",
                "users": ["jane"],
                "userGroups": ["dev"],
                "verbs": ["get"],
                "resources": [{"group": "", "resources": ["pods/log"], "resourceNames": ["w"]}],
                "namespaces": ["dev"],
                "omitStages": ["ResponseStarted"],
                "omitManagedFields": True,
            },
            {"level": "Metadata", "nonResourceURLs": ["/apis*"]},
            omitStages=["RequestReceived"],
            omitManagedFields=False,
        )
    )
    rule = parsed.rules[0]
    assert rule.level == "RequestResponse"
    assert rule.resources[0].resources == ("pods/log",)
    assert rule.resources[0].resource_names == ("w",)
    assert parsed.omit_stages == ("RequestReceived",)
    assert parsed.rules[1].non_resource_urls == ("/apis*",)


def test_the_example_policy_parses(tmp_path: Path) -> None:
    assert load_policy(EXAMPLE).rules
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump(policy({"level": "Loud"})))
    with pytest.raises(PolicyError, match=r"p\.yaml: rules\[0\]\.level"):
        load_policy(bad)
    with pytest.raises(PolicyError, match="cannot read the audit policy"):
        load_policy(tmp_path / "missing.yaml")


# --- matching --------------------------------------------------------------------------

JANE = UserInfo("jane", ("dev", "system:authenticated"))
NODE = UserInfo("system:node:n1", ("system:nodes",))
GET_POD = Attributes("get", "", "pods", "", "dev", "web")
POD_LOG = Attributes("get", "", "pods", "log", "dev", "web")
LIST_DEPLOYS = Attributes("list", "apps", "deployments", "", "prod")
SCALE = Attributes("update", "apps", "deployments", "scale", "prod", "api")
NODES = Attributes("get", "", "nodes", "", "", "n1")
DISCOVERY = Attributes.non_resource("get", "/apis")


@dataclass(frozen=True)
class MatchCase:
    name: str
    rule: dict[str, Any]
    user: UserInfo
    attrs: Attributes
    matches: bool


MATCHES = [
    MatchCase("empty rule matches all", {}, JANE, GET_POD, True),
    MatchCase("empty rule matches non-resource", {}, JANE, DISCOVERY, True),
    MatchCase("user in users", {"users": ["jane"]}, JANE, GET_POD, True),
    MatchCase("user not in users", {"users": ["bob"]}, JANE, GET_POD, False),
    MatchCase("a group in userGroups", {"userGroups": ["system:nodes"]}, NODE, NODES, True),
    MatchCase("no group in userGroups", {"userGroups": ["system:nodes"]}, JANE, NODES, False),
    MatchCase("verb in verbs", {"verbs": ["get", "list"]}, JANE, GET_POD, True),
    MatchCase("verb not in verbs", {"verbs": ["create"]}, JANE, GET_POD, False),
    MatchCase("namespace in namespaces", {"namespaces": ["dev"]}, JANE, GET_POD, True),
    MatchCase("namespace not in namespaces", {"namespaces": ["prod"]}, JANE, GET_POD, False),
    MatchCase("cluster scope is the '' namespace", {"namespaces": [""]}, JANE, NODES, True),
    MatchCase(
        "namespaces never match non-resource", {"namespaces": ["dev"]}, JANE, DISCOVERY, False
    ),
    MatchCase("core group, any resource", {"resources": [{"group": ""}]}, JANE, GET_POD, True),
    MatchCase("other group", {"resources": [{"group": "apps"}]}, JANE, GET_POD, False),
    MatchCase("resource named", {"resources": [{"resources": ["pods"]}]}, JANE, GET_POD, True),
    MatchCase(
        "a resource is not its subresources",
        {"resources": [{"resources": ["pods"]}]},
        JANE,
        POD_LOG,
        False,
    ),
    MatchCase(
        "subresource named", {"resources": [{"resources": ["pods/log"]}]}, JANE, POD_LOG, True
    ),
    MatchCase("star", {"resources": [{"resources": ["*"]}]}, JANE, POD_LOG, True),
    MatchCase(
        "star/subresource",
        {"resources": [{"group": "apps", "resources": ["*/scale"]}]},
        JANE,
        SCALE,
        True,
    ),
    MatchCase(
        "resource/star",
        {"resources": [{"group": "apps", "resources": ["deployments/*"]}]},
        JANE,
        SCALE,
        True,
    ),
    MatchCase(
        "resourceNames match",
        {"resources": [{"resources": ["pods"], "resourceNames": ["web"]}]},
        JANE,
        GET_POD,
        True,
    ),
    MatchCase(
        "resourceNames miss",
        {"resources": [{"resources": ["pods"], "resourceNames": ["db"]}]},
        JANE,
        GET_POD,
        False,
    ),
    MatchCase(
        "resourceNames never match a list",
        {"resources": [{"group": "apps", "resources": ["deployments"], "resourceNames": ["a"]}]},
        JANE,
        LIST_DEPLOYS,
        False,
    ),
    MatchCase("resources never match non-resource", {"resources": [{}]}, JANE, DISCOVERY, False),
    MatchCase("URL exact", {"nonResourceURLs": ["/apis"]}, JANE, DISCOVERY, True),
    MatchCase("URL prefix", {"nonResourceURLs": ["/ap*"]}, JANE, DISCOVERY, True),
    MatchCase("URL miss", {"nonResourceURLs": ["/healthz"]}, JANE, DISCOVERY, False),
    MatchCase("URLs never match resources", {"nonResourceURLs": ["*"]}, JANE, GET_POD, False),
    MatchCase(
        "every matcher must match",
        {"users": ["jane"], "verbs": ["get"], "namespaces": ["prod"]},
        JANE,
        GET_POD,
        False,
    ),
]


@pytest.mark.parametrize("case", MATCHES, ids=lambda c: c.name)
def test_rule_matching(case: MatchCase) -> None:
    parsed = parse_policy(policy({"level": "Metadata", **case.rule}))
    got = parsed.rules[0].matches(case.user, case.attrs)
    assert got == case.matches, f"{case.name}: matched={got}"


def test_the_first_matching_rule_gives_the_level_and_stages() -> None:
    parsed: Policy = parse_policy(
        policy(
            {"level": "None", "users": ["system:node:n1"]},
            {"level": "RequestResponse", "resources": [{"resources": ["pods"]}]},
            {"level": "Metadata", "omitStages": ["ResponseStarted"]},
            omitStages=["RequestReceived"],
        )
    )
    assert parsed.level_of(NODE, GET_POD)[0] == "None"
    level, omit, _ = parsed.level_of(JANE, GET_POD)
    assert (level, omit) == ("RequestResponse", frozenset({"RequestReceived"}))
    level, omit, _ = parsed.level_of(JANE, POD_LOG)
    assert (level, omit) == ("Metadata", frozenset({"RequestReceived", "ResponseStarted"}))
    only_nodes = parse_policy(
        policy({"level": "Metadata", "resources": [{"resources": ["nodes"]}]})
    )
    assert only_nodes.level_of(JANE, GET_POD)[0] == "None", "no rule matching is None"

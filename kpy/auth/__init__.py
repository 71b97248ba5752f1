"""Authorization: who may do what (Kubernetes' RBAC), as pure logic over API
objects.

- `attributes`: the user asking (`UserInfo`), what they ask (`Attributes`)
  and the answer (`Decision`).
- `policy`: where the evaluator reads roles and bindings (`PolicySource`),
  a source over plain lists (`StaticPolicy`), and ClusterRole aggregation.
- `rbac`: the evaluator (`RBACAuthorizer.authorize`, `rules_for`).
- `bootstrap`: the default roles and bindings every cluster starts with.

Nothing here reads storage or the network: the API server drives it from
its caches, tests from lists.
"""

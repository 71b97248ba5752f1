"""kpy's scheduler: assigns nodes to pods, shaped after kube-scheduler.

`framework` holds the plugin protocols, the per-cycle state, NodeInfo and the
Framework that runs a Profile; `resources` says what a pod requests;
`plugins/` holds one in-tree plugin per module.
"""

"""kpy's scheduler: assigns nodes to pods, shaped after kube-scheduler.

`framework/` holds the plugin protocols, the per-cycle state, NodeInfo and the
Framework that runs a Profile; `plugins/` holds one in-tree plugin per module;
`profiles` names them in the default profile; `resources` says what a pod
requests.
"""

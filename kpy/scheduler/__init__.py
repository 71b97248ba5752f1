"""The scheduler: assigns nodes to pending pods (kube-scheduler's shape)."""

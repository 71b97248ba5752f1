"""kpy-proxy: routes Service addresses to ready endpoints on one node (kpy's
kube-proxy). See kpy.proxy.proxier and docs/architecture.md."""

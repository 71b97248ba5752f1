"""kpy-agent: the node agent (kpy's kubelet). See docs/architecture.md."""

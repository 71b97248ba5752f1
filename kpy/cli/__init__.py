"""kpyctl: kubectl's verbs, flags and output shapes, for kpy."""

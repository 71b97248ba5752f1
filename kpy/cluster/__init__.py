"""Start and stop a whole kpy cluster of processes (`kpy up / down / status`)."""

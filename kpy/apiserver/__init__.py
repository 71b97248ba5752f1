"""The API server: the only door to etcd."""

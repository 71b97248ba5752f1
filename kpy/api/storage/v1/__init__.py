"""storage.k8s.io/v1: StorageClass."""

from kpy.api.storage.v1.generated_pb2 import *

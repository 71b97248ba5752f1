"""scheduling.k8s.io/v1: PriorityClass."""

from kpy.api.scheduling.v1.generated_pb2 import *

"""networking.k8s.io/v1: Ingress and IngressClass."""

from kpy.api.networking.v1.generated_pb2 import *

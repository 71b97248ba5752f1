"""discovery.k8s.io/v1: EndpointSlice, a Service's endpoints in slices of up to 100."""

from kpy.api.discovery.v1.generated_pb2 import *

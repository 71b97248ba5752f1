"""authentication.k8s.io/v1: TokenRequest, the body of a ServiceAccount's
token subresource."""

from kpy.api.authentication.v1.generated_pb2 import *

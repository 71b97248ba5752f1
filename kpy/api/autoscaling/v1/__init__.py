"""autoscaling/v1: Scale, the body of the scale subresource."""

from kpy.api.autoscaling.v1.generated_pb2 import *

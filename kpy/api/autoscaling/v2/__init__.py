"""autoscaling/v2: HorizontalPodAutoscaler and its metric types."""

from kpy.api.autoscaling.v2.generated_pb2 import *

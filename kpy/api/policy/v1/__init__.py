"""policy/v1: PodDisruptionBudget and Eviction."""

from kpy.api.policy.v1.generated_pb2 import *

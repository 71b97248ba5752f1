"""meta/v1: ObjectMeta, LabelSelector, OwnerReference and the other shared parts."""

from kpy.api.meta.v1.generated_pb2 import *

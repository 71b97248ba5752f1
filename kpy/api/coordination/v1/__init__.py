"""coordination.k8s.io/v1: Lease, for node heart-beats and leader election."""

from kpy.api.coordination.v1.generated_pb2 import *

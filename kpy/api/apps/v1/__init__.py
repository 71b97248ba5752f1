"""apps/v1: ReplicaSet, Deployment, StatefulSet, DaemonSet and ControllerRevision."""

from kpy.api.apps.v1.generated_pb2 import *

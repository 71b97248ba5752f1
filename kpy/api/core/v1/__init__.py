"""core/v1: Pod, Node, Service, ConfigMap, Secret and the other kinds of the core group."""

from kpy.api.core.v1.generated_pb2 import *

"""apiextensions.k8s.io/v1: CustomResourceDefinition and its parts."""

from kpy.api.apiextensions.v1.generated_pb2 import *

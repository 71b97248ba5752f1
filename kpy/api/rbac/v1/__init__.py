"""rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding and ClusterRoleBinding."""

from kpy.api.rbac.v1.generated_pb2 import *

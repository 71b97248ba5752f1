"""kpy.rpc.apiserver.v1: the API service's messages and stubs."""

from typing import TYPE_CHECKING

from kpy.rpc.apiserver.v1.apiserver_pb2 import *
from kpy.rpc.apiserver.v1.apiserver_pb2_grpc import APIServicer as APIServicer
from kpy.rpc.apiserver.v1.apiserver_pb2_grpc import APIStub as APIStub
from kpy.rpc.apiserver.v1.apiserver_pb2_grpc import (
    add_APIServicer_to_server as add_APIServicer_to_server,
)

if TYPE_CHECKING:
    from kpy.rpc.apiserver.v1.apiserver_pb2_grpc import APIAsyncStub as APIAsyncStub

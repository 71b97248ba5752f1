"""kpy.rpc.agent.v1: the node agent's service stubs (its messages are the
API server's, in kpy.rpc.apiserver.v1)."""

from typing import TYPE_CHECKING

from kpy.rpc.agent.v1.agent_pb2_grpc import AgentServicer as AgentServicer
from kpy.rpc.agent.v1.agent_pb2_grpc import AgentStub as AgentStub
from kpy.rpc.agent.v1.agent_pb2_grpc import (
    add_AgentServicer_to_server as add_AgentServicer_to_server,
)

if TYPE_CHECKING:
    from kpy.rpc.agent.v1.agent_pb2_grpc import AgentAsyncStub as AgentAsyncStub

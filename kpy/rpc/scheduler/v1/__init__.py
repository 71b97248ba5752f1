"""kpy.rpc.scheduler.v1: the Scheduler service's messages and stubs."""

from typing import TYPE_CHECKING

from kpy.rpc.scheduler.v1.scheduler_pb2 import *
from kpy.rpc.scheduler.v1.scheduler_pb2_grpc import SchedulerServicer as SchedulerServicer
from kpy.rpc.scheduler.v1.scheduler_pb2_grpc import SchedulerStub as SchedulerStub
from kpy.rpc.scheduler.v1.scheduler_pb2_grpc import (
    add_SchedulerServicer_to_server as add_SchedulerServicer_to_server,
)

if TYPE_CHECKING:
    from kpy.rpc.scheduler.v1.scheduler_pb2_grpc import SchedulerAsyncStub as SchedulerAsyncStub

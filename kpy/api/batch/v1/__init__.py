"""batch/v1: Job and CronJob."""

from kpy.api.batch.v1.generated_pb2 import *

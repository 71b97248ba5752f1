"""The scheduler's gRPC service."""

"""The API server's gRPC service."""

"""kpy's gRPC contracts: the generated request/response messages and stubs of
each service (the API server's now; the agent's and the scheduler's later).
Generated from proto/kpy/rpc/; nothing else lives here, so the server and
the client SDK can both import it without importing each other."""

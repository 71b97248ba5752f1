"""authentication.k8s.io: the API group of TokenRequest (v1), the body of a
ServiceAccount's token subresource."""

"""The garbage collector: `graph` holds the ownership graph and the pure
decisions, `collector` the controller that feeds the graph from informers
(those of custom kinds following their CRDs) and acts on it through the API."""

from kpy.controllers.garbagecollector.collector import (
    CRDFollower,
    GarbageCollector,
    Orphaner,
    new_garbage_collector,
)
from kpy.controllers.garbagecollector.graph import Graph

__all__ = ["CRDFollower", "GarbageCollector", "Graph", "Orphaner", "new_garbage_collector"]

"""The garbage collector: `graph` holds the ownership graph and the pure
decisions, `collector` the controller that feeds the graph from informers
and acts on it through the API."""

from kpy.controllers.garbagecollector.collector import (
    GarbageCollector,
    Orphaner,
    new_garbage_collector,
)
from kpy.controllers.garbagecollector.graph import Graph

__all__ = ["GarbageCollector", "Graph", "Orphaner", "new_garbage_collector"]

"""The client-go machinery, for kpy's controllers and for yours.

    from kpy.cache import EventHandler, RateLimitingQueue, SharedInformerFactory

    informers = SharedInformerFactory(client)
    pods = informers.informer(Pod)
    queue: RateLimitingQueue[str] = RateLimitingQueue()
    pods.add_event_handler(EventHandler(on_add=lambda pod, _: queue.add(meta_namespace_key(pod))))
    # run informers.run() in a task group, await informers.wait_for_cache_sync(),
    # then workers: key = await queue.get(); ...; queue.forget(key); queue.done(key)

`kpy.controllers.base.Controller` wraps that loop; see its docstring.
Objects handed out by informers, stores and listers are shared: copy before
changing one.
"""

from kpy.cache.delta_fifo import DeletedFinalStateUnknown, DeltaFIFO
from kpy.cache.expectations import ControllerExpectations
from kpy.cache.informer import EventHandler, Lister, SharedInformer, SharedInformerFactory
from kpy.cache.leader_election import LeaderElectionConfig, LeaderElector
from kpy.cache.reflector import Reflector
from kpy.cache.store import Indexer, ThreadSafeStore, meta_namespace_key, split_key
from kpy.cache.workqueue import (
    DelayingQueue,
    Queue,
    RateLimitingQueue,
    ShutDown,
    default_controller_rate_limiter,
)
from kpy.clock import Clock, FakeClock, RealClock

__all__ = [
    "Clock",
    "ControllerExpectations",
    "DelayingQueue",
    "DeletedFinalStateUnknown",
    "DeltaFIFO",
    "EventHandler",
    "FakeClock",
    "Indexer",
    "LeaderElectionConfig",
    "LeaderElector",
    "Lister",
    "Queue",
    "RateLimitingQueue",
    "RealClock",
    "Reflector",
    "SharedInformer",
    "SharedInformerFactory",
    "ShutDown",
    "ThreadSafeStore",
    "default_controller_rate_limiter",
    "meta_namespace_key",
    "split_key",
]

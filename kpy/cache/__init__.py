"""The client-go machinery: stores, DeltaFIFO, informers, work queues, leader election."""

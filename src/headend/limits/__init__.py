"""Rate and concurrency limits: per process in memory, or shared by instances through Redis."""

"""Side effects queued with the change that causes them, run later by the worker."""

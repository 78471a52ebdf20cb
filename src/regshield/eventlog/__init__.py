"""The event log: append-only, hash-chained evidence of every change."""

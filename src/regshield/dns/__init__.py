"""Serving and publishing zones: zone snapshots, the authoritative server, transfers and NOTIFY."""

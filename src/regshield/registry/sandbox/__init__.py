"""The sandbox registry: a real EPP server over TLS, with its own state, that regshield runs as
the embedded default registry and that tests talk to as they would to a registry's OT&E.

It is the registry, not the registrar: it keeps its own SQLite file and tables (`models.py`,
`state.py`), answers EPP commands with the shared codec (`sessions.py`, with the updates in
`updates.py`, DS records in `dnssec.py`, host objects in `hosts.py` and contact objects in
`contacts.py`), and enforces on its side what statuses prohibit,
so a lock holds whatever happens to the registrar's database. What time brings is done by
`schedule.py`: transfers approved by the registry (`transfers.py`) and deleted domains taken
through redemption to purge (`deletions.py`).
"""

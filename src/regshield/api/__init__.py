"""The REST API adapter (FastAPI): parse, call a flow or a read, render. No rules here."""

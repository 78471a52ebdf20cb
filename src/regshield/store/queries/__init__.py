"""Read access to the store, one module per subject. Flows and adapters ask here, not in SQL."""

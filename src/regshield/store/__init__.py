"""The store: engine and transactions, ORM models, queries, migrations. All SQL lives here."""

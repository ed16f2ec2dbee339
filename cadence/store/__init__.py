"""Storage: SQLAlchemy models, sessions, bulk writes and Alembic migrations. At the bottom:
imports only the core modules (errors)."""

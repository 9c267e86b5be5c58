"""Persistence: SQLAlchemy models, sessions, repository (all SQL), Alembic migration runner."""

"""Persistence: SQLAlchemy Core tables, engines and the group-commit writer."""

"""One SQLAlchemy Core implementation of the stores for SQLite and Postgres, with alembic
migrations. Dialect differences stay small and local.
"""

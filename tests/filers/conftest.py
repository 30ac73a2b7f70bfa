"""The store fixtures (``store``, ``store_factory``, ``backend``: SQLite and PostgreSQL)
for the fair-delivery tests."""

from tests.store.conftest import backend, pg_schema_dsn, store, store_factory

__all__ = ["backend", "pg_schema_dsn", "store", "store_factory"]

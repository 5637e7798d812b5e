"""The store contract's database fixture (SQLite and a real PostgreSQL), for every test here."""

from tests.service.audit.test_stores import backend

__all__ = ["backend"]

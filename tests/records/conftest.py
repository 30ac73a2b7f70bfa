"""Fixtures of the records tests: a keyring of random keys."""

from __future__ import annotations

import os

import pytest

from gateway.records import crypto


@pytest.fixture
def keyring() -> crypto.Keyring:
    return crypto.Keyring({"k1": os.urandom(32)})


# the store fixtures (one store on SQLite and one on PostgreSQL) for the wiring's tests
from tests.store.conftest import backend, store, store_factory  # noqa: E402

__all__ = ["backend", "keyring", "store", "store_factory"]

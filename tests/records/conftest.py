"""Fixtures of the records tests: a keyring of random keys."""

from __future__ import annotations

import os

import pytest

from gateway.records import crypto


@pytest.fixture
def keyring() -> crypto.Keyring:
    return crypto.Keyring({"k1": os.urandom(32)})

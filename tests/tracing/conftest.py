"""The OTLP receiver as a fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.tracing.otlp import Collector, otlp_collector


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    async with otlp_collector() as got:
        yield got

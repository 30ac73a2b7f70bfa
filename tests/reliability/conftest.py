"""Reliability suite: each matrix row prints its figure in a session-end summary, and the
log scan (``logscan``) checks every line these tests made the gateway write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.reliability import logscan

FIGURES: dict[str, str] = {}


def _plugin_loaded(config: pytest.Config) -> bool:
    """True when logscan runs suite-wide (``-p tests.reliability.logscan``)."""
    return config.pluginmanager.has_plugin("tests.reliability.logscan")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _LOADED_AS_PLUGIN:
        logscan.pytest_runtest_logreport(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: Any) -> None:
    if not _LOADED_AS_PLUGIN:
        logscan.pytest_sessionfinish(session, exitstatus)


def pytest_configure(config: pytest.Config) -> None:
    global _LOADED_AS_PLUGIN
    _LOADED_AS_PLUGIN = _plugin_loaded(config)


_LOADED_AS_PLUGIN = False


def pytest_terminal_summary(terminalreporter: Any) -> None:
    tr = terminalreporter
    if FIGURES:
        tr.write_sep("-", "reliability matrix figures")
        for row in sorted(FIGURES, key=lambda r: int(r.removeprefix("row").split(".")[0])):
            tr.write_line(f"{row}: {FIGURES[row]}")
    if not _LOADED_AS_PLUGIN:
        logscan.pytest_terminal_summary(terminalreporter)


def record_figure(row: str, text: str) -> None:
    """Keep a row's figure for the session-end summary (and print it, for ``-s``)."""
    FIGURES[row] = text
    print(f"\n{row}: {text}")


@pytest.fixture
def figure() -> Callable[[str, str], None]:
    """``figure("row1", "…")``: printed now (``-s``) and in the session-end summary."""
    return record_figure

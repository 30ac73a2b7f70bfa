"""Scan every log line for SSN/EIN-shaped values and tokens (matrix row 12).

What is scanned: the stderr (and captured log) sections of every test report — the
in-process gateway writes its JSON lines to fd 2, which pytest captures — and every
``serve`` subprocess log file registered with ``register_file``. A finding fails the
session (exit status 1) and is listed in the terminal summary.

Scope: as imported by ``tests/reliability/conftest.py`` it sees the reliability tests.
Suite-wide: add ``"-p", "tests.reliability.logscan"`` to ``addopts`` (or
``pytest_plugins = ["tests.reliability.logscan"]`` in ``tests/conftest.py``). With
``-s`` (capture off) in-process lines are not captured, so only the files are scanned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: an unmasked importer number: SSN, EIN (with optional suffix), CBP-assigned number
IMPORTER_NUMBER = re.compile(
    r"(?<![\d*])(?:\d{3}-\d{2}-\d{4}|\d{2}-\d{7}(?:[0-9A-Z]{2})?|\d{6}-\d{5})(?!\d)"
)
#: a bearer/basic credential not masked as ``Bearer ****abcd``
CREDENTIAL = re.compile(r"\b(?:[Bb]earer|Basic)\s+(?!\*)[A-Za-z0-9._~+/=-]{8,}")


@dataclass
class Scanner:
    files: list[Path] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    lines: int = 0
    findings: list[str] = field(default_factory=list)

    def scan_text(self, where: str, text: str) -> None:
        for line in text.splitlines():
            self.lines += 1
            hits = IMPORTER_NUMBER.findall(line) + CREDENTIAL.findall(line)
            hits += [s[:4] + "…" for s in self.secrets if s in line]
            if hits:
                self.findings.append(f"{where}: {hits} in {line[:300]}")

    def scan_files(self, where: str) -> None:
        files, self.files = self.files, []
        for path in files:
            if path.exists():
                self.scan_text(f"{where} [{path.name}]", path.read_text(errors="replace"))


SCANNER = Scanner()


def register_file(path: Path) -> None:
    """A subprocess log file to scan when the current test ends."""
    if path not in SCANNER.files:
        SCANNER.files.append(path)


def register_secret(value: str) -> None:
    """A token (or other secret) that must never appear in a log line."""
    SCANNER.secrets.add(value)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, text in report.sections:
        if "stderr" in name or "log" in name:
            SCANNER.scan_text(report.nodeid, text)
    if report.when == "teardown":
        SCANNER.scan_files(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: Any) -> None:
    if SCANNER.findings and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    tr = terminalreporter
    tr.write_sep("-", "log scan (row 12)")
    tr.write_line(
        f"row12 (logs): {SCANNER.lines} log lines scanned, {len(SCANNER.findings)} with an "
        "SSN/EIN-shaped value or a token"
    )
    for finding in SCANNER.findings[:20]:
        tr.write_line(f"  LEAK {finding}")

"""The lifecycle model prints, per backend, its step count and how often each event ran."""

from __future__ import annotations

from typing import Any

FIGURES: dict[str, tuple[dict[str, int], float]] = {}


def record(backend: str, counts: dict[str, int], seconds: float) -> None:
    """Keep one backend's figures for the session-end summary (and print them, for ``-s``)."""
    FIGURES[backend] = (counts, seconds)
    print("\n" + "\n".join(lines(backend)))


def steps(counts: dict[str, int]) -> int:
    """Rule steps run: the invariants are checked once per machine before its first step."""
    return counts.get("steps checked", 0) - counts.get("machines", 0)


def lines(backend: str) -> list[str]:
    counts, seconds = FIGURES[backend]
    out = [
        f"lifecycle model on {backend}: {steps(counts)} steps in {counts.get('machines', 0)} "
        f"histories, all five invariants checked after each, {seconds:.0f}s"
    ]
    skip = {"steps checked", "machines"}
    for name in sorted(k for k in counts if k not in skip):
        out.append(f"  {counts[name]:6d}  {name}")
    return out


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.write_sep("-", "lifecycle model: steps and events exercised")
    for backend in sorted(FIGURES):
        for line in lines(backend):
            terminalreporter.write_line(line)

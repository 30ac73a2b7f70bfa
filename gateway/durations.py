"""Durations written like ``2s``, ``10m``, ``72h``, ``1h30m``, ``500ms`` → seconds."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


#: the longest duration taken: 100 years. Longer ones (``99999999999d``) overflow the date
#: arithmetic of whatever schedules with them; no setting needs more.
MAX_SECONDS = 100 * 365.25 * 86400


def parse_duration(value: object) -> float:
    """Seconds for a duration string or a plain number of seconds (0 … 100 years)."""
    return _bounded(_seconds(value), value)


def _bounded(seconds: float, value: object) -> float:
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        shown = str(value) if len(str(value)) <= 40 else f"{str(value)[:37]}..."
        raise ValueError(f"{shown!r} is not a duration of at most 36525d (100 years)")
    return seconds


def _seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration is a string like '30s', '10m', '72h'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration must not be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("a duration is a string like '30s', '10m', '72h'")
    text = value.strip().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration (write e.g. '30s', '10m', '72h', '1h30m')")
    return total


def format_duration(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"


#: a duration in seconds, written in config as a string like ``30s``
Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration)]

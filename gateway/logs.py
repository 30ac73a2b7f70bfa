"""structlog, configured once: JSON lines in production, console output on a terminal.

Each line carries the context bound where it was written (filing id, delivery id,
adapter, attempt, request id). Every line passes through ``gateway.redact`` before it
is rendered, so importer numbers, tokens and configured paths never reach a log.
Logs go to stderr so ``--json`` output on stdout stays clean for scripts.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

import structlog

from gateway import jsonio, redact

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    stream: TextIO | None = None,
    redactor: redact.Redactor | None = None,
    cache: bool = False,
) -> None:
    """Set structlog's global configuration (the one place it is set).

    ``cache``: each module's logger resolves its configuration once, on first use, instead
    of on every call (``serve`` sets it: it configures once per process; tests that
    configure again and again must not). A tenth of a log call's cost (py-spy).
    """
    stream = stream or sys.stderr
    redactor = redactor or redact.Redactor()
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=jsonio.log_dumps)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        # one writer for every logger: building a WriteLogger per log call (what a lazy
        # proxy does without caching) cost ~5% of a request at info level (py-spy)
        logger_factory=_shared(structlog.WriteLogger(file=stream)),
        cache_logger_on_first_use=cache,
    )


def _shared(logger: structlog.WriteLogger) -> Any:
    def factory(*_args: Any) -> structlog.WriteLogger:
        return logger

    return factory

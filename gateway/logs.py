"""structlog, configured once: JSON lines in production, console output on a terminal.

Each line carries the context bound where it was written (filing id, delivery id,
adapter, attempt, request id). Every line passes through ``gateway.audit.redact`` before it
is rendered, so importer numbers, tokens and configured paths never reach a log.
Logs go to stderr so ``--json`` output on stdout stays clean for scripts.

Libraries log through the standard ``logging`` module (aiohttp, asyncpg, aio-pika,
asyncssh, asyncio's "Task exception was never retrieved"…). Their records are routed
through the same processors by one handler on the root logger, so in JSON mode every
line on stderr is one JSON object, a traceback included: it goes into the ``exception``
field, never onto lines of its own. Uncaught exceptions (the main thread's, a thread's,
an "unraisable" one in a ``__del__``) and ``warnings.warn`` take the same road.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Literal, TextIO

import structlog

from gateway.audit import redact
from gateway.encoding import jsonio

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

#: libraries that say something for every connection (proton: every reactor event); WARNING
_CHATTY = ("asyncssh", "aiormq", "aio_pika", "proton")


def configure(
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    stream: TextIO | None = None,
    redactor: redact.Redactor | None = None,
    cache: bool = False,
) -> None:
    """Set structlog's global configuration (the one place it is set), and route the
    standard library's logging (the root logger) through the same processors.

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
    threshold = _LEVELS.get(level, logging.INFO)
    structlog.configure(
        # the level and the time are the gateway's own words, added after the redactor
        # has walked the line: it has two strings fewer to check (a fifth of a line's cost)
        processors=[
            structlog.contextvars.merge_contextvars,
            _format_exc_info,
            redactor,
            structlog.processors.add_log_level,
            _Timestamp(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        # one writer for every logger: building a WriteLogger per log call (what a lazy
        # proxy does without caching) cost ~5% of a request at info level (py-spy)
        logger_factory=_shared(structlog.WriteLogger(file=stream)),
        cache_logger_on_first_use=cache,
    )
    _route_stdlib(stream, threshold, redactor, renderer)
    _route_uncaught()


def _format_exc_info(logger: Any, method_name: str, event_dict: Any) -> Any:
    """structlog's ``format_exc_info``, called only for a line that carries ``exc_info``
    (its own check of a line without one cost 5k instructions, 4% of a line)."""
    if "exc_info" not in event_dict:
        return event_dict
    return structlog.processors.format_exc_info(logger, method_name, event_dict)


class _Timestamp:
    """``timestamp`` as ``TimeStamper(fmt="iso", utc=True)`` writes it (``…T15:04:05.123456Z``,
    no fraction at a whole second, as ``isoformat``), the date and time of day formatted once
    a second: 20k instructions a line before, a sixth of a line's cost."""

    def __init__(self) -> None:
        self._cache = (-1, "")  # (second, its text): one tuple, read and replaced whole

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        second, rest = divmod(time.time_ns(), 1_000_000_000)
        cached, text = self._cache
        if cached != second:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._cache = (second, text)
        micro = rest // 1000
        event_dict["timestamp"] = f"{text}.{micro:06d}Z" if micro else f"{text}Z"
        return event_dict


def _shared(logger: structlog.WriteLogger) -> Any:
    def factory(*_args: Any) -> structlog.WriteLogger:
        return logger

    return factory


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler ``configure`` installs (a class of its own, so a second
    ``configure`` replaces it rather than adding a second one)."""


def _route_stdlib(stream: TextIO, threshold: int, redactor: Any, renderer: Any) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
    )
    handler = _Handler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler | logging.StreamHandler)]:
        if isinstance(old, _Handler) or getattr(old, "stream", None) in (sys.stderr, stream):
            # ours from an earlier configure, or a plain-text handler on our stream (a
            # library's basicConfig): either would write a second, non-JSON line
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(threshold, logging.WARNING))
    logging.captureWarnings(True)


def _route_uncaught() -> None:
    log = structlog.get_logger("gateway.uncaught")

    def excepthook(kind: Any, exc: BaseException, tb: Any) -> None:
        log.critical("uncaught_exception", exc_info=(kind, exc, tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        log.error(
            "thread_exception",
            thread=getattr(args.thread, "name", None),
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    def unraisable_hook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        log.error(
            "unraisable_exception",
            note=unraisable.err_msg or "Exception ignored",
            object=repr(unraisable.object),
            exc_info=(unraisable.exc_type, exc, unraisable.exc_traceback) if exc else None,
        )

    # a hook someone else installed (pytest's, a debugger's) is theirs: left alone
    if getattr(sys.excepthook, "_gateway", False) or sys.excepthook is sys.__excepthook__:
        sys.excepthook = _ours(excepthook)
    if getattr(threading.excepthook, "_gateway", False) or (
        threading.excepthook is threading.__excepthook__
    ):
        threading.excepthook = _ours(thread_hook)
    if getattr(sys.unraisablehook, "_gateway", False) or (
        sys.unraisablehook is sys.__unraisablehook__
    ):
        sys.unraisablehook = _ours(unraisable_hook)


def _ours(hook: Any) -> Any:
    hook._gateway = True
    return hook

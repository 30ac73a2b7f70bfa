"""Which store a URL names, built: the one place that imports both backends.

Only the composition root (``gateway.cli`` and ``gateway.server``) calls ``open_store``;
``tests/test_architecture.py`` keeps it so.
"""

from __future__ import annotations

import urllib.parse

from gateway.audit import redact
from gateway.store import base, postgres, sqlite


def open_store(
    url: str, *, redactor: redact.Redactor | None = None, timeout_s: float | None = None
) -> base.Store:
    """The store for a URL: ``sqlite:///path`` or ``postgresql://…``.

    ``redactor`` masks audit details before they are hashed (``[audit] redact_paths``);
    ``timeout_s`` bounds a PostgreSQL connect, a statement, and a call's retries of a
    lost connection (``[gateway] store_timeout``), so a request fails fast when it is away.
    """
    if url.startswith("sqlite:///"):
        path, options = sqlite_url(url)
        unknown = sorted(set(options) - {"synchronous"})
        if unknown:
            raise ValueError(f"unknown SQLite store option {unknown[0]!r} (known: synchronous)")
        return sqlite.SqliteStore(
            path, redactor=redactor, synchronous=options.get("synchronous", "full")
        )
    if url.startswith(("postgresql://", "postgres://")):
        if timeout_s is None:
            return postgres.PostgresStore(url, redactor=redactor)
        return postgres.PostgresStore(
            url,
            redactor=redactor,
            retry_s=timeout_s,
            command_timeout_s=timeout_s,
            connect_timeout_s=timeout_s,
            # a transaction whose client vanished mid-way (a partition, a killed process)
            # must not hold its locks until TCP gives up on it, hours later
            server_settings={"idle_in_transaction_session_timeout": f"{int(timeout_s * 4000)}"},
        )
    raise ValueError(f"unsupported store URL {url!r}")


def sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///path?synchronous=normal`` → the file path and its options."""
    path, _, query = url.removeprefix("sqlite:///").partition("?")
    return path, dict(urllib.parse.parse_qsl(query))

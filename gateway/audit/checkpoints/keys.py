"""Where a store's checkpoints live (``[audit] checkpoint_dir`` or beside the SQLite
file) and the HMAC key: ``EDIGW_AUDIT__HMAC_KEY``, or a key file generated once (0600)."""

from __future__ import annotations

import os
import secrets
import urllib.parse
from pathlib import Path

from gateway import config, errors
from gateway.audit.checkpoints.signed import KEY_FILE

_SECRET_PARAM = ("pass", "key", "secret", "token", "cert")


def store_label(url: str) -> str:
    """The store URL without user, password or secret parameters (``search_path`` stays:
    two schemas of one database are two stores)."""
    if url.startswith("sqlite:"):
        return url.partition("?")[0]  # a path: no credentials
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    query = urllib.parse.urlencode(
        [
            (k, v)
            for k, v in urllib.parse.parse_qsl(parts.query)
            if not any(word in k.lower() for word in _SECRET_PARAM)
        ]
    )
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, query, ""))


def default_dir(store_url: str) -> Path:
    """``audit-checkpoints/`` beside the SQLite file; ``var/audit-checkpoints`` otherwise."""
    if store_url.startswith("sqlite:///"):
        path = store_url.removeprefix("sqlite:///").partition("?")[0]
        return Path(path).parent / "audit-checkpoints"
    return Path("var/audit-checkpoints")


def directory(cfg: config.Config) -> Path:
    return Path(cfg.audit.checkpoint_dir or default_dir(cfg.gateway.store))


def load_key(cfg: config.Config, *, create: bool) -> tuple[bytes | None, str]:
    """The HMAC key and where it came from: ``env``, ``file``, ``generated`` or ``none``."""
    if cfg.audit.hmac_key is not None:
        secret = cfg.audit.hmac_key.get_secret_value()
        if len(secret) < 16:
            raise errors.ConfigError(
                "audit.hmac_key: use at least 16 characters", key="audit.hmac_key"
            )
        return secret.encode(), "env"
    path = directory(cfg) / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip()), "file"
    except FileNotFoundError:
        if not create:
            return None, "none"
    except (OSError, ValueError) as exc:
        raise errors.ConfigError(f"audit key file {path}: unreadable: {exc}") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
    return key, "generated"

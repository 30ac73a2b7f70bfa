"""Loading: the TOML file, ``EDIGW_…`` environment overrides merged over it, and
validation errors turned into one ``ConfigError`` naming the key at fault."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway import errors
from gateway.config.root import Config

ENV_PREFIX = "EDIGW_"
DEFAULT_CONFIG_PATH = Path("config/gateway.toml")


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested dict from ``EDIGW_A__B__C=value`` variables (keys lower-cased).

    A name without ``__`` counts only when it is a top-level section holding a JSON
    value (``EDIGW_ROUTES='[...]'``); other ``EDIGW_X`` names (``EDIGW_TOKEN``,
    ``EDIGW_URL``, …) belong to the CLI and are ignored here.
    """
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if any(not p for p in path):
            continue
        if len(path) == 1 and (path[0] not in Config.model_fields or raw.strip()[:1] not in "[{"):
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = _env_value(raw)
    return tree


def _env_value(raw: str) -> Any:
    text = raw.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    return raw


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _key_of(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("options",):
            continue
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def parse_config(data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Config:
    """Validate a config dict (plus environment overrides) into a ``Config``."""
    merged = _merge(dict(data), env_overrides(environ or {}))
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = _key_of(first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise errors.ConfigError(f"{key or 'config'}: {msg}{more}", key=key or None) from exc


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file at ``path`` and apply ``EDIGW_…`` overrides from ``environ``."""
    environ = os.environ if environ is None else environ
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise errors.ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise errors.ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.ConfigError(f"{path}: cannot read: {exc}") from exc
    return parse_config(data, environ)

"""Adapter kind → class: built-ins, installed entry points, or a ``module:Class`` factory.

Imported lazily, so an optional transport's library is only needed when it is
configured, and a missing one is a config error naming the extra, at start-up.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

from pydantic import ValidationError

from gateway import config, errors

ENTRY_POINT_GROUP = "edi_gateway.adapters"

#: built-in kinds → ("module:Class", the pip extra that brings its library, if any)
BUILTINS: dict[str, tuple[str, str | None]] = {
    "filedrop": ("adapters.filedrop:FiledropAdapter", None),
    "http": ("adapters.http:HttpAdapter", None),
    "amqp": ("adapters.amqp:AmqpAdapter", "amqp"),
    "amqp10": ("adapters.amqp10:Amqp10Adapter", "amqp10"),
    "sftp": ("adapters.sftp:SftpAdapter", "sftp"),
}


def available_kinds() -> dict[str, str]:
    """Every adapter kind this installation knows: built-ins and entry points."""
    kinds = {name: spec for name, (spec, _) in BUILTINS.items()}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        kinds.setdefault(ep.name, ep.value)
    return kinds


def _import(spec: str, *, key: str, extra: str | None = None) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        hint = f"; install it with: pip install 'edi-gateway[{extra}]'" if extra else ""
        raise errors.ConfigError(
            f"{key}: cannot import {module_name!r} ({exc}){hint}", key=key
        ) from exc
    except Exception as exc:  # a broken adapter module must not be a traceback at start
        raise errors.ConfigError(
            f"{key}: importing {module_name!r} failed: {exc!r}", key=key
        ) from exc
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError as exc:
        raise errors.ConfigError(f"{key}: {module_name!r} has no {attr!r}", key=key) from exc
    return obj


def resolve(name: str, section: config.AdapterConfig) -> Any:
    """The adapter class for a config section."""
    if section.factory is not None:
        return _import(section.factory, key=f"adapters.{name}.factory")
    kind = section.type or ""
    if kind in BUILTINS:
        spec, extra = BUILTINS[kind]
        return _import(spec, key=f"adapters.{name}.type", extra=extra)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP, name=kind):
        try:
            return ep.load()
        except Exception as exc:  # a broken plug-in is a config error, not a traceback
            raise errors.ConfigError(
                f"adapters.{name}.type: entry point {kind!r} failed to load: {exc!r}",
                key=f"adapters.{name}.type",
            ) from exc
    known = ", ".join(sorted(available_kinds()))
    raise errors.ConfigError(
        f"adapters.{name}.type: unknown adapter type {kind!r} (known: {known})",
        key=f"adapters.{name}.type",
    )


def build(name: str, section: config.AdapterConfig) -> Any:
    """An adapter instance, its options validated by the adapter's own model."""
    cls = resolve(name, section)
    options_model = getattr(cls, "Options", None)
    if options_model is None or not hasattr(options_model, "model_validate"):
        raise errors.ConfigError(
            f"adapters.{name}: {cls!r} has no pydantic 'Options' model", key=f"adapters.{name}"
        )
    try:
        options = options_model.model_validate(section.options)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        key = f"adapters.{name}" + (f".{loc}" if loc else "")
        msg = first["msg"].removeprefix("Value error, ")
        raise errors.ConfigError(f"{key}: {msg}", key=key) from exc
    try:
        adapter = cls(name=name, options=options)
    except errors.ConfigError:
        raise
    except Exception as exc:  # the constructor of someone else's adapter
        raise errors.ConfigError(
            f"adapters.{name}: cannot build adapter: {exc!r}", key=f"adapters.{name}"
        ) from exc
    for method in ("send", "open", "close", "check"):
        if not callable(getattr(adapter, method, None)):
            raise errors.ConfigError(
                f"adapters.{name}: {cls.__name__} has no {method}() method", key=f"adapters.{name}"
            )
    return adapter


def build_all(cfg: config.Config) -> dict[str, Any]:
    return {name: build(name, section) for name, section in cfg.adapters.items()}

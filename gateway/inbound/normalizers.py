"""A source's normalizer: loading it, choosing the source of an event, running it.

A normalizer is pure: the internal event (and optionally an ``EventContext``) in, one
``models.FilingEvent`` or a list of them out. It signals a bad event by raising
``errors.InvalidEvent(message, field="data.path")``; anything else it raises is
reported as a bad event too (422 over HTTP, a ``rejected_events`` row from a queue),
naming the normalizer and, for a ``KeyError``, the missing key.

Code normalizers are named ``"pkg.module:function"`` or by an entry point in the group
``edi_gateway.normalizers``.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gateway import config, errors, models
from gateway.inbound import mapping

ENTRY_POINT_GROUP = "edi_gateway.normalizers"


@dataclass(frozen=True, slots=True)
class EventContext:
    """What came beside the internal event: which source, and the envelope's attributes."""

    source: str
    event_id: str | None = None
    event_type: str | None = None
    event_source: str | None = None
    subject: str | None = None


Normalizer = Callable[..., models.FilingEvent | Iterable[models.FilingEvent]]


def load(reference: str, *, key: str) -> Normalizer:
    """The callable named ``pkg.module:function``, or the entry point of that name."""
    if ":" in reference:
        module_name, _, attr = reference.partition(":")
        try:
            module = importlib.import_module(module_name)
            fn = getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            raise errors.ConfigError(f"{key}: cannot load {reference!r}: {exc}", key=key) from exc
    else:
        found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP).select(name=reference)
        if not found:
            raise errors.ConfigError(
                f"{key}: no normalizer {reference!r} (not 'module:function', and no entry point "
                f"of that name in group {ENTRY_POINT_GROUP})",
                key=key,
            )
        try:
            fn = next(iter(found)).load()
        except (ImportError, AttributeError) as exc:
            raise errors.ConfigError(f"{key}: entry point {reference!r}: {exc}", key=key) from exc
    if not callable(fn):
        raise errors.ConfigError(f"{key}: {reference!r} is not callable", key=key)
    return fn  # type: ignore[no-any-return]


def _passthrough(event: Any) -> models.FilingEvent:
    """No normalizer configured: the event must already be a filing event."""
    if not isinstance(event, Mapping):
        raise errors.InvalidEvent("expected a filing event object", field="data")
    try:
        return models.FilingEvent.model_validate(event)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise errors.InvalidEvent(
            err["msg"].removeprefix("Value error, "), field=f"data.{loc}" if loc else "data"
        ) from exc


def _takes_context(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


class Source:
    """One ``[sources.NAME]``: how to recognise its CloudEvents and normalize its events."""

    def __init__(self, name: str, section: config.SourceConfig) -> None:
        self.name = name
        self.section = section
        self.kind = section.kind
        key = f"sources.{name}.normalizer"
        self._fn: Callable[..., Any]
        if section.normalizer is not None:
            self._fn = load(section.normalizer, key=key)
            self.described = section.normalizer
        elif section.map or section.constants:
            self._fn = mapping.DeclarativeMapping(
                paths=dict(section.map),
                constants=dict(section.constants),
                filing_types={k: v.value for k, v in section.filing_types.items()},
            )
            self.described = "mapping"
        else:
            self._fn = _passthrough
            self.described = "passthrough"
        self._with_context = _takes_context(self._fn)

    def matches(self, event_type: str, event_source: str) -> bool:
        """Does this source handle a CloudEvent of this ``type`` from this ``source``?"""
        s = self.section
        if not s.types and not s.sources:
            return False
        type_ok = not s.types or any(fnmatch.fnmatchcase(event_type, p) for p in s.types)
        source_ok = not s.sources or any(fnmatch.fnmatchcase(event_source, p) for p in s.sources)
        return type_ok and source_ok

    def normalize(self, event: Any, context: EventContext) -> list[models.FilingEvent]:
        """The filing events for one internal event; ``InvalidEvent`` naming the field."""
        try:
            result = self._fn(event, context) if self._with_context else self._fn(event)
        except errors.GatewayError:
            raise
        except ValidationError as exc:  # the normalizer built an invalid FilingEvent
            err = exc.errors(include_url=False, include_input=False)[0]
            loc = ".".join(str(p) for p in err["loc"]) or "filing"
            raise errors.InvalidEvent(
                f"normalizer {self.described} produced an invalid filing: {loc}: {err['msg']}",
                details=[{"loc": f"filing.{loc}", "msg": err["msg"]}],
            ) from exc
        except KeyError as exc:
            raise errors.InvalidEvent(
                f"normalizer {self.described} found no {exc.args[0]!r}",
                details=[{"loc": f"data.{exc.args[0]}", "msg": "missing"}],
            ) from exc
        except Exception as exc:  # user code: report the event as bad, never crash intake
            raise errors.InvalidEvent(
                f"normalizer {self.described} failed: {type(exc).__name__}: {exc}",
                details=[{"loc": "data", "msg": f"{type(exc).__name__}: {exc}"}],
            ) from exc
        items = [result] if isinstance(result, models.FilingEvent) else list(result or [])
        if not items or not all(isinstance(i, models.FilingEvent) for i in items):
            raise errors.InvalidEvent(
                f"normalizer {self.described} must return FilingEvent(s), got {result!r:.80}",
                details=[{"loc": "data", "msg": "normalizer returned no filing events"}],
            )
        return items


class Sources:
    """All configured sources, built (and their normalizers loaded) at start-up."""

    def __init__(self, cfg: config.Config) -> None:
        self.by_name = {name: Source(name, section) for name, section in cfg.sources.items()}

    def __iter__(self) -> Any:
        return iter(self.by_name.values())

    def get(self, name: str) -> Source:
        try:
            return self.by_name[name]
        except KeyError:
            known = ", ".join(sorted(self.by_name)) or "none configured"
            raise errors.NotFound(
                f"no source {name!r} ({known})", details={"source": name}
            ) from None

    def for_cloudevent(self, event_type: str, event_source: str) -> Source:
        for source in self.by_name.values():
            if source.matches(event_type, event_source):
                return source
        raise errors.InvalidEvent(
            f"no source handles CloudEvent type {event_type!r} from {event_source!r}; "
            "configure [sources.NAME] types = [...]",
            field="type",
        )

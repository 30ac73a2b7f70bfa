"""The declarative normalizer: field paths, constants and a filing-type table. Pure.

A source's ``map`` says where each filing field is found in the internal event
(``reference = "shipment.bill_of_lading"``, ``payload = "$"`` for the whole event,
``"items.0.id"`` into a list, ``"metadata.tms_id"`` as a key to fill one metadata entry);
``constants`` fill fields with fixed values; ``filing_types`` translates the value found
at ``map.filing_type`` (``ocean = "isf"``). Every error names the source path at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from gateway import errors, models

WHOLE = "$"
_MISSING = object()


def lookup(event: Any, path: str) -> Any:
    """The value at a dotted ``path`` (integers index lists); ``_MISSING`` if absent."""
    if path == WHOLE:
        return event
    node = event
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


@dataclass(frozen=True, slots=True)
class DeclarativeMapping:
    """A compiled ``map``/``constants``/``filing_types`` of one source."""

    paths: dict[str, str] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    filing_types: dict[str, str] = field(default_factory=dict)

    def __call__(self, event: Any) -> models.FilingEvent:
        if not isinstance(event, Mapping):
            raise errors.InvalidInput(
                "the event is not a JSON object",
                details=[{"loc": "data", "msg": "expected an object"}],
            )
        out: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        origin: dict[str, str] = {}  # filing field -> where it came from, for errors
        for key, value in self.constants.items():
            _put(out, metadata, key, value)
            origin[key.split(".")[0]] = f"constants.{key}"
        for key, path in self.paths.items():
            value = lookup(event, path)
            if value is _MISSING:
                raise errors.InvalidInput(
                    f"data.{path} is missing (mapped to {key})",
                    details=[{"loc": f"data.{path}", "msg": f"missing; needed for {key}"}],
                )
            if key == "filing_type" and self.filing_types:
                table = self.filing_types
                if str(value) not in table:
                    known = ", ".join(sorted(table))
                    raise errors.InvalidInput(
                        f"data.{path}: {value!r} is not in the filing_types table ({known})",
                        details=[{"loc": f"data.{path}", "msg": f"one of {known}"}],
                    )
                value = table[str(value)]
            _put(out, metadata, key, value)
            origin[key.split(".")[0]] = f"data.{path}"
        if metadata:
            out["metadata"] = {**out.get("metadata", {}), **metadata}
        try:
            return models.FilingEvent.model_validate(out)
        except ValidationError as exc:
            details = []
            for err in exc.errors(include_url=False, include_input=False):
                target = str(err["loc"][0]) if err["loc"] else ""
                where = origin.get(target, f"(unmapped filing field {target})")
                details.append(
                    {
                        "loc": where,
                        "msg": f"{err['msg'].removeprefix('Value error, ')} (filing {target})",
                    }
                )
            first = details[0]
            raise errors.InvalidInput(f"{first['loc']}: {first['msg']}", details=details) from exc


def _put(out: dict[str, Any], metadata: dict[str, Any], key: str, value: Any) -> None:
    if key.startswith("metadata."):
        metadata[key.removeprefix("metadata.")] = value
    else:
        out[key] = value

"""Search fields taken from a filing by configurable paths.

A path walks the filing row: ``reference``, ``payload.entry_number``,
``payload.house_bills[*].hawb`` (``[*]`` every item of a list, ``[2]`` one item). The payload
may be the stored JSON text (``payload_is_json``) or already a dict. Values are strings or
integers; anything else found on a path is skipped. Values are *normalized* before they are
indexed and before they are searched for (upper case, no spaces or hyphens), so
``xyz-1234567-8`` finds ``XYZ12345678``.

The defaults cover the filing types of ``gateway.models.FilingType``; configuration replaces
a field's rules whole (``{"bill_of_lading": {"isf": ["payload.bol"]}}``) or adds a field.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: the fields every index has (the filing's own reference is always indexed)
REFERENCE = "reference"
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[(?:\*|\d+)\])*)")
_INDEX = re.compile(r"\[(\*|\d+)\]")
#: at most this many values of one field per filing (a manifest with thousands of bills
#: is found by its first ones and its reference)
MAX_VALUES = 200
MAX_VALUE_LENGTH = 128
_DROP = str.maketrans("", "", " -\t")

Step = tuple[str, tuple[int | None, ...]]


def normalize(value: str) -> str:
    """The form values are indexed and searched in: upper case, no spaces or hyphens."""
    return value.strip().upper().translate(_DROP)


def compile_path(text: str) -> tuple[Step, ...]:
    """``payload.cars[*].bills[*]`` → steps; ``ValueError`` naming the fault."""
    steps: list[Step] = []
    for part in text.split("."):
        match = _STEP.fullmatch(part)
        if match is None:
            raise ValueError(
                f"{text!r}: {part!r} is not a key, key[*] or key[n] "
                "(paths look like payload.lines[*].entry_number)"
            )
        indexes = tuple(None if i == "*" else int(i) for i in _INDEX.findall(match.group(2)))
        steps.append((match.group(1), indexes))
    return tuple(steps)


@dataclass(frozen=True, kw_only=True)
class FieldRule:
    """Where one search field is found for the filing types matching ``filing_types``."""

    field: str
    #: globs over filing types, e.g. ``manifest.*``
    filing_types: tuple[str, ...]
    paths: tuple[tuple[Step, ...], ...]
    #: the paths as written, for messages and ``records show``
    sources: tuple[str, ...]

    def applies(self, filing_type: str) -> bool:
        return any(fnmatch.fnmatchcase(filing_type, g) for g in self.filing_types)


def rule(field: str, filing_types: str | Sequence[str], *paths: str) -> FieldRule:
    if not FIELD_NAME.fullmatch(field):
        raise ValueError(f"{field!r} is not a field name (a-z, 0-9, _; starts with a letter)")
    types = (filing_types,) if isinstance(filing_types, str) else tuple(filing_types)
    return FieldRule(
        field=field,
        filing_types=types,
        paths=tuple(compile_path(p) for p in paths),
        sources=tuple(paths),
    )


DEFAULT_RULES: tuple[FieldRule, ...] = (
    rule("entry_number", "entry", "reference", "payload.entry_number"),
    rule("entry_number", ("entry_summary", "post_summary_correction"), "payload.entry_number"),
    rule(
        "entry_number",
        "reconciliation",
        "payload.reconciliation_entry",
        "payload.flagged_entries[*]",
    ),
    rule("entry_number", "drawback", "payload.drawback_entry", "payload.designated_imports[*]"),
    rule("entry_number", "protest", "payload.entries[*]"),
    rule("entry_number", "dis_document", "payload.related.number"),
    rule("entry_number", "e214", "payload.entry_number"),
    rule("bill_of_lading", ("isf", "inbond", "e214", "export.manifest"), "payload.bill_of_lading"),
    rule("bill_of_lading", "manifest.ocean", "reference", "payload.bill_of_lading"),
    rule("bill_of_lading", "manifest.rail", "payload.cars[*].bills[*]"),
    rule(
        "bill_of_lading",
        "manifest.air",
        "payload.master_air_waybill",
        "payload.house_bills[*].hawb",
    ),
    rule("bill_of_lading", "manifest.truck", "payload.shipments[*].shipment_control_number"),
    rule(
        "isf_transaction_number",
        "isf",
        "payload.isf_transaction_number",
        "payload.transaction_number",
        "reference",
    ),
)


def rules_from_config(
    config: Mapping[str, Mapping[str, Sequence[str]]],
    *,
    defaults: Iterable[FieldRule] = DEFAULT_RULES,
) -> tuple[FieldRule, ...]:
    """``{field: {filing type glob: [paths]}}`` (phase 2's ``[records.fields]``) over the
    defaults: a field named here replaces its default rules whole. ``ValueError`` names the
    field, filing type and path at fault."""
    configured = []
    for field, by_type in config.items():
        for types, paths in by_type.items():
            if isinstance(paths, str) or not paths:
                raise ValueError(f"{field}.{types}: a list of paths")
            try:
                configured.append(rule(field, types, *paths))
            except ValueError as exc:
                raise ValueError(f"{field}.{types}: {exc}") from None
    return (*(r for r in defaults if r.field not in config), *configured)


def _walk(value: Any, steps: Sequence[Step]) -> Iterable[Any]:
    if not steps:
        yield value
        return
    (key, indexes), rest = steps[0], steps[1:]
    if not isinstance(value, Mapping) or key not in value:
        return
    items = [value[key]]
    for index in indexes:
        items = [
            x
            for item in items
            if isinstance(item, list)
            for x in (item if index is None else item[index : index + 1])
        ]
    for item in items:
        yield from _walk(item, rest)


def payload_of(filing: Mapping[str, Any]) -> Any:
    """The filing's payload as a value: decoded when it is stored JSON text."""
    payload = filing.get("payload")
    if isinstance(payload, str) and filing.get("payload_is_json"):
        try:
            return json.loads(payload)
        except ValueError:
            return payload
    return payload


def extract(
    filing: Mapping[str, Any], rules: Iterable[FieldRule] = DEFAULT_RULES
) -> dict[str, list[str]]:
    """{field: normalized values} for one filing row; ``reference`` always among them."""
    filing_type = str(filing.get("filing_type", ""))
    view = {**filing, "payload": payload_of(filing)}
    found: dict[str, list[str]] = {}
    for r in _applicable(rules, filing_type):
        values = found.setdefault(r.field, [])
        for path in r.paths:
            for value in _walk(view, path):
                if isinstance(value, bool) or not isinstance(value, str | int):
                    continue
                text = normalize(str(value))
                if text and len(text) <= MAX_VALUE_LENGTH and text not in values:
                    if len(values) >= MAX_VALUES:
                        break
                    values.append(text)
    return {k: v for k, v in found.items() if v}


REFERENCE_RULE = rule(REFERENCE, "*", "reference")
#: (id of a rules tuple, filing type) -> (that tuple, the rules that apply): the globs are
#: matched once a filing type, not for every filing (the mover's index add calls this per
#: filing); the tuple is kept so a reused id never answers for another
_APPLICABLE: dict[tuple[int, str], tuple[object, tuple[FieldRule, ...]]] = {}


def _applicable(rules: Iterable[FieldRule], filing_type: str) -> tuple[FieldRule, ...]:
    if not isinstance(rules, tuple):
        return tuple(r for r in (REFERENCE_RULE, *rules) if r.applies(filing_type))
    hit = _APPLICABLE.get((id(rules), filing_type))
    if hit is None or hit[0] is not rules:
        if len(_APPLICABLE) > 4096:
            _APPLICABLE.clear()
        hit = (rules, tuple(r for r in (REFERENCE_RULE, *rules) if r.applies(filing_type)))
        _APPLICABLE[(id(rules), filing_type)] = hit
    return hit[1]

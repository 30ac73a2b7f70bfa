"""A tiny third-party normalizer package, registered by entry point at test time.

``billing_event`` turns a billing service's ``invoice.issued`` into one entry summary
per invoice line group (several filings from one event), naming the field at fault.
"""

from __future__ import annotations

from typing import Any

from gateway import errors, models


def billing_event(event: dict[str, Any], context: Any) -> list[models.FilingEvent]:
    """``invoice.issued`` → one ``entry_summary`` per entry in ``entries``."""
    entries = event.get("entries")
    if not isinstance(entries, list) or not entries:
        raise errors.InvalidEvent("needs a non-empty list of entries", field="data.entries")
    out = []
    for i, entry in enumerate(entries):
        if "entry_number" not in entry:
            raise errors.InvalidEvent("missing", field=f"data.entries.{i}.entry_number")
        out.append(
            models.FilingEvent(
                filing_type=models.FilingType.ENTRY_SUMMARY,
                environment=models.Environment.CERT,
                reference=entry["entry_number"],
                filer_code=event.get("filer", "ABC"),
                payload={"invoice": event.get("invoice"), "entry": entry},
                metadata={"normalized_by": "acme", "ce_type": context.event_type},
            )
        )
    return out

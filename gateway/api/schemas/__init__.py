"""The JSON bodies the HTTP API answers with, one pydantic model per shape.

``/openapi.json`` is generated from these (and from ``gateway.models``), so a client
generated from the spec gets typed objects; ``tests/test_openapi_truth.py`` checks real
responses of a running gateway against the spec.

By subject: ``errors`` (and ``SHAPE``), ``filings``, ``adapters`` (and outages),
``health`` and ``acks`` (and callbacks). Callers import from here.
"""

from pydantic import BaseModel

from gateway import models
from gateway.api.schemas.acks import (
    AckClosed,
    AckList,
    AckReceipt,
    CallbackList,
    FilingAcks,
    Resent,
)
from gateway.api.schemas.adapters import (
    AdapterInfo,
    AdapterList,
    BreakerStatus,
    CalendarSchedule,
    CalendarWindow,
    GateStatus,
    OutageList,
)
from gateway.api.schemas.errors import SHAPE, Error, ErrorBody
from gateway.api.schemas.filings import (
    AuditEntry,
    BatchAccepted,
    BatchAcceptedMany,
    BatchRejected,
    BatchResult,
    History,
    RejectedPage,
    Submitted,
    SubmittedMany,
)
from gateway.api.schemas.health import AdapterOverview, Liveness, Overview, Readiness, SourceHealth

#: every response model, each generated into ``components/schemas`` under its class name
RESPONSES: tuple[type[BaseModel], ...] = (
    Error,
    Submitted,
    SubmittedMany,
    BatchResult,
    models.FilingView,
    models.Page,
    History,
    RejectedPage,
    AdapterList,
    OutageList,
    Readiness,
    Liveness,
    Overview,
    AckReceipt,
    AckList,
    FilingAcks,
    Resent,
    AckClosed,
    CallbackList,
)

__all__ = [
    "RESPONSES",
    "SHAPE",
    "AckClosed",
    "AckList",
    "AckReceipt",
    "AdapterInfo",
    "AdapterList",
    "AdapterOverview",
    "AuditEntry",
    "BatchAccepted",
    "BatchAcceptedMany",
    "BatchRejected",
    "BatchResult",
    "BreakerStatus",
    "CalendarSchedule",
    "CalendarWindow",
    "CallbackList",
    "Error",
    "ErrorBody",
    "FilingAcks",
    "GateStatus",
    "History",
    "Liveness",
    "OutageList",
    "Overview",
    "Readiness",
    "RejectedPage",
    "Resent",
    "SourceHealth",
    "Submitted",
    "SubmittedMany",
]

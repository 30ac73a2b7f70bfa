"""The facade the HTTP API and the CLI call: submit, read, retry, cancel, adapters.

It owns no I/O of its own: it normalizes and routes (pure), then asks the store.
``Service`` is its parts together: ``core`` (what they share, the intake values),
``submit`` (filings in), ``operate`` (reads and operator actions), ``health`` (adapters,
``/readyz``) and ``outages`` (announced outages, calendars). Callers import from here.
"""

from gateway.service.core import MAX_PAGE, Inbound, Submitted
from gateway.service.health import Health
from gateway.service.operate import Operating
from gateway.service.outages import Outages, calendar_windows
from gateway.service.submit import Submitting


class Service(Submitting, Operating, Health, Outages):
    """What the gateway can be asked to do."""


__all__ = ["MAX_PAGE", "Inbound", "Service", "Submitted", "calendar_windows"]

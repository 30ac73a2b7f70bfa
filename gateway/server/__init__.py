"""``serve``: build the store, adapters, dispatcher, service and HTTP API, and run them.

``parts`` builds and wires a gateway's parts; ``lifecycle`` (``Gateway``) starts, runs
and stops them gracefully; ``trail`` writes the start/stop audit rows and the signed
checkpoints; ``workers`` runs the other processes of a ``workers = N`` gateway.
Callers import from here.
"""

from gateway.server.lifecycle import Gateway
from gateway.server.trail import config_hash
from gateway.server.workers import (
    RESTART_EVERY_S,
    WORKER_ENV,
    WORKER_PORT_ENV,
    Workers,
    worker_command,
)

__all__ = [
    "RESTART_EVERY_S",
    "WORKER_ENV",
    "WORKER_PORT_ENV",
    "Gateway",
    "Workers",
    "config_hash",
    "worker_command",
]

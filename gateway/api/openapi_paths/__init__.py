"""The operations of ``/openapi.json``: which path and method takes and answers which model.

The models themselves are in ``gateway.models`` (requests, shared shapes) and
``gateway.api.schemas`` (answers); ``gateway.api.openapi`` puts the two together.
``parts`` holds the building blocks; ``filings``, ``acks`` and ``operations`` the paths.
"""

from gateway.api.openapi_paths.acks import ack_paths
from gateway.api.openapi_paths.filings import filing_paths
from gateway.api.openapi_paths.operations import operation_paths
from gateway.api.openapi_paths.parts import REF, op, query, ref
from gateway.api.openapi_paths.records import record_paths

__all__ = [
    "REF",
    "ack_paths",
    "filing_paths",
    "op",
    "operation_paths",
    "query",
    "record_paths",
    "ref",
]

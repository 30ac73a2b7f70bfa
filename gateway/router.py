"""Filing + routes → adapter names. Pure."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from gateway import config, errors, models


def matches(route: config.RouteConfig, filing: models.Filing) -> bool:
    """Whether one route applies to a filing."""
    if filing.environment not in route.environments:
        return False
    if route.filer_codes is not None and filing.filer_code not in {
        c.upper() for c in route.filer_codes
    }:
        return False
    return any(fnmatch.fnmatchcase(filing.filing_type.value, p) for p in route.filing_types)


def route(filing: models.Filing, routes: Sequence[config.RouteConfig]) -> list[str]:
    """Adapter names for a filing, in route order, each once. Unroutable raises."""
    names: list[str] = []
    for r in routes:
        if matches(r, filing):
            names.extend(n for n in r.adapters if n not in names)
    if not names:
        raise errors.Unroutable(
            f"no route sends {filing.filing_type.value} ({filing.environment.value}, "
            f"filer {filing.filer_code}) to any adapter",
            details={
                "filing_type": filing.filing_type.value,
                "environment": filing.environment.value,
                "filer_code": filing.filer_code,
            },
        )
    return names

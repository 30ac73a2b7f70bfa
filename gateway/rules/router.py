"""Filing + routes → adapter names. Pure."""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Sequence

from gateway import config, errors, models


def matches(route: config.RouteConfig, filing: models.Filing) -> bool:
    """Whether one route applies to a filing."""
    if filing.environment not in route.environments:
        return False
    if route.filer_codes is not None and filing.filer_code not in _upper(tuple(route.filer_codes)):
        return False
    return _type_matches(tuple(route.filing_types), filing.filing_type.value)


@functools.lru_cache(maxsize=1024)
def _upper(codes: tuple[str, ...]) -> frozenset[str]:
    return frozenset(c.upper() for c in codes)


@functools.lru_cache(maxsize=4096)
def _type_matches(patterns: tuple[str, ...], filing_type: str) -> bool:
    """Runs for every filing and every claim: the answer per (patterns, type) is cached."""
    return any(fnmatch.fnmatchcase(filing_type, p) for p in patterns)


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

"""Filer scopes at the edge (issue 22): the check a route's ``FilerScope`` asks for, run
before the handler, and the lookup that answers a filing outside a token's set with the
very 404 of a missing id."""

from __future__ import annotations

from aiohttp import web

from gateway import models
from gateway.api import auth
from gateway.api.handlers import SERVICE


async def check_filer_scope(
    request: web.Request, principal: auth.Principal, filers: auth.FilerScope
) -> None:
    """Before a handler runs, for a principal scoped to filers: 404 for a filing outside
    its set (the very answer of a missing id), 403 on a route spanning every filer."""
    if filers is auth.FilerScope.UNSCOPED:
        auth.refuse_unscoped_only(principal)
    elif filers is auth.FilerScope.FILING:
        await visible_filing(request, principal, request.match_info["id"])


async def visible_filing(
    request: web.Request, principal: auth.Principal, filing_id: str
) -> models.FilingView:
    """The filing, or the 404 of a missing one when it lies outside the principal's set."""
    view = await request.app[SERVICE].get(filing_id)
    if not principal.sees(view.filer_code, view.environment.value):
        raise auth.not_found(filing_id)
    return view

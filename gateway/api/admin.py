"""``POST /v1/admin/reload`` (admin scope): reload the config without a restart.

The server hands the app its reloader (``RELOAD``); the API never sees the server's
insides. A refused reload is 422 naming the key (``details[0].loc``; ``config`` when
the fault spans keys, and the message names them); a gateway not started from a config
file (embedded in a test or a program) answers 409.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway import errors
from gateway.api import handlers
from gateway.values import Actor


class ConfigChange(BaseModel):
    """One changed key of the config, secrets masked."""

    model_config = ConfigDict(frozen=True, title="ConfigChange")

    key: str = Field(description="Dotted path, e.g. `adapters.van.options.url`.")
    from_: Any = Field(default=None, alias="from", description="The value before (if any).")
    to: Any = Field(default=None, description="The value after (absent when removed).")


class ReloadResponse(BaseModel):
    """What a reload changed (it is audited as `config.reloaded`)."""

    model_config = ConfigDict(frozen=True, title="ReloadResponse")

    config_sha256: str = Field(description="Hash of the config now in force.")
    changes: list[ConfigChange]
    adapters_changed: list[str] = Field(
        description="Adapters added, removed or reconfigured: their in-flight sends finished "
        "under the old settings before the new ones took over."
    )


Reload = Callable[..., Awaitable[dict[str, Any]]]
RELOAD: web.AppKey[Reload] = web.AppKey("reload")


async def reload(request: web.Request) -> web.Response:
    """Read, check and apply the config file the gateway was started with."""
    do = request.app.get(RELOAD)
    if do is None:
        raise errors.Refused("reload_unavailable", "this gateway has no reloader")
    actor: Actor = handlers.actor_of(request)
    try:
        result = await do(actor=actor)
    except errors.ConfigError as exc:
        raise errors.InvalidInput(
            f"reload refused, nothing changed: {exc}",
            details=[{"loc": exc.key or "config", "msg": str(exc)}],
        ) from exc
    answer = ReloadResponse.model_validate(result)
    return handlers.respond(answer.model_dump(mode="json", by_alias=True, exclude_unset=True))


def openapi_paths(op: Callable[..., dict[str, Any]], ref: Callable[[Any], Any]) -> dict[str, Any]:
    """The route's OpenAPI entry (its schema is among the spec's components)."""
    return {
        "/v1/admin/reload": {
            "post": op(
                "Reload the config file without a restart (admin scope)",
                {200: (ref(ReloadResponse), "What changed; audited as config.reloaded")},
                fails=(409, 422),
                body_required=False,
                description="Routes, adapters, calendars, tokens and callback subscribers "
                "reload; a bad or fixed key (listen address, store) refuses the whole "
                "reload with 422 naming it in details[0].loc.",
            )
        }
    }

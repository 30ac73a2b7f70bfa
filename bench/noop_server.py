"""B1: the HTTP ceiling — an aiohttp app whose POST handler reads the body and answers 202.

It runs on the event loop the gateway's ``serve`` runs on (uvloop where installed), so
the ratio of row 1 compares handlers, not loops.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web


async def post(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(
        text='{"id":"fil_0","status":"pending"}', status=202, content_type="application/json"
    )


def main() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    app = web.Application()
    app.router.add_post("/v1/filings", post)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()

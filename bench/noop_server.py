"""B1: the HTTP ceiling — an aiohttp app whose POST handler reads the body and answers 202."""

from __future__ import annotations

import sys

from aiohttp import web


async def post(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(
        text='{"id":"fil_0","status":"pending"}', status=202, content_type="application/json"
    )


def main() -> None:
    app = web.Application()
    app.router.add_post("/v1/filings", post)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()

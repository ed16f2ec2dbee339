"""The web server `cadence bench acks` runs: `cadence web`'s app plus ceiling routes.

The ceiling is the same server (same app, middleware, uvicorn and worker count) answering a
correctly checked request without recording anything, so the bench can say how much of what
the HTTP stack allows Cadence's own work leaves. The routes exist only in the app built by
`ceiling_app`, which only this module's process (started by the bench) names; `cadence web`
never builds it, so no deployment has them.

    python -m cadence.bench.ack_server --port PORT [--workers N]
"""

from __future__ import annotations

import argparse
import hmac
import os
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from cadence.answers.slack_signing import BadInteraction, BadSignature, parse_interaction, verify
from cadence.answers.tokens import TokenError, read_ack_token
from cadence.config import load_settings, reveal
from cadence.web.ack_pages import CSRF_COOKIE, csrf_field
from cadence.web.deps import WebDeps

CEILING_PREFIX = "/bench/ceiling"
CEILING_FACTORY = "cadence.bench.ack_server:ceiling_app"


def ceiling_router(deps: WebDeps) -> APIRouter:
    """The checks each real route makes before it touches Redis or the database, then 200."""
    routes = APIRouter()
    secret = deps.settings.secret_key.get_secret_value()

    @routes.post(CEILING_PREFIX + "/slack/interactions")
    async def slack(request: Request) -> Response:
        body = await request.body()
        try:
            verify(
                reveal(deps.settings.slack_signing_secret) or "",
                request.headers.get("X-Slack-Request-Timestamp"),
                body,
                request.headers.get("X-Slack-Signature"),
                deps.clock().timestamp(),
            )
            parse_interaction(body)
        except (BadSignature, BadInteraction) as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        return Response(status_code=200)

    @routes.get(CEILING_PREFIX + "/pid")
    async def pid() -> dict[str, int]:
        """Which worker answered: the bench waits until it has heard from every one."""
        return {"pid": os.getpid()}

    # A plain `def`, like the real email route, so it runs in the same thread pool.
    @routes.post(CEILING_PREFIX + "/ack/{token}", response_class=HTMLResponse)
    def email(
        token: str,
        request: Request,
        kind: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
    ) -> HTMLResponse:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(csrf_field(secret, cookie, token), csrf):
            return HTMLResponse("<p>Please confirm again</p>", status_code=403)
        try:
            read_ack_token(secret, token)
        except TokenError:
            return HTMLResponse("<p>This acknowledgement link is not valid.</p>", status_code=400)
        return HTMLResponse(f"<p>Recorded nothing ({kind}).</p>")

    return routes


def ceiling_app() -> FastAPI:
    """`cadence web`'s app, built exactly as each of its workers builds it, plus the ceiling."""
    from cadence.web.serve import app_from_environment

    app = app_from_environment()
    app.include_router(ceiling_router(app.state.deps))
    return app


def main() -> None:
    from cadence.web.serve import serve

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--loglevel", default="WARNING")
    args = parser.parse_args()
    settings = load_settings()
    assert settings.redis_url, "the bench sets CADENCE_REDIS_URL"
    serve(
        settings,
        settings.redis_url,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        level=args.loglevel,
        factory=CEILING_FACTORY,
    )


if __name__ == "__main__":
    main()

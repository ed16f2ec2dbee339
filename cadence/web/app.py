"""The FastAPI app factory: `create_app(settings)` for uvicorn, `build_app(deps)` for tests."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.runtime import Runtime
from cadence.web.deps import WebDeps
from cadence.web.limits import BodyLimit

log = logging.getLogger("cadence.web")


def build_app(deps: WebDeps) -> FastAPI:
    from cadence.web import ack_pages, api, dashboard, health, inbox, slack_interactions

    app = FastAPI(
        title="Cadence",
        description="Acknowledgements from Slack and email, health and metrics.",
        version="0.1.0",
    )
    app.state.deps = deps
    # Outside every route, so no body is read or parsed (nor anyone signed in) past the limit.
    app.add_middleware(BodyLimit, limit=deps.settings.max_request_bytes)
    app.include_router(health.router(deps))
    app.include_router(ack_pages.router(deps))
    app.include_router(slack_interactions.router(deps))
    app.include_router(dashboard.router(deps))
    app.include_router(api.router(deps))
    app.include_router(inbox.router(deps))
    return app


def create_app(settings: Settings, redis_url: str) -> FastAPI:
    """The app with its real dependencies: the database, Redis, and Celery for slow work."""
    from cadence.worker import make_celery

    runtime = Runtime(settings)
    celery = make_celery(settings, redis_url)

    def send_task(name: str, args: list[object]) -> None:
        # The answer is recorded before this; Redis being away must not turn it into an
        # error page (a restart of Redis is a pause, not a crash).
        try:
            celery.send_task(name, args=args)
        except Exception:
            log.exception("could not queue %s %s", name, args)

    deps = WebDeps(
        settings=settings,
        sessions=runtime.sessions,
        redis=redis_client(redis_url),
        send_task=send_task,
    )
    return build_app(deps)

"""The FastAPI app factory: `create_app(settings)` for uvicorn, `build_app(deps)` for tests."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from cadence.answers.group_commit import GroupCommit
from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.runtime import Runtime
from cadence.web.deps import WebDeps
from cadence.web.limits import BodyLimit
from cadence.web.nul_guard import NulGuard

log = logging.getLogger("cadence.web")


def _printable(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI's validation errors with each `input` kept only when it can be written as
    JSON: the input may be NaN, a deep document or bytes, and an answer that cannot be
    serialised would become a 500."""
    kept = []
    for error in errors:
        try:
            encoded = jsonable_encoder(error)
            json.dumps(encoded, allow_nan=False)
        except (ValueError, TypeError, RecursionError):
            plain = {k: v for k, v in error.items() if k not in ("input", "ctx")}
            encoded = jsonable_encoder(plain)
        kept.append(encoded)
    return kept


async def validation_failed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _printable(list(exc.errors()))}, status_code=422)


def build_app(deps: WebDeps) -> FastAPI:
    from cadence.web import (
        ack_pages,
        api,
        dashboard,
        health,
        inbox,
        slack_interactions,
        static_files,
    )

    # One writer for the answers of this process: Slack clicks and email-link posts. It
    # finishes the answers waiting when the server stops.
    answers = GroupCommit(deps.sessions)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        answers.close()

    app = FastAPI(
        title="Cadence",
        description="Acknowledgements from Slack and email, health and metrics.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.deps = deps
    app.add_exception_handler(RequestValidationError, validation_failed)
    app.add_middleware(NulGuard)
    # Added last, so it is the outermost: no body is read or parsed (not even by the NUL
    # guard), nor anyone signed in, past the limit.
    app.add_middleware(BodyLimit, limit=deps.settings.max_request_bytes)
    app.include_router(health.router(deps))
    app.include_router(ack_pages.router(deps, answers))
    app.include_router(slack_interactions.router(deps, answers))
    app.include_router(dashboard.router(deps))
    app.include_router(api.router(deps))
    app.include_router(inbox.router(deps))
    app.include_router(static_files.router())
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

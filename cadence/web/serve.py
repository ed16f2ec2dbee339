"""Running the web app under uvicorn, in one process or in N worker processes.

With one process the app is built here and handed to uvicorn. With more, uvicorn starts
each worker as a fresh process that imports an app factory by name, so every worker builds
its own app from the environment: its own SQLAlchemy engine and connection pool, its own
Redis and Celery clients. Nothing that holds a socket is shared across processes (a pooled
connection used by two processes at once corrupts both sessions), so pools are per worker and
the database sees `workers x (pool_size + max_overflow)` connections at most.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

import uvicorn
from fastapi import FastAPI

from cadence.config import Settings, load_settings

# The factory each worker process imports (uvicorn's `module:attribute` form).
APP_FACTORY = "cadence.web.serve:app_from_environment"
# How the parent tells its workers the log level it was given.
LOGLEVEL_ENV = "CADENCE_WEB_LOGLEVEL"
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
# The supervising process's id, so a worker can tell whether it is already an orphan.
PARENT_ENV = "CADENCE_WEB_PARENT_PID"
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Stop (gracefully, by SIGTERM) when the supervising process dies, even by SIGKILL.

    Without this a killed `cadence web --workers N` leaves its workers answering on the
    shared socket, out of anyone's sight; in a container they die with it anyway.
    """
    parent = os.environ.get(PARENT_ENV)
    # Unset, or this very process: it serves by itself, with no supervisor to outlive.
    if not parent or int(parent) == os.getpid() or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(parent):  # it died before the line above ran
        os.kill(os.getpid(), signal.SIGTERM)


def app_from_environment() -> FastAPI:
    """The app for one worker process, from the same environment as its parent."""
    from cadence.web.app import create_app

    _die_with_parent()
    logging.basicConfig(level=os.environ.get(LOGLEVEL_ENV, "INFO"), format=LOG_FORMAT)
    settings = load_settings()
    assert settings.redis_url, "the parent process sets CADENCE_REDIS_URL for its workers"
    return create_app(settings, settings.redis_url)


def serve(
    settings: Settings,
    redis_url: str,
    *,
    host: str,
    port: int,
    workers: int = 1,
    level: str = "INFO",
    factory: str = APP_FACTORY,
) -> None:
    """Serve until stopped. `factory` names the app each worker builds (the bench names its
    own, which adds a route a deployment never has)."""
    # The client address is the socket's unless CADENCE_TRUSTED_PROXY_HOPS says how many
    # proxies to believe; uvicorn's own X-Forwarded-For handling would trust any sender on
    # loopback instead.
    options = {"host": host, "port": port, "log_level": level.lower(), "proxy_headers": False}
    if workers == 1 and factory == APP_FACTORY:
        from cadence.web.app import create_app

        uvicorn.run(create_app(settings, redis_url), **options)  # type: ignore[arg-type]
        return
    # Workers read their settings from the environment; the Redis URL may be an embedded
    # server this process started, so it is passed on explicitly.
    os.environ["CADENCE_REDIS_URL"] = redis_url
    os.environ[LOGLEVEL_ENV] = level.upper()
    if workers > 1:
        os.environ[PARENT_ENV] = str(os.getpid())
    else:
        os.environ.pop(PARENT_ENV, None)
    uvicorn.run(factory, factory=True, workers=workers, **options)  # type: ignore[arg-type]

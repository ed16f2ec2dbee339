"""Start-up self-checks: settings that would otherwise fail silently, said plainly."""

from __future__ import annotations

from sqlalchemy import Engine

from cadence.config import DEFAULT_SECRET, Settings
from cadence.delivery.broker import check_reachable
from cadence.errors import CadenceError
from cadence.store.db import check_migrated


def check_secret(settings: Settings) -> None:
    if settings.env != "development" and settings.secret_key == DEFAULT_SECRET:
        raise CadenceError(
            "CADENCE_SECRET_KEY is the development default; set a long random secret "
            "before running with CADENCE_ENV=production"
        )
    if settings.env != "development" and len(settings.secret_key) < 32:
        raise CadenceError("CADENCE_SECRET_KEY must be at least 32 characters in production")


def startup_checks(settings: Settings, engine: Engine, redis_url: str | None) -> None:
    """Everything a worker, beat or web process needs before it starts taking work."""
    check_secret(settings)
    check_migrated(engine)
    if redis_url is not None:
        check_reachable(redis_url)

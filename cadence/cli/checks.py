"""Start-up self-checks: settings that would otherwise fail silently, said plainly."""

from __future__ import annotations

from sqlalchemy import Engine

from cadence.config import DEFAULT_SECRET, Settings
from cadence.delivery.broker import EmbeddedRedis, check_reachable, resolve_redis_url
from cadence.errors import CadenceError
from cadence.store.db import check_migrated


def check_secret(settings: Settings) -> None:
    if settings.env != "development" and settings.secret_key.get_secret_value() == DEFAULT_SECRET:
        raise CadenceError(
            "CADENCE_SECRET_KEY is the development default; set a long random secret "
            "before running with CADENCE_ENV=production"
        )
    if settings.env != "development" and len(settings.secret_key) < 32:
        raise CadenceError("CADENCE_SECRET_KEY must be at least 32 characters in production")


def check_production_broker(settings: Settings) -> None:
    # The embedded Redis lives and dies with one machine's processes: fine for trying
    # Cadence, not for workers and web apps spread over containers.
    if settings.env != "development" and settings.redis_url is None:
        raise CadenceError(
            "CADENCE_REDIS_URL is unset: the embedded Redis is for trying Cadence on one "
            "machine; point CADENCE_REDIS_URL at your Redis server before running with "
            "CADENCE_ENV=production"
        )


def broker_for(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """The Redis URL a process uses (and the embedded server, if this call started it),
    after the settings checks, so a misconfigured production process starts nothing."""
    check_secret(settings)
    check_production_broker(settings)
    return resolve_redis_url(settings.redis_url, settings.state_dir)


def startup_checks(settings: Settings, engine: Engine, redis_url: str | None) -> None:
    """Everything a worker, beat or web process needs before it starts taking work."""
    check_secret(settings)
    check_production_broker(settings)
    check_migrated(engine)
    if redis_url is not None:
        check_reachable(redis_url)

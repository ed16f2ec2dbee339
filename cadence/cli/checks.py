"""Start-up self-checks: settings that would otherwise fail silently, said plainly."""

from __future__ import annotations

import math
from collections import Counter

from sqlalchemy import Engine

from cadence.config import DEFAULT_SECRET, Settings
from cadence.delivery.broker import EmbeddedRedis, check_reachable, resolve_redis_url
from cadence.errors import CadenceError
from cadence.store.db import check_migrated

MIN_SECRET_LENGTH = 32
MIN_DISTINCT_CHARACTERS = 16
# Bits of Shannon entropy per character, estimated from the key's own characters: a
# token_urlsafe(48) has about 5.5, a repeated word far less.
MIN_BITS_PER_CHARACTER = 3.5
_MAKE_ONE = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'


def secret_weakness(secret: str) -> str | None:
    """Why a signing key is too easy to guess, or None when it will do."""
    if len(secret) < MIN_SECRET_LENGTH:
        return f"is shorter than {MIN_SECRET_LENGTH} characters"
    counts = Counter(secret)
    if len(counts) < MIN_DISTINCT_CHARACTERS:
        return f"has fewer than {MIN_DISTINCT_CHARACTERS} different characters"
    bits = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values())
    if bits < MIN_BITS_PER_CHARACTER:
        return "repeats its characters too much to be random"
    return None


def check_secret(settings: Settings) -> None:
    if settings.env == "development":
        return
    secret = settings.secret_key.get_secret_value()
    if secret == DEFAULT_SECRET:
        raise CadenceError(
            "CADENCE_SECRET_KEY is the development default; set a long random secret "
            f"before running with CADENCE_ENV=production ({_MAKE_ONE})"
        )
    weakness = secret_weakness(secret)
    if weakness is not None:
        raise CadenceError(
            f"CADENCE_SECRET_KEY {weakness}, too weak for CADENCE_ENV=production; {_MAKE_ONE}"
        )


def check_demo_inbox(settings: Settings) -> None:
    # The inbox preview shows everyone's messages to anyone, without signing in.
    if settings.env == "production" and settings.demo_inbox:
        raise CadenceError(
            "CADENCE_DEMO_INBOX=true shows everyone's messages without signing in and is "
            "never served with CADENCE_ENV=production; unset CADENCE_DEMO_INBOX"
        )


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
    check_demo_inbox(settings)
    check_production_broker(settings)
    return resolve_redis_url(settings.redis_url, settings.state_dir)


def startup_checks(settings: Settings, engine: Engine, redis_url: str | None) -> None:
    """Everything a worker, beat or web process needs before it starts taking work."""
    check_secret(settings)
    check_demo_inbox(settings)
    check_production_broker(settings)
    check_migrated(engine)
    if redis_url is not None:
        check_reachable(redis_url)

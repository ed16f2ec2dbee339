"""Sign-in throttling: failures counted per client address and per email and address.

Counting failures per email alone would let a stranger lock anyone out by guessing wrong
on their behalf. So there are two counters, and neither is global to an email:

- per client address (`PER_ADDRESS` failures in `WINDOW`), which slows one machine trying
  many accounts;
- per email and address (`PER_PAIR` in `WINDOW`), which slows one machine guessing one
  password. Someone else's failures, from another address, never touch it.

Past its limit a counter refuses for a back-off that doubles with each further failure,
from `BACKOFF` up to `MAX_BACKOFF`: a lock always ends within a few minutes. Refused
attempts are not counted, and a successful sign-in clears its email and address's counter.

The counters live in Redis (one Lua script per failure, so concurrent web processes agree),
with time taken from the app's clock so the windows can be tested. When the app has no
Redis client, or Redis is down, they live in this process instead: a pause in Redis must
never turn the sign-in page into an error.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis

log = logging.getLogger("cadence.web.throttle")

PER_ADDRESS = 20
PER_PAIR = 5
WINDOW = timedelta(minutes=15)
BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(minutes=5)

# KEYS[1]: the counter (a hash: count, start, until). ARGV: now, window, limit, base, cap
# (seconds). Starts a new window when the last one has passed; past the limit, sets `until`
# to now plus the back-off. Returns `until` (0 when not locked).
_FAIL = """
local now = tonumber(ARGV[1])
local window, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local base, cap = tonumber(ARGV[4]), tonumber(ARGV[5])
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
local start = tonumber(redis.call('HGET', KEYS[1], 'start') or '0')
if now - start >= window then
  count = 0
  start = now
end
count = count + 1
local locked = 0
if count >= limit then
  locked = now + math.min(cap, base * 2 ^ (count - limit))
end
redis.call('HSET', KEYS[1], 'count', count, 'start', start, 'until', locked)
redis.call('EXPIRE', KEYS[1], math.ceil(window + cap))
return tostring(locked)
"""


@dataclass(frozen=True)
class Limits:
    per_address: int = PER_ADDRESS
    per_pair: int = PER_PAIR
    window: timedelta = WINDOW
    backoff: timedelta = BACKOFF
    max_backoff: timedelta = MAX_BACKOFF


@dataclass
class _Counter:
    count: int = 0
    start: float = 0.0
    until: float = 0.0


class _Local:
    """The same counters in this process's memory, for when Redis is not there."""

    def __init__(self) -> None:
        self._counters: dict[str, _Counter] = {}
        self._lock = threading.Lock()

    def locked_until(self, key: str) -> float:
        with self._lock:
            counter = self._counters.get(key)
            return counter.until if counter else 0.0

    def fail(
        self, key: str, now: float, limit: int, window: float, base: float, cap: float
    ) -> None:
        with self._lock:
            if len(self._counters) > 100_000:  # a flood of addresses: forget the stale ones
                self._counters = {
                    k: c for k, c in self._counters.items() if now - c.start < window + cap
                }
            counter = self._counters.setdefault(key, _Counter())
            if now - counter.start >= window:
                counter.count, counter.start = 0, now
            counter.count += 1
            if counter.count >= limit:
                counter.until = now + min(cap, base * 2 ** (counter.count - limit))

    def clear(self, key: str) -> None:
        with self._lock:
            self._counters.pop(key, None)


class SignInThrottle:
    """Whether a sign-in attempt may be checked now, and the failures that decide it."""

    def __init__(
        self,
        client: redis.Redis | None,
        clock: Callable[[], datetime],
        limits: Limits = Limits(),
    ) -> None:
        self._redis = client
        self._clock = clock
        self._limits = limits
        self._local = _Local()
        self._script = client.register_script(_FAIL) if client is not None else None

    def _keys(self, address: str, email: str) -> tuple[str, str]:
        # Hashed, so the keys name no one in Redis.
        pair = hashlib.sha256(f"{address}\n{email.strip().lower()}".encode()).hexdigest()
        return (f"cadence:sign-in:address:{address}", f"cadence:sign-in:pair:{pair}")

    def retry_after(self, address: str, email: str) -> int:
        """Seconds until an attempt from `address` for `email` may be checked (0: now)."""
        now = self._clock().timestamp()
        keys = self._keys(address, email)
        until = max(self._until(key) for key in keys)
        return max(0, math.ceil(until - now))

    def failed(self, address: str, email: str) -> None:
        now = self._clock().timestamp()
        address_key, pair_key = self._keys(address, email)
        limits = self._limits
        window = limits.window.total_seconds()
        base, cap = limits.backoff.total_seconds(), limits.max_backoff.total_seconds()
        for key, limit in ((address_key, limits.per_address), (pair_key, limits.per_pair)):
            if self._script is not None:
                try:
                    self._script(keys=[key], args=[now, window, limit, base, cap])
                    continue
                except (redis.RedisError, OSError) as exc:
                    log.warning("sign-in throttle kept in this process: %s", exc)
            self._local.fail(key, now, limit, window, base, cap)

    def succeeded(self, address: str, email: str) -> None:
        """A correct password clears its own email and address's failures (not the
        address's: one good account must not reset a machine trying many)."""
        pair_key = self._keys(address, email)[1]
        self._local.clear(pair_key)
        if self._redis is not None:
            try:
                self._redis.delete(pair_key)
            except (redis.RedisError, OSError) as exc:
                log.warning("sign-in throttle unavailable: %s", exc)

    def _until(self, key: str) -> float:
        local = self._local.locked_until(key)
        if self._redis is None:
            return local
        try:
            stored = self._redis.hget(key, "until")
        except (redis.RedisError, OSError) as exc:
            log.warning("sign-in throttle kept in this process: %s", exc)
            return local
        return max(local, float(stored) if stored else 0.0)


def client_address(peer: str | None, forwarded_for: str | None, trusted_hops: int) -> str:
    """The address a request came from: the socket's peer, or, behind `trusted_hops`
    proxies, the address the outermost trusted proxy saw (each proxy appends the address it
    heard from to `X-Forwarded-For`, so anything further left may be made up)."""
    fallback = peer or "unknown"
    if trusted_hops <= 0 or not forwarded_for:
        return fallback
    hops = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    if not hops:
        return fallback
    candidate = hops[-trusted_hops] if len(hops) >= trusted_hops else hops[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return fallback


__all__ = ["Limits", "SignInThrottle", "client_address"]

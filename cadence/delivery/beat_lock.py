"""Only one beat may tick: a Redis lock with a short lease that the holder keeps renewing.

If the holder dies its lease runs out within `ttl` seconds and a standby beat takes over.
If the holder cannot renew (Redis restarted or flushed, the lease stolen after a long pause)
it stops ticking at once and stands by to take the lock again; it never exits for that.
"""

from __future__ import annotations

import contextlib
import logging

import redis
from redis.exceptions import LockError

log = logging.getLogger("cadence.delivery.beat")

LOCK_NAME = "cadence:beat-lock"
REDIS_ERRORS = (redis.RedisError, OSError)


class BeatLock:
    def __init__(self, client: redis.Redis, ttl: float = 30.0, name: str = LOCK_NAME) -> None:
        self._lock = client.lock(name, timeout=ttl, thread_local=False)
        self.ttl = ttl

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it, or find it still ours after a renewal that
        failed on a blip; False if someone else holds it (raises if Redis is away)."""
        if self._lock.local.token is not None:
            with contextlib.suppress(LockError):
                self._lock.reacquire()
                return True
        return bool(self._lock.acquire(blocking=False))

    def owned(self) -> bool:
        """Whether the lease is still ours right now (False if Redis cannot say)."""
        try:
            return bool(self._lock.owned())
        except REDIS_ERRORS:
            return False

    def renew(self) -> bool:
        """Extend the lease; False if it is no longer ours or Redis cannot say."""
        try:
            self._lock.reacquire()
        except (LockError, *REDIS_ERRORS) as exc:
            log.warning("lost the beat lock (%s)", exc)
            return False
        return True

    def release(self) -> None:
        # Already expired or taken over: there is nothing of ours left to release.
        with contextlib.suppress(LockError, *REDIS_ERRORS):
            self._lock.release()

"""Only one beat may run: a Redis lock with a short lease that the holder keeps renewing.

If the holder dies its lease runs out within `ttl` seconds and a standby beat takes over;
if the holder cannot renew (Redis gone, lease stolen after a long pause) it must stop.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import redis
from redis.exceptions import LockError

log = logging.getLogger("cadence.beat")

LOCK_NAME = "cadence:beat-lock"


class BeatLock:
    def __init__(self, client: redis.Redis, ttl: float = 30.0, name: str = LOCK_NAME) -> None:
        self._lock = client.lock(name, timeout=ttl, thread_local=False)
        self._ttl = ttl
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def try_acquire(self) -> bool:
        return bool(self._lock.acquire(blocking=False))

    def wait_acquire(self, poll: float, on_wait: Callable[[], None] | None = None) -> None:
        """Block until the lock is ours, calling `on_wait` once if someone else holds it."""
        told = False
        while not self.try_acquire():
            if not told and on_wait is not None:
                on_wait()
                told = True
            if self._stop.wait(poll):
                raise InterruptedError("stopped while waiting for the beat lock")

    def keep_renewing(self, on_lost: Callable[[], None]) -> None:
        """Renew the lease every third of its life, in the background."""

        def run() -> None:
            while not self._stop.wait(self._ttl / 3):
                try:
                    self._lock.reacquire()
                except (LockError, redis.RedisError, OSError) as exc:
                    log.error("lost the beat lock (%s); stopping this beat", exc)
                    on_lost()
                    return

        self._thread = threading.Thread(target=run, name="beat-lock", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        # Already expired or taken over: there is nothing of ours left to release.
        with contextlib.suppress(LockError, redis.RedisError, OSError):
            self._lock.release()

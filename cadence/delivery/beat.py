"""The beat: every `tick_seconds`, ask a worker to run the dispatcher's tick.

It ticks only while it holds the beat lock. Losing the lock or Redis (a restart, a FLUSHALL,
a network blip) is a pause: it stops ticking, waits, reconnects and takes the lock again
when it is free, so one beat ticks at a time and none ever exits for it. Nothing is lost by
a missed tick: the database holds the plan, and the next tick sends what fell due.

`step` is one pass of the loop with the time given, so the behaviour is tested without
sleeping; `run` repeats it until stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kombu.exceptions import OperationalError as BrokerError

from cadence.delivery.beat_lock import REDIS_ERRORS, BeatLock

log = logging.getLogger("cadence.delivery.beat")

# How often a beat without the lock (standing by, or Redis away) tries to take it.
STANDBY_POLL = 2.0
# The loop wakes at least this often, whatever its tick interval, to show it is alive.
HEARTBEAT_EVERY = 10.0


@dataclass
class BeatState:
    holding: bool = False
    next_tick: float = 0.0
    next_renew: float = 0.0
    ticks: int = 0
    # When the last tick was asked for, on the beat's clock.
    last_tick: float | None = None
    told_standby: bool = False


class Beat:
    def __init__(
        self,
        lock: BeatLock,
        publish: Callable[[], None],
        tick_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lock = lock
        self.publish = publish
        self.tick_seconds = tick_seconds
        self.clock = clock
        self.state = BeatState()

    def step(self, now: float) -> float:
        """Do what is due at `now`; return how long to wait before the next step."""
        state = self.state
        if not state.holding:
            try:
                taken = self.lock.try_acquire()
            except REDIS_ERRORS as exc:
                log.warning("Redis unreachable (%s); retrying in %.0f s", exc, STANDBY_POLL)
                return STANDBY_POLL
            if not taken:
                if not state.told_standby:
                    log.warning("another beat holds the lock; standing by")
                    state.told_standby = True
                return STANDBY_POLL
            log.info("holding the beat lock; ticking every %.1f s", self.tick_seconds)
            state.holding, state.told_standby = True, False
            state.next_tick, state.next_renew = now, now + self.lock.ttl / 3
        if now >= state.next_renew:
            if not self.lock.renew():
                log.warning("stopped ticking; will take the lock again when it is free")
                state.holding = False
                return STANDBY_POLL
            state.next_renew = now + self.lock.ttl / 3
        if now >= state.next_tick:
            if not self.lock.owned():
                # Flushed or taken over since the last renewal: a standby may tick now.
                log.warning("the beat lock is no longer ours; standing by")
                state.holding = False
                return STANDBY_POLL
            state.next_tick = now + self.tick_seconds
            try:
                self.publish()
                state.ticks += 1
                state.last_tick = now
            except (BrokerError, *REDIS_ERRORS) as exc:
                # The next tick does this one's work; nothing is kept in the broker.
                log.warning("could not ask for a tick (%s); trying again next time", exc)
        return max(0.0, min(state.next_tick, state.next_renew) - now)

    def run(
        self,
        stop: threading.Event,
        on_pass: Callable[[BeatState, float], None] | None = None,
        wake_every: float = HEARTBEAT_EVERY,
    ) -> None:
        """Step until stopped. `on_pass(state, now)` runs after every step; the loop wakes at
        least every `wake_every` seconds for it (an early step does nothing that is not due)."""
        try:
            while not stop.is_set():
                now = self.clock()
                wait = self.step(now)
                if on_pass is not None:
                    on_pass(self.state, now)
                stop.wait(min(wait, wake_every))
        finally:
            self.lock.release()

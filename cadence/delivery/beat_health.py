"""How a beat shows a health check that it is alive: a small file it rewrites on every pass.

A container's health check runs in the beat's own container, so a file in the state folder
is enough and needs neither Redis nor the database: a beat that is stuck or gone stops
rewriting it, and one that holds the lock but no longer gets its ticks out says so. A beat
standing by (another one ticks, or Redis is away) is healthy: waiting is its job.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cadence.delivery.beat import BeatState
from cadence.errors import CadenceError

log = logging.getLogger("cadence.delivery.beat")

HEARTBEAT_FILE = "beat-heartbeat.json"
# Older than this and the beat is taken for dead: several missed passes, not one slow one.
DEFAULT_MAX_AGE = 60.0


@dataclass(frozen=True)
class Heartbeat:
    pid: int
    at: float  # wall-clock seconds when written
    holding: bool
    ticks: int
    last_tick_at: float | None  # wall-clock seconds of the last tick asked for, if any
    tick_seconds: float


def heartbeat_path(state_dir: Path) -> Path:
    return state_dir / HEARTBEAT_FILE


class HeartbeatWriter:
    """`Beat.run`'s `on_pass`: rewrites the file after every pass. A file that cannot be
    written is said once in the log and never stops the beat."""

    def __init__(
        self, path: Path, tick_seconds: float, wall: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.tick_seconds = tick_seconds
        self.wall = wall
        self._failing = False

    def __call__(self, state: BeatState, now: float) -> None:
        wall = self.wall()
        # The beat keeps time on a monotonic clock; the file speaks wall-clock seconds.
        last = None if state.last_tick is None else wall - (now - state.last_tick)
        beat = Heartbeat(os.getpid(), wall, state.holding, state.ticks, last, self.tick_seconds)
        try:
            write_heartbeat(self.path, beat)
        except OSError as exc:
            if not self._failing:
                log.warning("cannot write the beat's heartbeat file %s: %s", self.path, exc)
            self._failing = True
        else:
            self._failing = False


def write_heartbeat(path: Path, beat: Heartbeat) -> None:
    """Replace the file in one step, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{beat.pid}")
    scratch.write_text(json.dumps(asdict(beat)))
    os.replace(scratch, path)


def read_heartbeat(path: Path) -> Heartbeat:
    try:
        data = json.loads(path.read_text())
        return Heartbeat(**data)
    except FileNotFoundError:
        raise CadenceError(f"no beat has run here yet ({path} does not exist)") from None
    except (OSError, ValueError, TypeError) as exc:
        raise CadenceError(f"the beat's heartbeat file {path} cannot be read: {exc}") from None


def problems(beat: Heartbeat, now: float, max_age: float = DEFAULT_MAX_AGE) -> list[str]:
    """Each reason the beat is unhealthy, as a sentence; empty when it is well."""
    found = []
    age = now - beat.at
    if age > max_age:
        found.append(
            f"the beat (pid {beat.pid}) last showed it was alive {age:.0f} s ago "
            f"(more than {max_age:.0f} s): it has stopped or is stuck"
        )
    if beat.holding and beat.ticks and beat.last_tick_at is not None:
        overdue = max(3 * beat.tick_seconds, max_age)
        since = beat.at - beat.last_tick_at
        if since > overdue:
            found.append(
                f"the beat holds the lock but has not asked for a tick for {since:.0f} s "
                "(Redis may be refusing its messages)"
            )
    return found


def describe(beat: Heartbeat, now: float) -> str:
    """One line on what the beat is doing, for a healthy answer."""
    if not beat.holding:
        role = "standing by (another beat ticks, or Redis is away)"
    elif beat.last_tick_at is None:
        role = "holding the lock, no tick yet"
    else:
        role = f"holding the lock, {beat.ticks} ticks, last {now - beat.last_tick_at:.0f} s ago"
    return f"beat alive (pid {beat.pid}, seen {now - beat.at:.0f} s ago): {role}"

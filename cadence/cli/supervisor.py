"""`cadence up`: run several Cadence processes as one, and stop them all together.

A child that exits on its own is started again after a pause (a worker can fall over on a
Redis restart inside Celery's own reconnection); one that keeps exiting stops everything,
since a half-running Cadence is worse than a stopped one."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger("cadence.up")


# A child may exit on its own this many times within RESTART_WINDOW seconds and be started
# again (after `restart_pause`); once more and everything stops.
MAX_RESTARTS = 5
RESTART_WINDOW = 300.0


@dataclass
class Supervisor:
    """Starts child processes and stops every one of them on Ctrl-C or SIGTERM, or when a
    child keeps exiting on its own; a child that exits once in a while is started again."""

    env: dict[str, str]
    grace: float = 20.0
    restart_pause: float = 2.0
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _stopping: bool = False
    _args: dict[str, list[str]] = field(default_factory=dict)
    _exits: dict[str, list[float]] = field(default_factory=dict)

    def start(self, name: str, args: Sequence[str]) -> None:
        self._args[name] = list(args)
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "cadence", *args], env=self.env, stdin=subprocess.DEVNULL
        )
        log.info("started %s (pid %d)", name, self.children[name].pid)

    def _restart_or_give_up(self, name: str, code: int) -> str | None:
        """Start an exited child again; the reason to stop everything if it exits too often."""
        now = time.monotonic()
        recent = [t for t in self._exits.get(name, []) if now - t < RESTART_WINDOW] + [now]
        self._exits[name] = recent
        if len(recent) > MAX_RESTARTS:
            return f"{name} exited {len(recent)} times in {RESTART_WINDOW:.0f} s (last code {code})"
        log.warning("%s exited with code %d; starting it again", name, code)
        time.sleep(self.restart_pause)
        self.start(name, self._args[name])
        return None

    def run(self, on_idle: Callable[[], None] | None = None, duration: float | None = None) -> int:
        """Wait until a signal, a child exit, or `duration` seconds; then stop everything."""
        reason = {"why": ""}

        def handle(signum: int, _frame: FrameType | None) -> None:
            reason["why"] = signal.Signals(signum).name

        previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
        deadline = None if duration is None else time.monotonic() + duration
        exit_code = 0
        try:
            while not reason["why"]:
                for name, child in list(self.children.items()):
                    if child.poll() is not None and not reason["why"]:
                        given_up = self._restart_or_give_up(name, child.returncode)
                        if given_up is not None:
                            reason["why"] = given_up
                            exit_code = 1
                if deadline is not None and time.monotonic() >= deadline:
                    reason["why"] = "duration reached"
                if on_idle is not None and not reason["why"]:
                    on_idle()
                time.sleep(0.25)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            log.info("stopping: %s", reason["why"])
            self.stop()
        return exit_code

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for name, child in self.children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", name, self.grace)
                child.kill()
                child.wait()


def child_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides)
    return env

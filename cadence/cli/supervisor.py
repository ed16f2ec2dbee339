"""`cadence up`: run several Cadence processes as one, and stop them all together."""

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


@dataclass
class Supervisor:
    """Starts child processes and stops every one of them on Ctrl-C, SIGTERM, or when any
    child exits on its own (a half-running Cadence is worse than a stopped one)."""

    env: dict[str, str]
    grace: float = 20.0
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _stopping: bool = False

    def start(self, name: str, args: Sequence[str]) -> None:
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "cadence", *args], env=self.env, stdin=subprocess.DEVNULL
        )
        log.info("started %s (pid %d)", name, self.children[name].pid)

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
                for name, child in self.children.items():
                    if child.poll() is not None:
                        reason["why"] = f"{name} exited with code {child.returncode}"
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

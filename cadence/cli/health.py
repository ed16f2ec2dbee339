"""`cadence health web|worker|beat`: container health checks, one line each, exit 2 when ill.

Each check runs beside the process it checks (in its container), so it asks that process and
no other: the web app on a local port, the worker named after this host, the beat through its
heartbeat file in the state folder.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import typer

from cadence.config import load_settings
from cadence.delivery.beat_health import (
    DEFAULT_MAX_AGE,
    describe,
    heartbeat_path,
    problems,
    read_heartbeat,
)
from cadence.delivery.broker import EmbeddedRedis, check_reachable
from cadence.errors import CadenceError
from cadence.worker import NODENAME_PREFIX, make_celery, ping_worker

health_app = typer.Typer(
    help="Health checks for containers: exit 0 when well, 2 with the reason when not.",
    no_args_is_help=True,
)
TIMEOUT = typer.Option(5.0, "--timeout", min=0.1, max=120, help="Seconds to wait for an answer.")


def register(app: typer.Typer) -> None:
    app.add_typer(health_app, name="health")


@health_app.command("web")
def web(
    host: str = typer.Option("127.0.0.1", "--host", help="Where the web app listens."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Its port."),
    timeout: float = TIMEOUT,
) -> None:
    """Ask the web app's /health: its database and Redis must both answer."""
    url = f"http://{host}:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise CadenceError(f"{url} answered {exc.code}: {_said(exc.read())}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CadenceError(f"the web app at {url} does not answer: {exc}") from None
    typer.echo(f"web ok: {_said(body)}")


def _said(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    if isinstance(data, dict):
        return ", ".join(f"{k} {v}" for k, v in data.items())
    return str(data)


@health_app.command("worker")
def worker(
    hostname: str = typer.Option(
        "", "--hostname", help="The host whose worker to ask (default: this one)."
    ),
    timeout: float = TIMEOUT,
) -> None:
    """Ping the Celery worker on this host through Redis; it answers only if it is taking
    work from the broker."""
    settings = load_settings()
    url = settings.redis_url or EmbeddedRedis(settings.state_dir / "redis").url
    check_reachable(url)
    nodename = NODENAME_PREFIX + (hostname or socket.gethostname())
    if not ping_worker(make_celery(settings, url), nodename, timeout):
        raise CadenceError(f"the worker {nodename} did not answer a ping within {timeout:g} s")
    typer.echo(f"worker ok: {nodename} answered")


@health_app.command("beat")
def beat(
    max_age: float = typer.Option(
        DEFAULT_MAX_AGE, "--max-age", min=1, help="Seconds of silence before the beat is ill."
    ),
) -> None:
    """Read the beat's heartbeat file: alive, and ticking if it holds the lock."""
    settings = load_settings()
    heartbeat = read_heartbeat(heartbeat_path(settings.state_dir))
    now = time.time()
    found = problems(heartbeat, now, max_age)
    if found:
        raise CadenceError("; ".join(found))
    typer.echo(describe(heartbeat, now))

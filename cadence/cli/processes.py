"""Long-running verbs: `worker`, `beat`, `up` (all of them together) and `demo`."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import timedelta

import typer

from cadence.cli.checks import broker_for, startup_checks
from cadence.cli.context import runtime
from cadence.cli.demo import seed, sent_since
from cadence.cli.supervisor import Supervisor, child_env
from cadence.clock import utcnow
from cadence.delivery.beat import Beat
from cadence.delivery.beat_health import HeartbeatWriter, heartbeat_path
from cadence.delivery.beat_lock import BeatLock
from cadence.delivery.broker import redis_client
from cadence.launches.cascade import context_from as launch_context
from cadence.store.db import session_scope, upgrade
from cadence.worker import NODENAME_PREFIX, make_celery, request_tick

LOGLEVEL = typer.Option("INFO", "--loglevel", help="DEBUG, INFO, WARNING or ERROR.")


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("beat")(beat)
    app.command("up")(up)
    app.command("demo")(demo)


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )


def worker(
    ctx: typer.Context,
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, help="Worker processes."),
    pool: str = typer.Option("prefork", "--pool", help="prefork, threads or solo."),
    loglevel: str = LOGLEVEL,
) -> None:
    """Run a Celery worker: it runs the dispatcher's ticks and sends deliveries."""
    if pool not in ("prefork", "threads", "solo"):
        raise typer.BadParameter("pool must be prefork, threads or solo", param_hint="--pool")
    _logging(loglevel)
    rt = runtime(ctx)
    url, owned = broker_for(rt.settings)
    try:
        startup_checks(rt.settings, rt.engine, url)
        rt.engine.dispose()  # the pool forks; each child opens its own connections
        app = make_celery(rt.settings, url)
        quiet = loglevel.upper() in ("WARNING", "ERROR", "CRITICAL")
        # A quiet log level also drops Celery's start-up banner (a global option, first).
        app.worker_main(
            (["--quiet"] if quiet else [])
            + ["worker", f"--loglevel={loglevel}", f"--concurrency={concurrency}",
               f"--pool={pool}", f"--hostname={NODENAME_PREFIX}%h", "--without-gossip",
               "--without-mingle"]
        )  # fmt: skip
    finally:
        if owned is not None:
            owned.stop()


def beat(ctx: typer.Context, loglevel: str = LOGLEVEL) -> None:
    """Run the beat that triggers the dispatcher's tick. Only one ticks at a time: a second
    beat waits on standby and takes over if the first stops. A Redis restart is a pause."""
    _logging(loglevel)
    rt = runtime(ctx)
    url, owned = broker_for(rt.settings)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        startup_checks(rt.settings, rt.engine, url)
        app = make_celery(rt.settings, url)
        Beat(
            BeatLock(redis_client(url)),
            publish=lambda: request_tick(app, rt.settings),
            tick_seconds=rt.settings.tick_seconds,
        ).run(
            stop,
            on_pass=HeartbeatWriter(
                heartbeat_path(rt.settings.state_dir), rt.settings.tick_seconds
            ),
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if owned is not None:
            owned.stop()


def _supervise(
    ctx: typer.Context,
    loglevel: str,
    on_idle: Callable[[], None] | None = None,
    duration: float | None = None,
    web_port: int | None = None,
) -> int:
    rt = runtime(ctx)
    url, owned = broker_for(rt.settings)
    try:
        startup_checks(rt.settings, rt.engine, url)
        sup = Supervisor(env=child_env(CADENCE_REDIS_URL=url))
        sup.start("worker", ["worker", f"--loglevel={loglevel}"])
        sup.start("beat", ["beat", f"--loglevel={loglevel}"])
        if web_port is not None:
            sup.start("web", ["web", f"--port={web_port}", f"--loglevel={loglevel}"])
        return sup.run(on_idle=on_idle, duration=duration)
    finally:
        if owned is not None:
            owned.stop()


def up(
    ctx: typer.Context,
    duration: float | None = typer.Option(
        None, "--duration", min=1, help="Stop after this many seconds (default: run until stopped)."
    ),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port for the web app."),
    loglevel: str = LOGLEVEL,
) -> None:
    """Run Redis (embedded, if no CADENCE_REDIS_URL), a worker, beat and the web app
    together; Ctrl-C or SIGTERM stops them all."""
    _logging(loglevel)
    raise typer.Exit(_supervise(ctx, loglevel, duration=duration, web_port=port))


DEMO_ENVIRONMENT = {
    "CADENCE_TICK_SECONDS": "2",
    "CADENCE_DEMO_INBOX": "true",
    # Round the clock, so the demo's launch and reminders move whenever it is run.
    "CADENCE_WORK_START": "00:00",
    "CADENCE_WORK_END": "23:59",
    "CADENCE_WORK_DAYS": "mon,tue,wed,thu,fri,sat,sun",
    "CADENCE_REMIND_AFTER_HOURS": "0.1",
    "CADENCE_MAX_REMINDERS": "1",
}


def demo(
    ctx: typer.Context,
    duration: float | None = typer.Option(
        None, "--duration", min=1, help="Stop after this many seconds (default: until Ctrl-C)."
    ),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port for the web app."),
    open_browser: bool = typer.Option(False, "--open", help="Open the inbox in a browser."),
) -> None:
    """Set up the database, load a sample organisation, core messages and a launch a few
    minutes ahead, and run Cadence (worker, beat and web), printing each delivery as it is
    sent. The inbox preview shows what everyone received; acknowledge there and watch the
    dashboard move."""
    _logging("WARNING")
    for name, value in DEMO_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("CADENCE_BASE_URL", f"http://127.0.0.1:{port}")
    rt = runtime(ctx)
    upgrade(rt.engine)
    now = utcnow()
    with session_scope(rt.sessions) as session:
        seeded = seed(session, now, launch_context(rt.settings))
    typer.echo(seeded.directory.summary())
    for message in seeded.messages:
        typer.echo(f"added {message.kind} message {message.id}: {message.title!r}")
    for line in seeded.notes:
        typer.echo(line)
    # Settings live in this process's environment: a command in another shell plans
    # launches with its own unless it is given the same.
    same = " ".join(f"{name}={os.environ[name]}" for name in DEMO_ENVIRONMENT if "_WORK_" in name)
    typer.echo(f"other shells see the demo's plans with: export {same}")
    base = rt.settings.base_url.rstrip("/")
    typer.echo(
        f"database: {rt.engine.url.render_as_string()}\n"
        f"inbox preview: {base}/inbox    dashboard: {base}/dashboard\n"
        "starting worker, beat and web; deliveries appear below as they are sent (Ctrl-C stops)"
    )
    if open_browser:
        import webbrowser

        webbrowser.open(f"{base}/inbox")
    seen: set[int] = set()
    since = now - timedelta(seconds=5)

    def feed() -> None:
        with session_scope(rt.sessions) as session:
            for delivery_id, line in sent_since(session, since):
                if delivery_id not in seen:
                    seen.add(delivery_id)
                    typer.echo(line)

    code = _supervise(ctx, "WARNING", on_idle=feed, duration=duration, web_port=port)
    feed()
    typer.echo(f"stopped; {len(seen)} deliveries sent during this run. Try: cadence deliveries")
    raise typer.Exit(code)

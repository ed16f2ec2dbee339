"""`cadence web`: the acknowledgement pages, Slack interactions, health and metrics."""

from __future__ import annotations

import logging

import typer

from cadence.cli.checks import broker_for, startup_checks
from cadence.cli.context import runtime

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def register(app: typer.Typer) -> None:
    app.command("web")(web)


def web(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    loglevel: str = typer.Option("INFO", "--loglevel", help="DEBUG, INFO, WARNING or ERROR."),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        max=64,
        help="Web processes (uvicorn workers). Each has its own database connection pool: "
        "at most workers x 15 connections, which must fit PostgreSQL's max_connections.",
    ),
) -> None:
    """Serve the web app (email acknowledgement links, Slack buttons, /health, /metrics).

    Set CADENCE_BASE_URL to the public address people reach it at: links in emails use it,
    and answers posted from any other origin are refused. One process uses at most one core;
    --workers N (about one per core) spreads a burst of clicks over N processes.
    """
    # Imported here so other verbs do not pay for loading the web stack.
    from cadence.web.serve import LOG_FORMAT, serve

    level = loglevel.upper()
    if level not in LEVELS:
        raise typer.BadParameter("use DEBUG, INFO, WARNING or ERROR", param_hint="--loglevel")
    logging.basicConfig(level=level, format=LOG_FORMAT)
    rt = runtime(ctx)
    url, owned = broker_for(rt.settings)
    try:
        startup_checks(rt.settings, rt.engine, url)
        rt.engine.dispose()  # the app (each worker's) opens its own pool
        serve(rt.settings, url, host=host, port=port, workers=workers, level=level)
    finally:
        if owned is not None:
            owned.stop()

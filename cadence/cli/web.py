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
) -> None:
    """Serve the web app (email acknowledgement links, Slack buttons, /health, /metrics).

    Set CADENCE_BASE_URL to the public address people reach it at: links in emails use it,
    and answers posted from any other origin are refused.
    """
    # Imported here so other verbs do not pay for loading the web stack.
    import uvicorn

    from cadence.web.app import create_app

    level = loglevel.upper()
    if level not in LEVELS:
        raise typer.BadParameter("use DEBUG, INFO, WARNING or ERROR", param_hint="--loglevel")
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    rt = runtime(ctx)
    url, owned = broker_for(rt.settings)
    try:
        startup_checks(rt.settings, rt.engine, url)
        rt.engine.dispose()  # the app opens its own pool
        # The client address is the socket's unless CADENCE_TRUSTED_PROXY_HOPS says how
        # many proxies to believe; uvicorn's own X-Forwarded-For handling would trust any
        # sender on loopback instead.
        uvicorn.run(
            create_app(rt.settings, url),
            host=host,
            port=port,
            log_level=level.lower(),
            proxy_headers=False,
        )
    finally:
        if owned is not None:
            owned.stop()

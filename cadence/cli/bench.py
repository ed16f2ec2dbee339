"""`cadence bench ...`: figures measured on this machine, printed as JSON."""

from __future__ import annotations

import json

import typer

bench_app = typer.Typer(help="Benchmarks that print JSON figures.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


@bench_app.command("fanout")
def fanout(
    recipients: int = typer.Option(10_000, "--recipients", min=1, max=1_000_000),
    rate: float | None = typer.Option(
        None, "--rate", min=1, help="Limit the Slack stand-in to this many posts a minute."
    ),
    naive: int = typer.Option(1000, "--naive", min=1, help="Recipients for the naive baseline."),
    concurrency: int = typer.Option(2, "--concurrency", min=1, help="Worker processes."),
    pool: str = typer.Option("prefork", "--pool", help="Worker pool: prefork or threads."),
    batch_size: int = typer.Option(500, "--batch-size", min=1, help="Deliveries per task."),
) -> None:
    """One occurrence to N people through the database, Redis, a worker and a Slack stand-in,
    against the fastest plain client loop and one Celery task per recipient."""
    from cadence.bench.fanout import fanout as run

    result = run(
        recipients,
        naive_recipients=naive,
        rate_per_minute=rate,
        concurrency=concurrency,
        pool=pool,
        batch_size=batch_size,
    )
    typer.echo(json.dumps(result, indent=2))


@bench_app.command("faults")
def faults(
    recipients: int = typer.Option(2000, "--recipients", min=10, max=100_000),
    scenario: list[str] = typer.Option(
        [], "--scenario", help="Run only this scenario (repeatable); default: all of them."
    ),
    database_url: str | None = typer.Option(
        None, "--database-url", help="A PostgreSQL URL to run on (a scratch schema is used)."
    ),
    timeout: float = typer.Option(600.0, "--timeout", min=10, help="Seconds per scenario."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Fan-outs under the faults the world produces (Slack 429/5xx/late answers, Redis
    restarted or flushed, the worker killed, two beats, SMTP 451s and drops): who was lost,
    who got it twice, requests per delivery and time to settle. Exits 1 if anyone was."""
    from cadence.bench.faults import NAMES, table
    from cadence.bench.faults import faults as run

    if fmt not in ("table", "json"):
        raise typer.BadParameter("choose table or json", param_hint="--format")
    unknown = sorted(set(scenario) - set(NAMES))
    if unknown:
        raise typer.BadParameter(
            f"unknown {', '.join(unknown)}; choose from {', '.join(NAMES)}",
            param_hint="--scenario",
        )
    result = run(recipients, tuple(scenario) or NAMES, database_url, timeout)
    typer.echo(json.dumps(result, indent=2) if fmt == "json" else table(result))
    if any(r["lost"] or r["twice"] or not r["settled"] for r in result["scenarios"]):
        raise typer.Exit(1)


ACK_KINDS = {"slack": ("slack",), "email": ("email",), "both": ("slack", "email")}


def postgresql_url(value: str) -> str:
    """A PostgreSQL URL the bench can reach, or a clear refusal (exit code 2)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    hint = "--database-url"
    try:
        backend = make_url(value).get_backend_name()
    except ArgumentError:
        raise typer.BadParameter(
            f"{value!r} is not a database URL; use postgresql+psycopg://USER@HOST:PORT/DB",
            param_hint=hint,
        ) from None
    if backend != "postgresql":
        raise typer.BadParameter(
            f"the bench runs on SQLite by itself; give a PostgreSQL URL here, not {backend}",
            param_hint=hint,
        )
    from cadence.store.db import make_engine

    engine = make_engine(value)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise typer.BadParameter(f"cannot connect: {reason}", param_hint=hint) from None
    finally:
        engine.dispose()
    return value


@bench_app.command("acks")
def acks(
    clicks: int = typer.Option(2000, "--clicks", min=1, max=1_000_000),
    concurrency: int = typer.Option(32, "--concurrency", min=1, max=1024, help="In flight."),
    database_url: str | None = typer.Option(
        None, "--database-url", help="A PostgreSQL URL to run on (a scratch schema is used)."
    ),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="Web processes serving the clicks."
    ),
    kind: str = typer.Option("slack", "--kind", help="slack, email or both."),
) -> None:
    """N signed Slack "Got it" clicks (or email-link POSTs) against the web app in processes
    of its own: answers per second, latency, a check that every one was recorded exactly
    once, and the same server's ceiling (the same requests checked, nothing recorded)."""
    from cadence.bench.acks import acks as run

    if kind not in ACK_KINDS:
        raise typer.BadParameter("choose slack, email or both", param_hint="--kind")
    if database_url is not None:
        database_url = postgresql_url(database_url)
    result = run(
        clicks,
        concurrency=concurrency,
        database_url=database_url,
        workers=workers,
        kinds=ACK_KINDS[kind],
    )
    typer.echo(json.dumps(result, indent=2))


@bench_app.command("dashboard")
def dashboard(
    deliveries: int = typer.Option(1_000_000, "--deliveries", min=1000, max=20_000_000),
    database_url: str | None = typer.Option(
        None, "--database-url", help="A PostgreSQL URL to run on (a scratch schema is used)."
    ),
    runs: int = typer.Option(7, "--runs", min=1, help="Requests per page."),
) -> None:
    """How long the dashboard's overview and a message's page take over a large history
    (SQLite in a scratch file by default)."""
    from cadence.bench.dashboard import dashboard as run

    typer.echo(json.dumps(run(deliveries, database_url, runs), indent=2))


@bench_app.command("templates")
def templates(
    recipients: int = typer.Option(10_000, "--recipients", min=1, max=1_000_000),
    runs: int = typer.Option(5, "--runs", min=1, max=100, help="Timings per figure (median)."),
) -> None:
    """Per-recipient rendering of an ordinary body, and how fast a 30,000-step loop is
    refused, against rendering that loop in a plain Jinja2 sandbox."""
    from cadence.bench.templates import templates as run

    typer.echo(json.dumps(run(recipients, runs), indent=2))


@bench_app.command("rules")
def rules(
    runs: int = typer.Option(20, "--runs", min=1, max=10_000, help="Checks per reported rule."),
    corpus: int = typer.Option(500, "--corpus", min=20, max=100_000, help="Rules in the corpus."),
    baseline_timeout: float = typer.Option(
        5.0, "--baseline-timeout", min=0.5, max=600, help="Seconds dateutil gets per rule."
    ),
) -> None:
    """How fast RRULEs are checked and refused: the rules users reported and a corpus of
    good and bad ones, against dateutil's own search (stopped after --baseline-timeout)."""
    from cadence.bench.rules import rules as run

    typer.echo(json.dumps(run(runs, corpus, baseline_timeout), indent=2))


@bench_app.command("metrics")
def metrics(
    deliveries: int = typer.Option(1_000_000, "--deliveries", min=1000, max=20_000_000),
    runs: int = typer.Option(5, "--runs", min=1, max=100),
) -> None:
    """One /metrics scrape over a large SQLite history (median ms), against the aggregate
    queries over every delivery and answer that scrapes used to run."""
    from cadence.bench.metrics import metrics as run

    typer.echo(json.dumps(run(deliveries, runs), indent=2))

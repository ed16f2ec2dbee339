"""`cadence bench metrics`: how long one /metrics scrape takes over a large history on
SQLite, against the aggregate queries over every delivery and answer it used to run
(measured in the same run, on the same database)."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.bench.dashboard import generate
from cadence.config import Settings
from cadence.figures import summaries
from cadence.runtime import Runtime
from cadence.store.db import session_scope, upgrade
from cadence.store.models import Acknowledgement, Delivery
from cadence.web.deps import WebDeps
from cadence.web.health import metrics_registry


def aggregate_figures(session: Session) -> dict[str, Any]:
    """The figures as the old scrape read them: GROUP BY over deliveries and answers."""
    deliveries = {
        (status, channel): count
        for status, channel, count in session.execute(
            select(Delivery.status, Delivery.channel, func.count()).group_by(
                Delivery.status, Delivery.channel
            )
        )
    }
    answers = dict(
        session.execute(
            select(Acknowledgement.kind, func.count())
            .where(Acknowledgement.counted.is_(True))
            .group_by(Acknowledgement.kind)
        ).all()
    )
    repeats = session.scalar(
        select(func.count()).select_from(Acknowledgement).where(Acknowledgement.counted.is_(False))
    )
    return {"deliveries": deliveries, "answers": answers, "repeats": repeats}


def _timed(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


def metrics(deliveries: int, runs: int = 5) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cadence-bench-") as tmp:
        root = Path(tmp)
        settings = Settings(database_url=f"sqlite:///{root / 'bench.db'}", state_dir=root / "state")
        rt = Runtime(settings)
        try:
            upgrade(rt.engine)
            now = datetime.now(UTC).replace(microsecond=0)
            shape = generate(rt, deliveries, now)
            with session_scope(rt.sessions) as session:
                summaries.rebuild(session)
            deps = WebDeps(
                settings=settings,
                sessions=rt.sessions,
                redis=None,  # type: ignore[arg-type]  # /metrics never uses Redis
                send_task=lambda name, args: None,
                clock=lambda: now,
            )
            registry = metrics_registry(deps)

            def baseline() -> None:
                with rt.sessions() as session:
                    aggregate_figures(session)

            return {
                **shape,
                "runs": runs,
                "scrape_ms": _timed(lambda: generate_latest(registry), runs),
                "aggregate_queries_ms": _timed(baseline, runs),
            }
        finally:
            rt.engine.dispose()

"""`/health` for load balancers and `/metrics` for Prometheus.

Figures are read from the database at scrape time rather than counted in process memory:
the database is the source of truth, and web, worker and beat processes come and go, so
in-process counters would reset and disagree between replicas.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cadence.messages.attention import needing_attention
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    DeliveryStatus,
    FigureChange,
    Occurrence,
    OccurrenceStatus,
)
from cadence.web.deps import WebDeps

log = logging.getLogger("cadence.web.health")


def database_ok(sessions: sessionmaker[Session]) -> bool:
    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.warning("health: database unreachable: %s", exc)
        return False
    return True


def redis_ok(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError) as exc:
        log.warning("health: Redis unreachable: %s", exc)
        return False


def _seconds_since(now: datetime, then: datetime | None) -> float:
    return 0.0 if then is None else max(0.0, (now - then).total_seconds())


class _Families:
    """The metric families, built afresh for each scrape."""

    def __init__(self) -> None:
        self.deliveries = GaugeMetricFamily(
            "cadence_deliveries", "Deliveries by status and channel.", labels=["status", "channel"]
        )
        self.acks = CounterMetricFamily(
            "cadence_acknowledgements",
            "Answers that count (the first per person and occurrence), by kind.",
            labels=["kind"],
        )
        self.repeats = CounterMetricFamily(
            "cadence_acknowledgement_repeats",
            "Answers recorded as repeats of an earlier one (double clicks, second links).",
        )
        self.lag = GaugeMetricFamily(
            "cadence_dispatcher_lag_seconds",
            "How long the oldest due occurrence has waited to be dispatched (0 if none).",
        )
        self.oldest_queued = GaugeMetricFamily(
            "cadence_oldest_queued_delivery_seconds",
            "How long the oldest queued delivery has waited for a worker (0 if none).",
        )

        self.attention = GaugeMetricFamily(
            "cadence_messages_needing_attention",
            "Messages that could not be planned, dispatched or rendered (see message show).",
        )
        self.unsummarised = GaugeMetricFamily(
            "cadence_figure_changes_pending",
            "Changes not yet in the figure summaries (the beat brings them in every tick).",
        )

    def all(self) -> list[Metric]:
        return [
            self.deliveries,
            self.acks,
            self.repeats,
            self.lag,
            self.oldest_queued,
            self.attention,
            self.unsummarised,
        ]


class DatabaseCollector(Collector):
    """Reads delivery, acknowledgement and dispatcher figures when Prometheus scrapes."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self.sessions = sessions
        self.clock = clock

    def describe(self) -> Iterator[Metric]:
        # Names only, so registering the collector does not touch the database.
        yield from _Families().all()

    def collect(self) -> Iterator[Metric]:
        families = _Families()
        deliveries, acks, repeats = families.deliveries, families.acks, families.repeats
        now = self.clock()
        with self.sessions() as session:
            for status, channel, count in session.execute(
                select(Delivery.status, Delivery.channel, func.count())
                .group_by(Delivery.status, Delivery.channel)
                .order_by(Delivery.status, Delivery.channel)
            ):
                deliveries.add_metric([status, channel], count)
            counted: dict[str, int] = {"ack": 0, "question": 0}
            for kind, count in session.execute(
                select(Acknowledgement.kind, func.count())
                .where(Acknowledgement.counted.is_(True))
                .group_by(Acknowledgement.kind)
            ):
                counted[kind] = count
            for kind, count in sorted(counted.items()):
                acks.add_metric([kind], count)
            repeats.add_metric(
                [],
                session.scalar(
                    select(func.count())
                    .select_from(Acknowledgement)
                    .where(Acknowledgement.counted.is_(False))
                )
                or 0,
            )
            oldest_due = session.scalar(
                select(func.min(Occurrence.due_at))
                .where(Occurrence.status == OccurrenceStatus.PLANNED.value)
                .where(Occurrence.due_at <= now)
            )
            families.lag.add_metric([], _seconds_since(now, oldest_due))
            oldest_queued_at = session.scalar(
                select(func.min(Delivery.queued_at)).where(
                    Delivery.status == DeliveryStatus.QUEUED.value
                )
            )
            families.oldest_queued.add_metric([], _seconds_since(now, oldest_queued_at))
            families.attention.add_metric([], needing_attention(session))
            families.unsummarised.add_metric(
                [], session.scalar(select(func.count()).select_from(FigureChange)) or 0
            )
        yield from families.all()


def metrics_registry(deps: WebDeps) -> CollectorRegistry:
    """A registry of this app's own, so two apps in one process (tests) never collide."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(deps.sessions, deps.clock))
    return registry


def router(deps: WebDeps) -> APIRouter:
    routes = APIRouter(tags=["operations"])
    registry = metrics_registry(deps)

    @routes.get("/health")
    def health() -> JSONResponse:
        """200 when the database and Redis both answer; 503 (degraded) otherwise."""
        database = database_ok(deps.sessions)
        broker = redis_ok(deps.redis)
        healthy = database and broker
        return JSONResponse(
            {
                "status": "ok" if healthy else "degraded",
                "database": "ok" if database else "unreachable",
                "redis": "ok" if broker else "unreachable",
            },
            status_code=200 if healthy else 503,
            headers={"Cache-Control": "no-store"},
        )

    @routes.get("/metrics")
    def metrics() -> Response:
        """Prometheus text format; 503 when the figures cannot be read."""
        try:
            body = generate_latest(registry)
        except SQLAlchemyError as exc:
            log.warning("metrics: database unreachable: %s", exc)
            return Response("database unreachable\n", status_code=503, media_type="text/plain")
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return routes

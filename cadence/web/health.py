"""`/health` for load balancers and `/metrics` for Prometheus.

Figures are read from the database at scrape time rather than counted in process memory:
the database is the source of truth, and web, worker and beat processes come and go, so
in-process counters would reset and disagree between replicas. A scrape must stay cheap
however many deliveries there are: sent deliveries and answers are read from the figure
summaries (`cadence.figures.summaries`, one row per occurrence and channel), and the
deliveries not sent yet, or never, through the status index, which holds only those.

`/metrics` is for the monitoring system: with `CADENCE_METRICS_TOKEN` set it needs
`Authorization: Bearer <token>`; in production without one it answers loopback clients only.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterator
from datetime import datetime

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cadence.config import reveal
from cadence.figures.summaries import ALL_CHANNELS, EVERYONE
from cadence.messages.attention import needing_attention
from cadence.store.models import (
    Delivery,
    DeliveryStatus,
    FigureChange,
    Occurrence,
    OccurrenceFigures,
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
            "People who answered a message send, once per occurrence: kind question if "
            "they asked one, ack otherwise.",
            labels=["kind"],
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
            self.lag,
            self.oldest_queued,
            self.attention,
            self.unsummarised,
        ]


# Statuses a delivery leaves once sent; their counts come from the figure summaries.
_UNSENT = tuple(s.value for s in DeliveryStatus if s is not DeliveryStatus.SENT)
_EVERYONE = (OccurrenceFigures.team_id == EVERYONE, OccurrenceFigures.manager_id == EVERYONE)


def delivery_counts(session: Session) -> dict[tuple[str, str], int]:
    """Deliveries by (status, channel): sent ones of message sends from the summaries'
    per-channel rows, the others counted one status at a time through the status index."""
    counts: dict[tuple[str, str], int] = {}
    for channel, sent in session.execute(
        select(OccurrenceFigures.channel, func.sum(OccurrenceFigures.sent))
        .where(*_EVERYONE, OccurrenceFigures.channel != ALL_CHANNELS)
        .group_by(OccurrenceFigures.channel)
    ):
        if sent:
            counts[(DeliveryStatus.SENT.value, channel)] = int(sent)
    for status in _UNSENT:
        for channel, count in session.execute(
            select(Delivery.channel, func.count())
            .where(Delivery.status == status)
            .group_by(Delivery.channel)
        ):
            counts[(status, channel)] = count
    return counts


def answer_counts(session: Session) -> dict[str, int]:
    """Answered person-occurrences of message sends, from the summaries' everyone rows."""
    acknowledged, asked = session.execute(
        select(
            func.coalesce(func.sum(OccurrenceFigures.acknowledged), 0),
            func.coalesce(func.sum(OccurrenceFigures.asked), 0),
        ).where(*_EVERYONE, OccurrenceFigures.channel == ALL_CHANNELS)
    ).one()
    return {"ack": int(acknowledged) - int(asked), "question": int(asked)}


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
        now = self.clock()
        with self.sessions() as session:
            by_status = delivery_counts(session)
            for (status, channel), count in sorted(by_status.items()):
                families.deliveries.add_metric([status, channel], count)
            for kind, count in sorted(answer_counts(session).items()):
                families.acks.add_metric([kind], count)
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


def metrics_refusal(request: Request, token: str | None, production: bool) -> Response | None:
    """Why this request may not read /metrics (as the answer to give), or None."""
    if token is not None:
        sent = request.headers.get("authorization", "")
        scheme, _, given = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return Response(
                "this endpoint needs Authorization: Bearer <CADENCE_METRICS_TOKEN>\n",
                status_code=401,
                media_type="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="cadence-metrics"'},
            )
        return None
    if production and not _from_loopback(request):
        return Response(
            "/metrics answers only loopback clients in production unless "
            "CADENCE_METRICS_TOKEN is set\n",
            status_code=403,
            media_type="text/plain",
        )
    return None


def _from_loopback(request: Request) -> bool:
    # A request a proxy passed on comes from loopback too, but not from this machine.
    if request.headers.get("x-forwarded-for") or request.client is None:
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


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

    token = reveal(deps.settings.metrics_token)
    production = deps.settings.env == "production"

    @routes.get("/metrics")
    def metrics(request: Request) -> Response:
        """Prometheus text format; 401 without the token when one is set, 403 in production
        from anywhere but loopback when none is; 503 when the figures cannot be read."""
        refused = metrics_refusal(request, token, production)
        if refused is not None:
            return refused
        try:
            body = generate_latest(registry)
        except SQLAlchemyError as exc:
            log.warning("metrics: database unreachable: %s", exc)
            return Response("database unreachable\n", status_code=503, media_type="text/plain")
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return routes

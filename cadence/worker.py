"""The Celery app and its tasks. Tasks are thin: they call `dispatch` and `sending`.

Nothing is parked in the broker for later: the database holds the plan and the beat's
tick releases what is due, because Redis redelivers unacknowledged messages after the
visibility timeout and a far-future ETA task would run twice.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from cadence.answers.followups import (
    SLACK_UPDATE_TASK,
    TryLater,
    slack_client,
    update_slack_message,
)
from cadence.answers.questions import FORWARD_QUESTION_TASK, forward_question
from cadence.clock import utcnow
from cadence.config import Settings
from cadence.delivery.broker import celery_url
from cadence.delivery.channels.base import Channel
from cadence.delivery.channels.registry import make_channel
from cadence.delivery.dispatch import DispatchPolicy, Enqueue, tick
from cadence.delivery.sending import SendPolicy, send_batch
from cadence.launches.cascade import context_from
from cadence.messages.decisions import DECISION_TASK, tell_author
from cadence.runtime import Runtime
from cadence.store.db import session_scope

log = logging.getLogger("cadence.worker")

TICK_TASK = "cadence.tick"
SEND_TASK = "cadence.send"
# Follow-ups of an answer wait for Slack or the mail server this many times, then give up.
FOLLOW_UP_RETRIES = 10
# `cadence worker` names itself this, plus the host name, so a health check on the same
# host can ping exactly the worker beside it.
NODENAME_PREFIX = "cadence@"


def policy_from(settings: Settings) -> DispatchPolicy:
    launch = context_from(settings)  # previews and the dashboard plan launches with the same
    return DispatchPolicy(
        org_zone=settings.timezone,
        horizon=timedelta(hours=settings.plan_horizon_hours),
        batch_size=settings.batch_size,
        stuck_after=timedelta(seconds=settings.stuck_after_seconds),
        max_lateness=timedelta(hours=settings.max_lateness_hours),
        remind_after_hours=settings.remind_after_hours,
        max_reminders=settings.max_reminders,
        escalate=settings.escalate,
        send_rate_per_minute=launch.rate_per_minute,
        working_hours=launch.hours,
    )


def send_policy_from(settings: Settings) -> SendPolicy:
    return SendPolicy(
        org_zone=settings.timezone,
        secret_key=settings.secret_key.get_secret_value(),
        base_url=settings.base_url,
        max_attempts=settings.max_attempts,
    )


class _ProcessState:
    """Database engine and channels for one worker process, made after any fork."""

    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self._runtime: Runtime | None = None
        self._channels: dict[str, Channel] = {}

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = Runtime(self.settings)
        return self._runtime

    def channel(self, name: str) -> Channel:
        if name not in self._channels:
            self._channels[name] = make_channel(name, self.settings, self.redis_url)
        return self._channels[name]

    def reset(self) -> None:
        # A forked child must not reuse its parent's database connections.
        if self._runtime is not None:
            self._runtime.engine.dispose(close=False)
        self._runtime = None
        self._channels = {}


def make_celery(settings: Settings, redis_url: str) -> Celery:
    """A Celery app wired to `settings`; the same factory serves worker, beat and tests."""
    url = celery_url(redis_url)
    app = Celery("cadence", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_expires=3600,
        task_ignore_result=True,
        timezone="UTC",
        enable_utc=True,
        # Send tasks are idempotent (they only take `queued` rows), so a task lost with its
        # worker may safely run again.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        worker_hijack_root_logger=False,
        # A restart of Redis is a pause: the worker reconnects for as long as it takes.
        broker_connection_retry=True,
        broker_connection_max_retries=None,
    )
    state = _ProcessState(settings, redis_url)
    policy = policy_from(settings)
    send_policy = send_policy_from(settings)

    @worker_process_init.connect(weak=False)
    def _after_fork(**_: Any) -> None:
        state.reset()

    enqueue = enqueue_with(app)

    @app.task(name=TICK_TASK, ignore_result=False, shared=False)
    def tick_task() -> dict[str, Any]:
        report = tick(state.runtime.sessions, policy, enqueue, utcnow())
        if report.claimed or report.requeued or report.notes:
            log.info("tick: %s", report)
        return asdict(report)

    @app.task(name=SEND_TASK, shared=False)
    def send_task(delivery_ids: list[int]) -> dict[str, int]:
        report = send_batch(
            state.runtime.sessions, state.channel, delivery_ids, send_policy, utcnow()
        )
        if report.retrying or report.failed:
            log.info("send: %s", report)
        return asdict(report)

    @app.task(name=SLACK_UPDATE_TASK, bind=True, shared=False, max_retries=FOLLOW_UP_RETRIES)
    def slack_update_task(self: Any, delivery_id: int) -> dict[str, Any]:
        client = slack_client(settings)
        if client is None:
            log.warning("slack_update %d: Slack is not configured", delivery_id)
            return {"delivery_id": delivery_id, "status": "skipped"}
        try:
            with session_scope(state.runtime.sessions) as session:
                result = update_slack_message(
                    session, client, delivery_id, org_zone=settings.timezone
                )
        except TryLater as exc:
            raise self.retry(countdown=exc.delay, exc=exc) from exc
        return asdict(result)

    @app.task(name=FORWARD_QUESTION_TASK, shared=False)
    def forward_question_task(acknowledgement_id: int) -> dict[str, Any]:
        # Only writes the outbox rows; the tick sends them like every other delivery.
        with session_scope(state.runtime.sessions) as session:
            result = forward_question(session, acknowledgement_id, utcnow())
        log.info("question %d forwarded: %s", acknowledgement_id, result)
        return asdict(result)

    @app.task(name=DECISION_TASK, shared=False)
    def tell_decision_task(message_id: int) -> dict[str, Any]:
        # Only writes the outbox row; the tick sends it like every other delivery.
        with session_scope(state.runtime.sessions) as session:
            result = tell_author(session, message_id, utcnow())
        log.info("decision on message %d told: %s", message_id, result)
        return asdict(result)

    return app


def request_tick(app: Celery, settings: Settings) -> None:
    """What the beat does each period. A tick that waited longer than two periods is stale:
    the next one does its work."""
    app.send_task(TICK_TASK, expires=settings.tick_seconds * 2)


def enqueue_with(app: Celery) -> Enqueue:
    """How the dispatcher hands a batch of delivery ids to the workers."""

    def enqueue(delivery_ids: list[int]) -> None:
        app.send_task(SEND_TASK, args=[delivery_ids])

    return enqueue


def ping_worker(app: Celery, nodename: str, timeout: float) -> bool:
    """Whether the worker `nodename` answers a remote-control ping within `timeout` s."""
    replies = app.control.ping(destination=[nodename], timeout=timeout)
    return any(nodename in reply for reply in replies or [])

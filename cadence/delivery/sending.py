"""Sending a batch of deliveries through their channels and recording what happened.

Deliveries are taken with a conditional UPDATE (`queued` -> `sending`), so a task that runs
twice, or a stale task racing its replacement, sends each delivery at most once. Answers
are written back in bulk, and only onto rows still `sending` (still ours).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, select, update
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, joinedload, selectinload, sessionmaker

from cadence.answers.questions import QUESTION_CHANNELS, QUESTION_PURPOSE, question_content
from cadence.answers.tokens import ack_url, make_ack_token
from cadence.delivery.channels.base import Channel, Outcome, OutcomeKind, Outgoing, Recipient
from cadence.errors import CadenceError
from cadence.launches.briefings import is_briefing
from cadence.launches.content import launch_content
from cadence.messages.attention import describe, flag
from cadence.messages.channel_choice import fallback_channel
from cadence.messages.decisions import DECISION_CHANNELS, DECISION_PURPOSE, decision_content
from cadence.messages.markdown import md_escape
from cadence.messages.personalise import context_for_person, personalise
from cadence.rendering import render
from cadence.store.bulk import insert_ignoring_duplicates
from cadence.store.db import session_scope
from cadence.store.models import Delivery, DeliveryStatus, Message, Occurrence, Person

log = logging.getLogger("cadence.delivery.sending")

ChannelFactory = Callable[[str], Channel]
# Seconds between tries to record a batch's answers while the database is away.
RECORD_RETRY_WAITS = (1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class SendPolicy:
    org_zone: str
    secret_key: str = field(repr=False)
    base_url: str
    max_attempts: int = 8


@dataclass
class SendReport:
    taken: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    fallbacks: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def take(session: Session, delivery_ids: Sequence[int], now: datetime) -> list[int]:
    """Mark the still-queued deliveries among `delivery_ids` as ours; return them."""
    return sorted(
        session.scalars(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids))
            .where(Delivery.status == DeliveryStatus.QUEUED.value)
            .values(
                status=DeliveryStatus.SENDING.value,
                attempts=Delivery.attempts + 1,
                attempted_at=now,
            )
            .returning(Delivery.id)
        ).all()
    )


def recipient_of(person: Person, org_zone: str) -> Recipient:
    return Recipient(
        person_id=person.id,
        email=person.email,
        name=person.name,
        slack_user_id=person.slack_user_id,
        timezone=person.timezone or org_zone,
    )


def prepare(delivery: Delivery, policy: SendPolicy, session: Session) -> Outgoing:
    """Personalise one delivery into what its channel sends."""
    message: Message = delivery.occurrence.message
    wordings = message.wordings()
    person = delivery.person
    purpose = delivery.occurrence.purpose
    title = message.title
    answerable = True
    note: str | None = None
    reply_to: tuple[str, str] | None = None
    if purpose == "escalation":
        people = [
            {"name": md_escape(p["name"]), "email": md_escape(p["email"])}
            for p in (delivery.payload or {}).get("people", [])
        ]
        title = f"Not yet acknowledged: {message.title}"
        body = render("digest/body.md", people=people, title=md_escape(message.title))
        answerable = False
    elif purpose == DECISION_PURPOSE:
        title, body = decision_content(delivery, policy.base_url)
        answerable = False
    elif purpose == QUESTION_PURPOSE:
        title, body, asker = question_content(session, delivery)
        answerable = False
        if asker is not None:
            reply_to = (asker.name, asker.email)
    elif message.kind == "launch":
        context = context_for_person(person, message.title, policy.org_zone)
        staff_body = personalise(message.body, context)
        title, body, note, answerable = launch_content(
            delivery, message, staff_body, person.timezone or policy.org_zone, session
        )
    else:
        if purpose == "reminder":
            title = f"Reminder: {message.title}"
        elif purpose == "reack":
            title = f"Updated: {message.title}"
        context = context_for_person(person, message.title, policy.org_zone)
        body = personalise(wordings[delivery.variant % len(wordings)], context)
    token = make_ack_token(policy.secret_key, delivery.id, person.id)
    return Outgoing(
        delivery_id=delivery.id,
        recipient=recipient_of(person, policy.org_zone),
        title=title,
        body=body,
        ack_url=ack_url(policy.base_url, token) if answerable else "",
        attempt=delivery.attempts,
        maybe_sent=delivery.maybe_sent,
        written_at=delivery.created_at,
        answerable=answerable,
        leader_note=note,
        reply_to=reply_to,
        team_note=message.kind == "launch" and is_briefing(delivery),
    )


def _load(session: Session, ids: Sequence[int]) -> list[Delivery]:
    return list(
        session.scalars(
            select(Delivery)
            .where(Delivery.id.in_(ids))
            .options(
                joinedload(Delivery.person).joinedload(Person.team),
                joinedload(Delivery.person).joinedload(Person.manager),
                joinedload(Delivery.occurrence)
                .joinedload(Occurrence.message)
                .selectinload(Message.variants),
            )
        ).unique()
    )


def send_batch(
    sessions: sessionmaker[Session],
    channels: ChannelFactory,
    delivery_ids: Sequence[int],
    policy: SendPolicy,
    now: datetime,
) -> SendReport:
    report = SendReport()
    started = time.monotonic()
    with session_scope(sessions) as session:
        mine = take(session, delivery_ids, now)
    report.taken = len(mine)
    if not mine:
        return report
    by_channel: dict[str, list[Outgoing]] = defaultdict(list)
    outcomes: list[Outcome] = []
    versions: dict[int, int] = {}
    broken: dict[int, str] = {}
    with session_scope(sessions) as session:
        deliveries = _load(session, mine)
        for delivery in deliveries:
            message = delivery.occurrence.message
            versions[delivery.id] = message.version
            try:
                by_channel[delivery.channel].append(prepare(delivery, policy, session))
            except SQLAlchemyError:
                # The database, not the template: the rows stay `sending` and come back.
                raise
            except Exception as exc:
                # A template that breaks at send time fails its own deliveries and flags its
                # message; the rest of the batch goes out.
                if not isinstance(exc, CadenceError):
                    log.exception(
                        "delivery %d of message %d: cannot render", delivery.id, message.id
                    )
                problem = str(exc) if isinstance(exc, CadenceError) else describe(exc)
                outcomes.append(Outcome.failed(delivery.id, f"cannot personalise: {problem}"))
                broken[message.id] = f"rendering failed: {problem}"
    for channel_name, batch in by_channel.items():
        outcomes += _send_through(channels, channel_name, batch)
    bodies = {o.delivery_id: o.body for batch in by_channel.values() for o in batch}
    # Retry times count from when the answers came, not from when the batch began.
    answered_at = now + timedelta(seconds=time.monotonic() - started)
    written = SendReport()

    def write(session: Session) -> None:
        nonlocal written
        written = SendReport()  # a try that failed counts nothing
        record(session, outcomes, bodies, versions, policy, now, written, answered_at)
        for message_id, problem in broken.items():
            flag(session, message_id, problem, now)

    durably(sessions, write, f"{len(outcomes)} answers")
    written.taken = report.taken
    return written


def durably(sessions: sessionmaker[Session], write: Callable[[Session], None], what: str) -> None:
    """Run `write` in a transaction, waiting out a database that is briefly away (a
    failover, a lock).

    If it stays away, the deliveries stay `sending`; `requeue_stuck` takes them back as
    maybe-sent, so what went out is found in the DM history instead of being sent again.
    """
    for wait in (*RECORD_RETRY_WAITS, None):
        try:
            with session_scope(sessions) as session:
                write(session)
            return
        except (OperationalError, InterfaceError):
            if wait is None:
                raise
            log.warning("could not record %s; trying again in %.0f s", what, wait)
            time.sleep(wait)


def _send_through(channels: ChannelFactory, name: str, batch: list[Outgoing]) -> list[Outcome]:
    try:
        channel = channels(name)
    except CadenceError as exc:
        # A channel that is not set up cannot reach anyone: try their next channel.
        return [Outcome.failed(o.delivery_id, str(exc), unreachable=True) for o in batch]
    try:
        outcomes = channel.send(batch)
    except Exception as exc:
        # Nothing is known of this batch: any of it may have gone out, so the next attempt
        # looks before sending again.
        log.exception("channel %s failed on a batch of %d", name, len(batch))
        reason = f"{name} channel error: {type(exc).__name__}: {exc}"
        return [Outcome.retry(o.delivery_id, 60.0, reason, maybe_sent=True) for o in batch]
    answered = {o.delivery_id for o in outcomes}
    # A channel that forgets a delivery must not leave it in `sending` for ever.
    missing = [o for o in batch if o.delivery_id not in answered]
    return outcomes + [
        Outcome.retry(o.delivery_id, 60.0, f"{name}: no answer", maybe_sent=True) for o in missing
    ]


def record(
    session: Session,
    outcomes: Sequence[Outcome],
    bodies: dict[int, str],
    versions: dict[int, int],
    policy: SendPolicy,
    now: datetime,
    report: SendReport,
    answered_at: datetime | None = None,
) -> None:
    """Write every answer back in a few bulk statements, with fallbacks and learned ids.

    Only rows still `sending` under this batch's take (`attempted_at == now`) are written:
    if the batch outlived `stuck_after` and another worker took them back, its answers win.
    """
    if not outcomes:
        return
    rows = {
        d.id: d
        for d in session.scalars(
            select(Delivery)
            .where(Delivery.id.in_([o.delivery_id for o in outcomes]))
            .options(selectinload(Delivery.occurrence).selectinload(Occurrence.message))
        )
    }
    sent: list[dict[str, Any]] = []
    retry: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    learned: list[dict[str, Any]] = []
    unreachable: list[Delivery] = []
    for outcome in outcomes:
        delivery = rows[outcome.delivery_id]
        kind = outcome.kind
        reason = outcome.reason
        # Waiting for a limit is not an attempt: the take that counted it is given back.
        attempts = delivery.attempts - 1 if outcome.deferred else delivery.attempts
        if (
            kind is OutcomeKind.RETRY
            and not outcome.deferred
            and delivery.attempts >= policy.max_attempts
        ):
            kind = OutcomeKind.FAILED
            reason = f"gave up after {delivery.attempts} attempts: {reason}"
        if kind is OutcomeKind.SENT:
            sent.append(
                {
                    "b_id": delivery.id,
                    "b_provider_id": outcome.provider_id,
                    "b_provider_channel": outcome.provider_channel,
                    "b_rendered": outcome.rendered or bodies.get(delivery.id),
                    "b_version": versions.get(delivery.id),
                }
            )
            report.sent += 1
            if outcome.slack_user_id:
                learned.append({"b_person": delivery.person_id, "b_uid": outcome.slack_user_id})
        elif kind is OutcomeKind.RETRY:
            delay = timedelta(seconds=outcome.retry_after or 0)
            retry.append(
                {
                    "b_id": delivery.id,
                    "b_retry_at": (answered_at or now) + delay,
                    "b_error": reason,
                    "b_attempts": max(0, attempts),
                    # Once it may have gone out, it stays "may have" until it is found or sent.
                    "b_maybe": delivery.maybe_sent or outcome.maybe_sent,
                }
            )
            report.retrying += 1
        else:
            failed.append({"b_id": delivery.id, "b_error": reason})
            report.failed += 1
            if outcome.unreachable:
                unreachable.append(delivery)
        if reason:
            key = reason.split(":")[0]
            report.reasons[key] = report.reasons.get(key, 0) + 1
    ours = and_(
        Delivery.id == bindparam("b_id"),
        Delivery.status == DeliveryStatus.SENDING.value,
        Delivery.attempted_at == now,
    )
    table = cast(Table, Delivery.__table__)
    if sent:
        session.execute(
            update(table)
            .where(ours)
            .values(
                status=DeliveryStatus.SENT.value,
                sent_at=now,
                provider_id=bindparam("b_provider_id"),
                provider_channel=bindparam("b_provider_channel"),
                rendered=bindparam("b_rendered"),
                content_version=bindparam("b_version"),
                last_error=None,
                maybe_sent=False,
            ),
            sent,
        )
    if retry:
        session.execute(
            update(table)
            .where(ours)
            .values(
                status=DeliveryStatus.PENDING.value,
                retry_at=bindparam("b_retry_at"),
                last_error=bindparam("b_error"),
                attempts=bindparam("b_attempts"),
                maybe_sent=bindparam("b_maybe"),
            ),
            retry,
        )
    if failed:
        session.execute(
            update(table)
            .where(ours)
            .values(status=DeliveryStatus.FAILED.value, last_error=bindparam("b_error")),
            failed,
        )
    if learned:
        people = cast(Table, Person.__table__)
        session.execute(
            update(people)
            .where(people.c.id == bindparam("b_person"), people.c.slack_user_id.is_(None))
            .values(slack_user_id=bindparam("b_uid")),
            learned,
        )
    report.fallbacks += _fall_back(session, unreachable, now)


def _fall_back(session: Session, deliveries: Sequence[Delivery], now: datetime) -> int:
    """Give people a channel could not reach a delivery on the message's next channel."""
    rows = []
    for delivery in deliveries:
        message = delivery.occurrence.message
        if message.channel_mode == "all":
            continue  # they are being tried on every channel already
        tried = session.scalars(
            select(Delivery.channel).where(
                Delivery.occurrence_id == delivery.occurrence_id,
                Delivery.person_id == delivery.person_id,
            )
        ).all()
        allowed = {QUESTION_PURPOSE: QUESTION_CHANNELS, DECISION_PURPOSE: DECISION_CHANNELS}.get(
            delivery.occurrence.purpose
        )
        channel = fallback_channel(allowed or message.channels, tried)
        if channel is None:
            continue
        rows.append(
            {
                "occurrence_id": delivery.occurrence_id,
                "person_id": delivery.person_id,
                "channel": channel,
                "variant": delivery.variant,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "created_at": now,
                "fallback_from_id": delivery.id,
                # What the delivery is about (a digest's people, a forwarded question).
                "payload": delivery.payload,
            }
        )
    return insert_ignoring_duplicates(session, Delivery, rows)

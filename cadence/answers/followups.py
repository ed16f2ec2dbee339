"""What follows an answer given in Slack, done by a worker after Slack has had its quick 200.

- The original message is rewritten (`chat.update`) to the same content with its buttons
  replaced by what was answered, so the recipient sees that the click counted and is not
  tempted to click again.
- A question goes to the person's team leader through the outbox (`cadence.answers.questions`).

Slack answers that mean "not now" (429, 5xx, a dropped connection) raise `TryLater`, so the
task is retried later instead of sleeping in the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.answers.acks import AnswerKind, load_delivery, root_occurrence
from cadence.config import Settings, reveal
from cadence.delivery.channels.base import Outgoing, backoff
from cadence.delivery.formatting.slack import slack_message
from cadence.delivery.sending import recipient_of
from cadence.errors import CadenceError
from cadence.messages.markdown import slack_escape
from cadence.messages.personalise import context_for_person, personalise
from cadence.store.models import Acknowledgement, Delivery, Message, Person

log = logging.getLogger("cadence.answers.followups")

# The worker's task names, shared with the web app that queues them.
SLACK_UPDATE_TASK = "cadence.slack_update"

ACKNOWLEDGED = "\u2705 Acknowledged"
QUESTION_SENT = "\u2753 Question sent to"
QUESTION_KEPT = "\u2753 Question sent"
DEFAULT_RETRY = 30.0
TEMPORARY = {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}


class TryLater(CadenceError):
    """Slack or the mail server asked to be tried again later (`delay` seconds)."""

    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.delay = delay


def slack_client(settings: Settings) -> WebClient | None:
    """The sync client a worker uses for one-off calls; None when Slack is not configured."""
    token = reveal(settings.slack_bot_token)
    if not token:
        return None
    return WebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=int(settings.slack_timeout_seconds),
    )


@dataclass(frozen=True)
class Updated:
    """What became of a message update: `updated`, or `skipped`/`failed` with a reason."""

    delivery_id: int
    status: str
    reason: str | None = None
    channel: str | None = None
    ts: str | None = None


def _slack_date(moment: datetime, zone: str) -> str:
    """A date Slack shows in the reader's own zone, with a plain fallback in the person's."""
    local = moment.astimezone(ZoneInfo(zone))
    fallback = local.strftime("%d %b %Y %H:%M %Z").lstrip("0")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def answer_lines(answers: list[Acknowledgement], manager: Person | None, zone: str) -> list[str]:
    """The context lines that replace the buttons: the first "Got it" and the last question."""
    lines: list[str] = []
    first_ack = next((a for a in answers if a.kind == AnswerKind.ACK.value), None)
    if first_ack is not None:
        lines.append(f"{ACKNOWLEDGED} {_slack_date(first_ack.created_at, zone)}")
    questions = [a for a in answers if a.kind == AnswerKind.QUESTION.value]
    if questions:
        when = _slack_date(questions[-1].created_at, zone)
        if manager is not None and manager.active:
            lines.append(f"{QUESTION_SENT} {slack_escape(manager.name)} {when}")
        else:
            lines.append(f"{QUESTION_KEPT} {when}")
    return lines


def answered_blocks(blocks: list[dict[str, Any]], lines: list[str]) -> list[dict[str, Any]]:
    """The message's blocks with every actions block replaced by one context block."""
    kept = [b for b in blocks if b.get("type") != "actions"]
    context = {
        "type": "context",
        "block_id": "cadence_answered",
        "elements": [{"type": "mrkdwn", "text": line} for line in lines],
    }
    return [*kept, context]


def _answers(session: Session, delivery: Delivery) -> list[Acknowledgement]:
    root = root_occurrence(session, delivery.occurrence)
    return list(
        session.scalars(
            select(Acknowledgement)
            .where(
                Acknowledgement.occurrence_id == root.id,
                Acknowledgement.person_id == delivery.person_id,
            )
            .order_by(Acknowledgement.id)
        )
    )


def _as_sent(delivery: Delivery, org_zone: str) -> Outgoing:
    """The delivery as it was sent: the stored personalised body when there is one."""
    message: Message = delivery.occurrence.message
    person = delivery.person
    body = delivery.rendered
    if body is None:
        wordings = message.wordings()
        context = context_for_person(person, message.title, org_zone)
        body = personalise(wordings[delivery.variant % len(wordings)], context)
    return Outgoing(
        delivery_id=delivery.id,
        recipient=recipient_of(person, org_zone),
        title=message.title,
        body=body,
        ack_url="",
    )


def update_slack_message(
    session: Session, client: WebClient, delivery_id: int, *, org_zone: str = "UTC"
) -> Updated:
    """Rewrite a delivery's Slack message to show its answers instead of its buttons.

    Safe to run more than once: the result depends only on what is recorded.
    """
    delivery = load_delivery(session, delivery_id)
    if delivery.channel != "slack":
        return Updated(delivery_id, "skipped", f"a {delivery.channel} delivery")
    channel, ts = delivery.provider_channel, delivery.provider_id
    if not channel or not ts:
        return Updated(delivery_id, "skipped", "not sent to Slack (no channel and ts)")
    answers = _answers(session, delivery)
    if not answers:
        return Updated(delivery_id, "skipped", "nothing answered", channel, ts)
    zone = delivery.person.timezone or org_zone
    lines = answer_lines(answers, delivery.person.manager, zone)
    text, blocks = slack_message(_as_sent(delivery, org_zone))
    try:
        client.chat_update(channel=channel, ts=ts, text=text, blocks=answered_blocks(blocks, lines))
    except SlackApiError as exc:
        error = _slack_error(exc, f"chat.update for delivery {delivery_id}")
        log.warning("cannot update the Slack message of delivery %d: %s", delivery_id, error)
        return Updated(delivery_id, "failed", f"Slack: {error}", channel, ts)
    except OSError as exc:
        raise TryLater(f"no answer from Slack: {type(exc).__name__} {exc}", DEFAULT_RETRY) from exc
    return Updated(delivery_id, "updated", None, channel, ts)


def _retry_after(headers: Mapping[str, Any] | None) -> float:
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            try:
                return max(1.0, float(value if not isinstance(value, list) else value[0]))
            except (TypeError, ValueError):
                break
    return DEFAULT_RETRY


def _slack_error(exc: SlackApiError, what: str) -> str:
    """The error Slack named; raises TryLater for answers that mean "not now"."""
    response = exc.response
    status = response.status_code
    data = response.data if isinstance(response.data, dict) else {}
    error = str(data.get("error") or f"HTTP {status}")
    if status == 429 or error == "ratelimited":
        raise TryLater(f"{what}: rate limited", _retry_after(response.headers)) from exc
    if status >= 500 or error in TEMPORARY:
        raise TryLater(f"{what}: Slack answered {status} {error}", backoff(1, base=5)) from exc
    return error

"""What follows an answer given in Slack, done by a worker after Slack has had its quick 200.

- The original message is rewritten (`chat.update`) to the same content with its buttons
  replaced by what was answered, so the recipient sees that the click counted and is not
  tempted to click again.
- A question goes to the person's team leader: a Slack DM when the leader has a Slack id and
  Slack is configured, otherwise an email. Someone with no leader has nobody to ask; the
  question stays in `cadence acks` for the comms team.

Slack and SMTP answers that mean "not now" (429, 5xx, a dropped connection, SMTP 4xx) raise
`TryLater`, so the task is retried later instead of sleeping in the worker.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.answers.acks import AnswerKind, load_delivery, root_occurrence
from cadence.config import Settings
from cadence.delivery.channels.base import Outgoing, backoff
from cadence.delivery.channels.email import MAILER, EmailChannel, SmtpConfig, parse_smtp_url
from cadence.delivery.channels.slack import UNREACHABLE
from cadence.delivery.formatting.slack import slack_message
from cadence.delivery.sending import recipient_of
from cadence.errors import CadenceError
from cadence.messages.markdown import slack_escape
from cadence.messages.personalise import context_for_person, personalise
from cadence.store.models import Acknowledgement, Delivery, Message, Occurrence, Person

log = logging.getLogger("cadence.answers.followups")

# The worker's task names, shared with the web app that queues them.
SLACK_UPDATE_TASK = "cadence.slack_update"
FORWARD_QUESTION_TASK = "cadence.forward_question"

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
    if not settings.slack_bot_token:
        return None
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=int(settings.slack_timeout_seconds),
    )


def smtp_config(settings: Settings) -> SmtpConfig | None:
    return parse_smtp_url(settings.smtp_url) if settings.smtp_url else None


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


@dataclass(frozen=True)
class Forwarded:
    """Where a question went: `via` is slack, email or nobody; `to` the leader's address."""

    acknowledgement_id: int
    via: str
    to: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class _Question:
    ack: Acknowledgement
    person: Person
    manager: Person | None
    title: str


def _load_question(session: Session, acknowledgement_id: int) -> _Question | Forwarded:
    ack = session.get(Acknowledgement, acknowledgement_id)
    if ack is None:
        return Forwarded(acknowledgement_id, "nobody", reason="no such acknowledgement")
    if ack.kind != AnswerKind.QUESTION.value or not ack.question:
        return Forwarded(acknowledgement_id, "nobody", reason="not a question")
    earlier = session.scalar(
        select(Acknowledgement.id)
        .where(
            Acknowledgement.id < ack.id,
            Acknowledgement.occurrence_id == ack.occurrence_id,
            Acknowledgement.person_id == ack.person_id,
            Acknowledgement.kind == AnswerKind.QUESTION.value,
            Acknowledgement.question == ack.question,
        )
        .limit(1)
    )
    if earlier is not None:
        return Forwarded(acknowledgement_id, "nobody", reason=f"the same as question {earlier}")
    person = session.get(Person, ack.person_id)
    occurrence = session.get(Occurrence, ack.occurrence_id)
    if person is None or occurrence is None:
        return Forwarded(acknowledgement_id, "nobody", reason="person or occurrence is gone")
    return _Question(ack, person, person.manager, occurrence.message.title)


def forward_question(
    session: Session,
    acknowledgement_id: int,
    *,
    slack: WebClient | None,
    smtp: SmtpConfig | None,
    sender: str,
) -> Forwarded:
    """Send a question to the asker's team leader, on Slack if possible, else by email.

    A leader Slack cannot reach (no longer in the workspace) is emailed instead. Nobody is
    asked when there is no (active) leader or no way to reach them; that is logged.
    """
    found = _load_question(session, acknowledgement_id)
    if isinstance(found, Forwarded):
        log.info("question %d not forwarded: %s", acknowledgement_id, found.reason)
        return found
    manager = found.manager
    if manager is None or not manager.active:
        reason = "no team leader" if manager is None else f"team leader {manager.email} inactive"
        log.info(
            "question %d from %s not forwarded: %s (it stays in `cadence acks`)",
            acknowledgement_id,
            found.person.email,
            reason,
        )
        return Forwarded(acknowledgement_id, "nobody", reason=reason)
    slack_problem: str | None = None
    if slack is not None and manager.slack_user_id:
        try:
            _post_question(slack, found, manager.slack_user_id)
            return Forwarded(acknowledgement_id, "slack", manager.slack_user_id)
        except SlackApiError as exc:
            error = _slack_error(exc, f"question {acknowledgement_id} to {manager.email}")
            if error not in UNREACHABLE or smtp is None:
                log.warning("question %d not forwarded: Slack: %s", acknowledgement_id, error)
                return Forwarded(acknowledgement_id, "nobody", reason=f"Slack: {error}")
            slack_problem = error
        except OSError as exc:
            raise TryLater(f"no answer from Slack: {exc}", DEFAULT_RETRY) from exc
    if smtp is not None:
        refused = _mail_question(smtp, sender, found, manager)
        if refused is None:
            return Forwarded(acknowledgement_id, "email", manager.email, slack_problem)
        log.warning("question %d not forwarded: %s", acknowledgement_id, refused)
        return Forwarded(acknowledgement_id, "nobody", manager.email, refused)
    reason = "Slack cannot reach the team leader and email is not configured"
    log.warning(
        "question %d from %s not forwarded: %s", acknowledgement_id, found.person.email, reason
    )
    return Forwarded(acknowledgement_id, "nobody", reason=reason)


def _clarity_line(ack: Acknowledgement) -> str | None:
    return None if ack.clarity is None else f"Clarity: {ack.clarity}/10"


def _post_question(client: WebClient, q: _Question, manager_slack_id: str) -> None:
    name, title = slack_escape(q.person.name), slack_escape(q.title)
    question = slack_escape(q.ack.question or "")
    quoted = "\n".join(f">{line}" for line in question.splitlines() or [""])
    who = f"<@{q.person.slack_user_id}>" if q.person.slack_user_id else name
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"*{name}* has a question about *{title}*:"},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": quoted[:3000]}},
    ]
    extra = [x for x in (_clarity_line(q.ack), f"Reply to {who} directly.") if x]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": x} for x in extra]})
    client.chat_postMessage(
        channel=manager_slack_id,
        text=f"{name} has a question about {title}: {question}"[:3000],
        blocks=blocks,
        unfurl_links=False,
        unfurl_media=False,
    )


def question_email(q: _Question, manager: Person, sender: str) -> EmailMessage:
    """A plain email to the leader; replying goes straight to the person who asked."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "cadence.invalid"
    msg = EmailMessage()
    msg["Subject"] = f"Question from {q.person.name}: {q.title}"
    msg["From"] = sender
    msg["To"] = formataddr((manager.name, manager.email))
    msg["Reply-To"] = formataddr((q.person.name, q.person.email))
    msg["Date"] = formatdate(usegmt=True)
    # The same id on a retry, so a mail client shows one message if both arrive.
    msg["Message-ID"] = f"<question-{q.ack.id}@{domain}>"
    msg["X-Mailer"] = MAILER
    msg["Auto-Submitted"] = "auto-generated"
    lines = [
        f"{q.person.name} <{q.person.email}> has a question about \u201c{q.title}\u201d:",
        "",
        q.ack.question or "",
        "",
    ]
    clarity = _clarity_line(q.ack)
    if clarity:
        lines += [clarity, ""]
    lines.append(f"Reply to this email to answer {q.person.name} directly.")
    msg.set_content("\n".join(lines))
    return msg


def _mail_question(config: SmtpConfig, sender: str, q: _Question, manager: Person) -> str | None:
    """Send the email; None when the server took it, else why it refused for good."""
    msg = question_email(q, manager, sender)
    what = f"question {q.ack.id} to {manager.email}"
    try:
        smtp = EmailChannel(config, sender).connect()
    except smtplib.SMTPAuthenticationError as exc:
        return f"SMTP login refused: {exc.smtp_code} {_words(exc.smtp_error)}"
    except (smtplib.SMTPException, OSError) as exc:
        raise TryLater(f"{what}: cannot reach SMTP server: {exc}", DEFAULT_RETRY) from exc
    try:
        smtp.send_message(msg, parseaddr(sender)[1], [manager.email])
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        return _smtp_refused(what, code, text)
    except smtplib.SMTPResponseException as exc:
        return _smtp_refused(what, exc.smtp_code, exc.smtp_error)
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise TryLater(f"{what}: connection lost: {exc}", DEFAULT_RETRY) from exc
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
    return None


def _words(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _smtp_refused(what: str, code: int, text: bytes | str) -> str:
    """SMTP 4xx: try later; anything else: the server's own words, for the log."""
    reason = f"SMTP {code} {_words(text)}"
    if 400 <= code < 500:
        raise TryLater(f"{what}: {reason}", DEFAULT_RETRY)
    return reason

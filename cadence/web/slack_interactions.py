"""`POST /slack/interactions`: the "Got it" and "I have a question" buttons, and the question
modal, as Slack delivers them; on a leader's briefing, "Add a note for my team" and its modal.

Only a request Slack signed, just now, and never seen before changes anything; only the
recipient of a message can answer it. Slack wants an answer within 3 seconds, so the route
records the answer and hands the slow follow-ups (rewriting the message, telling the team
leader) to the workers. Opening a modal is the exception: its trigger expires 3 seconds
after the click, so `views.open` is called from here. Only the briefed leader may add a note
to their briefing, and it is saved exactly as `cadence launch note` saves it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import anyio.to_thread
import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cadence.answers.acks import NotRecipient, Recorded, load_delivery, make_answer, record_answer
from cadence.answers.followups import SLACK_UPDATE_TASK
from cadence.answers.group_commit import GroupCommit
from cadence.answers.questions import FORWARD_QUESTION_TASK
from cadence.answers.slack_signing import (
    CLARITY_BLOCK_ID,
    NOTE_BLOCK_ID,
    NOTE_CALLBACK_ID,
    QUESTION_BLOCK_ID,
    QUESTION_CALLBACK_ID,
    TOLERANCE_SECONDS,
    BadInteraction,
    BadSignature,
    BlockAction,
    ViewSubmission,
    delivery_id_from_metadata,
    note_modal,
    parse_interaction,
    question_modal,
    verify,
)
from cadence.config import reveal
from cadence.delivery.channels.slack_app import INTERACTIONS_PATH
from cadence.delivery.formatting.slack import (
    ACK_ACTION_ID,
    NOTE_ACTION_ID,
    QUESTION_ACTION_ID,
    delivery_id_from_value,
)
from cadence.errors import InputError
from cadence.launches.briefings import NoSuchBriefing, NotTheLeader, add_team_note, briefing_of
from cadence.launches.changes import NOTE_MAX_LENGTH
from cadence.store.db import session_scope
from cadence.web.deps import WebDeps

log = logging.getLogger("cadence.web.slack")

# The manifest (`cadence slack manifest`) points Slack here.
PATH = INTERACTIONS_PATH
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
SEEN_PREFIX = "cadence:slack:seen:"
NOT_YOURS = "This message was sent to someone else, so your answer was not recorded."
NOT_ANSWERABLE = "This message can no longer be answered."
NOT_YOUR_BRIEFING = "This briefing was sent to another leader, so you cannot add a note to it."
# views.open must be done within 3 seconds of the click; leave room for the rest.
VIEWS_OPEN_TIMEOUT = 2
# Database work in flight at once on PostgreSQL; SQLite takes one writer at a time.
DATABASE_THREADS = 16

T = TypeVar("T")


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def _ephemeral(text: str) -> JSONResponse:
    """A 200 (Slack treats anything else as a failure) that tells the clicker why."""
    return JSONResponse({"response_type": "ephemeral", "replace_original": False, "text": text})


def _modal_errors(block_id: str, text: str) -> JSONResponse:
    return JSONResponse({"response_action": "errors", "errors": {block_id: text}})


class _DatabaseThreads:
    """Runs the route's database work off the event loop, a bounded number at a time.

    SQLite has one writer at a time: extra threads only wait in its busy handler, which
    sleeps up to 100 ms between tries, and a click that keeps losing that race misses
    Slack's 3 seconds. Queueing in the route instead keeps every click's wait short and fair.
    """

    def __init__(self, database_url: str) -> None:
        self.size = 1 if database_url.startswith("sqlite") else DATABASE_THREADS
        self._limiter: anyio.CapacityLimiter | None = None

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.size)
        return await anyio.to_thread.run_sync(functools.partial(func, *args), limiter=self._limiter)


def router(deps: WebDeps, answers: GroupCommit) -> APIRouter:
    api = APIRouter(tags=["slack"])
    database = _DatabaseThreads(deps.settings.database_url)

    @api.post(PATH, summary="Slack interactivity: button clicks and the question modal")
    async def slack_interactions(request: Request) -> Response:
        secret = reveal(deps.settings.slack_signing_secret)
        if not secret:
            return _error(503, "Slack signing secret not configured")
        body = await request.body()
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        signature = request.headers.get(SIGNATURE_HEADER)
        now = deps.clock().timestamp()
        try:
            verify(secret, timestamp, body, signature, now)
        except BadSignature as exc:
            return _error(401, str(exc))
        assert timestamp is not None and signature is not None
        try:
            interaction = parse_interaction(body)
        except BadInteraction as exc:
            return _error(400, str(exc))
        try:
            fresh = await run_in_threadpool(_first_sight, deps.redis, signature, timestamp, now)
        except (redis.RedisError, OSError):
            log.exception("cannot check Slack requests for replays")
            return _error(503, "cannot check for replayed requests; try again")
        if not fresh:
            return _error(401, "this request was already received (a replay)")
        if isinstance(interaction, ViewSubmission):
            if interaction.callback_id == NOTE_CALLBACK_ID:
                return await database.run(_submit_note, deps, interaction)
            return await _finish(deps, await database.run(_submit_question, deps, interaction))
        if interaction.action_id == ACK_ACTION_ID:
            return await _finish(deps, await _acknowledge(deps, answers, interaction))
        if interaction.action_id == QUESTION_ACTION_ID:
            return await _open_question(deps, database, interaction)
        if interaction.action_id == NOTE_ACTION_ID:
            return await _open_note(deps, database, interaction)
        return Response(status_code=200)

    return api


def _first_sight(client: redis.Redis, signature: str, timestamp: str, now: float) -> bool:
    """Remember a signature until its timestamp is too old to pass `verify` anyway, so a
    request replayed within the window is refused and the key never outlives it."""
    ttl = max(1, int(int(timestamp) + TOLERANCE_SECONDS - now) + 1)
    return bool(client.set(SEEN_PREFIX + signature, b"1", nx=True, ex=ttl))


@dataclass
class _Reply:
    """The answer for Slack, and the work to queue once the database is free again."""

    response: Response
    follow_ups: list[tuple[str, list[Any]]] = field(default_factory=list)


async def _finish(deps: WebDeps, reply: _Reply | Response) -> Response:
    if isinstance(reply, Response):
        return reply
    if reply.follow_ups:
        await run_in_threadpool(_enqueue, deps, reply.follow_ups)
    return reply.response


def _enqueue(deps: WebDeps, follow_ups: list[tuple[str, list[Any]]]) -> None:
    """The answer is recorded either way; a lost follow-up must not turn it into an error."""
    for name, args in follow_ups:
        try:
            deps.send_task(name, args)
        except Exception:
            log.exception("could not queue %s %s", name, args)


def _delivery_id(value: str) -> int | None:
    try:
        return delivery_id_from_value(value)
    except ValueError:
        return None


async def _acknowledge(
    deps: WebDeps, answers: GroupCommit, action: BlockAction
) -> _Reply | Response:
    """A "Got it" click, recorded in the next group commit and answered once it is durable."""
    delivery_id = _delivery_id(action.value)
    if delivery_id is None:
        return _error(400, f"not a Cadence button value: {action.value[:64]!r}")
    now = deps.clock()

    def record(session: Session) -> Recorded:
        return record_answer(
            session,
            delivery_id,
            make_answer("ack"),
            via="slack",
            now=now,
            slack_user_id=action.user_id,
        )

    try:
        recorded = await answers.run(record)
    except NotRecipient:
        log.warning(
            "Slack user %s clicked delivery %d of someone else", action.user_id, delivery_id
        )
        return _ephemeral(NOT_YOURS)
    except InputError as exc:
        log.info("Slack click on delivery %d not recorded: %s", delivery_id, exc)
        return _ephemeral(NOT_ANSWERABLE)
    return _Reply(Response(status_code=200), [(SLACK_UPDATE_TASK, [recorded.delivery_id])])


def _question_title(deps: WebDeps, action: BlockAction, delivery_id: int) -> str | Response:
    """The message's title when the clicker may ask about this delivery, else the answer."""
    with session_scope(deps.sessions) as session:
        try:
            delivery = load_delivery(session, delivery_id)
        except InputError:
            return _ephemeral(NOT_ANSWERABLE)
        if delivery.person.slack_user_id != action.user_id:
            log.warning(
                "Slack user %s asked about delivery %d of someone else", action.user_id, delivery_id
            )
            return _ephemeral(NOT_YOURS)
        if delivery.occurrence.purpose == "escalation":
            return _ephemeral(NOT_ANSWERABLE)
        return delivery.occurrence.message.title


async def _open_question(
    deps: WebDeps, database: _DatabaseThreads, action: BlockAction
) -> Response:
    delivery_id = _delivery_id(action.value)
    if delivery_id is None:
        return _error(400, f"not a Cadence button value: {action.value[:64]!r}")
    if not action.trigger_id:
        return _error(400, "the payload has no `trigger_id`")
    title = await database.run(_question_title, deps, action, delivery_id)
    if isinstance(title, Response):
        return title
    return await _views_open(deps, action, question_modal(delivery_id, title), "question")


async def _views_open(
    deps: WebDeps, action: BlockAction, view: dict[str, Any], what: str
) -> Response:
    """Open `view` for the click's trigger; what went wrong is told to the clicker."""
    assert action.trigger_id
    token = reveal(deps.settings.slack_bot_token)
    if not token:
        log.error("a %s form was asked for, but CADENCE_SLACK_BOT_TOKEN is not set", what)
        return _ephemeral(f"The {what} form cannot be opened in Slack right now.")
    client = AsyncWebClient(
        token=token, base_url=deps.settings.slack_api_url, timeout=VIEWS_OPEN_TIMEOUT
    )
    failed = _ephemeral(f"The {what} form could not be opened; please try again.")
    try:
        await client.views_open(trigger_id=action.trigger_id, view=view)
    except SlackApiError as exc:
        log.warning("views.open for a %s form refused: %s", what, exc.response.get("error"))
        return failed
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        log.warning("views.open for a %s form failed: %r", what, exc)
        return failed
    return Response(status_code=200)


def _submit_question(deps: WebDeps, submission: ViewSubmission) -> _Reply | Response:
    if submission.callback_id != QUESTION_CALLBACK_ID:
        return _error(400, f"unknown modal {submission.callback_id[:64]!r}")
    try:
        delivery_id = delivery_id_from_metadata(submission.private_metadata)
    except BadInteraction as exc:
        return _error(400, str(exc))
    try:
        make_answer("question", submission.question)
    except InputError as exc:
        return _modal_errors(QUESTION_BLOCK_ID, _sentence(str(exc)))
    try:
        answer = make_answer("question", submission.question, submission.clarity)
    except InputError as exc:
        return _modal_errors(CLARITY_BLOCK_ID, _sentence(str(exc)))
    try:
        with session_scope(deps.sessions) as session:
            recorded = record_answer(
                session,
                delivery_id,
                answer,
                via="slack",
                now=deps.clock(),
                slack_user_id=submission.user_id,
            )
    except NotRecipient:
        return _modal_errors(QUESTION_BLOCK_ID, NOT_YOURS)
    except InputError:
        return _modal_errors(QUESTION_BLOCK_ID, NOT_ANSWERABLE)
    follow_ups: list[tuple[str, list[Any]]] = [
        (FORWARD_QUESTION_TASK, [recorded.acknowledgement_id]),
        (SLACK_UPDATE_TASK, [recorded.delivery_id]),
    ]
    return _Reply(JSONResponse({"response_action": "clear"}), follow_ups)


def _note_form(deps: WebDeps, action: BlockAction, delivery_id: int) -> dict[str, Any] | Response:
    """The note modal for the briefed leader who clicked, else what to tell them."""
    with session_scope(deps.sessions) as session:
        try:
            briefing = briefing_of(session, delivery_id, deps.clock(), slack_user_id=action.user_id)
        except NoSuchBriefing:
            return _ephemeral("Notes can only be added to a leader's briefing.")
        except NotTheLeader:
            log.warning(
                "Slack user %s asked to add a note to briefing %d of someone else",
                action.user_id,
                delivery_id,
            )
            return _ephemeral(NOT_YOUR_BRIEFING)
        if not briefing.pending:
            return _ephemeral(
                "Your team has already been sent this launch, so a note would reach no one."
            )
        return note_modal(delivery_id, briefing.title, briefing.note, NOTE_MAX_LENGTH)


async def _open_note(deps: WebDeps, database: _DatabaseThreads, action: BlockAction) -> Response:
    delivery_id = _delivery_id(action.value)
    if delivery_id is None:
        return _error(400, f"not a Cadence button value: {action.value[:64]!r}")
    if not action.trigger_id:
        return _error(400, "the payload has no `trigger_id`")
    view = await database.run(_note_form, deps, action, delivery_id)
    if isinstance(view, Response):
        return view
    return await _views_open(deps, action, view, "note")


def _submit_note(deps: WebDeps, submission: ViewSubmission) -> Response:
    try:
        delivery_id = delivery_id_from_metadata(submission.private_metadata)
    except BadInteraction as exc:
        return _error(400, str(exc))
    try:
        with session_scope(deps.sessions) as session:
            add_team_note(
                session,
                delivery_id,
                submission.note or "",
                deps.clock(),
                slack_user_id=submission.user_id,
            )
    except NoSuchBriefing:
        return _modal_errors(NOTE_BLOCK_ID, "Notes can only be added to a leader's briefing.")
    except NotTheLeader:
        log.warning(
            "Slack user %s sent a note for briefing %d of someone else",
            submission.user_id,
            delivery_id,
        )
        return _modal_errors(NOTE_BLOCK_ID, NOT_YOUR_BRIEFING)
    except InputError as exc:
        return _modal_errors(NOTE_BLOCK_ID, _sentence(str(exc)))
    return JSONResponse({"response_action": "clear"})


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")

"""Slack's request signatures and the interaction payloads Cadence accepts.

Slack signs every interaction with the app's signing secret; a request whose signature does
not match the raw body, or whose timestamp is more than five minutes off, did not come from
Slack (or is an old request played again) and must change nothing. The signature itself is
checked by slack-sdk's `SignatureVerifier`, the implementation Slack publishes. Parsing is
strict: a payload that lacks what Cadence needs is refused with a sentence, never half-read.

The question modal and a leader's note modal are built here too, because their block and
action ids are what `parse_interaction` reads back from a `view_submission`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.signature import Clock, SignatureVerifier

from cadence.errors import CadenceError, InputError
from cadence.inputs import load_json

TOLERANCE_SECONDS = 300

QUESTION_CALLBACK_ID = "cadence_question"
QUESTION_BLOCK_ID = "question"
QUESTION_INPUT_ID = "text"
CLARITY_BLOCK_ID = "clarity"
CLARITY_INPUT_ID = "score"
QUESTION_MAX_LENGTH = 2000
NOTE_CALLBACK_ID = "cadence_team_note"
NOTE_BLOCK_ID = "note"
NOTE_INPUT_ID = "text"


class BadSignature(CadenceError):
    """The request cannot be shown to come from Slack, just now."""


class MissingHeaders(BadSignature):
    """X-Slack-Request-Timestamp or X-Slack-Signature is absent."""


class BadTimestamp(BadSignature):
    """The timestamp is not a whole number of seconds."""


class StaleTimestamp(BadSignature):
    """The timestamp is too far from now: an old request replayed, or a wrong clock."""


class SignatureMismatch(BadSignature):
    """The signature does not match the body and timestamp under the signing secret."""


class BadInteraction(CadenceError):
    """The body is not an interaction payload Cadence understands."""


class _At(Clock):
    """The clock `SignatureVerifier` reads, stopped at the caller's `now`, so the request's
    age is judged against the same instant here and there (and tests can pick it)."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def signature_for(signing_secret: str, timestamp: str, body: bytes) -> str:
    """`v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`, computed by slack-sdk as Slack does."""
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None  # only None when there is no timestamp
    return signature


def sign(signing_secret: str, body: bytes, timestamp: float | int | str) -> dict[str, str]:
    """The headers Slack would send with `body` at `timestamp`, for tests and benchmarks."""
    stamp = str(int(float(timestamp)))
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature_for(signing_secret, stamp, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def verify(
    signing_secret: str,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
    """Check a request's signature on its raw bytes.

    Raises a `BadSignature` subclass naming the reason. The headers and the timestamp are
    checked here first, because slack-sdk's `SignatureVerifier` only answers yes or no and
    the reason is worth saying; the HMAC comparison is then its own. The timestamp is
    checked before the signature, so a replay of a genuine old request is refused even
    though it is signed. `tolerance` can only narrow Slack's five minutes, which
    `SignatureVerifier` applies as well.
    """
    if not 0 <= tolerance <= TOLERANCE_SECONDS:
        raise ValueError(f"tolerance must be between 0 and {TOLERANCE_SECONDS} seconds")
    if not timestamp or not signature:
        raise MissingHeaders("missing X-Slack-Request-Timestamp or X-Slack-Signature header")
    stamp = timestamp.strip()
    if not stamp.isascii() or not stamp.isdigit():
        raise BadTimestamp(f"X-Slack-Request-Timestamp is not a number: {timestamp[:32]!r}")
    when = int(stamp)
    if abs(now - when) > tolerance:
        raise StaleTimestamp(
            f"X-Slack-Request-Timestamp is {int(now - when)} s from now "
            f"(at most {tolerance} s either way)"
        )
    mismatch = SignatureMismatch("X-Slack-Signature does not match the request")
    given = signature.strip()
    # SignatureVerifier compares text: a non-ASCII signature would make `compare_digest`
    # raise, and a body that is not UTF-8 (Slack's always is) cannot be decoded to sign.
    if not given.isascii():
        raise mismatch
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise mismatch from None
    verifier = SignatureVerifier(signing_secret, clock=_At(now))
    if not verifier.is_valid(body=body, timestamp=stamp, signature=given):
        raise mismatch


@dataclass(frozen=True)
class BlockAction:
    """A click on one of the message's buttons."""

    user_id: str
    action_id: str
    value: str
    trigger_id: str | None
    channel_id: str | None
    message_ts: str | None
    response_url: str | None


@dataclass(frozen=True)
class ViewSubmission:
    """A modal sent. For the question modal, `question` is the text as typed (possibly
    empty) and `clarity` the chosen score as text or None; `make_answer` judges both. For
    the note modal, `note` is the leader's text as typed."""

    user_id: str
    callback_id: str
    private_metadata: str
    question: str | None
    clarity: str | None
    note: str | None = None


Interaction = BlockAction | ViewSubmission


def parse_interaction(body: bytes) -> Interaction:
    """Read an `application/x-www-form-urlencoded` body with one `payload` JSON field."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInteraction("the body is not UTF-8") from None
    try:
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
    except ValueError:
        raise BadInteraction("the body is not form-encoded") from None
    payloads = fields.get("payload", [])
    if len(payloads) != 1:
        raise BadInteraction("the body must have exactly one `payload` field")
    try:
        # Strict: a payload nested absurdly deep would exhaust the parser's recursion.
        payload = load_json(payloads[0], "`payload`")
    except InputError as exc:
        raise BadInteraction(exc.summary) from None
    if not isinstance(payload, dict):
        raise BadInteraction("`payload` is not a JSON object")
    kind = payload.get("type")
    user_id = _text(_object(payload, "user"), "id", "user.id")
    if kind == "block_actions":
        return _block_action(payload, user_id)
    if kind == "view_submission":
        return _view_submission(payload, user_id)
    raise BadInteraction(f"unsupported interaction type {kind!r}")


def _block_action(payload: dict[str, Any], user_id: str) -> BlockAction:
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise BadInteraction("block_actions without `actions`")
    action = actions[0]
    container = _maybe_object(payload, "container")
    channel = _maybe_object(payload, "channel")
    return BlockAction(
        user_id=user_id,
        action_id=_text(action, "action_id", "actions[0].action_id"),
        value=_text(action, "value", "actions[0].value"),
        trigger_id=_optional(payload.get("trigger_id")),
        channel_id=_optional(container.get("channel_id") or channel.get("id")),
        message_ts=_optional(container.get("message_ts")),
        response_url=_optional(payload.get("response_url")),
    )


def _view_submission(payload: dict[str, Any], user_id: str) -> ViewSubmission:
    view = _object(payload, "view")
    state = view.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    if not isinstance(values, dict):
        raise BadInteraction("view_submission without `view.state.values`")
    question = _input(values, QUESTION_BLOCK_ID, QUESTION_INPUT_ID)
    clarity_input = _input_object(values, CLARITY_BLOCK_ID, CLARITY_INPUT_ID)
    clarity: str | None = None
    if clarity_input is not None:
        selected = clarity_input.get("selected_option")
        if isinstance(selected, dict):
            clarity = _optional(selected.get("value"))
        elif selected is not None:
            raise BadInteraction("the clarity choice is not an option")
    return ViewSubmission(
        user_id=user_id,
        callback_id=_text(view, "callback_id", "view.callback_id"),
        private_metadata=str(view.get("private_metadata") or ""),
        question=question,
        clarity=clarity,
        note=_input(values, NOTE_BLOCK_ID, NOTE_INPUT_ID),
    )


def _object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise BadInteraction(f"the payload has no `{key}` object")
    return value


def _maybe_object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _text(parent: dict[str, Any], key: str, label: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise BadInteraction(f"the payload has no `{label}`")
    return value


def _optional(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _input_object(values: dict[str, Any], block_id: str, action_id: str) -> dict[str, Any] | None:
    block = values.get(block_id)
    if block is None:
        return None
    if not isinstance(block, dict):
        raise BadInteraction(f"`view.state.values.{block_id}` is not an object")
    element = block.get(action_id)
    if element is None:
        return None
    if not isinstance(element, dict):
        raise BadInteraction(f"`view.state.values.{block_id}.{action_id}` is not an object")
    return element


def _input(values: dict[str, Any], block_id: str, action_id: str) -> str | None:
    element = _input_object(values, block_id, action_id)
    if element is None:
        return None
    value = element.get("value")
    if value is not None and not isinstance(value, str):
        raise BadInteraction(f"`view.state.values.{block_id}.{action_id}.value` is not text")
    return value


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def question_modal(delivery_id: int, message_title: str) -> dict[str, Any]:
    """The modal behind "I have a question": the question, and an optional 0-10 clarity.

    `private_metadata` carries the delivery id, so the submission names what it answers.
    """
    about = " ".join(message_title.split())[:2000] or "this message"
    return {
        "type": "modal",
        "callback_id": QUESTION_CALLBACK_ID,
        "private_metadata": str(delivery_id),
        "title": _plain("Ask a question"),
        "submit": _plain("Send"),
        "close": _plain("Cancel"),
        "blocks": [
            {"type": "context", "elements": [_plain(f"About: {about}")]},
            {
                "type": "input",
                "block_id": QUESTION_BLOCK_ID,
                "label": _plain("Your question"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": QUESTION_INPUT_ID,
                    "multiline": True,
                    "max_length": QUESTION_MAX_LENGTH,
                },
                "hint": _plain("It goes to your team leader, with your name."),
            },
            {
                "type": "input",
                "block_id": CLARITY_BLOCK_ID,
                "optional": True,
                "label": _plain("How clear was the message? (0 = not at all, 10 = very)"),
                "element": {
                    "type": "static_select",
                    "action_id": CLARITY_INPUT_ID,
                    "placeholder": _plain("Choose 0-10"),
                    "options": [{"text": _plain(str(n)), "value": str(n)} for n in range(11)],
                },
            },
        ],
    }


def note_modal(
    delivery_id: int, message_title: str, current: str | None, max_length: int
) -> dict[str, Any]:
    """The modal behind a briefing's "Add a note for my team": one text field, holding the
    note saved so far. `private_metadata` carries the briefing's delivery id."""
    about = " ".join(message_title.split())[:2000] or "this launch"
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": NOTE_INPUT_ID,
        "multiline": True,
        "max_length": max_length,
    }
    if current:
        element["initial_value"] = current[:max_length]
    return {
        "type": "modal",
        "callback_id": NOTE_CALLBACK_ID,
        "private_metadata": str(delivery_id),
        "title": _plain("Note for my team"),
        "submit": _plain("Save"),
        "close": _plain("Cancel"),
        "blocks": [
            {"type": "context", "elements": [_plain(f"Launch: {about}")]},
            {
                "type": "input",
                "block_id": NOTE_BLOCK_ID,
                "label": _plain("Your note"),
                "element": element,
                "hint": _plain(
                    "Sent with the message to your people who have not had it yet, "
                    "under \u201cA note from your team leader\u201d."
                ),
            },
        ],
    }


def delivery_id_from_metadata(private_metadata: str) -> int:
    """The delivery id the question modal carries; BadInteraction if it is not one."""
    text = private_metadata.strip()
    if not text.isascii() or not text.isdigit():
        raise BadInteraction("the modal does not name a delivery")
    return int(text)

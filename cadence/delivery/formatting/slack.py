"""A delivery as a Slack message: fallback text plus Block Kit blocks.

The blocks come from `templates/slack/message.json.j2`; every string that comes from people
is converted to mrkdwn (escaped) first and written with `tojson`, so the JSON is always valid
and nothing the author wrote can ping a channel.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cadence.delivery.channels.base import Outgoing
from cadence.inputs import is_digits
from cadence.messages.markdown import slack_escape, to_mrkdwn_blocks
from cadence.rendering import render

ACK_ACTION_ID = "cadence_ack"
QUESTION_ACTION_ID = "cadence_question"
NOTE_ACTION_ID = "cadence_team_note"
METADATA_EVENT_TYPE = "cadence_delivery"
NOTE_LEAD = "A note from your team leader:"
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FALLBACK_LIMIT = 3000
#: Slack refuses a message with more blocks than this.
MAX_BLOCKS = 50
MAX_NOTE_BLOCKS = 2
TOO_LONG = "_The rest of this message is too long to show in Slack._"


def action_value(delivery_id: int) -> str:
    """What both buttons carry, so an interaction names its delivery."""
    return f"delivery:{delivery_id}"


def delivery_id_from_value(value: str) -> int:
    """The delivery id in a button's value; `ValueError` if it is not one of ours."""
    prefix, _, number = value.partition(":")
    if prefix != "delivery" or not is_digits(number):
        raise ValueError(f"not a Cadence button value: {value!r}")
    return int(number)


def header_text(title: str) -> str:
    """A title as a Block Kit header: one line, at most 150 characters."""
    text = " ".join(title.split()) or "Message"
    if len(text) <= HEADER_LIMIT:
        return text
    return text[: HEADER_LIMIT - 1].rstrip() + "\u2026"


def _cut_point(text: str, limit: int) -> int:
    """Where to cut `text` to at most `limit` characters without splitting a `<link>` or an
    `&entity;`: the last space outside them if there is one, else the last safe place."""
    closing: str | None = None
    last_space = last_safe = 0
    for at, char in enumerate(text[: limit + 1]):
        if closing is None and at > 0:
            last_safe = at
            if char.isspace():
                last_space = at
        if closing is None:
            closing = {"<": ">", "&": ";"}.get(char)
        elif char == closing:
            closing = None
    return last_space or last_safe or limit


def _cut(text: str, limit: int) -> list[str]:
    pieces = []
    while len(text) > limit:
        at = _cut_point(text, limit)
        pieces.append(text[:at].rstrip())
        text = text[at:].lstrip()
    return [*pieces, text]


def _pack(parts: list[str], limit: int, joiner: str) -> list[str]:
    """Greedily join `parts` into as few pieces of at most `limit` characters as fit."""
    packed: list[str] = []
    for part in parts:
        for piece in _cut(part, limit):
            if packed and len(packed[-1]) + len(joiner) + len(piece) <= limit:
                packed[-1] += joiner + piece
            else:
                packed.append(piece)
    return packed


def _fit(block: str, limit: int) -> list[str]:
    """One mrkdwn block as pieces of at most `limit` characters, split between lines; a
    code block split in two is closed and reopened so both halves stay code."""
    if len(block) <= limit:
        return [block]
    fence = "```\n"
    if block.startswith(fence) and block.endswith("\n```"):
        inner = block[len(fence) : -len("\n```")].split("\n")
        room = limit - len(fence) - len("\n```")
        return [f"{fence}{piece}\n```" for piece in _pack(inner, room, "\n")]
    return _pack(block.split("\n"), limit, "\n")


def split_sections(blocks: list[str], limit: int = SECTION_LIMIT) -> list[str]:
    """mrkdwn blocks packed into section texts of at most `limit` characters, split between
    paragraphs where possible (Slack refuses a section text over 3000 characters)."""
    pieces = [piece for block in blocks for piece in _fit(block, limit)]
    return _pack(pieces, limit, "\n\n")


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: _cut_point(text, limit - 1)].rstrip() + "\u2026"


def slack_message(
    out: Outgoing, *, question_enabled: bool = True
) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for `chat.postMessage`.

    The fallback is what notifications and screen readers show; the blocks carry the whole
    message and the "Got it" / "I have a question" buttons, whose value names the delivery;
    a leader's briefing adds "Add a note for my team".
    """
    fallback, text = _content(
        out.title, out.body, out.leader_note, question_enabled, out.team_note and out.answerable
    )
    blocks: list[dict[str, Any]] = json.loads(text)
    if not out.answerable:
        return fallback, blocks[:-1]  # the buttons are always the last block
    value = action_value(out.delivery_id)
    for element in blocks[-1]["elements"]:
        element["value"] = value
    return fallback, blocks


@lru_cache(maxsize=1024)
def _content(
    title: str,
    body_md: str,
    leader_note: str | None,
    question_enabled: bool,
    note_enabled: bool = False,
) -> tuple[str, str]:
    """The message without its delivery id, as JSON text. Everyone on a team whose message
    reads the same shares one conversion, which is most of the cost of a fan-out."""
    body = [text for text in split_sections(to_mrkdwn_blocks(body_md)) if text.strip()]
    note: list[str] = []
    if leader_note and leader_note.strip():
        lead = f"*{NOTE_LEAD}* {slack_escape(leader_note.strip())}"
        note = split_sections([lead])[:MAX_NOTE_BLOCKS]
    room = MAX_BLOCKS - 2 - len(note)
    if len(body) > room:
        body = [*body[: room - 1], TOO_LONG]
    fallback = slack_escape(" ".join(title.split()))
    if body:
        fallback = f"{fallback}\n\n{body[0]}"
    text = render(
        "slack/message.json.j2",
        title=header_text(title),
        body=body,
        note=note,
        value=action_value(0),
        ack_action=ACK_ACTION_ID,
        question_action=QUESTION_ACTION_ID,
        question_enabled=question_enabled,
        note_action=NOTE_ACTION_ID,
        note_enabled=note_enabled,
    )
    return _shorten(fallback, FALLBACK_LIMIT), text


def slack_metadata(out: Outgoing) -> dict[str, Any]:
    """Message metadata naming the delivery, so a send cut off by a crash can be found in the
    DM's history before it is sent again."""
    return {"event_type": METADATA_EVENT_TYPE, "event_payload": {"delivery_id": out.delivery_id}}

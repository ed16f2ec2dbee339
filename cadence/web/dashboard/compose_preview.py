"""What the compose page previews: the message exactly as each channel would send it to one
chosen recipient, and its upcoming sends in each zone.

The Slack preview is the Block Kit the Slack channel posts (`slack_message`), drawn in HTML
to look roughly like Slack; the email preview is the email channel's own subject, text and
inlined HTML (`email_parts`); the sends are the API's `/messages/preview` (`_preview`), which
is also `cadence schedule preview --message`. Nothing here is stored.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from cadence.access import policy
from cadence.access.users import Viewer
from cadence.delivery.channels.base import Outgoing
from cadence.delivery.formatting.email import email_parts
from cadence.delivery.formatting.slack import slack_message
from cadence.delivery.sending import recipient_of
from cadence.directory.audience import Audience, audience_filter
from cadence.errors import InputError
from cadence.messages.core import CoreMessageSpec
from cadence.messages.personalise import context_for_person, personalise
from cadence.store.models import Person
from cadence.web.api.convert import _preview, _unsaved
from cadence.web.api.schemas import PreviewOut

#: People offered as the preview's recipient; enough to find anyone by scrolling or typing.
RECIPIENT_CHOICES = 200
SENDS_PER_ZONE = 5
PREVIEW_ACK_PATH = "/ack/preview"


@dataclass
class Preview:
    """Everything the previews panel shows; a part that could not be made says why."""

    recipients: list[tuple[str, str]] = field(default_factory=list)  # (email, name)
    recipient: str = ""
    wording: int = 0
    wordings: int = 1
    headcount: int | None = None
    slack: Markup | None = None
    slack_fallback: str = ""
    email_subject: str = ""
    email_html: Markup | None = None
    email_text: str = ""
    render_problem: str = ""
    sends: PreviewOut | None = None
    sends_problem: str = ""


def headcount(session: Session, viewer: Viewer, audience: Audience) -> int:
    """Active people in the audience that the viewer may see: a leader's count is of their
    tree only (which is all a leader's audience may be)."""
    stmt = select(func.count()).select_from(Person).where(audience_filter(audience))
    limit = policy.in_tree(viewer, Person.id)
    if limit is not None:
        stmt = stmt.where(limit)
    return int(session.scalar(stmt) or 0)


def recipient_choices(
    session: Session, viewer: Viewer, audience: Audience | None
) -> list[tuple[str, str]]:
    """Whom the preview may be personalised for: the audience's people in the viewer's
    scope, or anyone in it while there is no audience yet."""
    stmt = select(Person.email, Person.name).where(Person.active.is_(True))
    limit = policy.in_tree(viewer, Person.id)
    if limit is not None:
        stmt = stmt.where(limit)
    if audience is not None:
        stmt = stmt.where(audience_filter(audience))
    rows = session.execute(stmt.order_by(Person.name, Person.email).limit(RECIPIENT_CHOICES))
    return [(email, name) for email, name in rows]


def build_preview(
    session: Session,
    viewer: Viewer,
    spec: CoreMessageSpec,
    audience: Audience | None,
    *,
    wanted_recipient: str,
    wording: int,
    valid: bool,
    org_zone: str,
    base_url: str,
    now: datetime,
) -> Preview:
    """The previews for a definition; the sends only when the whole definition is valid,
    since they are refused exactly as storing it would be."""
    wordings = [spec.body, *spec.variants]
    found = Preview(wording=min(wording, len(wordings) - 1), wordings=len(wordings))
    found.recipients = recipient_choices(session, viewer, audience)
    if audience is not None and (audience.everyone or audience.teams or audience.people or
                                 audience.trees):  # fmt: skip
        found.headcount = headcount(session, viewer, audience)
    emails = [email for email, _ in found.recipients]
    wanted = wanted_recipient.strip().lower()
    found.recipient = wanted if wanted in emails else (emails[0] if emails else "")
    if found.recipient:
        person = session.scalar(
            select(Person)
            .options(joinedload(Person.team), joinedload(Person.manager))
            .where(Person.email == found.recipient)
        )
        assert person is not None
        _render(found, person, spec.title, wordings[found.wording], org_zone, base_url)
    else:
        found.render_problem = "There is nobody in your audience to preview it for yet."
    if valid:
        try:
            found.sends = _preview(session, _unsaved(spec), org_zone, now, SENDS_PER_ZONE)
        except InputError as exc:
            found.sends_problem = str(exc)
    else:
        found.sends_problem = "Fix the problems above to see when it would be sent."
    return found


def _render(
    found: Preview, person: Person, title: str, wording: str, org_zone: str, base_url: str
) -> None:
    if not title.strip() or not wording.strip():
        found.render_problem = "Write a title and a body to see the message."
        return
    try:
        body = personalise(wording, context_for_person(person, title, org_zone))
    except InputError as exc:
        found.render_problem = str(exc)
        return
    out = Outgoing(
        delivery_id=0,
        recipient=recipient_of(person, org_zone),
        title=title,
        body=body,
        ack_url=base_url.rstrip("/") + PREVIEW_ACK_PATH,
    )
    fallback, blocks = slack_message(out)
    found.slack, found.slack_fallback = slack_html(blocks), fallback
    subject, text, page = email_parts(out)
    found.email_subject, found.email_text, found.email_html = subject, text, email_body(page)


# ---------------------------------------------------------------------------------------
# Drawing what the channels send


_BODY = re.compile(r"<body([^>]*)>(.*)</body>", re.DOTALL | re.IGNORECASE)
_HEADING = re.compile(r"<h([1-6])(?=[\s>])", re.IGNORECASE)
_STYLE = re.compile(r'style="([^"]*)"')


def email_body(page: str) -> Markup:
    """The email's body as it will arrive, in a box carrying the body's own inlined style.
    The page is the email channel's template around markdown-it's output, which escapes any
    HTML the author wrote, so it is shown as it is."""
    found = _BODY.search(page)
    if found is None:
        return Markup(page)
    style = _STYLE.search(found.group(1))
    attrs = f' style="{style.group(1)}"' if style else ""
    # Shown inside the page, the email's headings would break the page's own outline for
    # screen readers; they look the same without their heading role.
    inner = _HEADING.sub(r'<h\1 role="presentation"', found.group(2))
    return Markup(f'<div class="mail-body"{attrs}>{inner}</div>')


_LINK = re.compile(r"(<[^<>\n]+>)")
_CODE = re.compile(r"`([^`\n]+)`")
_MARKS = (
    (re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"), "strong"),
    (re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"), "em"),
    (re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])"), "s"),
)
_SAFE_URL = re.compile(r"(https?://|mailto:)", re.IGNORECASE)


def _marks(text: str) -> str:
    """Slack's emphasis on text that is already HTML-escaped."""
    pieces = _CODE.split(text)
    for i in range(0, len(pieces), 2):
        for pattern, tag in _MARKS:
            pieces[i] = pattern.sub(rf"<{tag}>\1</{tag}>", pieces[i])
    for i in range(1, len(pieces), 2):
        pieces[i] = f"<code>{pieces[i]}</code>"
    return "".join(pieces)


def _line(text: str) -> str:
    out = []
    for i, piece in enumerate(_LINK.split(text)):
        if i % 2 == 0:
            out.append(_marks(str(escape(html.unescape(piece)))))
            continue
        url, _, label = piece[1:-1].partition("|")
        url = html.unescape(url)
        shown = _marks(str(escape(html.unescape(label or url))))
        if _SAFE_URL.match(url):
            out.append(f'<a href="{escape(url)}" rel="noopener noreferrer">{shown}</a>')
        else:
            out.append(shown)
    return "".join(out)


def mrkdwn_html(text: str) -> Markup:
    """Slack mrkdwn as HTML, close to how Slack shows it: code blocks, quotes, emphasis,
    links. Every piece of text is escaped; only our own tags are added."""
    parts = []
    for i, chunk in enumerate(text.split("```")):
        if i % 2 == 1:
            parts.append(f"<pre>{escape(html.unescape(chunk.strip(chr(10))))}</pre>")
            continue
        lines = []
        for line in chunk.split("\n"):
            quoted = re.match(r"(>|&gt;) ?", line)
            if quoted:
                lines.append(f'<span class="quote">{_line(line[quoted.end() :])}</span>')
            else:
                lines.append(_line(line))
        parts.append("<br>".join(lines))
    return Markup("".join(parts))


def slack_html(blocks: list[dict[str, Any]]) -> Markup:
    """The Block Kit blocks Cadence posts, drawn as a Slack message."""
    out = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            out.append(f'<p class="sk-header">{escape(block["text"]["text"])}</p>')
        elif kind == "section":
            out.append(f'<div class="sk-section">{mrkdwn_html(block["text"]["text"])}</div>')
        elif kind == "context":
            texts = [mrkdwn_html(e.get("text", "")) for e in block.get("elements", [])]
            out.append(f'<div class="sk-context">{"".join(texts)}</div>')
        elif kind == "actions":
            buttons = [
                f'<span class="sk-button{" primary" if e.get("style") == "primary" else ""}">'
                f"{escape(e['text']['text'])}</span>"
                for e in block.get("elements", [])
            ]
            out.append(f'<div class="sk-actions">{"".join(buttons)}</div>')
    return Markup("".join(out))

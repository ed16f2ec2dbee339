"""A delivery as an email: subject, plain-text part and HTML part.

The HTML body is markdown-it's output (raw HTML in the message already escaped) inserted as
`Markup`; the title and the leader's note are autoescaped by the template. Styles are
inlined because many mail clients drop `<style>` blocks.
"""

from __future__ import annotations

import functools

import css_inline
from markupsafe import Markup

from cadence.delivery.channels.base import Outgoing
from cadence.messages.markdown import to_html_and_text
from cadence.rendering import render


@functools.lru_cache(maxsize=1)
def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(load_remote_stylesheets=False)


def subject_line(title: str) -> str:
    """A header must be one line; a title pasted with line breaks is joined up."""
    return " ".join(render("email/subject.txt", title=title).split())


def email_parts(out: Outgoing) -> tuple[str, str, str]:
    """(subject, text body, HTML body) for one delivery; both bodies carry the ack link."""
    note = (out.leader_note or "").strip()
    title = " ".join(out.title.split())
    body_html, body_text = to_html_and_text(out.body)
    text = render(
        "email/body.txt",
        title=title,
        leader_note=note,
        body=body_text,
        ack_url=out.ack_url,
        answerable=out.answerable,
    )
    page = render(
        "email/body.html",
        title=title,
        leader_note=note,
        body=Markup(body_html),
        ack_url=out.ack_url,
        answerable=out.answerable,
    )
    return subject_line(out.title), text + "\n", _inliner().inline(page)

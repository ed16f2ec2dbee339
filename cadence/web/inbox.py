"""The demo's inbox preview: what each person received, as Slack and email would show it,
with buttons that acknowledge for real so the dashboard moves as you click.

It shows everyone's messages without signing in, so it exists only when
`CADENCE_DEMO_INBOX` is on (`cadence demo` turns it on); otherwise every route is 404.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from cadence.answers.acks import make_answer, record_answer
from cadence.delivery.formatting.email import email_parts
from cadence.delivery.formatting.slack import slack_message
from cadence.delivery.sending import SendPolicy, prepare
from cadence.errors import InputError
from cadence.rendering import render
from cadence.store.db import session_scope
from cadence.store.models import Delivery, DeliveryStatus, Occurrence, Person
from cadence.web.ack_pages import SECURITY_HEADERS, origin_of
from cadence.web.deps import WebDeps

_LINK = re.compile(r"&lt;(https?://[^|&]+?|mailto:[^|&]+?)\|(.+?)&gt;")


def mrkdwn_html(text: str) -> str:
    """Slack mrkdwn as HTML, close enough to how Slack shows it for a preview."""
    out = html.escape(html.unescape(text))
    out = _LINK.sub(lambda m: f'<a href="{m.group(1)}">{m.group(2)}</a>', out)
    out = re.sub(r"(?<![\w*])\*(\S[^*\n]*?)\*(?![\w*])", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![\w_])_(\S[^_\n]*?)_(?![\w_])", r"<em>\1</em>", out)
    out = re.sub(r"(?<![\w~])~(\S[^~\n]*?)~(?![\w~])", r"<s>\1</s>", out)
    out = re.sub(r"`([^`\n]+)`", r"<code>\1</code>", out)
    return out.replace("\n", "<br>")


def _check(secret: str, delivery_id: int) -> str:
    return hmac.new(secret.encode(), f"inbox:{delivery_id}".encode(), hashlib.sha256).hexdigest()


def router(deps: WebDeps) -> APIRouter:
    api = APIRouter(include_in_schema=False)
    settings = deps.settings
    secret = settings.secret_key.get_secret_value()
    policy = SendPolicy(settings.timezone, secret, settings.base_url)

    def enabled() -> None:
        # Never in production, even if the start-up check was bypassed (an app built
        # straight from its settings).
        if not settings.demo_inbox or settings.env == "production":
            raise HTTPException(status_code=404)

    def page(template: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(render(template, **context), headers=SECURITY_HEADERS)

    @api.get("/inbox", response_class=HTMLResponse)
    def people() -> HTMLResponse:
        enabled()
        with session_scope(deps.sessions) as session:
            rows = session.execute(
                select(Person.email, Person.name, Person.timezone)
                .where(Person.active.is_(True))
                .order_by(Person.name)
            ).all()
            counts = dict(
                session.execute(
                    select(Delivery.person_id, Person.email)
                    .join(Person, Delivery.person_id == Person.id)
                    .where(Delivery.status == DeliveryStatus.SENT.value)
                ).all()
            )
            received: dict[str, int] = {}
            for email in counts.values():
                received[email] = received.get(email, 0) + 1
        return page("web/inbox/people.html", people=rows, received=received)

    @api.get("/inbox/{email}", response_class=HTMLResponse)
    def inbox(email: str) -> HTMLResponse:
        enabled()
        with session_scope(deps.sessions) as session:
            person = session.scalar(select(Person).where(Person.email == email.lower()))
            if person is None:
                raise HTTPException(status_code=404)
            deliveries = session.scalars(
                select(Delivery)
                .where(
                    Delivery.person_id == person.id, Delivery.status == DeliveryStatus.SENT.value
                )
                .options(joinedload(Delivery.occurrence).joinedload(Occurrence.message))
                .order_by(Delivery.sent_at.desc())
                .limit(50)
            ).all()
            items = []
            for delivery in deliveries:
                out = prepare(delivery, policy, session)
                _, blocks = slack_message(out)
                subject, _, email_html = email_parts(out)
                items.append(
                    {
                        "id": delivery.id,
                        "channel": delivery.channel,
                        "sent_at": delivery.sent_at,
                        "answered": delivery.acknowledged_at is not None,
                        "answerable": out.answerable,
                        "blocks": blocks,
                        "subject": subject,
                        "email_html": email_html,
                        "check": _check(secret, delivery.id),
                    }
                )
            name, zone_name = person.name, person.timezone or settings.timezone
        return page("web/inbox/person.html", name=name, email=email, zone=zone_name,
                    items=items, mrkdwn=mrkdwn_html)  # fmt: skip

    @api.post("/inbox/{email}/answer")
    def answer(
        request: Request,
        email: str,
        delivery_id: Annotated[int, Form()],
        kind: Annotated[str, Form()],
        check: Annotated[str, Form()],
        question: Annotated[str, Form()] = "",
    ) -> RedirectResponse:
        enabled()
        origin = request.headers.get("origin")
        if origin not in (None, "null") and origin != origin_of(settings.base_url):
            raise HTTPException(status_code=403, detail="cross-site request refused")
        if not hmac.compare_digest(check, _check(secret, delivery_id)):
            raise HTTPException(status_code=403, detail="form check failed")
        with session_scope(deps.sessions) as session:
            delivery = session.get(Delivery, delivery_id)
            if delivery is None:
                raise HTTPException(status_code=404)
            try:
                record_answer(
                    session,
                    delivery_id,
                    make_answer(kind, question or None),
                    via="web",
                    now=deps.clock(),
                    person_id=delivery.person_id,
                )
            except InputError as exc:
                raise HTTPException(status_code=400, detail=str(exc)) from None
        return RedirectResponse(f"/inbox/{email}", status_code=303)

    return api

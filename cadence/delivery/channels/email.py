"""Email over SMTP: multipart text and HTML, one connection per batch.

`CADENCE_SMTP_URL` is `smtp://[user:password@]host[:port]` (STARTTLS when the server offers
it), or `smtps://...` (TLS from the start). Query options: `starttls=require` refuses to send
without STARTTLS, `starttls=off` never upgrades, `verify=0` accepts a self-signed certificate,
`timeout=SECONDS`.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from cadence.delivery.channels.base import Outcome, Outgoing, backoff
from cadence.delivery.formatting.email import email_parts
from cadence.errors import CadenceError

MAILER = "Cadence"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    # Kept out of the repr, so a logged or printed config does not show it.
    password: str | None = field(default=None, repr=False)
    implicit_tls: bool = False
    starttls: str = "auto"  # auto, require or off
    verify: bool = True
    timeout: float = 30.0


def parse_smtp_url(url: str) -> SmtpConfig:
    """Read CADENCE_SMTP_URL, naming whatever is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        # Only the scheme is named: the rest of the URL may hold the password.
        given = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise CadenceError(f"CADENCE_SMTP_URL must start with smtp:// or smtps://, not {given}")
    if not parts.hostname:
        raise CadenceError("CADENCE_SMTP_URL has no host")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    starttls = query.get("starttls", "auto").lower()
    if starttls in ("1", "true", "yes"):
        starttls = "require"
    if starttls in ("0", "false", "no"):
        starttls = "off"
    if starttls not in ("auto", "require", "off"):
        raise CadenceError("CADENCE_SMTP_URL: starttls must be auto, require or off")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 587)
        timeout = float(query.get("timeout", "30"))
    except ValueError as exc:
        raise CadenceError(f"CADENCE_SMTP_URL: {exc}") from None
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=parts.scheme == "smtps",
        starttls=starttls,
        verify=query.get("verify", "1") not in ("0", "false", "no"),
        timeout=timeout,
    )


def build_email(item: Outgoing, sender: str) -> EmailMessage:
    """The message for one delivery. Its Message-ID comes from the delivery, so a retry is
    recognisably the same message."""
    subject, text, html = email_parts(item)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "cadence.invalid"
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = formataddr((item.recipient.name, item.recipient.email))
    if item.reply_to is not None:
        msg["Reply-To"] = formataddr(item.reply_to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<delivery-{item.delivery_id}@{domain}>"
    msg["X-Mailer"] = MAILER
    msg["X-Cadence-Delivery"] = str(item.delivery_id)
    # Internal announcements should not trigger out-of-office replies.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


class EmailChannel:
    name = "email"

    def __init__(self, config: SmtpConfig, sender: str) -> None:
        self.config = config
        self.sender = sender
        self.envelope_from = parseaddr(sender)[1]

    def connect(self) -> smtplib.SMTP:
        """An SMTP connection, upgraded to TLS and logged in as the URL says."""
        cfg = self.config
        context = ssl.create_default_context()
        if not cfg.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        smtp: smtplib.SMTP
        if cfg.implicit_tls:
            smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=context)
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        try:
            smtp.ehlo()
            if not cfg.implicit_tls and cfg.starttls != "off":
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                elif cfg.starttls == "require":
                    raise smtplib.SMTPNotSupportedError("server does not offer STARTTLS")
            if cfg.username:
                smtp.login(cfg.username, cfg.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, batch: Sequence[Outgoing]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        pending = list(batch)
        reconnects = 0
        while pending:
            try:
                smtp = self.connect()
            except smtplib.SMTPAuthenticationError as exc:
                reason = f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)}"
                return outcomes + [Outcome.failed(i.delivery_id, reason) for i in pending]
            except (smtplib.SMTPException, OSError) as exc:
                reason = f"cannot reach SMTP server: {type(exc).__name__} {exc}"
                return outcomes + [
                    Outcome.retry(i.delivery_id, backoff(i.attempt), reason) for i in pending
                ]
            try:
                while pending:
                    item = pending[0]
                    try:
                        outcomes.append(self._send_one(smtp, item))
                    except (smtplib.SMTPServerDisconnected, OSError) as exc:
                        # The connection dropped: this one may or may not have gone; retry it
                        # later, and reconnect once for the rest of the batch.
                        pending.pop(0)
                        outcomes.append(
                            Outcome.retry(
                                item.delivery_id, backoff(item.attempt), f"connection lost: {exc}"
                            )
                        )
                        break
                    pending.pop(0)
            finally:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()
            reconnects += 1
            if pending and reconnects > 1:
                # The rest were never tried: they wait for the next batch, keeping their
                # attempts.
                reason = "SMTP connection lost twice in one batch"
                return outcomes + [Outcome.defer(i.delivery_id, 5.0, reason) for i in pending]
        return outcomes

    def _send_one(self, smtp: smtplib.SMTP, item: Outgoing) -> Outcome:
        msg = build_email(item, self.sender)
        try:
            smtp.send_message(msg, self.envelope_from, [item.recipient.email])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return _by_code(item, code, text, recipient=True)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            return _by_code(item, exc.smtp_code, exc.smtp_error, recipient=False)
        except smtplib.SMTPResponseException as exc:
            return _by_code(item, exc.smtp_code, exc.smtp_error, recipient=False)
        return Outcome.sent(item.delivery_id, str(msg["Message-ID"]))


def _by_code(item: Outgoing, code: int, text: bytes | str, *, recipient: bool) -> Outcome:
    reason = f"SMTP {code} {_text(text)}"
    if 400 <= code < 500:
        return Outcome.retry(item.delivery_id, backoff(item.attempt), reason)
    # A refused recipient is about the person; any other refusal is about the message.
    return Outcome.failed(item.delivery_id, reason, unreachable=recipient)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

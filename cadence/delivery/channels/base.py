"""The one small interface every channel implements.

A channel gets a batch of rendered deliveries and answers, for each, sent (with the
provider's id), retry later (with a delay), or failed for good (with a reason). The worker
records the answers; a channel never touches the database.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True)
class Recipient:
    person_id: int
    email: str
    name: str
    slack_user_id: str | None
    timezone: str


@dataclass(frozen=True)
class Outgoing:
    """One delivery, personalised and ready for a channel to put in its own format.

    `body` is Markdown with the person's details already filled in; each channel turns it
    into what it sends (mrkdwn blocks, an HTML and text email, a log line).
    """

    delivery_id: int
    recipient: Recipient
    title: str
    body: str
    ack_url: str
    leader_note: str | None = None
    attempt: int = 1
    # A previous attempt was cut off mid-send (a worker died, an answer never came): it may
    # have gone out already, so a channel that can check should look before sending again.
    maybe_sent: bool = False
    # When the delivery was written: nothing of it can be found in a history before then.
    written_at: datetime | None = None
    # False for what is only information (a manager's digest): no buttons, no ack link.
    answerable: bool = True
    # (name, address) replies should go to, when not to the sender (a forwarded question).
    reply_to: tuple[str, str] | None = None
    # A leader's briefing: offer "Add a note for my team" (a Slack button; the email's
    # acknowledgement page has the form).
    team_note: bool = False


class OutcomeKind(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """A channel's answer for one delivery.

    `unreachable` marks a failure that is about the person (no account, deactivated), after
    which another channel may still reach them. `slack_user_id` reports an id the channel
    looked up, so it is stored and never looked up again.

    A retry is either `deferred` (nothing was attempted: a rate limit, a pause, pacing that
    could not be reached; it keeps its attempt count) or a failed attempt, which counts
    towards the limit; `maybe_sent` says the attempt may have reached the person (the request
    went out and no answer came), so the next one checks before posting.
    """

    delivery_id: int
    kind: OutcomeKind
    provider_id: str | None = None
    provider_channel: str | None = None
    retry_after: float | None = None
    reason: str | None = None
    unreachable: bool = False
    slack_user_id: str | None = None
    # What was sent, when the channel's own rendering is worth keeping (the log channel's).
    rendered: str | None = None
    deferred: bool = False
    maybe_sent: bool = False

    @classmethod
    def sent(
        cls,
        delivery_id: int,
        provider_id: str,
        provider_channel: str | None = None,
        slack_user_id: str | None = None,
    ) -> Outcome:
        return cls(
            delivery_id,
            OutcomeKind.SENT,
            provider_id=provider_id,
            provider_channel=provider_channel,
            slack_user_id=slack_user_id,
        )

    @classmethod
    def retry(
        cls, delivery_id: int, after: float, reason: str, *, maybe_sent: bool = False
    ) -> Outcome:
        """A failed attempt, tried again after `after` seconds."""
        return cls(
            delivery_id,
            OutcomeKind.RETRY,
            retry_after=max(0.0, after),
            reason=reason,
            maybe_sent=maybe_sent,
        )

    @classmethod
    def defer(cls, delivery_id: int, after: float, reason: str) -> Outcome:
        """Not attempted (waiting for a limit): try again after `after` seconds."""
        return cls(
            delivery_id,
            OutcomeKind.RETRY,
            retry_after=max(0.0, after),
            reason=reason,
            deferred=True,
        )

    @classmethod
    def failed(cls, delivery_id: int, reason: str, unreachable: bool = False) -> Outcome:
        return cls(delivery_id, OutcomeKind.FAILED, reason=reason, unreachable=unreachable)


class Channel(Protocol):
    name: str

    def send(self, batch: Sequence[Outgoing]) -> list[Outcome]:
        """Send every delivery in `batch`; one outcome per delivery, in any order."""
        ...


def backoff(attempt: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Seconds to wait before attempt `attempt + 1`: doubling from `base`, capped, with
    jitter so that a batch that failed together does not retry in lockstep."""
    delay: float = min(cap, base * 2.0 ** max(0, attempt - 1))
    return delay * random.uniform(0.8, 1.2)

"""The one small interface every channel implements.

A channel gets a batch of rendered deliveries and answers, for each, sent (with the
provider's id), retry later (with a delay), or failed for good (with a reason). The worker
records the answers; a channel never touches the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str
    slack_user_id: str | None
    timezone: str


@dataclass(frozen=True)
class Outgoing:
    """One delivery, rendered and ready to go."""

    delivery_id: int
    recipient: Recipient
    subject: str
    text: str


class OutcomeKind(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    kind: OutcomeKind
    provider_id: str | None = None
    retry_after: float | None = None
    reason: str | None = None

    @classmethod
    def sent(cls, delivery_id: int, provider_id: str) -> Outcome:
        return cls(delivery_id, OutcomeKind.SENT, provider_id=provider_id)

    @classmethod
    def retry(cls, delivery_id: int, after: float, reason: str) -> Outcome:
        return cls(delivery_id, OutcomeKind.RETRY, retry_after=after, reason=reason)

    @classmethod
    def failed(cls, delivery_id: int, reason: str) -> Outcome:
        return cls(delivery_id, OutcomeKind.FAILED, reason=reason)


class Channel(Protocol):
    name: str

    def send(self, batch: Sequence[Outgoing]) -> list[Outcome]:
        """Send every delivery in `batch`; one outcome per delivery, in any order."""
        ...

"""The tables. The database is the source of truth; Redis only carries work."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cadence.store.types import UTCDateTime


class Base(DeclarativeBase):
    pass


class MessageKind(enum.StrEnum):
    CORE = "core"
    LAUNCH = "launch"
    UPDATE = "update"


class MessageStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    # Queued by a leader where comms requires approval: nothing is planned until approved.
    AWAITING_APPROVAL = "awaiting_approval"
    # Saved from the compose page to finish later: never planned (the planner plans only
    # `active`), and its author may still change anything in it.
    DRAFT = "draft"


class OccurrenceStatus(enum.StrEnum):
    PLANNED = "planned"  # waiting for its due time
    DISPATCHING = "dispatching"  # claimed by a tick; deliveries being written
    DISPATCHED = "dispatched"  # every delivery written and queued
    SKIPPED = "skipped"  # fell due while its message was paused, or too late to send
    CANCELLED = "cancelled"  # withdrawn before it fell due


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # written, not yet handed to the broker
    QUEUED = "queued"  # handed to the broker in a send task
    SENDING = "sending"  # a worker took it and is talking to the channel
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Team(Base):
    """A label for targeting and reporting. `path` is the full name, e.g. ``Support/EMEA``."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))


class Person(Base):
    """A member of staff. Never deleted: leaving staff are deactivated to keep history."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    slack_user_id: Mapped[str | None] = mapped_column(String(32))
    timezone: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    team: Mapped[Team | None] = relationship()
    manager: Mapped[Person | None] = relationship(remote_side=[id])


class Message(Base):
    """What is said. `audience` is a JSON object; see cadence.directory.audience for its shape."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default=MessageKind.CORE.value)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32), default=MessageStatus.ACTIVE.value)
    # Why it was rejected or withdrawn, when someone said.
    status_note: Mapped[str | None] = mapped_column(Text)
    audience: Mapped[dict[str, Any]] = mapped_column(JSON)
    channels: Mapped[list[str]] = mapped_column(JSON)
    # "first": each person on one channel (their own if allowed, else the first), with the
    # others as fallbacks. "all": everyone on every channel in `channels`.
    channel_mode: Mapped[str] = mapped_column(String(8), default="first", server_default="first")
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Acknowledgements of versions before this one no longer count (a material edit that
    # a comms user asked people to acknowledge again).
    ack_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Reminders: after this many hours without an answer (NULL: the default; 0: never), at
    # most `max_reminders` times, then one digest to each manager (`escalate`).
    remind_after_hours: Mapped[float | None] = mapped_column(Float)
    max_reminders: Mapped[int | None] = mapped_column(Integer)
    escalate: Mapped[bool | None] = mapped_column(Boolean)
    # Who queued it (a dashboard or API user), and who approved it when approval was needed.
    created_by_id: Mapped[int | None] = mapped_column(Integer)
    approved_by_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # What went wrong the last time it was planned, dispatched or rendered (a rule that
    # raises, a template that fails): the rest of the organisation goes on without it, and
    # this tells its owner why it is not being sent. Cleared by an edit.
    attention: Mapped[str | None] = mapped_column(Text)
    attention_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    variants: Mapped[list[Variant]] = relationship(
        order_by="Variant.position", cascade="all, delete-orphan"
    )
    cadence: Mapped[Cadence | None] = relationship(
        uselist=False, cascade="all, delete-orphan", back_populates="message"
    )

    def wordings(self) -> list[str]:
        """The body followed by every extra variant: repetition k uses wordings[k % n]."""
        return [self.body, *(v.body for v in self.variants)]


class Variant(Base):
    """An extra wording of a message; repetitions rotate through body, variant 1, 2, ..."""

    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("message_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)


class Cadence(Base):
    """When a core message repeats: an RRULE from a local start, in each recipient's zone
    (`timezone` NULL) or a fixed one. `planned_until` is runtime state, not definition."""

    __tablename__ = "cadences"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    rrule: Mapped[str] = mapped_column(Text)
    start_local: Mapped[datetime] = mapped_column()  # naive wall-clock DTSTART
    end_date: Mapped[date | None] = mapped_column(Date)  # last local day, inclusive
    timezone: Mapped[str | None] = mapped_column(String(64))
    planned_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    message: Mapped[Message] = relationship(back_populates="cadence")


class Occurrence(Base):
    """One planned send of a message. For a cadence in recipients' own zones there is one
    occurrence per recurrence and zone, since each zone falls due at its own instant."""

    __tablename__ = "occurrences"
    __table_args__ = (
        UniqueConstraint(
            "message_id",
            "purpose",
            "sequence",
            "zone",
            "follow_up",
            name="uq_occurrences_message_purpose_sequence_zone_follow_up",
        ),
        Index("ix_occurrences_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    # "cadence" for a planned repetition, "test" for `cadence send-test` (kept out of
    # figures), "reminder" and "escalation" for the follow-ups of an unanswered occurrence.
    purpose: Mapped[str] = mapped_column(String(16), default="cadence", server_default="cadence")
    # For a reminder or escalation: the occurrence it follows up, and which follow-up it is.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("occurrences.id"), index=True)
    follow_up: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sequence: Mapped[int] = mapped_column(Integer)  # repetition number, from 0
    zone: Mapped[str] = mapped_column(String(64))
    local_time: Mapped[datetime] = mapped_column()  # naive wall-clock time in `zone`
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=OccurrenceStatus.PLANNED.value)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    # People a leader's audience named who were outside the leader's reporting tree when
    # this occurrence was sent: left out, and counted here for comms.
    outside_tree: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    message: Mapped[Message] = relationship()


class Delivery(Base):
    """One occurrence to one person on one channel: the unit that is sent and retried."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("occurrence_id", "person_id", "channel"),
        Index("ix_deliveries_status_queued", "status", "queued_at"),
        Index("ix_deliveries_person", "person_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    channel: Mapped[str] = mapped_column(String(16))
    variant: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a worker last took it (status `sending`), and the earliest time to try again.
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_id: Mapped[str | None] = mapped_column(String(200))
    # Where the provider put it (the Slack DM channel), for updating the message later.
    provider_channel: Mapped[str | None] = mapped_column(String(64))
    # A worker died while sending it: it may have gone out, so check before resending.
    maybe_sent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Set on a delivery made because this person could not be reached on another channel.
    fallback_from_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))
    # Extra content of its own kind: a manager's digest lists who has not answered.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The message version this delivery showed (set when sent): answers are for it.
    content_version: Mapped[int | None] = mapped_column(Integer)
    # When an acknowledgement was last shown on the sent message (Slack's chat.update).
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rendered: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)

    occurrence: Mapped[Occurrence] = relationship()
    person: Mapped[Person] = relationship()


class Acknowledgement(Base):
    """A recipient's answer to a delivery: "ack" or "question", with an optional clarity.

    Every click is kept. The first answer of a person to an occurrence (for one version of
    the message) is the one that counts (`counted`); later ones are kept as repeats. The
    occurrence is the one planned from the cadence, whatever reminder the click came from.
    """

    __tablename__ = "acknowledgements"
    __table_args__ = (
        Index(
            "uq_acknowledgements_counted",
            "occurrence_id",
            "person_id",
            "message_version",
            unique=True,
            sqlite_where=text("counted"),
            postgresql_where=text("counted"),
        ),
        # An index on the occurrence alone would tempt planners into reading every answer
        # to an occurrence for each delivery; this one finds the person's own.
        Index("ix_acknowledgements_occurrence_person", "occurrence_id", "person_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    # Looked up by (occurrence, person): see ix_acknowledgements_occurrence_person.
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "ack" or "question"
    question: Mapped[str | None] = mapped_column(Text)
    clarity: Mapped[int | None] = mapped_column(Integer)
    message_version: Mapped[int] = mapped_column(Integer, default=1)
    via: Mapped[str] = mapped_column(String(16))
    counted: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Launch(Base):
    """What a launch message adds: when customers hear of it, what they will be told, and
    how much time staff and their leaders get before that."""

    __tablename__ = "launches"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    customer_at: Mapped[datetime] = mapped_column(UTCDateTime)
    customer_zone: Mapped[str] = mapped_column(String(64))
    customer_copy: Mapped[str] = mapped_column(Text)
    talking_points: Mapped[str | None] = mapped_column(Text)
    faq: Mapped[str | None] = mapped_column(Text)
    lead_hours: Mapped[float] = mapped_column(Float, default=24.0)
    # NULL: one working day per level of the reporting tree.
    leader_lead_hours: Mapped[float | None] = mapped_column(Float)
    margin_minutes: Mapped[float] = mapped_column(Float, default=60.0)
    # The moment the timeline is planned from, so it stays put from tick to tick.
    planned_from: Mapped[datetime] = mapped_column(UTCDateTime)

    message: Mapped[Message] = relationship()


class LeaderNote(Base):
    """A leader's own words for their team, sent with their team's launch message."""

    __tablename__ = "leader_notes"
    __table_args__ = (UniqueConstraint("message_id", "leader_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    leader_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class User(Base):
    """Someone who signs in to the dashboard or the API: a comms user sees everything, a
    leader sees their own reporting tree (the person they are in the directory)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # "comms" or "leader"
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    person: Mapped[Person | None] = relationship()


class ApiToken(Base):
    """A bearer token for the HTTP API, stored only as a hash; it acts as its user."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    # "api": the whole API as its user; "calendar": only the user's iCalendar feed, for a
    # link a calendar app is given (URLs get logged and passed on).
    scope: Mapped[str] = mapped_column(String(20), default="api", server_default="api")

    user: Mapped[User] = relationship()


class UserSession(Base):
    """A signed-in browser. The cookie carries a random token; only its hash is stored, so
    signing out or changing a password ends the session on the server, not just in the
    browser that asked."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class OrgSetting(Base):
    """Settings comms users change at run time (e.g. whether leaders' messages need
    approval), as opposed to the deployment's environment variables."""

    __tablename__ = "org_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# ---------------------------------------------------------------------------------------
# Figure summaries: derived from deliveries and acknowledgements (cadence.figures.summaries keeps
# them current), so the figures read thousands of rows instead of millions.


class PersonOccurrence(Base):
    """One person's share of one send occurrence on one channel: the delivery on that
    channel, with the person-occurrence's own values beside it.

    Columns without a prefix are for the person-occurrence over all its channels (the
    same on each of its rows); `channel_` columns are for this channel alone. Exactly one
    row of a person-occurrence has `counts` = 1: the one that stands for it when channels
    are not told apart. An answer on any channel counts for every row. Times to acknowledge
    (`wait_s`) are bucketed (`wait_bucket`, see cadence.figures.summaries) so that percentiles
    read a histogram and then only the rows of one bucket.
    """

    __tablename__ = "person_occurrences"
    __table_args__ = (
        # A person's newest send of a message is the first row in this order.
        Index("ix_person_occurrences_person", "person_id", "message_id", "due_at", "occurrence_id"),
        # A percentile reads the rows of one bucket of the occurrences it covers.
        Index(
            "ix_person_occurrences_wait",
            "wait_bucket",
            "counts",
            "occurrence_id",
            "wait_s",
            "person_id",
        ),
        Index(
            "ix_person_occurrences_channel_wait",
            "channel_wait_bucket",
            "channel",
            "occurrence_id",
            "channel_wait_s",
            "person_id",
        ),
    )

    occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    # The occurrence's message and due time, copied so a person's sends of a message can
    # be read in order from one index.
    message_id: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    counts: Mapped[int] = mapped_column(Integer)
    planned: Mapped[int] = mapped_column(Integer)
    first_sent: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lateness_s: Mapped[float | None] = mapped_column(Float)
    wait_s: Mapped[float | None] = mapped_column(Float)
    wait_bucket: Mapped[int | None] = mapped_column(Integer)
    channel_planned: Mapped[int] = mapped_column(Integer)
    channel_first_sent: Mapped[datetime | None] = mapped_column(UTCDateTime)
    channel_lateness_s: Mapped[float | None] = mapped_column(Float)
    channel_wait_s: Mapped[float | None] = mapped_column(Float)
    channel_wait_bucket: Mapped[int | None] = mapped_column(Integer)
    # The first counted answer (any version), the newest version answered, whether any
    # answer was a question, the clarity ratings of counted answers, and the whole hours
    # from the due time to the first counted answer.
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_version: Mapped[int | None] = mapped_column(Integer)
    asked: Mapped[int] = mapped_column(Integer)
    promoters: Mapped[int] = mapped_column(Integer)
    detractors: Mapped[int] = mapped_column(Integer)
    rated: Mapped[int] = mapped_column(Integer)
    ack_hour: Mapped[int | None] = mapped_column(Integer)


class OccurrenceFigures(Base):
    """The sums of an occurrence's person-occurrences, for everyone (`team_id` and
    `manager_id` 0), on all channels (`channel` '': each person once) or on one; and, on
    all channels, for the people now in one team under one manager (-1: in no team, or
    with no manager). `on_time` uses the default tolerance."""

    __tablename__ = "occurrence_figures"

    occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    team_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    manager_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    planned: Mapped[int] = mapped_column(Integer)
    sent: Mapped[int] = mapped_column(Integer)
    acknowledged: Mapped[int] = mapped_column(Integer)
    asked: Mapped[int] = mapped_column(Integer)
    promoters: Mapped[int] = mapped_column(Integer)
    detractors: Mapped[int] = mapped_column(Integer)
    rated: Mapped[int] = mapped_column(Integer)
    scheduled: Mapped[int] = mapped_column(Integer)
    on_time: Mapped[int] = mapped_column(Integer)
    first_sent: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FigureHistogram(Base):
    """How many acknowledged person-occurrences of an occurrence fall in each bucket of a
    measure: "wait" (time to acknowledge, bucketed) or "hour" (hours from due to answer);
    the cells are those of OccurrenceFigures (a team and manager's have "wait" only)."""

    __tablename__ = "figure_histograms"

    occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    measure: Mapped[str] = mapped_column(String(8), primary_key=True)
    team_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    manager_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class FigureChange(Base):
    """A person-occurrence whose summary is out of date; with no person, a whole
    occurrence; with no occurrence, a person who moved team or manager (the cells of
    their occurrences). Database triggers on deliveries, acknowledgements, occurrences and
    people write these in the same transaction as the change, so no writer can forget;
    `taken` marks the rows the summary refresh in progress is working on."""

    __tablename__ = "figure_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int | None] = mapped_column(Integer)
    person_id: Mapped[int | None] = mapped_column(Integer)
    taken: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

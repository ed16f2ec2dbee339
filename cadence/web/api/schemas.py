"""The JSON API's request and response bodies, validated by pydantic."""

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from cadence.messages.calendar import MAX_EVENTS

# Enough for a hundred sends in each of fifty zones; a preview never needs more.
MAX_PREVIEW_SENDS = 5000
# Read as text and parsed by `cadence.inputs.parse_id`, so that anything that is not an id
# (too large, zero, negative, other scripts' digits) names no message: a 404, like an id
# that does not exist, rather than a schema error.
MessageId = Annotated[
    str,
    Path(
        description="The message's id, a whole number from 1 to 2147483647.",
        examples=["42"],
    ),
]

# ---------------------------------------------------------------------------------------
# Request and response bodies


class AudienceIn(BaseModel):
    """Who a message is for. Give `everyone`, or any mix of teams, people and trees."""

    model_config = ConfigDict(extra="forbid")

    everyone: bool = Field(
        False,
        description="All active staff. Comms users only; not combined with the others.",
        strict=True,
    )
    teams: list[str] = Field(
        default_factory=list,
        description="Team paths such as `Support/EMEA`; each includes its sub-teams.",
    )
    people: list[str] = Field(default_factory=list, description="People, by email.")
    trees: list[str] = Field(
        default_factory=list,
        description="Managers, by email: each with everyone below them, at every level.",
    )


class AudienceOut(AudienceIn):
    description: str = Field(description="The audience in words, as the CLI shows it.")


class MessageIn(BaseModel):
    """A core message: the same fields as `cadence message add`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Own the outcome",
                    "body": "We fix the customer's problem, not just the ticket.",
                    "variants": ["A closed ticket is not the goal; a solved problem is."],
                    "audience": {"teams": ["Support"]},
                    "rrule": "FREQ=WEEKLY;BYDAY=MO",
                    "start": "2026-03-02",
                    "at": "09:00",
                }
            ]
        },
    )

    title: str = Field(description="Short title, shown as the subject.")
    body: str = Field(
        description="Markdown body; a template that may use `{{ person.first_name }}` and the "
        "other fields the README lists, checked in Jinja2's sandbox."
    )
    variants: list[str] = Field(
        default_factory=list,
        description="More wordings: repetition 1 uses the body, 2 the first variant, and so on.",
    )
    audience: AudienceIn
    channels: list[str] = Field(
        default_factory=lambda: ["slack", "email"],
        description="Channels allowed, in order of preference (slack, email, log).",
    )
    all_channels: bool = Field(
        False,
        description="Send on every listed channel to everyone, not just one each.",
        strict=True,
    )
    rrule: str = Field(description="RFC 5545 RRULE, with or without `RRULE:`.")
    start: str = Field(
        description="First candidate (DTSTART): `YYYY-MM-DD` with `at`, or `YYYY-MM-DDTHH:MM`."
    )
    at: str | None = Field(None, description="Wall-clock time `HH:MM` when `start` is a date.")
    end: date | None = Field(None, description="Last day, inclusive.")
    tz: str = Field(
        "recipient",
        description="`recipient`: the wall-clock time in each person's own zone; or an IANA "
        "zone, for one instant for everyone.",
    )
    remind_after_hours: float | None = Field(
        None, description="Hours before reminding who has not acknowledged (0: never).", strict=True
    )
    max_reminders: int | None = Field(None, description="Reminders at most.", strict=True)
    escalate: bool | None = Field(
        None, description="After the last reminder, a digest to each manager.", strict=True
    )


class LaunchIn(BaseModel):
    """A launch: the same fields as `cadence launch add`."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="Short title.")
    body: str = Field(description="The staff message (Markdown template).")
    customer_copy: str = Field(description="What customers will be told; staff see it too.")
    customer_at: str = Field(description="When customers hear of it: `YYYY-MM-DDTHH:MM` in `tz`.")
    tz: str = Field(description="IANA zone of `customer_at`.")
    talking_points: str | None = Field(None, description="For leaders' briefings.")
    faq: str | None = Field(None, description="Questions people may ask, for leaders.")
    audience: AudienceIn
    channels: list[str] = Field(
        default_factory=lambda: ["slack", "email"], description="Channels, in order."
    )
    lead_hours: float = Field(
        24.0, description="Hours before customers everyone has it.", strict=True
    )
    leader_lead_hours: float | None = Field(
        None,
        description="Hours each leader gets before their people (default: a working day).",
        strict=True,
    )
    margin_minutes: float = Field(60.0, description="Safety margin, in minutes.", strict=True)


class CadenceOut(BaseModel):
    rrule: str
    start: str = Field(description="DTSTART as wall-clock time, `YYYY-MM-DDTHH:MM` (no offset).")
    end: date | None = Field(description="Last day, inclusive.")
    timezone: str = Field(description="`recipient` or a fixed IANA zone.")


class LaunchOut(BaseModel):
    customer_at: datetime = Field(description="When customers hear, in `customer_zone`.")
    customer_zone: str
    customer_copy: str
    talking_points: str | None
    faq: str | None
    lead_hours: float
    leader_lead_hours: float | None
    margin_minutes: float


class MessageOut(BaseModel):
    id: int
    kind: Literal["core", "launch", "update"]
    status: Literal["active", "paused", "cancelled", "awaiting_approval", "draft"] = Field(
        description="`awaiting_approval`: held for a comms user; `draft`: saved to finish "
        "later. Nothing is planned or sent for either."
    )
    title: str
    body: str
    variants: list[str]
    audience: AudienceOut
    channels: list[str]
    channel_mode: Literal["first", "all"]
    cadence: CadenceOut | None = Field(description="For core messages.")
    launch: LaunchOut | None = Field(description="For launches.")
    remind_after_hours: float | None
    max_reminders: int | None
    escalate: bool | None
    version: int
    outside_tree: int | None = Field(
        None,
        description="For comms users: people this leader's message left out when it was sent, "
        "because they were outside the leader's tree by then (null for leaders).",
    )
    created_by: str | None = Field(description="Email of the user who queued it.")
    approved_by: str | None = Field(description="Email of the comms user who approved it.")
    created_at: datetime
    updated_at: datetime


class PreviewSend(BaseModel):
    at: datetime = Field(description="When, in the zone's own time (with its UTC offset).")
    repetition: int = Field(description="1 for the first repetition.")
    variant: int = Field(description="Which wording: 0 is the body, 1 the first variant.")


class ZonePreview(BaseModel):
    zone: str = Field(description="The zone these sends are timed in.")
    recipients: int = Field(description="How many people are in it today.")
    named: list[str] = Field(description="The first few of them, by email.")
    sends: list[PreviewSend]


class PreviewOut(BaseModel):
    zones: list[ZonePreview] = Field(description="One entry per zone, with its next sends.")


class CalendarEvent(BaseModel):
    kind: Literal["send", "customer_announcement"] = Field(
        description="A repetition of a core message, or the moment customers hear of a launch."
    )
    message_id: int
    title: str
    at: datetime = Field(description="In the zone's own time (with its UTC offset).")
    zone: str
    repetition: int | None = Field(description="For sends: 1 for the first repetition.")
    recipients: int | None = Field(description="For sends: how many people, as of now.")
    audience: str


class CalendarOut(BaseModel):
    start: datetime
    end: datetime
    events: list[CalendarEvent]
    truncated: bool = Field(description=f"More than {MAX_EVENTS} events: the latest were left out.")


class ApprovalSetting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    require_approval_for_leaders: bool = Field(
        description="Hold messages and launches created by leaders until a comms user approves.",
        strict=True,
    )


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(description="Why, so the author knows what to change.")


class Problem(BaseModel):
    """Every error this API itself returns."""

    detail: str = Field(description="What went wrong, in one sentence.")
    problems: list[str] = Field(
        default_factory=list, description="One line per problem, all reported at once."
    )


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="Where in the request, e.g. body, title.")
    msg: str
    type: str


class ValidationFailure(BaseModel):
    """FastAPI's answer to a request that is not the right shape (before Cadence sees it)."""

    detail: list[ValidationIssue]

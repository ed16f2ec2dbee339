"""What a message's page shows, in the order a comms team reads its story: how it has
gone so far (each sent repetition, newest first, and how fast people answered), when it
goes out next in each zone, who has not answered yet, and for a core message how the
acknowledgement rate moves from one repetition to the next."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup

from cadence.figures.message_detail import TIMELINE_LIMIT
from cadence.web.charts import ack_curve_chart, trend_chart
from cadence.web.dashboard.tables import Column, Present, Table, _percent
from cadence.web.dashboard.views import TIMELINE_COLUMNS

# The sent repetitions have the columns the occurrence timeline always had.
SENT_COLUMNS = TIMELINE_COLUMNS
NEXT_COLUMNS = [
    Column("zone", "Zone"),
    Column("repetition", "Repetition", "count"),
    Column("next_local", "Next send, local time"),
    Column("due_at", "Next send, here", "time"),
    Column("more_planned", "Planned after it", "count"),
]
TREND_COLUMNS = [
    Column("repetition", "Repetition", "count"),
    Column("sent", "Sent", "count"),
    Column("acknowledged", "Acknowledged", "count"),
    Column("ack_rate", "Ack rate", "share"),
    Column("ack_median_s", "Median time to ack", "seconds"),
]


def wall_clock(moment: datetime) -> str:
    """A zone's own wall-clock time, as people write it: `Mon 7 Dec 2026, 09:00`."""
    return f"{moment:%a} {moment.day} {moment:%b %Y, %H:%M}"


@dataclass(frozen=True)
class NextSend:
    """When the message goes out next: the soonest send and in how many zones it is due."""

    when: str
    zone: str
    zones: int

    @property
    def text(self) -> str:
        others = f" (and in {self.zones - 1} more zones)" if self.zones > 1 else ""
        return f"{self.when} in {self.zone}{others}"


@dataclass(frozen=True)
class Story:
    sent_table: Table
    next_table: Table
    next_send: NextSend | None
    never_sent: bool
    curve: Markup | None
    curve_note: str
    trend: Markup | None
    trend_table: Table | None


def message_story(
    story: Mapping[str, list[dict[str, Any]]],
    curve: Sequence[tuple[float, float]],
    by_repetition: list[dict[str, Any]] | None,
    *,
    title: str,
    sent_so_far: int,
    present: Present,
    csv_for: Callable[[str], str],
    left_out: Column | None,
) -> Story:
    """The page's parts from the message's figures (`cadence.figures.message_detail`):
    `sent_so_far` is the number of people sent it in the slice, `by_repetition` the
    repetition breakdown for a core message (None otherwise)."""
    upcoming = [
        {**row, "next_local": wall_clock(row["local_time"])} for row in story["next_by_zone"]
    ]
    next_send = (
        NextSend(upcoming[0]["next_local"], upcoming[0]["zone"], len(upcoming))
        if upcoming
        else None
    )
    sent_table = Table(
        "occurrences",
        "Sent",
        SENT_COLUMNS if left_out is None else [*SENT_COLUMNS, left_out],
        story["sent"],
        present,
        csv_for("occurrences"),
        note=f"Each repetition sent, newest first (at most {TIMELINE_LIMIT}), one row per "
        "zone it fell due in. Planned, sent and acknowledged count people.",
        empty="Nothing has been sent in this period yet."
        + (f" Next send: {next_send.text}." if next_send else ""),
    )
    next_table = Table(
        "upcoming",
        "Coming up",
        NEXT_COLUMNS,
        upcoming,
        present,
        csv_for("upcoming"),
        note="The next send in each zone, in the zone's own time and in the dashboard's, "
        "and how many more are planned there after it.",
        empty="Nothing more is planned.",
    )
    curve_note = "share of those sent, by time since they were sent it"
    trend = trend_table = None
    if by_repetition is not None:
        done = [r for r in by_repetition if r["sent"]]
        trend_table = Table(
            "by_repetition",
            "Acknowledged, by repetition",
            TREND_COLUMNS,
            done,
            present,
            csv_for("by_repetition"),
            note="Every zone's sends of a repetition together.",
            empty="No repetition has been sent in this period yet.",
        )
        if len(done) > 1:
            trend = trend_chart(
                [str(r["repetition"]) for r in done],
                [r["ack_rate"] for r in done],
                description=f"Share acknowledged of each repetition of {title}",
            )
            first, last = done[0], done[-1]
            trend_table.note = (
                f"From {_percent(first['ack_rate'])} for repetition {first['repetition']} to "
                f"{_percent(last['ack_rate'])} for repetition {last['repetition']}. "
                + trend_table.note
            )
    return Story(
        sent_table=sent_table,
        next_table=next_table,
        next_send=next_send,
        never_sent=not sent_so_far,
        curve=ack_curve_chart(
            curve, description=f"Share of recipients who acknowledged {title}, over time"
        )
        if curve
        else None,
        curve_note=curve_note,
        trend=trend,
        trend_table=trend_table,
    )


__all__ = ["NextSend", "Story", "message_story", "wall_clock"]

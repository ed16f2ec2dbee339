"""Reminders for people who have not answered, then one digest to each of their managers.

Follow-ups are occurrences of their own kind ("reminder", "escalation"), planned when the
occurrence before them is dispatched, so they are claimed, paced, sent and measured like
any other send. Who gets one is decided when it falls due: by then an answer on any
channel has taken that person off the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cadence.errors import CadenceError
from cadence.planning.recurrence import place
from cadence.store.models import Message

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WorkingHours:
    start: time
    end: time
    days: frozenset[int]  # Monday is 0

    @classmethod
    def parse(cls, start: str, end: str, days: str) -> WorkingHours:
        try:
            begin, finish = time.fromisoformat(start), time.fromisoformat(end)
        except ValueError:
            raise CadenceError(f"working hours must be HH:MM, not {start!r}-{end!r}") from None
        if begin >= finish:
            raise CadenceError("working hours must start before they end")
        names = [d.strip().lower()[:3] for d in days.split(",") if d.strip()]
        unknown = [d for d in names if d not in DAY_NAMES]
        if unknown or not names:
            raise CadenceError(f"working days must be names like mon,tue: {days!r}")
        return cls(begin, finish, frozenset(DAY_NAMES.index(d) for d in names))

    def next_open(self, at: datetime, zone: ZoneInfo) -> datetime:
        """`at` if it falls in working hours in `zone`, else when they next begin there."""
        local = at.astimezone(zone)
        day: date = local.date()
        for offset in range(8):
            candidate = day + timedelta(days=offset)
            if candidate.weekday() not in self.days:
                continue
            opens = place(datetime.combine(candidate, self.start), zone)
            closes = place(datetime.combine(candidate, self.end), zone)
            if at < opens:
                return opens
            if at < closes:
                return at
        return at  # no working day in the week: send when due rather than never


@dataclass(frozen=True)
class FollowUpPolicy:
    remind_after: timedelta
    max_reminders: int
    escalate: bool

    @classmethod
    def of(cls, message: Message, hours: float, reminders: int, escalate: bool) -> FollowUpPolicy:
        """The message's own choices, or the defaults where it made none."""
        after = message.remind_after_hours if message.remind_after_hours is not None else hours
        count = message.max_reminders if message.max_reminders is not None else reminders
        up = message.escalate if message.escalate is not None else escalate
        return cls(timedelta(hours=after), count, up)


@dataclass(frozen=True)
class FollowUp:
    purpose: str  # "reminder" or "escalation"
    number: int  # 1 for the first reminder; the escalation comes after the last
    due_at: datetime


def next_follow_up(
    number_done: int,
    dispatched_at: datetime,
    policy: FollowUpPolicy,
    hours: WorkingHours,
    zone: ZoneInfo,
) -> FollowUp | None:
    """What follows follow-up `number_done` (0: the occurrence itself), if anything."""
    if policy.remind_after <= timedelta(0):
        return None
    due = hours.next_open(dispatched_at + policy.remind_after, zone)
    if number_done < policy.max_reminders:
        return FollowUp("reminder", number_done + 1, due)
    if number_done == policy.max_reminders and policy.escalate:
        return FollowUp("escalation", number_done + 1, due)
    return None

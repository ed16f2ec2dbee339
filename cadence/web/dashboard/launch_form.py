"""The launch composer's form: what was typed, checked the way `cadence launch add` checks it.

Each problem is kept with the field it is about, so the page shows it there and every
problem at once. The checks are the domain's (`cadence.launches.cascade`): this module only
turns form text into the values the CLI's options would have been, and says so in words
for fields the command line cannot leave empty. A launch's timeline is checked as soon as
its audience and times are good, whatever its words, so a composer sees the cascade while
still writing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

from cadence.access import policy
from cadence.access.users import Viewer
from cadence.directory.audience import Audience
from cadence.errors import InputError
from cadence.launches.cascade import (
    LaunchContext,
    LaunchSpec,
    channel_problems,
    check_timeline,
    content_problems,
    parse_customer_time,
    refusal,
    timing_problems,
)
from cadence.planning.launch_timeline import Timeline
from cadence.planning.recurrence import zone
from cadence.store.models import Person

# Field keys, in the order the form shows them, with the label each problem is listed under.
LABELS = {
    "title": "Title",
    "body": "Staff message",
    "customer_copy": "Customer copy",
    "talking_points": "Talking points",
    "faq": "FAQ",
    "audience": "Audience",
    "channels": "Channels",
    "customer_at": "Customer time",
    "tz": "Customer zone",
    "lead": "Lead",
    "leader_lead": "Leader lead",
    "margin": "Margin",
}
# What the timeline needs: until these are good it cannot be planned.
TIMING = ("audience", "customer_at", "tz", "lead", "leader_lead", "margin")
DEFAULT_CHANNELS = ("slack", "email")
_SEPARATORS = re.compile(r"[\s,;]+")


def _text(value: object) -> str:
    """A form value as text, with a browser's CRLF line ends as the CLI's LF."""
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


@dataclass
class LaunchForm:
    """The form as typed: text, so a refused form comes back exactly as it was sent."""

    title: str = ""
    body: str = ""
    customer_copy: str = ""
    customer_at: str = ""
    tz: str = ""
    talking_points: str = ""
    faq: str = ""
    everyone: bool = False
    teams: list[str] = field(default_factory=list)
    trees: list[str] = field(default_factory=list)
    people: str = ""
    lead: str = "24"
    leader_lead: str = ""
    margin: str = "60"
    channels: list[str] = field(default_factory=lambda: list(DEFAULT_CHANNELS))

    @classmethod
    def read(cls, data: Mapping[str, Sequence[object]]) -> LaunchForm:
        """From each field's values as sent; anything but text (a file) counts as empty."""

        def one(key: str) -> str:
            values = data.get(key) or [""]
            return _text(values[0])

        def many(key: str) -> list[str]:
            return [text for v in data.get(key, []) if (text := _text(v).strip())]

        return cls(
            title=one("title"),
            body=one("body"),
            customer_copy=one("customer_copy"),
            customer_at=one("customer_at").strip(),
            tz=one("tz").strip(),
            talking_points=one("talking_points"),
            faq=one("faq"),
            everyone=one("everyone") == "1",
            teams=many("teams"),
            trees=many("trees"),
            people=one("people"),
            lead=one("lead").strip(),
            leader_lead=one("leader_lead").strip(),
            margin=one("margin").strip(),
            channels=many("channels"),
        )

    @property
    def people_list(self) -> list[str]:
        return [p for p in _SEPARATORS.split(self.people) if p]


@dataclass
class Checked:
    """A form after checking: its problems by field, and its timeline when it has one."""

    errors: dict[str, list[str]] = field(default_factory=dict)
    spec: LaunchSpec | None = None  # the launch to store, when nothing is wrong with it
    timeline: Timeline | None = None
    refusal: InputError | None = None  # what `add_launch` would refuse the timeline with

    def add(self, key: str, line: str) -> None:
        self.errors.setdefault(key, []).append(line)

    @property
    def blocked(self) -> list[tuple[str, str]]:
        """(label, problem) of what keeps the timeline from being checked."""
        return [(LABELS[k], line) for k in TIMING for line in self.errors.get(k, [])]

    def summary(self, refused_on_submit: bool) -> list[tuple[str, str, str]]:
        """(field, label, problem) of every problem, in the form's order; a refused
        timeline counts as the customer time's problem, by its one-line summary."""
        items = [(k, LABELS[k], line) for k in LABELS for line in self.errors.get(k, [])]
        if refused_on_submit and self.refusal is not None:
            items.append(("customer_at", LABELS["customer_at"], self.refusal.summary))
        return items


def _number(checked: Checked, key: str, text: str, what: str, required: bool) -> float | None:
    if not text:
        if required:
            checked.add(key, f"{what} is empty: give a number")
        return None
    try:
        return float(text)
    except ValueError:
        checked.add(key, f"{what} {text!r} is not a number")
        return None


def _customer_time(checked: Checked, form: LaunchForm) -> datetime | None:
    tz_ok = True
    if not form.tz:
        checked.add("tz", "choose the zone the customer time is in")
        tz_ok = False
    else:
        try:
            zone(form.tz)
        except InputError as exc:
            checked.add("tz", exc.summary)
            tz_ok = False
    if not form.customer_at:
        checked.add("customer_at", "give the time customers hear of it")
        return None
    try:
        shape = datetime.fromisoformat(form.customer_at)
    except ValueError:
        shape = None
    if shape is None or shape.tzinfo is not None:
        checked.add(
            "customer_at",
            f"customer time {form.customer_at!r} is not a date and time: YYYY-MM-DDTHH:MM",
        )
        return None
    if not tz_ok:
        return None
    try:
        return parse_customer_time(form.customer_at, form.tz)
    except InputError as exc:
        checked.add("customer_at", exc.summary)
        return None


def _audience(
    checked: Checked, session: Session, viewer: Viewer, form: LaunchForm
) -> Audience | None:
    people = form.people_list
    if not (form.everyone or form.teams or form.trees or people):
        checked.add("audience", "choose who it is for: everyone, teams, trees or people")
        return None
    try:
        return policy.audience_for(
            session,
            viewer,
            everyone=form.everyone,
            teams=form.teams,
            people=people,
            trees=form.trees,
        )
    except InputError as exc:
        for line in exc.problems or [exc.summary]:
            checked.add("audience", line)
        return None


def check(
    session: Session,
    viewer: Viewer,
    form: LaunchForm,
    now: datetime,
    ctx: LaunchContext,
) -> Checked:
    """Every problem with the form at once, and the timeline `add_launch` would plan."""
    checked = Checked()
    for key, line in content_problems(
        form.title, form.body, form.customer_copy, form.talking_points, form.faq
    ):
        checked.add(key, line)
    if not form.channels:
        checked.add("channels", "choose at least one channel")
    for key, line in channel_problems(form.channels):
        checked.add(key, line)
    audience = _audience(checked, session, viewer, form)
    customer_at = _customer_time(checked, form)
    lead = _number(checked, "lead", form.lead, "lead", True)
    leader_lead = _number(checked, "leader_lead", form.leader_lead, "leader lead", False)
    margin = _number(checked, "margin", form.margin, "margin", True)
    # The times' own checks, each on what could be read: a value that could not stands
    # in as a harmless one, and what is said about it is left out (it has its problem).
    read = {"customer_at": customer_at, "lead": lead, "margin": margin}
    read["leader_lead"] = leader_lead if form.leader_lead else 0.0
    for key, line in timing_problems(
        customer_at or now + timedelta(days=1),
        now,
        0.0 if lead is None else lead,
        leader_lead,
        0.0 if margin is None else margin,
    ):
        if read[key] is not None:
            checked.add(key, line)
    if checked.blocked or audience is None or customer_at is None:
        return checked
    assert lead is not None and margin is not None
    spec = LaunchSpec(
        title=form.title, body=form.body, customer_copy=form.customer_copy,
        customer_at=customer_at, customer_zone=form.tz, audience=audience,
        channels=list(form.channels), talking_points=form.talking_points or None,
        faq=form.faq or None, lead_hours=lead, leader_lead_hours=leader_lead,
        margin_minutes=margin,
    )  # fmt: skip
    try:
        checked.timeline = check_timeline(session, spec, now, ctx)
    except InputError as exc:  # the directory holds something the plan cannot use
        for line in exc.problems or [exc.summary]:
            checked.add("audience", line)
        return checked
    checked.refusal = refusal(checked.timeline)
    if not checked.errors:
        checked.spec = spec
    return checked


@dataclass(frozen=True)
class AudienceChoices:
    """What the audience picker offers this viewer: only what they may target."""

    everyone: bool
    teams: list[str]
    trees: list[tuple[str, str]]  # (email, "name (email)") of leaders


def audience_choices(session: Session, viewer: Viewer) -> AudienceChoices:
    """Comms: everyone, every team and every leader. A leader: the teams wholly inside
    their tree (a team reaching beyond it would be refused) and the leaders in it."""
    comms = policy.sees_everything(viewer)
    teams = policy.visible_teams(session, viewer)
    if not comms:
        teams = [t for t in teams if not policy.outside(session, viewer, Audience(teams=(t,)))]
    report = aliased(Person)
    stmt = (
        select(Person.email, Person.name)
        .where(
            Person.active.is_(True),
            exists().where(report.manager_id == Person.id, report.active.is_(True)),
        )
        .order_by(Person.name, Person.email)
    )
    within = policy.in_tree(viewer, Person.id)
    if within is not None:
        stmt = stmt.where(within)
    trees = [(email, f"{name} ({email})") for email, name in session.execute(stmt)]
    return AudienceChoices(everyone=comms, teams=teams, trees=trees)

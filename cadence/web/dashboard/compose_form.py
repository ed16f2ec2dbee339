"""The compose page's form: what was typed, kept as text so it can be shown again, and the
same definition the CLI builds from it, with every problem keyed by the field it is about.

The checks are the domain's (`cadence.messages.core.spec_problems`, `combine_start`, the
audience through `cadence.access.policy.audience_for`); this module only turns form fields
into their arguments and says which field each problem belongs to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from cadence.access import policy
from cadence.access.users import Viewer
from cadence.directory.audience import Audience
from cadence.errors import InputError
from cadence.inputs import is_digits, parse_day
from cadence.messages.core import CadenceSpec, CoreMessageSpec, combine_start, spec_problems
from cadence.store.models import Message

#: Wordings on the form, the body included: enough for a month of weekly repetitions.
MAX_WORDINGS = 6
DAYS = (
    ("MO", "Monday"),
    ("TU", "Tuesday"),
    ("WE", "Wednesday"),
    ("TH", "Thursday"),
    ("FR", "Friday"),
    ("SA", "Saturday"),
    ("SU", "Sunday"),
)
DAY_CODES = tuple(code for code, _ in DAYS)
WEEKDAYS = DAY_CODES[:5]
PRESETS = (
    ("weekdays", "Every weekday"),
    ("weekly", "Weekly on the days chosen"),
    ("monthly", "The first chosen weekday of each month"),
    ("every_n_weeks", "Every N weeks on the days chosen"),
    ("advanced", "Advanced: an RRULE of my own"),
)
PRESET_KEYS = tuple(key for key, _ in PRESETS)
# The log channel sends nobody anything: it is for trying a cadence out, as in the demo.
CHANNELS = (("slack", "Slack"), ("email", "Email"), ("log", "Log only (sends nobody anything)"))
_NAMES = re.compile(r"[\s,;]+")

Problems = dict[str, list[str]]
# The domain's lines name the CLI's options; on the form they name its fields instead.
_OPTION_WORDS = (
    ("audience: give --everyone, --team, --person or --tree", "choose who gets it"),
    ("--at HH:MM is required when --start is a date", "choose a time of day"),
    ("give the time either in --start or with --at, not both", "give the time of day once"),
    ("--remind-after must be", "remind after must be"),
    ("--max-reminders must be", "reminders at most must be"),
    ("--everyone", "everyone"),
)


def for_the_form(line: str) -> str:
    for option, words in _OPTION_WORDS:
        line = line.replace(option, words)
    return line


@dataclass
class ComposeForm:
    """The form as typed. `wordings[0]` is the body; the rest are its variants in order."""

    title: str = ""
    wordings: list[str] = field(default_factory=lambda: [""])
    everyone: bool = False
    teams: list[str] = field(default_factory=list)
    people: str = ""
    trees: str = ""
    channels: list[str] = field(default_factory=lambda: ["slack", "email"])
    channel_mode: str = "first"
    preset: str = "weekly"
    days: list[str] = field(default_factory=lambda: ["MO"])
    month_day: str = "MO"
    interval: str = "2"
    rrule: str = ""
    at: str = "09:00"
    zone_mode: str = "recipient"
    fixed_zone: str = ""
    start: str = ""
    end: str = ""
    remind_after: str = ""
    max_reminders: str = ""
    escalate: str = ""
    preview_person: str = ""
    preview_wording: int = 0
    draft_id: int | None = None

    @property
    def variants(self) -> list[str]:
        return self.wordings[1:]

    def rows(self) -> list[str]:
        """The wording boxes to show: what was written, plus an empty one to add another."""
        shown = list(self.wordings)
        if len(shown) < MAX_WORDINGS and (len(shown) == 1 or shown[-1].strip()):
            shown.append("")
        return shown


def _names(text: str) -> list[str]:
    return [name for name in _NAMES.split(text) if name]


def read_form(data: FormData) -> ComposeForm:
    """The posted fields, kept as typed; empty variant boxes are not wordings."""

    def one(name: str, default: str = "") -> str:
        value = data.get(name, default)
        return value if isinstance(value, str) else default

    def many(name: str) -> list[str]:
        return [v for v in data.getlist(name) if isinstance(v, str)]

    body, *variants = many("wording") or [""]
    wordings = [body, *(v for v in variants if v.strip())][:MAX_WORDINGS]
    try:
        shown = int(one("preview_wording", "0"))
    except ValueError:
        shown = 0
    draft = one("draft_id")
    return ComposeForm(
        title=one("title"),
        wordings=wordings,
        everyone=one("everyone") == "yes",
        teams=many("team"),
        people=one("people"),
        trees=one("trees"),
        channels=many("channel"),
        channel_mode=one("channel_mode", "first"),
        preset=one("preset", "weekly"),
        days=many("day"),
        month_day=one("month_day", "MO"),
        interval=one("interval"),
        rrule=one("rrule"),
        at=one("at"),
        zone_mode=one("zone_mode", "recipient"),
        fixed_zone=one("fixed_zone"),
        start=one("start"),
        end=one("end"),
        remind_after=one("remind_after"),
        max_reminders=one("max_reminders"),
        escalate=one("escalate"),
        preview_person=one("preview_person"),
        preview_wording=max(0, min(shown, len(wordings) - 1)),
        draft_id=int(draft) if is_digits(draft) and len(draft) < 10 else None,
    )


def apply_row_action(form: ComposeForm, op: str) -> bool:
    """Move a wording up or down, or remove it (`up:N`, `down:N`, `remove:N`), or make room
    for another (`add`), for the form without JavaScript; True when `op` was one of them."""
    if op == "add":
        return True  # the form always shows one empty box after the last wording
    verb, _, number = op.partition(":")
    if verb not in ("up", "down", "remove") or not is_digits(number):
        return False
    at, rows = int(number), form.wordings
    if verb == "remove" and 0 < at < len(rows):
        del rows[at]
    elif verb == "up" and 0 < at < len(rows):
        rows[at - 1], rows[at] = rows[at], rows[at - 1]
    elif verb == "down" and 0 <= at < len(rows) - 1:
        rows[at], rows[at + 1] = rows[at + 1], rows[at]
    form.preview_wording = min(form.preview_wording, len(rows) - 1)
    return True


def form_from_message(message: Message) -> ComposeForm:
    """A stored draft, as the form that wrote it."""
    audience = Audience.from_json(message.audience or {})
    form = ComposeForm(
        title=message.title,
        wordings=message.wordings(),
        everyone=audience.everyone,
        teams=list(audience.teams),
        people="\n".join(audience.people),
        trees="\n".join(audience.trees),
        channels=list(message.channels),
        channel_mode=message.channel_mode,
        remind_after=""
        if message.remind_after_hours is None
        else f"{message.remind_after_hours:g}",
        max_reminders=_shown(message.max_reminders),
        escalate={None: "", True: "yes", False: "no"}[message.escalate],
        draft_id=message.id,
    )
    cad = message.cadence
    if cad is not None:
        form.start = cad.start_local.date().isoformat()
        form.at = cad.start_local.strftime("%H:%M")
        form.end = cad.end_date.isoformat() if cad.end_date else ""
        form.zone_mode = "fixed" if cad.timezone else "recipient"
        form.fixed_zone = cad.timezone or ""
        _read_rule(form, cad.rrule)
    return form


def _shown(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _read_rule(form: ComposeForm, rule: str) -> None:
    """Show a stored rule as the preset that makes it, or as an advanced rule."""
    parts = dict(p.split("=", 1) for p in rule.split(";") if "=" in p)
    days = parts.get("BYDAY", "").split(",")
    simple = set(parts) <= {"FREQ", "BYDAY", "INTERVAL"} and all(d in DAY_CODES for d in days)
    if parts.get("FREQ") == "WEEKLY" and simple and "INTERVAL" not in parts:
        form.preset = "weekdays" if tuple(days) == WEEKDAYS else "weekly"
        form.days = days
    elif parts.get("FREQ") == "WEEKLY" and simple and is_digits(parts["INTERVAL"]):
        form.preset, form.days, form.interval = "every_n_weeks", days, parts["INTERVAL"]
    elif (
        set(parts) == {"FREQ", "BYDAY"} and parts["FREQ"] == "MONTHLY" and days[0][1:] in DAY_CODES
    ):
        if days[0][:1] == "1" and len(days) == 1:
            form.preset, form.month_day = "monthly", days[0][1:]
        else:
            form.preset, form.rrule = "advanced", rule
    else:
        form.preset, form.rrule = "advanced", rule


def rule_of(form: ComposeForm, problems: Problems) -> str:
    """The RRULE the chosen preset stands for (problems go under `days`, `interval`)."""
    days = [d for d in DAY_CODES if d in form.days]
    if form.preset not in PRESET_KEYS:
        problems.setdefault("rrule", []).append(f"unknown repeat choice {form.preset!r}")
        return ""
    if form.preset == "advanced":
        return form.rrule
    if form.preset == "weekdays":
        return "FREQ=WEEKLY;BYDAY=" + ",".join(WEEKDAYS)
    if form.preset == "monthly":
        day = form.month_day if form.month_day in DAY_CODES else "MO"
        return f"FREQ=MONTHLY;BYDAY=1{day}"
    if not days:
        problems.setdefault("days", []).append("choose at least one day of the week")
    if form.preset == "weekly":
        return "FREQ=WEEKLY;BYDAY=" + ",".join(days or ["MO"])
    interval = form.interval.strip()
    if not is_digits(interval) or not 1 <= int(interval) <= 52:
        problems.setdefault("interval", []).append("every N weeks: N must be from 1 to 52")
        interval = "2"
    return f"FREQ=WEEKLY;INTERVAL={int(interval)};BYDAY=" + ",".join(days or ["MO"])


def _number(text: str, kind: type[float] | type[int], key: str, problems: Problems) -> float | None:
    raw = text.strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        what = "a number of hours" if kind is float else "a whole number"
        problems.setdefault(key, []).append(f"{raw!r} is not {what}")
        return None


def build_spec(
    session: Session, viewer: Viewer, form: ComposeForm, today: date
) -> tuple[CoreMessageSpec, Audience | None, Problems]:
    """The definition and every problem with it, each under its field. The audience is None
    when it was refused (its problem is under `audience`). Nothing is stored."""
    problems: Problems = {}

    def add(key: str, lines: list[str]) -> None:
        problems.setdefault(key, []).extend(for_the_form(line) for line in lines)

    rule = rule_of(form, problems)
    start_known = True
    try:
        start = combine_start(form.start, form.at or None)
    except InputError as exc:
        text = str(exc)
        add("at" if "--at" in text or text.startswith("bad time") else "start", [text])
        start, start_known = datetime.combine(today, datetime.min.time()), False
    end: date | None = None
    if form.end.strip():
        try:
            end = parse_day(form.end, "end date")
        except InputError as exc:
            add("end_date", [str(exc)])
    remind = _number(form.remind_after, float, "remind_after_hours", problems)
    most = _number(form.max_reminders, int, "max_reminders", problems)
    fixed: str | None = None
    if form.zone_mode == "fixed":
        fixed = form.fixed_zone.strip()
        if not fixed:
            add("timezone", ["choose a time zone, or send in each recipient's own zone"])
    elif form.zone_mode != "recipient":
        add("timezone", [f"unknown zone choice {form.zone_mode!r}"])
    audience: Audience | None
    try:
        audience = policy.audience_for(
            session,
            viewer,
            everyone=form.everyone,
            teams=form.teams,
            people=_names(form.people),
            trees=_names(form.trees),
        )
    except InputError as exc:
        add("audience", exc.problems or [exc.summary])
        audience = None
    spec = CoreMessageSpec(
        form.title,
        form.wordings[0],
        audience or Audience(),
        CadenceSpec(rrule=rule, start=start, end_date=end, timezone=fixed or None),
        list(form.variants),
        list(form.channels),
        form.channel_mode,
        remind_after_hours=remind,
        max_reminders=int(most) if most is not None else None,
        escalate={"yes": True, "no": False}.get(form.escalate),
    )
    for key, line in spec_problems(spec):
        if not start_known and key in ("start", "end_date") and "before the start" in line:
            continue  # measured against a start that was not given
        if key == "timezone" and not fixed:
            continue
        if (
            key == "rrule"
            and form.preset != "advanced"
            and (problems.get("days") or problems.get("interval"))
        ):
            continue  # the preset's own problem says it better
        add(key, [line])
    return spec, audience, problems

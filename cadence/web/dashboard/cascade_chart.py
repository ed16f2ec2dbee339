"""A launch's cascade as a picture: tiers down the reporting tree against time.

Drawn on the server as inline SVG, like every other chart on the dashboard, so the composer
shows the same picture with or without JavaScript. Each tier is a row; each group of its
people released together is a bar from their release to the end of the fan-out, on a band
spanning the tier's whole send window. The customer time is a vertical line, the lead before
it and the margin before that are shaded, and anything in a tier that would be late is red.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from cadence.planning.launch_timeline import Timeline
from cadence.planning.recurrence import place, zone

WIDTH = 1080
GUTTER = 128  # tier labels on the left
RIGHT = 24
ROW = 50
BAR = 22
LABEL_ROW = 18
AXIS = 46
FONT = '-apple-system, "Segoe UI", Helvetica, Arial, sans-serif'
INK, MUTED, LINE = "#1d1c1d", "#616061", "#e3e6ea"
BLUE, RED, ORANGE, CUSTOMER = "#1264a3", "#c0392b", "#e8912d", "#a5281b"
STEPS_MINUTES = (15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)
MAX_TICKS = 9
MIN_BAR = 8  # a send lasting seconds is still seen
CHAR = 7.2  # an average character's width at 13px, to keep labels apart


def when(moment: datetime, tz: ZoneInfo) -> str:
    local = moment.astimezone(tz)
    return f"{local:%a} {local.day} {local:%b}, {local:%H:%M}"


@dataclass(frozen=True)
class TierRow:
    """One tier as the table under the picture lists it (times in the customer zone)."""

    number: int
    people: int
    leaders: int
    first: str
    last: str
    late: int


def tier_rows(timeline: Timeline, zone_name: str) -> list[TierRow]:
    tz = zone(zone_name)
    late: dict[int, int] = {}
    for r in timeline.misses:
        late[r.tier] = late.get(r.tier, 0) + 1
    leaders: dict[int, int] = {}
    for r in timeline.releases:
        if r.briefing:
            leaders[r.tier] = leaders.get(r.tier, 0) + 1
    return [
        TierRow(
            tier + 1,
            count,
            leaders.get(tier, 0),
            when(first, tz),
            when(last + timeline.fanout, tz),
            late.get(tier, 0),
        )
        for tier, first, last, count in timeline.tiers()
    ]


class _Scale:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start, self.end = start, end
        self.span = max((end - start).total_seconds(), 60.0)

    def x(self, moment: datetime) -> float:
        share = (moment - self.start).total_seconds() / self.span
        return GUTTER + share * (WIDTH - GUTTER - RIGHT)


def _ticks(start: datetime, end: datetime, tz: ZoneInfo) -> list[tuple[datetime, str, str]]:
    """(instant, time label, day label or "") for the x axis, in the customer zone."""
    span = (end - start).total_seconds() / 60
    step = next((s for s in STEPS_MINUTES if span / s <= MAX_TICKS), STEPS_MINUTES[-1])
    found: list[tuple[datetime, str, str]] = []
    local_start = start.astimezone(tz)
    if step >= 1440:
        date = local_start.date() + timedelta(days=1)
        while (midnight := place(datetime.combine(date, time(0)), tz)) <= end:
            found.append(
                (midnight.astimezone(UTC), f"{midnight:%a}", f"{midnight.day} {midnight:%b}")
            )
            date += timedelta(days=step // 1440)
        return found
    midnight = place(datetime.combine(local_start.date(), time(0)), tz)
    minutes = (local_start - midnight).total_seconds() // 60
    at = midnight + timedelta(minutes=(minutes // step + 1) * step)
    last_day = None
    while at <= end:
        local = at.astimezone(tz)
        day = "" if local.date() == last_day else f"{local:%a} {local.day} {local:%b}"
        last_day = local.date()
        found.append((at.astimezone(UTC), f"{local:%H:%M}", day))
        at += timedelta(minutes=step)
    return found


class _Labels:
    """Labels over the plot, each on the first row where it does not overlap another."""

    def __init__(self) -> None:
        self.rows: list[list[tuple[float, float]]] = []
        self.placed: list[tuple[float, str, str, str, int]] = []

    def add(self, x: float, text: str, colour: str) -> None:
        width = len(text) * CHAR + 8
        anchor = "end" if x > WIDTH * 0.62 else "start"
        left = x - width if anchor == "end" else x
        row = next(
            (
                index
                for index, taken in enumerate(self.rows)
                if all(left + width < a or left > b for a, b in taken)
            ),
            len(self.rows),
        )
        if row == len(self.rows):
            self.rows.append([])
        self.rows[row].append((left, left + width))
        self.placed.append((x, anchor, text, colour, row))


def cascade_svg(timeline: Timeline, zone_name: str, now: datetime, lead: timedelta) -> Markup:
    """The picture; `lead` is the launch's lead (the margin comes from the timeline)."""
    tz = zone(zone_name)
    tiers = timeline.tiers()
    margin_start = timeline.everyone_by
    margin_end = timeline.customer_at - lead
    arrivals = [r.release_at + timeline.fanout for r in timeline.releases]
    first = min([margin_start, *(r.release_at for r in timeline.releases)])
    last = max([timeline.customer_at, *arrivals])
    pad = max((last - first) * 0.04, timedelta(minutes=20))
    scale = _Scale(first - pad, last + pad)

    labels = _Labels()
    labels.add(scale.x(timeline.customer_at), f"Customers hear {when(timeline.customer_at, tz)}",
               CUSTOMER)  # fmt: skip
    labels.add(scale.x(margin_start), f"Everyone has it by {when(margin_start, tz)}", "#8a4f0c")
    shows_now = scale.start <= now <= scale.end
    if shows_now:
        labels.add(scale.x(now), "Now", MUTED)
    top = 10 + LABEL_ROW * len(labels.rows) + 8
    plot_bottom = top + ROW * max(len(tiers), 1)
    height = plot_bottom + AXIS

    out: list[str] = [
        f'<svg class="cascade" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="cascade-title cascade-desc" font-family="{escape(FONT)}" '
        f'font-size="13" xmlns="http://www.w3.org/2000/svg">',
        '<title id="cascade-title">The launch cascade: each tier\'s sends against time</title>',
        f'<desc id="cascade-desc">{escape(_description(timeline, tz))}</desc>',
    ]
    # Shading: the lead before customers hear, and the margin before the lead.
    for start, end, colour, opacity, name in (
        (margin_end, timeline.customer_at, "#9fb7cc", "0.22", "lead"),
        (margin_start, margin_end, ORANGE, "0.28", "margin"),
    ):
        x1, x2 = scale.x(start), scale.x(end)
        if x2 > x1:
            out.append(
                f'<rect class="{name}" x="{x1:.1f}" y="{top}" width="{x2 - x1:.1f}" '
                f'height="{plot_bottom - top}" fill="{colour}" fill-opacity="{opacity}">'
                f"<title>{name}: {escape(when(start, tz))} to {escape(when(end, tz))}</title>"
                "</rect>"
            )
    # Tier rows with their names, and the axis with its ticks.
    for index, (tier, _, _, count) in enumerate(tiers):
        y = top + index * ROW
        if index % 2:
            out.append(
                f'<rect x="{GUTTER}" y="{y}" width="{WIDTH - GUTTER - RIGHT}" height="{ROW}" '
                'fill="#000000" fill-opacity="0.025"/>'
            )
        people = "person" if count == 1 else "people"
        out.append(
            f'<text x="12" y="{y + ROW / 2 - 3:.1f}" font-weight="600" fill="{INK}">'
            f"Tier {tier + 1}</text>"
            f'<text x="12" y="{y + ROW / 2 + 13:.1f}" fill="{MUTED}" font-size="12">'
            f"{count} {people}</text>"
        )
    for at, label, day in _ticks(scale.start, scale.end, tz):
        x = scale.x(at)
        out.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{plot_bottom}" stroke="{LINE}"/>'
            f'<text x="{x:.1f}" y="{plot_bottom + 17}" text-anchor="middle" fill="{INK}">'
            f"{escape(label)}</text>"
        )
        if day:
            out.append(
                f'<text x="{x:.1f}" y="{plot_bottom + 34}" text-anchor="middle" '
                f'fill="{MUTED}" font-size="12">{escape(day)}</text>'
            )
    out.append(
        f'<line x1="{GUTTER}" y1="{plot_bottom}" x2="{WIDTH - RIGHT}" y2="{plot_bottom}" '
        f'stroke="#b9bec5"/>'
    )
    out += _bars(timeline, tiers, scale, top, tz)
    # The lines, over the bars.
    lines = [(scale.x(now), MUTED, "3 4", "1.5")] if shows_now else []
    lines += [
        (scale.x(margin_start), "#8a4f0c", "6 4", "1.5"),
        (scale.x(timeline.customer_at), CUSTOMER, "", "3"),
    ]
    for x, colour, dash, wide in lines:
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{plot_bottom}" '
            f'stroke="{colour}" stroke-width="{wide}"{dashed}/>'
        )
    for x, anchor, text, colour, row in labels.placed:
        shift = -4 if anchor == "end" else 4
        out.append(
            f'<text x="{x + shift:.1f}" y="{10 + LABEL_ROW * (row + 1) - 4}" '
            f'text-anchor="{anchor}" fill="{colour}" font-weight="600">{escape(text)}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))


def _bars(
    timeline: Timeline,
    tiers: list[tuple[int, datetime, datetime, int]],
    scale: _Scale,
    top: int,
    tz: ZoneInfo,
) -> list[str]:
    """Per tier: a pale band over its whole send window, a bar for each release time, a
    leader's head start after it (their people are released at its end at the latest),
    and the time of the tier's first send."""
    late = {r.person_id for r in timeline.misses}
    groups: dict[tuple[int, datetime], list[bool]] = {}
    head_start: dict[tuple[int, datetime], datetime] = {}
    for r in timeline.releases:
        groups.setdefault((r.tier, r.release_at), []).append(r.person_id in late)
        if r.deadline is not None:
            head_start[(r.tier, r.release_at)] = r.deadline
    row_of = {tier: index for index, (tier, *_) in enumerate(tiers)}
    out: list[str] = []
    for (tier, at), until in sorted(head_start.items()):
        y = top + row_of[tier] * ROW + (ROW - BAR) / 2
        x1, x2 = scale.x(at), scale.x(until)
        out.append(
            f'<rect class="head-start" x="{x1:.1f}" y="{y + 5:.1f}" width="{x2 - x1:.1f}" '
            f'height="{BAR - 10}" rx="2" fill="{BLUE}" fill-opacity="0.28">'
            f"<title>Tier {tier + 1}'s leaders' head start: {escape(when(at, tz))} to "
            f"{escape(when(until, tz))}</title></rect>"
        )
    for tier, start, end, _ in tiers:
        y = top + row_of[tier] * ROW + (ROW - BAR) / 2
        x1, x2 = scale.x(start), max(scale.x(end + timeline.fanout), scale.x(start) + MIN_BAR)
        out.append(
            f'<rect x="{x1:.1f}" y="{y - 3:.1f}" width="{x2 - x1:.1f}" height="{BAR + 6}" '
            f'rx="4" fill="{BLUE}" fill-opacity="0.12"/>'
        )
    firsts: dict[int, bool] = {}
    for (tier, at), flags in sorted(groups.items()):
        y = top + row_of[tier] * ROW + (ROW - BAR) / 2
        x1 = scale.x(at)
        width = max(scale.x(at + timeline.fanout) - x1, MIN_BAR)
        missed = any(flags)
        colour = RED if missed else BLUE
        people = "person" if len(flags) == 1 else "people"
        state = f", {sum(flags)} late" if missed else ", in time"
        out.append(
            f'<rect class="send{" late" if missed else ""}" x="{x1:.1f}" y="{y:.1f}" '
            f'width="{width:.1f}" height="{BAR}" rx="3" fill="{colour}">'
            f"<title>Tier {tier + 1}: {len(flags)} {people} sent {escape(when(at, tz))}"
            f"{state}</title></rect>"
        )
        if tier not in firsts:
            firsts[tier] = True
            right = x1 > WIDTH * 0.8
            tx = x1 - 6 if right else x1 + width + 6
            out.append(
                f'<text x="{tx:.1f}" y="{y + BAR / 2 + 4:.1f}" font-size="12" '
                f'text-anchor="{"end" if right else "start"}" fill="{INK}">'
                f"{escape(when(at, tz))}</text>"
            )
    return out


def _description(timeline: Timeline, tz: ZoneInfo) -> str:
    parts = [
        f"tier {tier + 1}: {count} sent from {when(first, tz)} to "
        f"{when(last + timeline.fanout, tz)}"
        for tier, first, last, count in timeline.tiers()
    ]
    return (
        f"Customers hear {when(timeline.customer_at, tz)}; everyone must have it by "
        f"{when(timeline.everyone_by, tz)}. " + "; ".join(parts) + "."
    )

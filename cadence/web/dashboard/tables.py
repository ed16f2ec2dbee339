"""The dashboard's presentation: values shown in the organisation's zone and units, and the
table, cell and card models every page and its CSV share."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from cadence.clock import utcnow
from cadence.figures import csv_safe, labels
from cadence.units import duration

# ---------------------------------------------------------------------------------------
# Presenting values: times in the organisation's zone, shares as percentages


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class Present:
    """Formats values for people (pages) and for spreadsheets (CSV), in one zone."""

    zone: ZoneInfo
    clock: Callable[[], datetime] = utcnow

    def local(self, value: Any) -> datetime | None:
        moment = _parse_time(value)
        return moment.astimezone(self.zone) if moment is not None else None

    def when(self, value: Any) -> str:
        moment = self.local(value)
        if moment is None:
            return "\u2013"
        return f"{moment:%a} {moment.day} {moment:%b %Y, %H:%M}"

    def brief(self, value: Any) -> str:
        """A time in a table cell: no weekday, and the year only when it is not this one,
        so wide tables of times stay on one screen."""
        moment = self.local(value)
        if moment is None:
            return "\u2013"
        year = "" if moment.year == self.clock().astimezone(self.zone).year else f" {moment.year}"
        return f"{moment.day} {moment:%b}{year}, {moment:%H:%M}"

    def csv_time(self, value: Any) -> str:
        moment = self.local(value)
        return moment.isoformat(timespec="seconds") if moment is not None else ""


def _percent(value: Any) -> str:
    return "\u2013" if value is None else f"{float(value):.0%}"


def _duration(seconds: Any) -> str:
    return "\u2013" if seconds is None else duration(float(seconds))


def _number(value: Any) -> str:
    if value is None:
        return "\u2013"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def _score(value: Any) -> str:
    return "\u2013" if value is None else f"{float(value):+.0f}"


def _hours(value: Any) -> str:
    return "\u2013" if value is None else f"{float(value):,.1f} h"


# ---------------------------------------------------------------------------------------
# Tables: one definition renders the HTML table and the CSV export


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    # text, count, share, seconds, time, score, hours, status, yesno, team, manager
    kind: str = "text"
    link: Callable[[Mapping[str, Any]], str | None] | None = None

    @property
    def numeric(self) -> bool:
        return self.kind in ("count", "share", "seconds", "score", "hours")


@dataclass(frozen=True)
class Cell:
    text: str
    href: str | None = None
    numeric: bool = False
    pill: str | None = None
    kind: str = "text"


_FORMATS: dict[str, Callable[[Any], str]] = {
    "count": _number,
    "share": _percent,
    "seconds": _duration,
    "score": _score,
    "hours": _hours,
    "team": lambda value: str(labels.shown("team", value)),
    "manager": lambda value: str(labels.shown("manager", value)),
}


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    present: Present
    csv_url: str = ""
    note: str = ""
    empty: str = "Nothing in this period."
    # Rows shown on the page; the CSV always has them all.
    shown: int = 200
    cells: list[list[Cell]] = field(init=False)

    def __post_init__(self) -> None:
        self.cells = [[self._cell(c, row) for c in self.columns] for row in self.rows[: self.shown]]

    @property
    def hidden(self) -> int:
        """Rows left off the page."""
        return max(0, len(self.rows) - self.shown)

    def _cell(self, column: Column, row: Mapping[str, Any]) -> Cell:
        value = row.get(column.key)
        if column.kind == "time":
            text = self.present.brief(value)
        elif column.kind == "yesno":
            text = "\u2013" if value is None else ("yes" if value else "no")
        elif column.kind in _FORMATS:
            text = _FORMATS[column.kind](value)
        else:
            text = "\u2013" if value is None or value == "" else str(value)
        href = column.link(row) if column.link is not None else None
        pill = str(value).replace(" ", "-") if column.kind == "status" and value else None
        return Cell(text, href, column.numeric, pill, column.kind)

    def csv_value(self, column: Column, value: Any) -> str:
        if value is None:
            return ""
        if column.kind == "time":
            return self.present.csv_time(value)
        if column.kind == "yesno":
            return "yes" if value else "no"
        # Titles and names are typed by people: formulas are written as plain text.
        return csv_safe.cell(value)

    def to_csv(self) -> str:
        out = io.StringIO()
        rows = ([self.csv_value(c, row.get(c.key)) for c in self.columns] for row in self.rows)
        csv_safe.write_csv(out, [c.key for c in self.columns], rows, crlf=True)
        return out.getvalue()


@dataclass(frozen=True)
class Card:
    key: str
    label: str
    value: str
    note: str = ""
    tone: str = ""

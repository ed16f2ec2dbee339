"""Printing rows as a table, CSV or JSON, the three formats every listing verb offers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

from cadence import units
from cadence.figures import csv_safe


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@dataclass(frozen=True)
class Field:
    """How a column reads in a table for people: its heading and how a value is shown."""

    heading: str
    show: Callable[[Any], str] = str


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _share(value: Any) -> str:
    return units.percent(float(value))


def _seconds(value: Any) -> str:
    return units.duration(float(value))


def _minutes(value: Any) -> str:
    return f"{float(value):g} min"


def _score(value: Any) -> str:
    return f"{float(value):+g}" if float(value) else "0"


#: The figures' keys (the JSON keys and CSV headings, see the README's "Figures and
#: reports") as tables show them.
FIGURE_FIELDS: dict[str, Field] = {
    "figure": Field("Figure"),
    "value": Field("Value"),
    "message": Field("Message"),
    "message_id": Field("Message"),
    "title": Field("Title"),
    "team": Field("Team"),
    "manager": Field("Manager"),
    "channel": Field("Channel"),
    "repetition": Field("Repetition", _count),
    "period": Field("Period"),
    "as_of": Field("As of"),
    "planned": Field("Planned", _count),
    "sent": Field("Sent", _count),
    "reach": Field("Reach", _share),
    "acknowledged": Field("Acknowledged", _count),
    "ack_rate": Field("Ack rate", _share),
    "ack_median_s": Field("Median time to ack", _seconds),
    "ack_p90_s": Field("90% acked within", _seconds),
    "questions": Field("Questions", _count),
    "question_rate": Field("Question rate", _share),
    "ratings": Field("Ratings", _count),
    "clarity_score": Field("Clarity score", _score),
    "on_time": Field("On time", _count),
    "on_time_share": Field("On time share", _share),
    "delivered_share": Field("Delivered", _share),
    "on_time_tolerance_minutes": Field("On time within", _minutes),
    "missed_occurrences": Field("Missed occurrences", _count),
    "launch": Field("Launch"),
    "audience": Field("Audience", _count),
    "reached": Field("Reached", _count),
    "reached_before_customers": Field("Reached before customers", _share),
    "acknowledged_before_customers": Field("Acknowledged before customers", _share),
    "leader_bypasses": Field("Leader bypasses", _count),
    "breaches": Field("Breaches", _count),
    "since": Field("Since"),
    "until": Field("Until"),
    "k": Field("At least (times)", _count),
    "repetitions": Field("Repetitions", _count),
    "reached_at_least_k": Field("Reached at least that often", _count),
    "share_reached_at_least_k": Field("Share reached at least that often", _share),
    "person": Field("Email"),
    "name": Field("Name"),
    "received": Field("Received", _count),
    "people": Field("People", _count),
}


def heading(key: str, fields: Mapping[str, Field]) -> str:
    """A column's heading: its field's, or the key in words."""
    found = fields.get(key)
    return found.heading if found else key.replace("_", " ").capitalize()


def shown(key: str, value: Any, fields: Mapping[str, Field]) -> str:
    """A value as a table shows it: by its field, a dash for nothing."""
    if value is None or value == "":
        return "\u2013"
    found = fields.get(key)
    return found.show(value) if found else str(value)


def emit(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    fmt: Format,
    title: str = "",
    *,
    fields: Mapping[str, Field] | None = None,
) -> None:
    """Print `rows` (dicts keyed by `columns`) to stdout in the chosen format. With
    `fields`, a table has headings and values for people (percentages, durations); JSON
    and CSV always keep the keys and the exact values."""
    if fmt is Format.json:
        json.dump(list(rows), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif fmt is Format.csv:
        # The same neutralising as the dashboard's downloads: the output is opened in
        # spreadsheets, and names, titles and questions are typed by people.
        csv_safe.write_csv(sys.stdout, columns, ([row.get(k) for k in columns] for row in rows))
    else:
        table = Table(title=title or None)
        if fields is None:
            for column in columns:
                table.add_column(column)
            for row in rows:
                table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
        else:
            for column in columns:
                numeric = fields.get(column, Field("")).show is not str
                table.add_column(heading(column, fields), justify="right" if numeric else "left")
            for row in rows:
                table.add_row(*(shown(c, row.get(c), fields) for c in columns))
        Console(width=200).print(table)

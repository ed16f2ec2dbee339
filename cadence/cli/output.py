"""Printing rows as a table, CSV or JSON, the three formats every listing verb offers."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

from cadence.figures import csv_safe


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def emit(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: Format, title: str = ""
) -> None:
    """Print `rows` (dicts keyed by `columns`) to stdout in the chosen format."""
    if fmt is Format.json:
        json.dump(list(rows), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif fmt is Format.csv:
        # The same neutralising as the dashboard's downloads: the output is opened in
        # spreadsheets, and names, titles and questions are typed by people.
        csv_safe.write_csv(sys.stdout, columns, ([row.get(k) for k in columns] for row in rows))
    else:
        table = Table(title=title or None)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
        Console(width=200).print(table)

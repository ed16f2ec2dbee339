"""CSV cells a spreadsheet will not run as formulas.

Every CSV Cadence writes (dashboard downloads, `--format csv` on the CLI, reports) passes
its cells through `cell`: titles, names and questions are typed by people, and a cell
starting with `=`, `+`, `-`, `@`, a tab or a carriage return would be run by a spreadsheet
as a formula (OWASP's "CSV injection"). Such text is written with a leading `'`, which
spreadsheets show as plain text. Numbers stay numbers: `-3` is a value, not a formula.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """The text of one CSV cell: empty for None, numbers as they are, text neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_csv(
    out: IO[str], header: Sequence[str], rows: Iterable[Sequence[Any]], *, crlf: bool = False
) -> None:
    """Write a header and rows of values, each cell through `cell`."""
    writer = csv.writer(out, lineterminator="\r\n" if crlf else "\n")
    writer.writerow([cell(name) for name in header])
    for row in rows:
        writer.writerow([cell(value) for value in row])


__all__ = ["FORMULA_STARTS", "cell", "write_csv"]

"""Command-line parameter parsers that read values as strictly as the API and dashboard do."""

from __future__ import annotations

from cadence.errors import InputError
from cadence.inputs import parse_id


def id_value(value: str | int) -> int:
    """A database id: 1 to 2147483647 in ASCII digits. Anything else is a usage error
    (exit 2, click reports the ValueError's text) rather than a query the database cannot
    run."""
    try:
        return parse_id(value, "id")
    except InputError as exc:
        raise ValueError(exc.summary) from None

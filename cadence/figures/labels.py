"""What people read for a group that has no name: one label everywhere a table is shown.

Machine output keeps the exact value instead: `null` in JSON, an empty cell in CSV.
"""

from __future__ import annotations

from typing import Any

NO_TEAM = "(no team)"
NO_MANAGER = "(no manager)"
_NONE = {"team": NO_TEAM, "manager": NO_MANAGER}


def shown(key: str, value: Any) -> Any:
    """`value` of the `key` column as a table shows it."""
    return _NONE[key] if key in _NONE and value in (None, "") else value

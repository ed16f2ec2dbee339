"""dateutil's rrule with a cap on how far one step of its iteration may search.

dateutil looks for the next occurrence period by period until one matches or the year 9999
is passed, all inside one `next()`: a per-minute rule that never matches spends about two
minutes there. Its iterator rebuilds its calendar masks at every new month it reaches (and
at every period of a monthly or yearly rule), reading the rule's `_byeaster` each time;
`BoundedRule` counts those reads and ends the search after `MAX_SEARCH_STEPS` of them
without an occurrence. That stops a search within ten years and ten weeks of calendar time
for a daily or faster rule (one step per month) and after more for slower ones (one step per
period), so a search is never cut short before ten years.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from dateutil.rrule import rrule

_Frequency = Any  # dateutil's stubs spell the frequencies as a Literal of 0-6

# One step per month reached: ten years are 120 months, plus the months a start late in a
# month and a horizon ending early in one add.
MAX_SEARCH_STEPS = 122


class SearchCapped(Exception):
    """The search went `MAX_SEARCH_STEPS` steps without an occurrence."""


class BoundedRule(rrule):
    """An rrule whose iterators end (rather than search on) once occurrences are further
    apart than the cap. Each iterator counts for itself, so several may run at once."""

    def __init__(self, freq: _Frequency, **kwargs: Any) -> None:
        self._steps_left: int | None = None  # None: not counting (this is the template)
        # A UTC `UNTIL`: the last instant, in every zone the wall-clock rule is placed in.
        self.until_instant: datetime | None = None
        self._arguments = (freq, kwargs)
        super().__init__(freq, **kwargs)

    # dateutil assigns `_byeaster` in __init__ and reads it at every mask rebuild.
    @property
    def _byeaster(self) -> Any:
        if self._steps_left is not None:
            self._steps_left -= 1
            if self._steps_left < 0:
                raise SearchCapped
        return self._easter_offsets

    @_byeaster.setter
    def _byeaster(self, value: Any) -> None:
        self._easter_offsets = value

    def _iter(self) -> Iterator[datetime]:
        freq, kwargs = self._arguments
        counted = BoundedRule(freq, **kwargs)
        counted._steps_left = MAX_SEARCH_STEPS
        steps = rrule._iter(counted)  # type: ignore[attr-defined]
        try:
            for occurrence in steps:
                counted._steps_left = MAX_SEARCH_STEPS
                yield occurrence
        except SearchCapped:
            return


def first_after(rule: BoundedRule, start: datetime, horizon: datetime) -> datetime | None:
    """The rule's first occurrence at or after `start` and no later than `horizon`."""
    for occurrence in rule:
        if occurrence > horizon:
            return None
        if occurrence >= start:
            return occurrence
    return None

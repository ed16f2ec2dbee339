"""Repeat rules in words, as the dashboard's pages show them."""

from __future__ import annotations

import pytest

from cadence.planning.rule_words import describe


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "every weekday"),
        ("RRULE:FREQ=WEEKLY;BYDAY=WE", "weekly on Wednesday"),
        ("FREQ=WEEKLY;BYDAY=MO,TH", "weekly on Monday and Thursday"),
        ("FREQ=WEEKLY;BYDAY=MO,WE,FR", "weekly on Monday, Wednesday and Friday"),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=FR", "every 2 weeks on Friday"),
        ("FREQ=MONTHLY;BYDAY=1MO", "the first Monday of each month"),
        ("FREQ=MONTHLY;BYDAY=-1FR", "the last Friday of each month"),
        ("FREQ=MINUTELY", "every minute"),
        ("FREQ=DAILY;INTERVAL=3", "every 3 days"),
        ("FREQ=DAILY;COUNT=5", "every day, 5 times"),
        ("FREQ=WEEKLY;BYDAY=TU;UNTIL=20261231T000000Z", "weekly on Tuesday, until 2026-12-31"),
        ("freq=weekly;byday=mo", "weekly on Monday"),
    ],
)
def test_common_rules_read_as_words(rule: str, words: str) -> None:
    assert describe(rule) == words


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=MONTHLY;BYMONTHDAY=15",  # a part the words do not say
        "FREQ=WEEKLY;BYDAY=XX",
        "FREQ=MONTHLY;BYDAY=MO,TU",
        "FREQ=SECONDLY",
        "FREQ=WEEKLY;INTERVAL=0",
        "FREQ=DAILY;COUNT=x",
        "FREQ=DAILY;COUNT=²",  # a digit to str.isdigit, not to int
        "FREQ=WEEKLY;INTERVAL=²;BYDAY=MO",
        "FREQ=DAILY;FREQ=WEEKLY",
        "not a rule",
        "",
    ],
)
def test_anything_else_is_shown_as_written(rule: str) -> None:
    assert describe(rule) == f"by the rule {rule}"

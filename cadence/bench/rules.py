"""`cadence bench rules`: how fast rules are checked, against dateutil's own search.

The rules users reported are timed through `parse_rule` (what every path calls), and
dateutil is given each of them in a process of its own, killed after a timeout: a rule that
never occurs keeps dateutil searching towards the year 9999. A corpus of good and bad rules
(fixed ones and seeded random ones) gives the slowest check, beside dateutil's time to the
first occurrence of the rules that were accepted.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cadence.errors import InputError
from cadence.planning.recurrence import parse_rule

START = datetime(2026, 3, 2, 9, 0)
REPORTED = {
    "out_of_range": "FREQ=HOURLY;BYHOUR=25",
    "never_occurs": "FREQ=MINUTELY;BYHOUR=3;BYMINUTE=30;BYMONTH=2;BYMONTHDAY=30",
}
FIXED = [
    "FREQ=WEEKLY;BYDAY=MO", "FREQ=DAILY", "FREQ=MINUTELY", "FREQ=MONTHLY;BYDAY=-1FR",
    "FREQ=MONTHLY;BYSETPOS=-1;BYDAY=MO,TU,WE,TH,FR", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=YEARLY;BYWEEKNO=53;BYDAY=TH", "FREQ=HOURLY;INTERVAL=5;BYHOUR=3,4",
    "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=29;BYDAY=TU;BYHOUR=9",
    "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=9",
    "FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31", "FREQ=YEARLY;BYWEEKNO=20;BYMONTH=1",
    "FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29", "FREQ=HOURLY;INTERVAL=6;BYHOUR=10",
    "FREQ=SECONDLY", "FREQ=DAILY;BYSECOND=30", "FREQ=DAILY;COUNT=0",
]  # fmt: skip
PARTS: dict[str, Callable[[random.Random], str]] = {
    "INTERVAL": lambda r: str(r.choice([1, 2, 3, 7, 15, 0, 99_999_999])),
    "COUNT": lambda r: str(r.randint(-1, 30)),
    "UNTIL": lambda r: r.choice(["20260401", "20300401T090000", "20200101", "2026"]),
    "BYMINUTE": lambda r: _numbers(r, 0, 59, 2),
    "BYHOUR": lambda r: _numbers(r, 0, 23, 2),
    "BYDAY": lambda r: ",".join(
        r.choice(["", "1", "-1", "2", "6", "54"]) + r.choice(["MO", "TU", "FR", "SU", "XX"])
        for _ in range(r.randint(1, 3))
    ),
    "BYMONTHDAY": lambda r: _numbers(r, -31, 31, 2),
    "BYYEARDAY": lambda r: _numbers(r, -366, 366, 2),
    "BYWEEKNO": lambda r: _numbers(r, -53, 53, 2),
    "BYMONTH": lambda r: _numbers(r, 1, 12, 1),
    "BYSETPOS": lambda r: _numbers(r, -3, 3, 0),
}
FREQS = ["MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"]

BASELINE = """
import json, sys, time
from collections.abc import Callable
from datetime import datetime
from dateutil.rrule import rrulestr
rule, start = sys.argv[1], datetime.fromisoformat(sys.argv[2])
began = time.perf_counter()
try:
    first = rrulestr(rule, dtstart=start).after(start, inc=True)
    outcome = f"first occurrence {first}" if first else "no occurrence (searched to 9999)"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({"ms": (time.perf_counter() - began) * 1000, "outcome": outcome}))
"""


def _numbers(r: random.Random, low: int, high: int, beyond: int) -> str:
    values = [r.randint(low - beyond, high + beyond) for _ in range(r.randint(1, 3))]
    return ",".join(str(v) for v in values)


def corpus(size: int, seed: int = 12) -> list[str]:
    """The fixed rules, then seeded random ones built from real parts."""
    r = random.Random(seed)
    rules = list(FIXED)
    while len(rules) < size:
        names = r.sample(sorted(PARTS), r.randint(0, 4))
        pieces = [f"FREQ={r.choice(FREQS)}"] + [f"{n}={PARTS[n](r)}" for n in names]
        rules.append(";".join(pieces))
    return rules[:size]


def _check(rule: str) -> tuple[float, str | None]:
    """Milliseconds to check `rule`, and the refusal (None when accepted)."""
    began = time.perf_counter()
    try:
        parse_rule(rule, START)
        refusal = None
    except InputError as exc:
        refusal = str(exc)
    return (time.perf_counter() - began) * 1000, refusal


def _dateutil_in_process(rule: str) -> float:
    from dateutil.rrule import rrulestr

    began = time.perf_counter()
    rrulestr(rule, dtstart=START).after(START, inc=True)
    return (time.perf_counter() - began) * 1000


def _baseline(rule: str, timeout: float) -> dict[str, Any]:
    """dateutil's own search for the first occurrence, in a process killed on timeout."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", BASELINE, rule, START.isoformat()],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"ms": f">{timeout:g} s", "outcome": "still searching when stopped"}
    answer: dict[str, Any] = json.loads(done.stdout)
    answer["ms"] = round(answer["ms"], 3)
    return answer


def rules(runs: int = 20, corpus_size: int = 500, baseline_timeout: float = 5.0) -> dict[str, Any]:
    _check("FREQ=DAILY")  # build the calendar tables once, as a running process has
    reported = {}
    for name, rule in REPORTED.items():
        times = [_check(rule) for _ in range(runs)]
        reported[name] = {
            "rule": rule,
            "cadence_median_ms": round(statistics.median(t for t, _ in times), 3),
            "cadence_max_ms": round(max(t for t, _ in times), 3),
            "refused_with": times[0][1],
            "dateutil": _baseline(rule, baseline_timeout),
        }
    checked = [(rule, *_check(rule)) for rule in corpus(corpus_size)]
    slowest = max(checked, key=lambda c: c[1])
    slowest_refusal = max((c for c in checked if c[2] is not None), key=lambda c: c[1])
    accepted = [rule for rule, _, refusal in checked if refusal is None]
    dateutil_ms = [(_dateutil_in_process(rule), rule) for rule in accepted]
    return {
        "start": START.isoformat(),
        "reported": reported,
        "corpus": {
            "rules": len(checked),
            "accepted": len(accepted),
            "refused": len(checked) - len(accepted),
            "median_ms": round(statistics.median(c[1] for c in checked), 3),
            "slowest_ms": round(slowest[1], 3),
            "slowest_rule": slowest[0],
            "slowest_refusal_ms": round(slowest_refusal[1], 3),
            "slowest_refusal": slowest_refusal[2],
            "dateutil_first_occurrence_of_accepted": {
                "median_ms": round(statistics.median(t for t, _ in dateutil_ms), 3),
                "slowest_ms": round(max(dateutil_ms)[0], 3),
                "slowest_rule": max(dateutil_ms)[1],
            },
        },
    }

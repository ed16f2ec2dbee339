"""`cadence bench templates`: what the template limits cost, and what they save.

Three figures, in one run on this machine: the time to render an ordinary body for each
recipient (with Cadence's limits, and in a plain Jinja2 sandbox); the time to refuse a body
that loops 30,000 times (when it is added, and at send time); and, as the baseline, the time
a plain Jinja2 sandbox spends rendering that loop to the end, which is what each recipient
would have cost without the limits.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from cadence.bench.fanout import BODY as ORDINARY
from cadence.messages.personalise import (
    MAX_LOOP_STEPS,
    MAX_OPERATIONS,
    MAX_OUTPUT,
    SAMPLE_CONTEXTS,
    PersonaliseError,
    check_template,
    context_for,
    personalise,
)

#: Loops of 30,000 steps: the one first reported, the same steps as nested loops (which no
#: single `range` gives away), and a loop over a person's field.
LOOPS = {
    "range_loop": "{% for i in range(30000) %}{{ i }} {{ person.first_name }} {% endfor %}",
    "nested_loop": (
        "{% for i in range(200) %}{% for j in range(150) %}{{ j }} {{ person.first_name }} "
        "{% endfor %}{% endfor %}"
    ),
    "field_loop": "{% for letter in person.name * 2500 %}{{ letter }}{% endfor %}",
}


def _contexts(count: int) -> list[dict[str, Any]]:
    return [
        context_for(
            person_name=f"Person {i} Example",
            email=f"p{i}@example.com",
            team="Support/EMEA",
            timezone="Europe/London",
            manager_name="Sam Leader",
            manager_email="sam@example.com",
            title="Own the outcome",
        )
        for i in range(count)
    ]


def _median_seconds(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _ms(work: Callable[[], object], runs: int) -> float:
    return round(_median_seconds(work, runs) * 1000, 3)


def _refused_at_send(body: str, context: dict[str, Any]) -> str:
    try:
        personalise(body, context)
    except PersonaliseError as exc:
        return str(exc)
    raise AssertionError("the loop was not refused")


def templates(recipients: int = 10_000, runs: int = 5) -> dict[str, Any]:
    plain = SandboxedEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    contexts = _contexts(recipients)
    _, sample = SAMPLE_CONTEXTS[0]

    plain_ordinary = plain.from_string(ORDINARY)
    personalise(ORDINARY, sample)  # compiled once, as at send time
    bounded = _median_seconds(lambda: [personalise(ORDINARY, c) for c in contexts], runs)
    unbounded = _median_seconds(lambda: [plain_ordinary.render(c) for c in contexts], runs)

    loops: dict[str, Any] = {}
    for name, body in LOOPS.items():
        [problem] = check_template(body, "body")
        _refused_at_send(body, sample)  # compiled once
        plain_loop = plain.from_string(body)
        output = plain_loop.render(sample)
        loops[name] = {
            "template": body,
            "refused_with": problem,
            "refuse_at_add_ms": _ms(partial(check_template, body, "body"), runs),
            "refuse_at_send_ms": _ms(partial(_refused_at_send, body, sample), runs),
            "baseline_unbounded_render_ms": _ms(partial(plain_loop.render, sample), runs),
            "baseline_output_chars": len(output),
        }

    return {
        "limits": {
            "loop_steps": MAX_LOOP_STEPS,
            "operations": MAX_OPERATIONS,
            "output_chars": MAX_OUTPUT,
        },
        "ordinary": {
            "template": ORDINARY,
            "recipients": recipients,
            "per_recipient_us": round(bounded / recipients * 1e6, 2),
            "baseline_unbounded_per_recipient_us": round(unbounded / recipients * 1e6, 2),
        },
        "loops": loops,
        "runs": runs,
    }

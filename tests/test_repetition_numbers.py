"""A repetition is one turn of a message's rule, whatever the zone: every zone's send of a
turn has one number and one wording, in deliveries, figures, previews and the migration
that renumbers what was stored before."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from alembic import command
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from cadence.delivery.dispatch import tick
from cadence.figures.message_detail import occurrence_story
from cadence.figures.slices import Filters
from cadence.messages.preview import upcoming_sends
from cadence.planning.recurrence import expand_zones, parse_rule, place, zone
from cadence.runtime import Runtime
from cadence.store.db import _alembic_config, upgrade
from cadence.store.models import Delivery, Message, Occurrence
from tests import factories as f
from tests.conftest import CliResult
from tests.test_dispatch import POLICY, Queue
from tests.test_followups import run

Cli = Callable[..., CliResult]

# From fourteen hours ahead of UTC to eleven behind: one turn's sends span more than a day.
ZONES = ("Pacific/Kiritimati", "Australia/Sydney", "Europe/London", "Pacific/Pago_Pago")
START = datetime(2026, 3, 2, 9, 0)  # a Monday, 09:00 wall-clock
WORDINGS = ["Second wording.", "Third wording."]


def _people(session: Session) -> list[str]:
    emails = [f"{name.split('/')[1].lower()}@example.com" for name in ZONES]
    for email, name in zip(emails, ZONES, strict=True):
        f.person(session, email, timezone=name)
    return emails


def _run_weeks(runtime: Runtime, weeks: int) -> None:
    """Ticks every six hours from T0, each sending what it queued through the log channel,
    so every zone's send of each turn goes out."""
    for hours in range(0, 24 * 7 * weeks, 6):
        run(runtime, f.T0 + timedelta(hours=hours))


def _sent(session: Session, message: Message) -> list[tuple[str, int, str, int]]:
    """(zone, sequence, wall-clock time, variant) of every delivery of the message's turns."""
    session.expire_all()
    rows = session.execute(
        select(Occurrence.zone, Occurrence.sequence, Occurrence.local_time, Delivery.variant)
        .join(Delivery, Delivery.occurrence_id == Occurrence.id)
        .where(Occurrence.message_id == message.id, Occurrence.purpose == "cadence")
        .order_by(Occurrence.sequence, Occurrence.zone)
    ).all()
    return [(z, s, local.isoformat(), v) for z, s, local, v in rows]


def test_one_turn_has_one_number_and_one_wording_in_every_zone(
    runtime: Runtime, session: Session
) -> None:
    _people(session)
    message = f.core_message(session, start=START, variants=WORDINGS)
    session.commit()
    _run_weeks(runtime, 3)
    sent = _sent(session, message)
    by_turn: dict[int, set[tuple[str, int]]] = {}
    for _, sequence, local, variant in sent:
        by_turn.setdefault(sequence, set()).add((local, variant))
    assert sorted(by_turn) == [0, 1, 2]
    # One wall-clock turn and one wording per number, and four zones each.
    assert by_turn == {
        0: {("2026-03-02T09:00:00", 0)},
        1: {("2026-03-09T09:00:00", 1)},
        2: {("2026-03-16T09:00:00", 2)},
    }
    assert [sorted(z for z, s, _, _ in sent if s == n) for n in range(3)] == [sorted(ZONES)] * 3


def test_figures_count_a_turn_once_across_zones(
    runtime: Runtime, session: Session, cli: Cli
) -> None:
    emails = _people(session)
    other = f.core_message(session, start=START, title="Greet by name", timezone="UTC")
    message = f.core_message(session, start=START)
    session.commit()
    _run_weeks(runtime, 1)
    # The week of the first turn, on UTC days: the Kiritimati send of it is on 1 March.
    window = ("--since", "2026-03-01", "--until", "2026-03-07")
    base = ("report", "--message", str(message.id), *window)
    rows = json.loads(cli(*base, "--by", "repetition", "--format", "json").out)
    assert [(r["repetition"], r["planned"], r["sent"]) for r in rows] == [(1, 4, 4)]
    found = json.loads(cli(*base, "--at-least", "1", "--format", "json").out)
    assert (found["repetitions"], found["audience"], found["reached_at_least_k"]) == (1, 4, 4)
    assert found["distribution"] == {"1": 4}
    assert sorted(p["person"] for p in found["people"]) == sorted(emails)
    # The message's page lists each zone's send of the turn under its one number.
    session.expire_all()
    story = occurrence_story(session, message.id, Filters(until=f.T0 + timedelta(days=2)))
    assert sorted((r["repetition"], r["zone"], r["sent"]) for r in story["sent"]) == [
        (1, z, 1) for z in sorted(ZONES)
    ]
    # Across messages, the first turn of each is repetition 1: the fixed-zone message's
    # one send to everyone and the four zones' sends of the other.
    both = json.loads(cli("report", *window, "--by", "repetition", "--format", "json").out)
    assert [(r["repetition"], r["planned"]) for r in both] == [(1, 8)]
    assert other.id != message.id


def test_preview_numbers_a_turn_once_across_zones(session: Session) -> None:
    _people(session)
    message = f.core_message(session, start=START, variants=WORDINGS)
    session.commit()
    sends = upcoming_sends(session, message, "UTC", f.T0, count=8)
    assert [(s.zone, s.repetition, s.variant) for s in sends] == [
        *[(z, 1, 0) for z in ZONES],
        *[(z, 2, 1) for z in ZONES],
    ]


def test_preview_on_the_command_line(session: Session, cli: Cli) -> None:
    _people(session)
    message = f.core_message(session, start=datetime(2030, 3, 4, 9, 0), variants=WORDINGS)
    session.commit()
    result = cli("schedule", "preview", "--message", str(message.id), "--count", "8",
                 "--format", "json")  # fmt: skip
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert [(r["repetition"], r["wording"]) for r in rows] == [(1, 0)] * 4 + [(2, 1)] * 4
    assert [r["zone"] for r in rows[:4]] == list(ZONES)


def test_a_fixed_zone_message_numbers_its_turns_as_before(
    runtime: Runtime, session: Session
) -> None:
    _people(session)
    message = f.core_message(session, start=START, variants=WORDINGS, timezone="Europe/London")
    session.commit()
    _run_weeks(runtime, 3)
    sent = _sent(session, message)
    assert {(z, s, v) for z, s, _, v in sent} == {
        ("Europe/London", 0, 0),
        ("Europe/London", 1, 1),
        ("Europe/London", 2, 2),
    }
    assert len(sent) == 3 * len(ZONES)


# What a database at 0009 may hold: each zone numbered its own turns, and a reminder
# carries its occurrence's number.
T = datetime(2026, 3, 2, 9, 0)
PER_ZONE = [
    # id, message, purpose, parent, follow_up, sequence, zone, local_time
    (1, 1, "cadence", None, 0, 0, "Europe/London", T),
    (2, 1, "cadence", None, 0, 1, "Europe/London", T + timedelta(days=7)),
    (3, 1, "cadence", None, 0, 2, "Australia/Sydney", T),
    (4, 1, "cadence", None, 0, 3, "Australia/Sydney", T + timedelta(days=7)),
    (5, 1, "cadence", None, 0, 1, "America/New_York", T + timedelta(days=7)),
    (6, 1, "reminder", 4, 1, 3, "Australia/Sydney", T + timedelta(days=8)),
    (7, 1, "test", None, 0, -1, "UTC", T),
    (8, 2, "cadence", None, 0, 5, "UTC", T + timedelta(days=2)),
    (9, 2, "cadence", None, 0, 7, "Asia/Tokyo", T + timedelta(days=2)),
    (10, 2, "cadence", None, 0, 8, "UTC", T + timedelta(days=9)),
    (11, 3, "cadence", None, 0, 4, "UTC", T),
    (12, 3, "cadence", None, 0, 4, "Asia/Tokyo", T),
    # Each zone counted from 0, from turns of its own: two turns with one number.
    (13, 4, "cadence", None, 0, 0, "UTC", T),
    (14, 4, "cadence", None, 0, 0, "Asia/Tokyo", T + timedelta(days=7)),
]


def test_migration_gives_each_turn_one_number(engine: Engine, cli: Cli) -> None:
    config = _alembic_config(engine)
    command.downgrade(config, "0009")
    try:
        with engine.begin() as conn:
            _history_at_0009(conn)
    finally:
        upgrade(engine)
    with engine.connect() as conn:
        numbers = dict(conn.execute(text("SELECT id, sequence FROM occurrences")).all())
    # Message 1 has a weekly rule from 2 March: its turns are numbered from the rule's
    # start, as the planner numbers them. Message 2's rule does not give its times, so its
    # turns are ranked from 0. The reminder follows its occurrence; the test send is kept.
    # Message 3's one turn has one number already, and keeps it; message 4's two turns
    # had one number, and now have one each.
    assert numbers == {
        **{1: 0, 2: 1, 3: 0, 4: 1, 5: 1, 6: 1, 7: -1, 8: 0, 9: 0, 10: 1},
        **{11: 4, 12: 4, 13: 0, 14: 1},
    }
    # Figures read the new numbers: one row per turn with everyone sent it.
    result = cli("report", "--message", "1", "--by", "repetition", "--format", "json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert [(r["repetition"], r["planned"]) for r in rows] == [(1, 2), (2, 3)]


def test_migration_keeps_the_planner_from_planning_a_turn_twice(
    engine: Engine, runtime: Runtime
) -> None:
    """A message started before the first stored turn: the numbers are the rule's, so a
    re-plan of the same turns finds them already planned rather than planning them again
    under another number."""
    config = _alembic_config(engine)
    command.downgrade(config, "0009")
    try:
        with engine.begin() as conn:
            _history_at_0009(conn, start=T - timedelta(days=14))
    finally:
        upgrade(engine)
    with engine.connect() as conn:
        numbers = dict(conn.execute(text("SELECT id, sequence FROM occurrences")).all())
    assert (numbers[1], numbers[2], numbers[3], numbers[4], numbers[5]) == (2, 3, 2, 3, 3)
    tick(runtime.sessions, POLICY, Queue(), datetime(2026, 3, 2, 0, 0, tzinfo=UTC))
    with engine.connect() as conn:
        twice = conn.execute(
            text(
                "SELECT zone, local_time, COUNT(*) FROM occurrences WHERE message_id = 1 "
                "AND purpose = 'cadence' GROUP BY zone, local_time HAVING COUNT(*) > 1"
            )
        ).all()
        new_york = conn.execute(
            text(
                "SELECT sequence FROM occurrences WHERE message_id = 1 AND purpose = "
                "'cadence' AND zone = 'America/New_York' ORDER BY local_time"
            )
        ).scalars()
        assert list(new_york) == [2, 3]  # 2 March planned now, 9 March as stored
    assert twice == []


def _history_at_0009(conn: Any, start: datetime = T) -> None:
    t = datetime(2026, 3, 1, tzinfo=UTC)
    for pid, name in enumerate(("Europe/London", "Australia/Sydney", "America/New_York"), 1):
        conn.execute(
            text(
                "INSERT INTO people (id, email, name, timezone, active, created_at, "
                "updated_at) VALUES (:id, :email, :name, :zone, true, :t, :t)"
            ),
            {"id": pid, "email": f"p{pid}@example.com", "name": f"P{pid}", "zone": name, "t": t},
        )
    for mid in (1, 2, 3, 4):
        conn.execute(
            text(
                "INSERT INTO messages (id, kind, title, body, status, audience, channels, "
                "channel_mode, version, ack_version, created_at, updated_at) VALUES (:id, "
                "'core', 'Own it', 'Body', 'active', '{\"everyone\": true}', '[\"log\"]', "
                "'first', 1, 1, :t, :t)"
            ),
            {"id": mid, "t": t},
        )
    conn.execute(
        text(
            "INSERT INTO cadences (message_id, rrule, start_local, planned_until) VALUES "
            "(1, 'FREQ=WEEKLY;BYDAY=MO', :s, NULL), (2, 'FREQ=WEEKLY;BYDAY=FR', :s, NULL)"
        ),
        {"s": start},
    )
    for oid, mid, purpose, parent, follow_up, sequence, where, local in PER_ZONE:
        conn.execute(
            text(
                "INSERT INTO occurrences (id, message_id, purpose, parent_id, follow_up, "
                "sequence, zone, local_time, due_at, status) VALUES (:id, :m, :p, :parent, "
                ":f, :s, :z, :local, :due, 'dispatched')"
            ),
            {"id": oid, "m": mid, "p": purpose, "parent": parent, "f": follow_up,
             "s": sequence, "z": where, "local": local, "due": local.replace(tzinfo=UTC)},
        )  # fmt: skip
    # Everyone of a zone was sent its occurrences of message 1.
    for did, (oid, pid) in enumerate(((1, 1), (2, 1), (3, 2), (4, 2), (5, 3)), start=1):
        conn.execute(
            text(
                "INSERT INTO deliveries (id, occurrence_id, person_id, channel, variant, "
                "status, attempts, created_at, sent_at, maybe_sent) VALUES (:id, :o, :p, "
                "'log', 0, 'sent', 1, :t, :t, false)"
            ),
            {"id": did, "o": oid, "p": pid, "t": t + timedelta(days=did)},
        )
    if conn.dialect.name == "postgresql":
        # Rows were given their ids: the next ones written must not take them again.
        for table in ("people", "messages", "cadences", "occurrences", "deliveries"):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT MAX(id) FROM {table}))"
                )
            )


def test_expanding_once_for_every_zone_places_each_turn_as_one_zone_would() -> None:
    """The rule read once for all zones gives each zone what reading it for that zone
    alone gives, across daylight-saving changes, with each turn's one number."""
    names = [*sorted(available_timezones())[::7], *ZONES, "America/New_York", "America/Santiago"]
    zones = [zone(name) for name in sorted(set(names))]
    rule = parse_rule("FREQ=DAILY;BYHOUR=2,9;BYMINUTE=30", datetime(2026, 1, 1, 0, 0))
    not_before = datetime(2026, 3, 7, tzinfo=UTC)
    until = not_before + timedelta(days=5)  # spans the US and Chilean changes

    def one_zone(tz: ZoneInfo) -> list[tuple[str, int, datetime]]:
        found = []
        for sequence, local in enumerate(rule):
            at = place(local, tz)
            if at > until:
                break
            if at >= not_before:
                found.append((tz.key, sequence, at))
        return found

    expected = sorted(row for tz in zones for row in one_zone(tz))
    got = expand_zones(rule, zones, not_before=not_before, until=until)
    assert sorted((tz.key, r.sequence, r.at) for tz, r in got) == expected

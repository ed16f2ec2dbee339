"""The staff directory: people, teams and the reporting tree, and importing them from a file.

A directory file describes people by email. Importing it is all-or-nothing: every problem in
the file is found and reported first, and only a clean file touches the database. Leaders are
not stored; anyone with active direct reports is one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, aliased

from cadence.config import KNOWN_CHANNELS
from cadence.errors import InputError
from cadence.store.models import Person, Team

COLUMNS = ("email", "name", "team", "manager_email", "slack_user_id", "timezone", "channel")
REQUIRED_COLUMNS = ("email", "name")
LISTED_FIELDS = (*COLUMNS, "active", "is_leader", "reports")

# Column sizes in the schema; checked here so PostgreSQL never refuses a row halfway through.
MAX_NAME = 200
MAX_TEAM_PATH = 200
MAX_TEAM_SEGMENT = 100
MAX_SLACK_ID = 32

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class DirectoryRow:
    """One person as a directory file describes them.

    `where` names the row the way the user sees it ("row 4" in a CSV file, where the header
    is line 1; "entry 3" in a YAML list), so problems can point back into the file.
    """

    where: str
    email: str
    name: str
    team: str | None = None
    manager_email: str | None = None
    slack_user_id: str | None = None
    timezone: str | None = None
    channel: str | None = None

    @property
    def label(self) -> str:
        return f"{self.where} ({self.email})" if self.email else self.where


class StoredPerson(NamedTuple):
    """What validation needs to know about a person already in the database."""

    email: str
    manager_email: str | None
    active: bool


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int
    deactivated: int
    teams_created: int = 0

    @property
    def imported(self) -> int:
        return self.created + self.updated + self.unchanged

    def summary(self) -> str:
        return (
            f"imported {self.imported} people: {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.deactivated} deactivated"
        )


# ---------------------------------------------------------------------------------------
# Validation


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def team_path_problem(path: str) -> str | None:
    """Why `path` cannot name a team, or None if it can."""
    if len(path) > MAX_TEAM_PATH:
        return f"bad team {path[:40]!r}...: longer than {MAX_TEAM_PATH} characters"
    segments = path.split("/")
    if any(not s for s in segments):
        return f"bad team {path!r}: empty part (write nested teams as Parent/Child)"
    long = [s for s in segments if len(s) > MAX_TEAM_SEGMENT]
    if long:
        return f"bad team {path!r}: a part is longer than {MAX_TEAM_SEGMENT} characters"
    return None


def validate(
    rows: Sequence[DirectoryRow],
    stored: Mapping[str, StoredPerson] | None = None,
    *,
    full: bool = False,
) -> list[str]:
    """Every problem with importing `rows` over the `stored` people (keyed by email).

    Managers may be anyone in the file or anyone already stored; reporting lines are checked
    for cycles across both, since a file can close a loop through people it does not list.
    """
    stored = stored or {}
    found: list[tuple[int, str]] = []

    def problem(index: int, text: str) -> None:
        found.append((index, f"{rows[index].label}: {text}"))

    first_row: dict[str, int] = {}
    for index, row in enumerate(rows):
        if not row.email:
            problem(index, "email is missing")
        else:
            try:
                validate_email(row.email, check_deliverability=False)
            except EmailNotValidError as exc:
                problem(index, f"invalid email {row.email!r}: {exc}")
            if row.email in first_row:
                problem(index, f"duplicate email, already on {rows[first_row[row.email]].where}")
            else:
                first_row[row.email] = index
        for field in COLUMNS:
            value = getattr(row, field)
            if value and _CONTROL.search(value):
                problem(index, f"{field} contains a control character such as a line break")
        if not row.name:
            problem(index, "name is missing")
        elif len(row.name) > MAX_NAME:
            problem(index, f"name longer than {MAX_NAME} characters")
        if row.team is not None and (why := team_path_problem(row.team)):
            problem(index, why)
        if row.slack_user_id is not None and (
            len(row.slack_user_id) > MAX_SLACK_ID or not row.slack_user_id.isalnum()
        ):
            problem(index, f"bad Slack user id {row.slack_user_id!r} (expected e.g. U012AB3CD)")
        if row.timezone is not None and row.timezone not in _zones():
            problem(
                index, f"unknown time zone {row.timezone!r} (use an IANA name like Europe/London)"
            )
        if row.channel is not None and row.channel not in KNOWN_CHANNELS:
            problem(
                index, f"unknown channel {row.channel!r} (use one of {', '.join(KNOWN_CHANNELS)})"
            )
        if row.email and row.manager_email == row.email:
            problem(index, "is their own manager")

    in_file = set(first_row)
    for index, row in enumerate(rows):
        manager = row.manager_email
        if manager is None or manager == row.email or manager in in_file:
            continue
        known = stored.get(manager)
        if known is None:
            problem(index, f"unknown manager {manager} (not in the file and not stored)")
        elif full:
            problem(
                index,
                f"manager {manager} is not in the file, so a full import would deactivate them",
            )
        elif not known.active:
            problem(index, f"manager {manager} is inactive; add them to the file to reactivate")

    found.extend(_cycles(rows, first_row, stored))
    found.sort(key=lambda item: item[0])
    return [text for _, text in found]


def _cycles(
    rows: Sequence[DirectoryRow], first_row: Mapping[str, int], stored: Mapping[str, StoredPerson]
) -> Iterable[tuple[int, str]]:
    """Manager loops in the tree this import would leave, one problem per loop.

    Each person has at most one manager, so following manager links from each person either
    ends, or runs into a loop; a loop is reported on the first of its rows in the file.
    """

    def manager_of(email: str) -> str | None:
        index = first_row.get(email)
        if index is not None:
            manager = rows[index].manager_email
        else:
            known = stored.get(email)
            manager = known.manager_email if known else None
        return None if manager == email else manager  # self-management is reported apart

    ON_PATH, DONE = 1, 2
    state: dict[str, int] = {}
    for start in first_row:
        path: list[str] = []
        node: str | None = start
        while node is not None and node not in state:
            state[node] = ON_PATH
            path.append(node)
            node = manager_of(node)
        if node is not None and state[node] == ON_PATH:
            loop = path[path.index(node) :]
            in_file = [first_row[e] for e in loop if e in first_row]
            if in_file:
                first = min(in_file)
                turn = loop.index(rows[first].email)
                loop = loop[turn:] + loop[:turn]
                what = "manager cycle"
            else:
                # Only possible if the database already holds a loop: still refuse to add to it.
                first = first_row[start]
                what = "reports into a stored manager cycle"
            chain = " -> ".join(_where(e, rows, first_row) for e in [*loop, loop[0]])
            yield first, f"{rows[first].label}: {what}: {chain}"
        for email in path:
            state[email] = DONE


def _where(email: str, rows: Sequence[DirectoryRow], first_row: Mapping[str, int]) -> str:
    index = first_row.get(email)
    return f"{email} ({rows[index].where})" if index is not None else f"{email} (stored)"


# ---------------------------------------------------------------------------------------
# Import


_STORED_COLUMNS = (
    Person.id,
    Person.email,
    Person.name,
    Person.team_id,
    Person.manager_id,
    Person.slack_user_id,
    Person.timezone,
    Person.channel,
    Person.active,
)
_COMPARED = ("name", "team_id", "manager_id", "slack_user_id", "timezone", "channel", "active")


def stored_people(session: Session) -> dict[str, StoredPerson]:
    """Everyone already stored, by lower-cased email, in one query."""
    snapshot, _ = _load_people(session)
    return snapshot


def _load_people(session: Session) -> tuple[dict[str, StoredPerson], dict[str, dict[str, Any]]]:
    records = [row._asdict() for row in session.execute(select(*_STORED_COLUMNS))]
    email_by_id = {r["id"]: r["email"].lower() for r in records}
    snapshot: dict[str, StoredPerson] = {}
    by_email: dict[str, dict[str, Any]] = {}
    for record in records:
        email = record["email"].lower()
        manager = email_by_id.get(record["manager_id"]) if record["manager_id"] else None
        snapshot[email] = StoredPerson(email, manager, bool(record["active"]))
        by_email[email] = record
    return snapshot, by_email


def import_directory(
    session: Session, rows: Sequence[DirectoryRow], *, full: bool, now: datetime
) -> ImportResult:
    """Apply `rows` inside the caller's transaction, or refuse them all.

    People are matched by email and updated in place; with `full`, active people missing from
    the rows are deactivated, never deleted, so their deliveries and acknowledgements stay.
    Work is done in a fixed number of bulk statements so that large files import quickly.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    snapshot, records = _load_people(session)
    problems = validate(rows, snapshot, full=full)
    if problems:
        raise InputError(
            f"directory import refused: {len(problems)} problems, nothing was changed", problems
        )

    team_ids, teams_created = _ensure_teams(session, (r.team for r in rows if r.team))

    def wanted(row: DirectoryRow) -> dict[str, Any]:
        return {
            "name": row.name,
            "team_id": team_ids[row.team] if row.team else None,
            "manager_id": id_by_email[row.manager_email] if row.manager_email else None,
            "slack_user_id": row.slack_user_id,
            "timezone": row.timezone,
            "channel": row.channel,
            "active": True,
        }

    # New people go in tier by tier from the top of the tree, so each manager already has an
    # id when their reports are written, wherever they appear in the file.
    id_by_email = {email: record["id"] for email, record in records.items()}
    fresh = [row for row in rows if row.email not in records]
    for tier in _tiers(fresh):
        inserted = session.execute(
            insert(Person).returning(Person.email, Person.id),
            [
                {"email": row.email, **wanted(row), "created_at": now, "updated_at": now}
                for row in tier
            ],
        )
        id_by_email.update((email, pid) for email, pid in inserted)

    changes: list[dict[str, Any]] = []
    unchanged = 0
    for row in rows:
        record = records.get(row.email)
        if record is None:
            continue
        values = wanted(row)
        if any(record[key] != values[key] for key in _COMPARED):
            changes.append({"id": record["id"], **values, "updated_at": now})
        else:
            unchanged += 1
    if changes:
        session.execute(update(Person), changes)

    deactivated = 0
    if full:
        listed = {row.email for row in rows}
        leaving = [
            {"id": r["id"], "active": False, "updated_at": now}
            for email, r in records.items()
            if r["active"] and email not in listed
        ]
        if leaving:
            session.execute(update(Person), leaving)
        deactivated = len(leaving)

    session.flush()
    # Bulk statements bypass the identity map; make sure nothing stale is read afterwards.
    session.expire_all()
    return ImportResult(
        created=len(fresh),
        updated=len(changes),
        unchanged=unchanged,
        deactivated=deactivated,
        teams_created=teams_created,
    )


def _tiers(fresh: Sequence[DirectoryRow]) -> list[list[DirectoryRow]]:
    """`fresh` grouped by how many new managers sit above each person (0 = none)."""
    by_email = {row.email: row for row in fresh}
    depth: dict[str, int] = {}
    for row in fresh:
        chain: list[str] = []
        seen: set[str] = set()
        email: str | None = row.email
        # `validate` refuses cycles; `seen` only keeps a bug from looping forever.
        while email is not None and email in by_email and email not in depth:
            if email in seen:
                raise AssertionError(f"manager cycle through {email} reached the import")
            chain.append(email)
            seen.add(email)
            email = by_email[email].manager_email
        below = depth.get(email, -1) if email is not None else -1
        for member in reversed(chain):
            below += 1
            depth[member] = below
    tiers: list[list[DirectoryRow]] = []
    for row in fresh:
        level = depth[row.email]
        while len(tiers) <= level:
            tiers.append([])
        tiers[level].append(row)
    return tiers


def _ensure_teams(session: Session, paths: Iterable[str]) -> tuple[dict[str, int], int]:
    """Ids of the teams at `paths`, creating missing ones and every missing ancestor."""
    wanted: set[str] = set()
    for path in paths:
        segments = path.split("/")
        wanted.update("/".join(segments[: depth + 1]) for depth in range(len(segments)))
    if not wanted:
        return {}, 0
    ids = {path: tid for tid, path in session.execute(select(Team.id, Team.path))}
    created = 0
    for path in sorted(wanted - ids.keys(), key=lambda p: (p.count("/"), p)):
        parent, _, name = path.rpartition("/")
        team = Team(path=path, name=name, parent_id=ids[parent] if parent else None)
        session.add(team)
        session.flush()
        ids[path] = team.id
        created += 1
    return ids, created


# ---------------------------------------------------------------------------------------
# Reading the directory back


def list_people(session: Session, include_inactive: bool = False) -> list[dict[str, Any]]:
    """People as plain dicts (the fields in LISTED_FIELDS), ordered by team then name.

    `is_leader` and `reports` count active direct reports: leadership follows manager
    links rather than being stored, so it can never disagree with the tree.
    """
    manager = aliased(Person)
    report_counts = (
        select(Person.manager_id.label("manager_id"), func.count().label("reports"))
        .where(Person.active.is_(True), Person.manager_id.is_not(None))
        .group_by(Person.manager_id)
        .subquery()
    )
    query = (
        select(
            Person.email,
            Person.name,
            Team.path,
            manager.email,
            Person.slack_user_id,
            Person.timezone,
            Person.channel,
            Person.active,
            report_counts.c.reports,
        )
        .outerjoin(Team, Person.team_id == Team.id)
        .outerjoin(manager, Person.manager_id == manager.id)
        .outerjoin(report_counts, report_counts.c.manager_id == Person.id)
    )
    if not include_inactive:
        query = query.where(Person.active.is_(True))
    people = []
    for email, name, team, manager_email, slack, zone, channel, active, reports in session.execute(
        query
    ):
        count = int(reports or 0)
        people.append(
            {
                "email": email,
                "name": name,
                "team": team,
                "manager_email": manager_email,
                "slack_user_id": slack,
                "timezone": zone,
                "channel": channel,
                "active": bool(active),
                "is_leader": count > 0,
                "reports": count,
            }
        )
    people.sort(
        key=lambda p: (p["team"] is None, p["team"] or "", p["name"].casefold(), p["email"])
    )
    return people

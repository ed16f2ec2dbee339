"""Who a message is for: everyone, teams (with their sub-teams), named people, or a manager's
whole tree (the manager included). Stored on the message as JSON and resolved at send time,
so directory changes before an occurrence change who gets it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, false, func, or_, select
from sqlalchemy.orm import Session, aliased

from cadence.errors import InputError
from cadence.inputs import MAX_PEOPLE, MAX_TEAMS, MAX_TREES, count_problem
from cadence.store.models import Person, Team


@dataclass(frozen=True)
class Audience:
    everyone: bool = False
    teams: tuple[str, ...] = field(default_factory=tuple)
    people: tuple[str, ...] = field(default_factory=tuple)
    trees: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "everyone": self.everyone,
            "teams": list(self.teams),
            "people": list(self.people),
            "trees": list(self.trees),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Audience:
        return cls(
            everyone=bool(data.get("everyone")),
            teams=tuple(data.get("teams", ())),
            people=tuple(data.get("people", ())),
            trees=tuple(data.get("trees", ())),
        )

    def describe(self) -> str:
        if self.everyone:
            return "everyone"
        parts = [f"team {t}" for t in self.teams]
        parts += [f"tree of {m}" for m in self.trees]
        parts += list(self.people)
        return ", ".join(parts)


def build_audience(
    session: Session,
    *,
    everyone: bool,
    teams: list[str],
    people: list[str],
    trees: list[str],
) -> Audience:
    """Check every named team and person exists; report all that do not at once."""
    teams = [t.strip().strip("/") for t in teams]
    people = [p.strip().lower() for p in people]
    trees = [m.strip().lower() for m in trees]
    if everyone and (teams or people or trees):
        raise InputError("audience: --everyone cannot be combined with teams, people or trees")
    if not (everyone or teams or people or trees):
        raise InputError("audience: give --everyone, --team, --person or --tree")
    # Before any query: each name becomes a term of one SQL expression, and SQLite refuses
    # an expression past a thousand terms deep.
    sizes = [(teams, MAX_TEAMS, "teams"), (trees, MAX_TREES, "trees")]
    sizes.append((people, MAX_PEOPLE, "people"))
    problems = [why for names, limit, what in sizes if (why := count_problem(names, limit, what))]
    if problems:
        raise InputError("audience refused:", problems)
    known_teams = set(session.scalars(select(Team.path).where(Team.path.in_(teams))))
    problems += [f"unknown team {t!r}" for t in teams if t not in known_teams]
    emails = set(people) | set(trees)
    known_people = set(session.scalars(select(Person.email).where(Person.email.in_(emails))))
    problems += [f"unknown person {p!r}" for p in people if p not in known_people]
    problems += [f"unknown manager {m!r} for --tree" for m in trees if m not in known_people]
    if problems:
        raise InputError("audience refused:", problems)
    return Audience(everyone, tuple(teams), tuple(people), tuple(trees))


def audience_filter(audience: Audience) -> ColumnElement[bool]:
    """A WHERE clause over Person selecting the active members of `audience`.

    Evaluated entirely in the database (a recursive query for trees), so an audience of any
    size is never loaded into memory to be resolved.
    """
    if audience.everyone:
        return Person.active.is_(True)
    clauses: list[ColumnElement[bool]] = []
    if audience.teams:
        team_match = or_(*(team_and_below(t) for t in audience.teams))
        clauses.append(Person.team_id.in_(select(Team.id).where(team_match)))
    if audience.people:
        clauses.append(Person.email.in_(audience.people))
    if audience.trees:
        root = select(Person.id).where(Person.email.in_(audience.trees)).cte("tree", recursive=True)
        child = aliased(Person)
        tree = root.union(select(child.id).where(child.manager_id == root.c.id))
        clauses.append(Person.id.in_(select(tree.c.id)))
    if not clauses:
        return false()
    return Person.active.is_(True) & or_(*clauses)


def team_and_below(path: str) -> ColumnElement[bool]:
    """A WHERE clause over Team: this team and every team nested in it."""
    escaped = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(Team.path == path, Team.path.like(escaped + "/%", escape="\\"))


def reaches_team(session: Session, audience: Audience, path: str) -> bool:
    """Whether anyone in `audience` is in team `path` or a team nested in it: what a
    calendar filtered by team shows."""
    in_team = Person.team_id.in_(select(Team.id).where(team_and_below(path)))
    return bool(session.scalar(select(exists().where(audience_filter(audience), in_team))))


def effective_zone(org_zone: str) -> ColumnElement[str]:
    """A person's zone, or the organisation's when the directory leaves it blank."""
    return func.coalesce(Person.timezone, org_zone)


def audience_zones(session: Session, audience: Audience, org_zone: str) -> list[str]:
    zone_col = effective_zone(org_zone)
    stmt = select(zone_col).where(audience_filter(audience)).distinct()
    return sorted(session.scalars(stmt))


def count_members(session: Session, audience: Audience) -> int:
    stmt = select(func.count()).select_from(Person).where(audience_filter(audience))
    return int(session.scalar(stmt) or 0)


__all__ = [
    "Audience",
    "audience_filter",
    "audience_zones",
    "build_audience",
    "count_members",
    "effective_zone",
    "reaches_team",
    "team_and_below",
    "tree_of",
]


def tree_of(person_id: int, name: str = "scope") -> Select[tuple[int]]:
    """SELECT of the ids of a person and everyone below them in the reporting tree: what a
    leader may see and target. `name` names the recursive query, for a statement that
    needs two trees."""
    root = select(Person.id).where(Person.id == person_id).cte(name, recursive=True)
    child = aliased(Person)
    tree = root.union(select(child.id).where(child.manager_id == root.c.id))
    return select(tree.c.id)

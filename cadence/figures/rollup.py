"""Breakdowns that roll up: a team's row covers its sub-teams, a manager's row their tree.

The summaries keep one cell per occurrence for each (own team, direct manager) pair, so
these figures are the cells read once, grouped by own team or direct manager, and then
added up the team tree (by path) or the reporting tree (by the managers' own managers) in
Python: sums and histogram counts add, and only the directory's teams and leaders are
loaded, never its people. A manager's own sends sit in their manager's cell, so each
leader's own rows are read once more, from the person-occurrence rows.

Each rolled-up row is the figure of the matching filter (`Filters.team` or
`Filters.manager_email`) over the same slice. Rows stay inside the slice's people: with a
team filter only that team and its sub-teams get rows, and in a manager's or a leader's
tree only the leaders in it and the teams someone of it is in. People with no team (or no
manager) are under None, their own row: no filter selects them, and nothing rolls up into
it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, select

from cadence.directory.audience import team_and_below, tree_of
from cadence.figures.slices import PERCENTILES, GroupKey, Slice, SqlColumn, added
from cadence.store.models import Person, PersonOccurrence, Team

#: Up to how many leaders are named in the statement that reads their own rows.
MANY_LEADERS = 2_000

Sums = dict[GroupKey, dict[str, Any]]
Histograms = dict[GroupKey, list[tuple[int, int]]]


@dataclass(frozen=True)
class Tree:
    """Where each group's figures go: `up[g]` lists the groups whose rows include g's
    (g itself first), and `members(g)` selects the people of g's rolled-up row."""

    up: Callable[[Any], list[Any]]
    members: Callable[[Any], ColumnElement[bool]]
    leaders: Any = None  # the ids of the leaders with rows, or a SELECT of them


def _team_tree(sl: Slice) -> Tree:
    paths: dict[int, str] = {i: p for i, p in sl.session.execute(select(Team.id, Team.path))}
    by_path = {path: team_id for team_id, path in paths.items()}
    top = sl.filters.team.strip().strip("/") if sl.filters.team is not None else None

    def inside(path: str) -> bool:
        return top is None or path == top or path.startswith(top + "/")

    def up(team_id: Any) -> list[Any]:
        if team_id is None:
            return [None]
        parts = paths[team_id].split("/")
        prefixes = ("/".join(parts[:k]) for k in range(len(parts), 0, -1))
        return [by_path[p] for p in prefixes if p in by_path and inside(p)]

    def members(team_id: Any) -> ColumnElement[bool]:
        people = select(Person.id)
        if team_id is None:
            people = people.where(Person.team_id.is_(None))
        else:
            people = people.where(
                Person.team_id.in_(select(Team.id).where(team_and_below(paths[team_id])))
            )
        return PersonOccurrence.person_id.in_(people)

    return Tree(up, members)


def _leaders() -> Any:
    return select(Person.manager_id).where(Person.manager_id.is_not(None)).distinct()


def _reporting_tree(sl: Slice) -> Tree:
    leaders = select(Person.id, Person.manager_id).where(Person.id.in_(_leaders()))
    above: dict[int, int | None] = {i: m for i, m in sl.session.execute(leaders)}
    root = sl.people.root

    def up(manager_id: Any) -> list[Any]:
        if manager_id is None:
            return [None]
        chain: list[Any] = []
        at: int | None = manager_id
        while at is not None and at not in chain:  # (the import refuses cycles)
            chain.append(at)
            if at == root:
                return chain
            at = above.get(at)
        # Without a tree, every leader up to the top; within one, none outside it.
        return chain if root is None else []

    below: dict[int, list[int]] = {}
    for leader in above:
        for upper in up(leader):
            below.setdefault(upper, []).append(leader)

    def members(manager_id: Any) -> ColumnElement[bool]:
        if manager_id is None:
            return PersonOccurrence.person_id.in_(
                select(Person.id).where(Person.manager_id.is_(None))
            )
        leaders = below.get(manager_id, [])
        if len(leaders) > MANY_LEADERS:
            # (Named apart from the slice's own tree, which the same statement reads.)
            return PersonOccurrence.person_id.in_(tree_of(manager_id, "rolled_tree"))
        # A tree is its leader and everyone whose manager is a leader in it.
        people = select(Person.id).where(
            or_(Person.id == manager_id, Person.manager_id.in_(leaders))
        )
        return PersonOccurrence.person_id.in_(people)

    # Named, the leaders' own rows are read through the index on people; a directory of
    # very many leaders is left to the database to match.
    inside = [leader for leader in above if up(leader)]
    return Tree(up, members, inside if len(inside) <= MANY_LEADERS else _leaders())


def _roll_sums(found: Sums, tree: Tree, into: Sums | None = None) -> Sums:
    out: Sums = {} if into is None else into
    for (group, *rest), sums in found.items():
        for target in tree.up(group):
            key = (target, *rest)
            out[key] = added(out[key], sums) if key in out else sums
    return out


def _roll_histograms(found: Histograms, tree: Tree, into: Histograms | None = None) -> Histograms:
    counts: dict[GroupKey, dict[int, int]] = {
        key: dict(histogram) for key, histogram in (into or {}).items()
    }
    for (group, *rest), histogram in found.items():
        for target in tree.up(group):
            cell = counts.setdefault((target, *rest), {})
            for bucket, n in histogram:
                cell[bucket] = cell.get(bucket, 0) + n
    return {key: sorted(cell.items()) for key, cell in counts.items()}


def _own_rows(sl: Slice, tree: Tree) -> Slice:
    """The slice narrowed to the leaders' own person-occurrences."""
    return Slice(
        sl.session,
        sl.filters,
        now=sl.now,
        purposes=sl.purposes,
        tolerance=sl.tolerance,
        where=[PersonOccurrence.person_id.in_(tree.leaders)],
    )


class Rollup:
    """The rolled-up sums (and on demand percentiles) of `sl`, per team or manager (the
    first key) and `extra` keys (occurrence columns, e.g. the message)."""

    def __init__(self, sl: Slice, by: str, extra: Mapping[str, SqlColumn]) -> None:
        self.sl, self.by, self.extra = sl, by, dict(extra)
        self._teams: set[Any] | None = None
        column = Person.team_id if by == "team" else Person.manager_id
        self.keys = {by: column, **self.extra}
        self.tree = _team_tree(sl) if by == "team" else _reporting_tree(sl)
        self.leader_keys = {by: PersonOccurrence.person_id, **self.extra}
        self.sums = self._kept(_roll_sums(sl.sums(self.keys, join_person=True), self.tree))
        if by == "manager":
            own = _own_rows(sl, self.tree).sums(self.leader_keys)
            _roll_sums(own, _self_only(self.tree), self.sums)

    def _kept(self, rolled: dict[GroupKey, Any]) -> dict[GroupKey, Any]:
        """In a tree, a team has a row only when someone of the tree is in it (as a
        leader's team filter lists them): the teams above theirs are not theirs to see."""
        tree = self.sl.people.tree
        if self.by != "team" or tree is None:
            return rolled
        if self._teams is None:
            self._teams = set(
                self.sl.session.scalars(select(Person.team_id).where(Person.id.in_(tree)))
            )
        return {key: value for key, value in rolled.items() if key[0] in self._teams}

    def histograms(self) -> Histograms:
        own = self.sl.histograms(self.keys, "wait", join_person=True)
        found = _roll_histograms(own, self.tree)
        found = self._kept(found)
        if self.by == "manager":
            own = _own_rows(self.sl, self.tree).histograms(self.leader_keys, "wait")
            found = _roll_histograms(own, _self_only(self.tree), found)
        return found

    def percentiles(self) -> dict[GroupKey, dict[str, float | None]]:
        extra = self.extra

        def values_in(group: GroupKey) -> Any:
            return self.sl.values_in(extra, group[1:], self.tree.members(group[0]))

        return self.sl.percentiles(
            self.keys,
            wanted=PERCENTILES,
            histograms=self.histograms(),
            values_in=values_in,
            histograms_again=self.histograms,
        )


def _self_only(tree: Tree) -> Tree:
    """A leader's own rows count for them alone: their manager's cell holds them too."""
    return Tree(lambda group: [group] if tree.up(group) else [], tree.members)

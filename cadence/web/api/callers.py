"""Who is calling the JSON API, and what their token lets them reach."""

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.directory.audience import (
    Audience,
    audience_filter,
    tree_of,
)
from cadence.messages import approvals
from cadence.store.models import (
    Message,
    Person,
)
from cadence.web.api.errors import ApiError

# ---------------------------------------------------------------------------------------
# Who is calling, and what they may reach


@dataclass(frozen=True)
class Caller:
    """The user behind a request, detached from any session."""

    id: int
    email: str
    role: str
    person_id: int | None

    @property
    def comms(self) -> bool:
        return self.role == approvals.COMMS


class Scope:
    """A leader's reach: their reporting tree. An audience is inside it when everyone it can
    name (people, trees, every active member of each team) is in the tree."""

    def __init__(self, session: Session, person_id: int | None) -> None:
        self.session = session
        self.person_id = person_id
        self._inside: dict[str, bool] = {}
        self._teams: dict[str, int] = {}

    def _in_tree(self, person_id: int, email: str) -> bool:
        if email not in self._inside:
            found = self.session.scalar(
                select(Person.id).where(Person.email == email, Person.id.in_(tree_of(person_id)))
            )
            self._inside[email] = found is not None
        return self._inside[email]

    def _outside_in_team(self, person_id: int, path: str) -> int:
        if path not in self._teams:
            condition = audience_filter(Audience(teams=(path,))) & Person.id.not_in(
                tree_of(person_id)
            )
            count = self.session.scalar(select(func.count()).select_from(Person).where(condition))
            self._teams[path] = int(count or 0)
        return self._teams[path]

    def outside(self, audience: Audience) -> list[str]:
        """What in `audience` lies outside the tree, one line each; empty when all inside."""
        me = self.person_id
        if me is None:
            return ["your user is not linked to a person in the directory, so has no tree"]
        found: list[str] = []
        if audience.everyone:
            found.append("everyone: the whole organisation")
        for path in audience.teams:
            n = self._outside_in_team(me, path)
            if n:
                people = "person" if n == 1 else "people"
                found.append(f"team {path!r}: {n} {people} in it outside your tree")
        found += [f"person {p}" for p in audience.people if not self._in_tree(me, p)]
        found += [f"tree of {m}" for m in audience.trees if not self._in_tree(me, m)]
        return found

    def require(self, audience: Audience) -> None:
        found = self.outside(audience)
        if found:
            raise ApiError(403, "the audience reaches outside your reporting tree", found)


def _visible(caller: Caller, scope: Scope, message: Message) -> bool:
    if caller.comms or message.created_by_id == caller.id:
        return True
    return not scope.outside(Audience.from_json(message.audience))

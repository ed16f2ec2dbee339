"""The services one process needs, built from settings and passed around explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cadence.config import Settings
from cadence.store.db import make_engine, make_sessionmaker


@dataclass
class Runtime:
    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)

    @cached_property
    def engine(self) -> Engine:
        return self._engine or make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.engine)

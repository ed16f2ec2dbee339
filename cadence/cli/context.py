"""Shared plumbing for CLI verbs: the runtime from the environment, and clean failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from sqlalchemy.orm import Session

from cadence.config import load_settings
from cadence.runtime import Runtime
from cadence.store.db import check_migrated, session_scope


def runtime(ctx: typer.Context) -> Runtime:
    """The runtime for this invocation, built once from the environment."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = Runtime(load_settings())
    rt = root.obj
    assert isinstance(rt, Runtime)
    return rt


@contextmanager
def db_session(ctx: typer.Context) -> Iterator[Session]:
    """A committed-on-success session on a database that has been initialised."""
    rt = runtime(ctx)
    check_migrated(rt.engine)
    with session_scope(rt.sessions) as session:
        yield session

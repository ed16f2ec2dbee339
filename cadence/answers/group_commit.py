"""Group commit: many answers written in one transaction, each answered only once it is
durable.

A burst of clicks (an all-hands message at 09:00) spends most of its database time
committing: every commit waits for the disk. Here one writer thread per web process takes
whatever answers are waiting (up to `max_batch`, gathering for at most `max_wait` seconds
after the first), records each in a savepoint of one transaction, commits once, and only
then hands every request its result. So:

- no request is answered before its row is committed: a request's future is resolved after
  `commit()` returns, never before;
- one answer's failure is its own: it rolls back to its savepoint and its request gets the
  exception, while the others in the group are committed;
- if the commit itself fails, nobody in the group has been answered yet: each answer is then
  tried again in a transaction of its own, so the group's bad apple is found and the rest
  are recorded (every answer is idempotent, so a retry never counts twice).

On SQLite, the one writer thread is also what keeps clicks from queueing in SQLite's busy
handler; on PostgreSQL it turns N commits into one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("cadence.answers.group_commit")

T = TypeVar("T")
Work = Callable[[Session], T]

MAX_BATCH = 64
MAX_WAIT_SECONDS = 0.002


@dataclass
class _Item(Generic[T]):
    work: Work[T]
    future: Future[T] = field(default_factory=Future)


class GroupCommit:
    """One writer thread for a web process's answers. `submit` hands it some work (a
    function of a session, run inside a savepoint); the returned future resolves once the
    transaction holding it has committed."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        max_batch: int = MAX_BATCH,
        max_wait: float = MAX_WAIT_SECONDS,
    ) -> None:
        if max_batch < 1 or max_wait < 0:
            raise ValueError("a group holds at least one answer and waits no negative time")
        self.sessions = sessions
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._waiting: queue.SimpleQueue[_Item[Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.groups = 0  # how many transactions were committed (for the benchmark)

    def submit(self, work: Work[T]) -> Future[T]:
        item: _Item[T] = _Item(work)
        self._ensure_thread()
        self._waiting.put(item)
        return item.future

    async def run(self, work: Work[T]) -> T:
        """Submit and wait without blocking the event loop."""
        future = self.submit(work)
        return await anyio.to_thread.run_sync(future.result)

    def close(self) -> None:
        """Finish what is waiting, then stop the writer thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._waiting.put(None)
            thread.join()

    # -- the writer thread --------------------------------------------------------------

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="cadence-group-commit", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._waiting.get()
            if first is None:
                return
            group: list[_Item[Any]] = [first]
            stop = False
            deadline = time.monotonic() + self.max_wait
            while len(group) < self.max_batch:
                try:
                    remaining = deadline - time.monotonic()
                    more = (
                        self._waiting.get(timeout=remaining)
                        if remaining > 0
                        else self._waiting.get_nowait()
                    )
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
            self._write(group)
            if stop:
                return

    def _write(self, group: list[_Item[Any]]) -> None:
        outcomes: list[tuple[_Item[Any], Any, BaseException | None]] = []
        session = self.sessions()
        try:
            if session.get_bind().dialect.name == "sqlite":
                # Take SQLite's write lock first, waiting for it like any writer: a
                # transaction that reads, then writes, is refused at once ("database is
                # locked") when another process is writing, instead of waiting.
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            for item in group:
                try:
                    with session.begin_nested():
                        outcomes.append((item, item.work(session), None))
                except Exception as exc:  # that answer's own problem, not the group's
                    outcomes.append((item, None, exc))
            session.commit()
            self.groups += 1
        except Exception as exc:
            _abandon(session)
            if len(group) == 1:
                group[0].future.set_exception(exc)
                return
            log.warning("a group of %d answers did not commit (%s); each alone", len(group), exc)
            for item in group:
                self._write([item])
            return
        finally:
            session.close()
        for item, value, error in outcomes:
            if error is None:
                item.future.set_result(value)
            else:
                item.future.set_exception(error)


def _abandon(session: Session) -> None:
    """Roll back a transaction whose commit failed. SQLite keeps a transaction open when its
    COMMIT is refused (a foreign key checked at commit); without this rollback the pooled
    connection carries it into the next group ("cannot start a transaction within a
    transaction")."""
    try:
        session.rollback()
    except Exception:  # the connection is gone: closing the session discards it
        log.exception("could not roll back a group of answers that did not commit")

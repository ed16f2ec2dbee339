"""Group commit of answers, on a real database (SQLite, and PostgreSQL when the suite runs
on it) and through the real web app: many answers in one transaction, none answered before
it commits, and one answer's failure never losing the others'."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from cadence.answers.acks import Recorded, make_answer, record_answer
from cadence.answers.group_commit import GroupCommit
from cadence.answers.slack_signing import sign
from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.delivery.formatting.slack import ACK_ACTION_ID, action_value
from cadence.runtime import Runtime
from cadence.store.models import Acknowledgement, Delivery, Person, Team
from cadence.web.deps import WebDeps
from tests import factories as f
from tests.test_dashboard import delivery, occurrence
from tests.test_web import free_port, serve

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SECRET = "group-commit-signing-secret"


def seed(session: Session, people: int) -> list[Delivery]:
    """`people` people, each sent one delivery of one message, all unanswered."""
    message = f.core_message(session, title="Own the outcome")
    sent = occurrence(session, message, 0, NOW)
    found = []
    for i in range(people):
        person = f.person(session, f"p{i}@example.com")
        person.slack_user_id = f"U{i:08d}"
        found.append(delivery(session, sent, person, NOW, "slack"))
    session.commit()
    return found


def acknowledged(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.scalars(select(Acknowledgement.delivery_id)))


def ack(delivery_id: int, person_id: int) -> Callable[[Session], Recorded]:
    def work(session: Session) -> Recorded:
        answer = make_answer("ack")
        return record_answer(
            session, delivery_id, answer, via="slack", now=NOW, person_id=person_id
        )

    return work


@pytest.fixture
def writer(runtime: Runtime) -> Iterator[GroupCommit]:
    # A wide window, so everything submitted together lands in one group.
    group = GroupCommit(runtime.sessions, max_batch=64, max_wait=0.3)
    yield group
    group.close()


def test_many_answers_share_one_commit_and_one_failure_loses_no_other(
    session: Session, runtime: Runtime, engine: Engine, writer: GroupCommit
) -> None:
    sent = seed(session, 12)
    bad = sent[5]

    def fails_after_writing(s: Session) -> None:
        # Writes, then fails: its savepoint must take the write back with it.
        record_answer(s, bad.id, make_answer("ack"), via="slack", now=NOW, person_id=bad.person_id)
        s.add(Team(path="Half-written", name="Half-written"))
        s.flush()
        raise ValueError("this answer's own problem")

    futures: list[Future[object]] = []
    for d in sent:
        work = fails_after_writing if d is bad else ack(d.id, d.person_id)
        futures.append(writer.submit(work))
    results = [fut.exception(timeout=30) or fut.result() for fut in futures]

    assert isinstance(results[5], ValueError)
    assert all(isinstance(r, Recorded) and r.counted for i, r in enumerate(results) if i != 5)
    assert writer.groups == 1, "the twelve answers should have shared one transaction"
    assert acknowledged(engine) == {d.id for d in sent} - {bad.id}
    with engine.connect() as conn:
        assert (
            conn.scalar(select(func.count()).select_from(Team).where(Team.path == "Half-written"))
            == 0
        )


def test_an_answer_that_is_not_the_recipients_is_refused_alone(
    session: Session, engine: Engine, writer: GroupCommit
) -> None:
    sent = seed(session, 3)
    someone_else = sent[1].person_id
    futures = [
        writer.submit(ack(sent[0].id, sent[0].person_id)),
        writer.submit(ack(sent[2].id, someone_else)),  # not theirs
        writer.submit(ack(sent[1].id, sent[1].person_id)),
    ]
    assert futures[1].exception(timeout=30) is not None
    assert futures[0].result(timeout=30).counted and futures[2].result(timeout=30).counted
    assert acknowledged(engine) == {sent[0].id, sent[1].id}


def test_repeated_answers_in_one_group_count_once(
    session: Session, engine: Engine, writer: GroupCommit
) -> None:
    (only,) = seed(session, 1)
    futures = [writer.submit(ack(only.id, only.person_id)) for _ in range(5)]
    counted = [fut.result(timeout=30).counted for fut in futures]
    assert counted.count(True) == 1
    with engine.connect() as conn:
        rows = conn.scalar(select(func.count()).select_from(Acknowledgement))
        kept = conn.scalar(
            select(func.count()).select_from(Acknowledgement).where(Acknowledgement.counted)
        )
    assert (rows, kept) == (5, 1)


def hold_the_table(engine: Engine, held: threading.Event, release: threading.Event) -> None:
    """Keep acknowledgements unwritable by anyone else until `release` is set."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.execute(text("BEGIN"))
            conn.execute(text("LOCK TABLE acknowledgements IN ACCESS EXCLUSIVE MODE"))
        held.set()
        release.wait(30)
        conn.rollback()


def click(url: str, d: Delivery, person: Person) -> httpx.Response:
    payload = {
        "type": "block_actions",
        "user": {"id": person.slack_user_id},
        "actions": [{"action_id": ACK_ACTION_ID, "value": action_value(d.id)}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    headers |= sign(SECRET, body, time.time())
    return httpx.post(f"{url}/slack/interactions", content=body, headers=headers, timeout=30)


def test_a_click_is_answered_only_after_its_answer_is_committed(
    settings: Settings, runtime: Runtime, session: Session, engine: Engine
) -> None:
    (sent,) = seed(session, 1)
    person = session.get(Person, sent.person_id)
    assert person is not None
    port = free_port()
    wired = settings.model_copy(
        update={"base_url": f"http://127.0.0.1:{port}", "slack_signing_secret": SECRET}
    )
    assert wired.redis_url
    deps = WebDeps(
        settings=wired,
        sessions=runtime.sessions,
        redis=redis_client(wired.redis_url),
        send_task=lambda name, args: None,
    )
    held, release = threading.Event(), threading.Event()
    with serve(deps, port) as url:
        locker = threading.Thread(target=hold_the_table, args=(engine, held, release))
        locker.start()
        assert held.wait(10)
        answered: list[httpx.Response] = []
        clicker = threading.Thread(target=lambda: answered.append(click(url, sent, person)))
        clicker.start()
        clicker.join(1.0)
        # While its row cannot be committed, the click has had no answer.
        assert answered == []
        release.set()
        locker.join(10)
        clicker.join(30)
    assert [r.status_code for r in answered] == [200]
    assert acknowledged(engine) == {sent.id}


def test_a_group_whose_commit_fails_is_written_again_one_answer_at_a_time(
    session: Session, engine: Engine, writer: GroupCommit
) -> None:
    """One answer breaks a rule the database checks only at commit: the group's commit fails,
    nobody has been answered, and each answer is then written alone, so only that one fails."""
    sent = seed(session, 6)
    bad = sent[2]

    def fails_at_commit(s: Session) -> None:
        record_answer(s, bad.id, make_answer("ack"), via="slack", now=NOW, person_id=bad.person_id)
        if s.get_bind().dialect.name == "sqlite":
            s.execute(text("PRAGMA defer_foreign_keys = ON"))
            s.add(Team(path="Orphan", name="Orphan", parent_id=999_999))
            s.flush()
        else:
            # A unique key checked at commit: the same value twice passes every statement.
            s.execute(
                text(
                    "CREATE TEMP TABLE IF NOT EXISTS checked_at_commit (n integer "
                    "UNIQUE DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP"
                )
            )
            s.execute(text("INSERT INTO checked_at_commit VALUES (1), (1)"))

    futures = [writer.submit(fails_at_commit if d is bad else ack(d.id, d.person_id)) for d in sent]
    outcomes = [fut.exception(timeout=30) or fut.result() for fut in futures]
    assert isinstance(outcomes[2], Exception)
    assert all(isinstance(o, Recorded) for i, o in enumerate(outcomes) if i != 2), outcomes
    assert writer.groups == 5, "after the failed group, each good answer committed alone"
    assert acknowledged(engine) == {d.id for d in sent} - {bad.id}

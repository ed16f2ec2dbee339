"""Signing in over real HTTP: sessions end on the server, and failed sign-ins are throttled
per client address and per email and address, never per email alone.

A live uvicorn server, a real database and a real Redis (or a dead one); the app's clock is
moved by the tests, so back-offs end without sleeping.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cadence.access.users import create_user
from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.runtime import Runtime
from cadence.store.db import session_scope
from cadence.web.dashboard import SESSION_COOKIE
from cadence.web.deps import WebDeps
from cadence.web.throttle import MAX_BACKOFF, PER_ADDRESS, PER_PAIR, SignInThrottle, client_address
from tests.conftest import CliResult
from tests.test_dashboard import csrf_of
from tests.test_web import free_port, serve

NOW = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"
EMAIL = "comms@example.com"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Server:
    url: str
    clock: Clock

    def client(self, address: str | None = None) -> httpx.Client:
        """A browser; behind the one trusted proxy, it appears to come from `address`."""
        headers = {"X-Forwarded-For": address} if address else {}
        return httpx.Client(base_url=self.url, timeout=20, headers=headers)

    def attempt(self, client: httpx.Client, email: str, password: str) -> httpx.Response:
        form = client.get("/login")
        return client.post(
            "/login",
            data={"email": email, "password": password, "csrf": csrf_of(form.text)},
            headers={"Origin": self.url},
        )


def start(
    settings: Settings, runtime: Runtime, client: redis.Redis, hops: int = 1
) -> Iterator[Server]:
    with session_scope(runtime.sessions) as session:
        create_user(session, EMAIL, "comms", PASSWORD, NOW)
        create_user(session, "other@example.com", "comms", PASSWORD, NOW)
    port = free_port()
    web_settings = settings.model_copy(
        update={"base_url": f"http://127.0.0.1:{port}", "trusted_proxy_hops": hops}
    )
    clock = Clock()
    deps = WebDeps(
        settings=web_settings,
        sessions=runtime.sessions,
        redis=client,
        send_task=lambda name, args: None,
        clock=clock,
    )
    with serve(deps, port) as url:
        yield Server(url, clock)


@pytest.fixture
def server(settings: Settings, runtime: Runtime) -> Iterator[Server]:
    assert settings.redis_url is not None
    yield from start(settings, runtime, redis_client(settings.redis_url))


def dead_redis() -> redis.Redis:
    return redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))


@pytest.fixture
def server_without_redis(settings: Settings, runtime: Runtime) -> Iterator[Server]:
    yield from start(settings, runtime, dead_redis())


def signed_in_cookie(server: Server, client: httpx.Client) -> str:
    done = server.attempt(client, EMAIL, PASSWORD)
    assert done.status_code == 303, done.text
    return client.cookies[SESSION_COOKIE]


def with_cookie(server: Server, cookie: str) -> httpx.Client:
    client = server.client()
    client.cookies.set(SESSION_COOKIE, cookie)
    return client


# ---------------------------------------------------------------------------------------
# Sessions end on the server


def test_a_copied_cookie_is_refused_after_sign_out(server: Server) -> None:
    with server.client() as browser:
        cookie = signed_in_cookie(server, browser)
        with with_cookie(server, cookie) as copy:
            assert copy.get("/dashboard").status_code == 200
        page = browser.get("/dashboard")
        out = browser.post("/logout", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 303
    with with_cookie(server, cookie) as copy:
        refused = copy.get("/dashboard")
    assert refused.status_code == 303 and refused.headers["location"].startswith("/login")


def test_a_password_change_signs_every_browser_out(
    server: Server, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    with server.client() as one, server.client() as two:
        cookies = [signed_in_cookie(server, one), signed_in_cookie(server, two)]
    monkeypatch.setattr("sys.stdin", io.StringIO("a different passphrase\n"))
    changed = cli("user", "password", EMAIL, "--password-stdin")
    assert changed.code == 0, changed
    for cookie in cookies:
        with with_cookie(server, cookie) as copy:
            assert copy.get("/dashboard").status_code == 303
    with server.client() as fresh:
        assert server.attempt(fresh, EMAIL, "a different passphrase").status_code == 303


def test_a_session_expires(server: Server) -> None:
    with server.client() as browser:
        signed_in_cookie(server, browser)
        server.clock.advance(8 * 3600 + 1)
        assert browser.get("/dashboard").status_code == 303


# ---------------------------------------------------------------------------------------
# Throttling


def test_failures_per_email_and_address_answer_429_with_retry_after(server: Server) -> None:
    with server.client("198.51.100.7") as stranger:
        codes = [server.attempt(stranger, EMAIL, "wrong password!!").status_code for _ in range(5)]
        refused = server.attempt(stranger, EMAIL, PASSWORD)
    assert codes == [401] * PER_PAIR
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"
    assert "Try again in a minute (at 12:00 UTC)" in refused.text
    # The stranger's failures, from their address, do not lock the user out of theirs.
    with server.client("203.0.113.9") as user:
        assert server.attempt(user, EMAIL, PASSWORD).status_code == 303


def test_failures_per_address_cover_every_email(server: Server) -> None:
    with server.client("198.51.100.7") as guesser:
        for n in range(PER_ADDRESS):
            tried = server.attempt(guesser, f"guess{n}@example.com", "wrong password!!")
            assert tried.status_code == 401
        refused = server.attempt(guesser, "other@example.com", PASSWORD)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    with server.client("203.0.113.9") as elsewhere:
        assert server.attempt(elsewhere, "other@example.com", PASSWORD).status_code == 303


def test_the_back_off_doubles_up_to_its_cap_and_then_ends(server: Server) -> None:
    waits = []
    with server.client("198.51.100.7") as client:
        for _ in range(PER_PAIR):
            server.attempt(client, EMAIL, "wrong password!!")
        for round in range(5):
            refused = server.attempt(client, EMAIL, "wrong password!!")
            assert refused.status_code == 429
            waits.append(int(refused.headers["retry-after"]))
            server.clock.advance(waits[-1] - 1)
            assert server.attempt(client, EMAIL, PASSWORD).status_code == 429
            server.clock.advance(1)
            if round < 4:
                assert server.attempt(client, EMAIL, "wrong password!!").status_code == 401
        # Never longer than the cap, and the right password works once the lock ends.
        assert waits == [30, 60, 120, 240, int(MAX_BACKOFF.total_seconds())]
        assert server.attempt(client, EMAIL, PASSWORD).status_code == 303


def test_forwarded_for_is_ignored_unless_a_proxy_is_trusted(
    settings: Settings, runtime: Runtime
) -> None:
    assert settings.redis_url is not None
    for server in start(settings, runtime, redis_client(settings.redis_url), hops=0):
        for n in range(PER_PAIR):  # a made-up address each time: still one socket address
            with server.client(f"198.51.100.{n}") as client:
                server.attempt(client, EMAIL, "wrong password!!")
        with server.client("203.0.113.9") as client:
            assert server.attempt(client, EMAIL, PASSWORD).status_code == 429


def test_without_redis_sign_in_and_throttling_still_work(server_without_redis: Server) -> None:
    server = server_without_redis
    with server.client("198.51.100.7") as client:
        codes = [server.attempt(client, EMAIL, "wrong password!!").status_code for _ in range(6)]
    assert codes == [401] * PER_PAIR + [429]
    with server.client("203.0.113.9") as user:
        assert server.attempt(user, EMAIL, PASSWORD).status_code == 303
        assert user.get("/dashboard").status_code == 200


def test_the_throttle_works_with_no_redis_client_at_all() -> None:
    clock = Clock()
    throttle = SignInThrottle(None, clock)
    for _ in range(PER_PAIR):
        throttle.failed("192.0.2.1", EMAIL)
    assert throttle.retry_after("192.0.2.1", EMAIL) == 30
    assert throttle.retry_after("192.0.2.2", EMAIL) == 0
    clock.advance(30)
    assert throttle.retry_after("192.0.2.1", EMAIL) == 0


@pytest.mark.parametrize(
    ("forwarded", "hops", "expected"),
    [
        ("198.51.100.7", 0, "127.0.0.1"),
        ("198.51.100.7", 1, "198.51.100.7"),
        ("6.6.6.6, 198.51.100.7", 1, "198.51.100.7"),  # the left one was made up
        ("198.51.100.7, 10.0.0.2", 2, "198.51.100.7"),
        ("not-an-address", 1, "127.0.0.1"),
        (None, 1, "127.0.0.1"),
    ],
)
def test_the_client_address(forwarded: str | None, hops: int, expected: str) -> None:
    assert client_address("127.0.0.1", forwarded, hops) == expected

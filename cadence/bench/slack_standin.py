"""A loopback stand-in for the Slack Web API methods Cadence calls.

Tests and the fan-out benchmark need Slack's wire behaviour (HTTP 200 with `ok: false`, 429
with `Retry-After`, slow or failing answers, message metadata read back from history) without
a workspace, so this serves those methods from memory over a real socket. slack-sdk clients
talk to it unchanged: `WebClient(token=standin.token, base_url=standin.base_url)`.

It runs in a thread of the calling process (`SlackStandIn`, for tests) or in a process of its
own (`SlackStandInProcess`, for benchmarks, so the server does not share the client's GIL).
Both are driven by the same control operations: directly in Python for the first, over
`/_control/...` HTTP endpoints for the second.

Run it by hand with `python -m cadence.bench.slack_standin --port 0 --token T`: the first
line on stdout is the port it listens on.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import copy
import json
import math
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar

from aiohttp import web

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_TOKEN",
    "Fault",
    "RecordedRequest",
    "SlackStandIn",
    "SlackStandInControl",
    "SlackStandInProcess",
    "SlackStats",
    "SlackUser",
    "SlackWorkspace",
    "create_app",
    "main",
]

DEFAULT_TOKEN = "xoxb-cadence-stand-in"
DEFAULT_BURST = 3
BOT_USER_ID = "U0CADENCEBOT"
BOT_ID = "B0CADENCEBOT"
TEAM_ID = "T0CADENCE"
USERS_LIST_DEFAULT_LIMIT = 200
USERS_LIST_MAX_LIMIT = 1000
HISTORY_DEFAULT_LIMIT = 100
HISTORY_MAX_LIMIT = 999

Params = dict[str, Any]
Answer = tuple[int, dict[str, Any], dict[str, str] | None]
T = TypeVar("T")


@dataclass(frozen=True)
class SlackUser:
    """A member of the stand-in's directory, as users.list and lookupByEmail report it."""

    id: str
    email: str
    deleted: bool = False
    name: str = ""
    tz: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlackUser:
        """Accept both the flat form (`email`) and Slack's member form (`profile.email`)."""
        profile = data.get("profile") or {}
        return cls(
            id=str(data["id"]),
            email=str(data.get("email") or profile.get("email") or ""),
            deleted=bool(data.get("deleted", False)),
            name=str(data.get("name") or profile.get("real_name") or ""),
            tz=data.get("tz"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_member(self) -> dict[str, Any]:
        """The user object Slack returns: id, deleted flag and profile.email matter here."""
        name = self.name or self.email.partition("@")[0]
        return {
            "id": self.id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": self.deleted,
            "is_bot": False,
            "tz": self.tz,
            "profile": {"email": self.email, "real_name": self.name, "display_name": name},
        }


@dataclass
class Fault:
    """An injected misbehaviour for the next `count` API calls (of `method`, or any method).

    Exactly one of `status` (answer with that HTTP status; 429 carries `Retry-After:
    retry_after`), `stall` (wait that many seconds, then handle the call), `late` (handle the
    call at once, then wait that many seconds before answering: accepted, answer late) and
    `error` (answer HTTP 200 with `ok: false` and that error).
    """

    count: int
    status: int | None = None
    stall: float | None = None
    error: str | None = None
    method: str | None = None
    late: float | None = None
    retry_after: float | None = None
    # With `status`: handle the call first, then answer with the status (a gateway that
    # gave up on an answer Slack was about to give: the message was posted).
    accept: bool = False

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("count must be at least 1")
        kinds = [k for k in (self.status, self.stall, self.late, self.error) if k is not None]
        if not kinds:
            self.status = 500
        elif len(kinds) > 1:
            raise ValueError("give one of status, stall, late or error")
        if self.late is not None and self.late < 0:
            raise ValueError("late must not be negative")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"bad HTTP status {self.status}")
        if self.stall is not None and self.stall < 0:
            raise ValueError("stall must not be negative")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        unknown = set(data) - {
            "count", "status", "stall", "error", "method", "late", "retry_after", "accept"
        }  # fmt: skip
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")

        def number(key: str) -> float | None:
            return None if data.get(key) is None else float(data[key])

        return cls(
            count=int(data.get("count", 1)),
            status=None if data.get("status") is None else int(data["status"]),
            stall=number("stall"),
            error=None if data.get("error") is None else str(data["error"]),
            method=None if data.get("method") is None else str(data["method"]),
            late=number("late"),
            retry_after=number("retry_after"),
            accept=bool(data.get("accept", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One API call as the stand-in saw it: the token is left out of `params`."""

    method: str
    monotonic: float
    wall: float
    params: dict[str, Any]
    status: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecordedRequest:
        return cls(
            method=str(data["method"]),
            monotonic=float(data["monotonic"]),
            wall=float(data["wall"]),
            params=dict(data["params"]),
            status=int(data["status"]),
            error=data.get("error"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "monotonic": self.monotonic,
            "wall": self.wall,
            "params": self.params,
            "status": self.status,
            "error": self.error,
        }


@dataclass(frozen=True)
class SlackStats:
    """Counters kept whether or not requests are recorded, so benchmarks can read them cheaply.

    Monotonic times come from `time.monotonic()` in the server's process; on Linux that clock
    is system-wide, so they compare with the client's own readings.
    """

    requests: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    by_status: dict[int, int] = field(default_factory=dict)
    by_method_status: dict[str, dict[int, int]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    ratelimited: int = 0
    posted: int = 0
    first_post_monotonic: float | None = None
    last_post_monotonic: float | None = None
    first_post_wall: float | None = None
    last_post_wall: float | None = None

    @property
    def posts_per_second(self) -> float | None:
        """Posts accepted per second between the first and the last one."""
        first, last = self.first_post_monotonic, self.last_post_monotonic
        if self.posted < 2 or first is None or last is None or last <= first:
            return None
        return (self.posted - 1) / (last - first)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlackStats:
        return cls(
            requests=int(data["requests"]),
            by_method={str(k): int(v) for k, v in data["by_method"].items()},
            by_status={int(k): int(v) for k, v in data["by_status"].items()},
            by_method_status={
                str(m): {int(k): int(v) for k, v in counts.items()}
                for m, counts in data["by_method_status"].items()
            },
            errors={str(k): int(v) for k, v in data["errors"].items()},
            ratelimited=int(data["ratelimited"]),
            posted=int(data["posted"]),
            first_post_monotonic=data.get("first_post_monotonic"),
            last_post_monotonic=data.get("last_post_monotonic"),
            first_post_wall=data.get("first_post_wall"),
            last_post_wall=data.get("last_post_wall"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_method": self.by_method,
            "by_status": {str(k): v for k, v in self.by_status.items()},
            "by_method_status": {
                m: {str(k): v for k, v in counts.items()}
                for m, counts in self.by_method_status.items()
            },
            "errors": self.errors,
            "ratelimited": self.ratelimited,
            "posted": self.posted,
            "first_post_monotonic": self.first_post_monotonic,
            "last_post_monotonic": self.last_post_monotonic,
            "first_post_wall": self.first_post_wall,
            "last_post_wall": self.last_post_wall,
            "posts_per_second": self.posts_per_second,
        }


class _Bucket:
    """A token bucket: `capacity` calls at once, refilled at `per_minute` calls a minute."""

    __slots__ = ("capacity", "per_second", "stamp", "tokens")

    def __init__(self, per_minute: float, capacity: int) -> None:
        self.per_second = per_minute / 60.0
        self.capacity = float(max(1, capacity))
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self, now: float) -> int:
        """Spend one token; 0 if allowed, else the whole seconds to wait (at least 1)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - self.tokens) / self.per_second))


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _json_field(value: Any) -> Any:
    """Form bodies carry `blocks` and `metadata` as JSON text; JSON bodies carry objects."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _ts_micros(ts: Any) -> int | None:
    """Compare timestamps exactly: a float cannot hold 16 significant digits reliably."""
    if ts is None or ts == "":
        return None
    seconds, _, fraction = str(ts).partition(".")
    try:
        return int(seconds) * 1_000_000 + int((fraction + "000000")[:6])
    except ValueError:
        return None


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_cursor(cursor: Any) -> int | None:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(str(cursor).encode()).decode()
        prefix, _, number = text.partition(":")
        offset = int(number)
    except ValueError:
        return None
    return offset if prefix == "offset" and offset >= 0 else None


def _limit(value: Any, default: int, maximum: int) -> int:
    try:
        limit = int(value) if value not in (None, "") else 0
    except (TypeError, ValueError):
        limit = 0
    return min(limit, maximum) if limit > 0 else default


def _error(error: str) -> Answer:
    return 200, {"ok": False, "error": error}, None


def _ok(body: dict[str, Any]) -> Answer:
    return 200, body, None


class SlackWorkspace:
    """The stand-in's state and the API methods' behaviour, independent of the HTTP server.

    Not thread-safe: everything runs on the server's event loop, and the thread-based
    `SlackStandIn` hands its control calls to that loop.

    Channel rules: a user id (`U...`/`W...`) or a DM id (`D` + user id) is a DM with that
    user. A deleted user in the directory is always refused (`account_inactive`); a user the
    directory does not know is accepted only in accept-any mode (the default, for benchmarks).
    Any other channel id is accepted as it is.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        rate_per_minute: float = 0.0,
        burst: int = DEFAULT_BURST,
        users: Iterable[SlackUser | Mapping[str, Any]] = (),
        accept_any: bool | None = None,
        method_rates: Mapping[str, float] | None = None,
        record: bool = True,
    ) -> None:
        self._initial: dict[str, Any] = {
            "token": token,
            "rate_per_minute": rate_per_minute,
            "burst": burst,
            "users": [u if isinstance(u, SlackUser) else SlackUser.from_dict(u) for u in users]
            or None,
            "accept_any": accept_any,
            "method_rates": dict(method_rates or {}),
            "record": record,
        }
        self.token = token
        self.rate_per_minute = 0.0
        self.burst = DEFAULT_BURST
        self.method_rates: dict[str, float] = {}
        self.accept_any = True
        self.record = True
        self._users: dict[str, SlackUser] = {}
        self._members: list[dict[str, Any]] = []
        self._by_email: dict[str, SlackUser] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._faults: deque[Fault] = deque()
        self._chaos: list[tuple[float, Fault]] = []
        self._random = random.Random(0)
        self._release: asyncio.Event | None = None
        self._methods: dict[str, Callable[[Params], Answer]] = {
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "users.list": self._users_list,
            "users.lookupByEmail": self._users_lookup_by_email,
            "views.open": self._views_open,
            "auth.test": self._auth_test,
        }
        self.reset()

    def _clear(self) -> None:
        self._records: list[RecordedRequest] = []
        self._counts: dict[tuple[str, int], int] = {}
        self._errors: dict[str, int] = {}
        self._ratelimited = 0
        self._posted = 0
        self._first_post: tuple[float, float] | None = None
        self._last_post: tuple[float, float] | None = None
        self._channels: dict[str, list[dict[str, Any]]] = {}
        self._by_ts: dict[tuple[str, str], dict[str, Any]] = {}
        self._last_ts_micros = 0
        self._views = 0
        self._faults.clear()
        self._chaos = []

    def configure(
        self,
        *,
        token: str | None = None,
        rate_per_minute: float | None = None,
        burst: int | None = None,
        users: Iterable[SlackUser | Mapping[str, Any]] | None = None,
        accept_any: bool | None = None,
        method_rates: Mapping[str, float] | None = None,
        record: bool | None = None,
    ) -> dict[str, Any]:
        """Change only what is given. `rate_per_minute=0` turns chat.postMessage's limit off.

        Giving non-empty `users` without `accept_any` turns accept-any off, so the directory is
        enforced.
        `method_rates` limits other methods (e.g. `{"conversations.open": 50}`), with `burst`.
        Limits start with a full bucket whenever this is called.
        """
        if token is not None:
            self.token = token
        if rate_per_minute is not None:
            if rate_per_minute < 0:
                raise ValueError("rate_per_minute must not be negative")
            self.rate_per_minute = float(rate_per_minute)
        if burst is not None:
            if burst < 1:
                raise ValueError("burst must be at least 1")
            self.burst = int(burst)
        if method_rates is not None:
            self.method_rates = {str(m): float(r) for m, r in method_rates.items()}
        if users is not None:
            parsed = [u if isinstance(u, SlackUser) else SlackUser.from_dict(u) for u in users]
            self._users = {u.id: u for u in parsed}
            self._members = [u.to_member() for u in parsed]
            self._by_email = {u.email.lower(): u for u in parsed if u.email}
            if accept_any is None and parsed:
                self.accept_any = False
        if accept_any is not None:
            self.accept_any = bool(accept_any)
        if record is not None:
            self.record = bool(record)
        rates = dict(self.method_rates)
        if self.rate_per_minute > 0:
            rates["chat.postMessage"] = self.rate_per_minute
        self._buckets = {m: _Bucket(r, self.burst) for m, r in rates.items() if r > 0}
        return self.config()

    def config(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "rate_per_minute": self.rate_per_minute,
            "burst": self.burst,
            "method_rates": dict(self.method_rates),
            "accept_any": self.accept_any,
            "record": self.record,
            "users": [u.to_dict() for u in self._users.values()],
        }

    def fail_next(self, fault: Fault) -> None:
        """Queue a fault; faults apply in the order given, each to calls matching its method."""
        self._faults.append(fault)

    def set_chaos(self, rules: Iterable[Mapping[str, Any]], seed: int = 0) -> None:
        """Misbehave at random from now on: each rule is a fault (as for `fail_next`, without
        `count`) with a `share` of the calls it hits, e.g. `{"share": 0.01, "status": 429,
        "retry_after": 2}`; `method` defaults to chat.postMessage. Queued faults go first.
        The draws are seeded, so a run can be repeated. An empty list stops it."""
        chaos = []
        for rule in rules:
            fields = dict(rule)
            share = float(fields.pop("share", 0))
            if not 0 <= share <= 1:
                raise ValueError("share must be between 0 and 1")
            fields.setdefault("method", "chat.postMessage")
            chaos.append((share, Fault.from_dict({**fields, "count": 1})))
        if sum(share for share, _ in chaos) > 1:
            raise ValueError("the shares add up to more than 1")
        self._chaos = chaos
        self._random = random.Random(seed)

    def reset(self) -> None:
        """Forget calls, messages and faults and go back to the configuration given at start."""
        self.release_stalls()
        self._clear()
        self.rate_per_minute = 0.0
        self.burst = DEFAULT_BURST
        self.method_rates = {}
        self.accept_any = True
        self.record = True
        self._users, self._members, self._by_email = {}, [], {}
        self.configure(**self._initial)

    def release_stalls(self) -> None:
        """End every stall now (on reset and shutdown), so nothing waits out its timer."""
        if self._release is not None:
            self._release.set()
            self._release = None

    def requests(self, method: str | None = None) -> list[RecordedRequest]:
        """Recorded calls in the order they arrived."""
        records = sorted(self._records, key=lambda r: r.monotonic)
        if method is not None:
            records = [r for r in records if r.method == method]
        return records

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Posted messages, oldest first, each with its `channel`."""
        if channel is not None:
            found = self._channels.get(self._dm_id(channel), [])
        else:
            found = sorted(
                (m for ms in self._channels.values() for m in ms),
                key=lambda m: _ts_micros(m["ts"]) or 0,
            )
        return copy.deepcopy(found)

    def stats(self) -> SlackStats:
        by_method: dict[str, int] = {}
        by_status: dict[int, int] = {}
        by_method_status: dict[str, dict[int, int]] = {}
        for (method, status), n in self._counts.items():
            by_method[method] = by_method.get(method, 0) + n
            by_status[status] = by_status.get(status, 0) + n
            by_method_status.setdefault(method, {})[status] = n
        first, last = self._first_post, self._last_post
        return SlackStats(
            requests=sum(by_method.values()),
            by_method=by_method,
            by_status=by_status,
            by_method_status=by_method_status,
            errors=dict(self._errors),
            ratelimited=self._ratelimited,
            posted=self._posted,
            first_post_monotonic=first[0] if first else None,
            last_post_monotonic=last[0] if last else None,
            first_post_wall=first[1] if first else None,
            last_post_wall=last[1] if last else None,
        )

    async def call(self, method: str, params: Params, token: str | None) -> Answer:
        """Answer one API call and count it: the whole path a request takes."""
        received = time.monotonic()
        wall = time.time()
        status, body, headers = await self._answer(method, params, token, received)
        key = (method, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        error = None if body.get("ok", False) else body.get("error")
        if error is not None:
            self._errors[error] = self._errors.get(error, 0) + 1
        if self.record:
            self._records.append(RecordedRequest(method, received, wall, params, status, error))
        return status, body, headers

    async def _answer(
        self, method: str, params: Params, token: str | None, received: float
    ) -> Answer:
        fault = self._take_fault(method) if self._faults else None
        if fault is None and self._chaos:
            fault = self._draw_chaos(method)
        if fault is not None:
            if fault.stall is not None:
                await self._stall(fault.stall)
            elif fault.status == 429:
                self._ratelimited += 1
                after = str(max(1, math.ceil(fault.retry_after or 1)))
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": after}
            elif fault.status is not None and not fault.accept:
                return fault.status, {"ok": False, "error": "internal_error"}, None
        if not token:
            return _error("not_authed")
        if token != self.token:
            return _error("invalid_auth")
        if fault is not None and fault.error is not None:
            return _error(fault.error)
        handler = self._methods.get(method)
        if handler is None:
            return _error("unknown_method")
        bucket = self._buckets.get(method)
        if bucket is not None:
            wait = bucket.take(received)
            if wait:
                self._ratelimited += 1
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)}
        answer = handler(params)
        if fault is not None and fault.late is not None:
            await self._stall(fault.late)  # done already; the answer is what is late
        if fault is not None and fault.accept and fault.status is not None:
            return fault.status, {"ok": False, "error": "internal_error"}, None
        return answer

    def _draw_chaos(self, method: str) -> Fault | None:
        draw = self._random.random()
        for share, fault in self._chaos:
            if fault.method is not None and fault.method != method:
                continue
            if draw < share:
                return fault
            draw -= share
        return None

    def _take_fault(self, method: str) -> Fault | None:
        for fault in self._faults:
            if fault.method is None or fault.method == method:
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    async def _stall(self, seconds: float) -> None:
        if self._release is None:
            self._release = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), seconds)

    def _next_ts(self) -> str:
        micros = max(time.time_ns() // 1000, self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    @staticmethod
    def _dm_id(channel: str) -> str:
        return "D" + channel if channel[:1] in ("U", "W") else channel

    def _check_user(self, user_id: str) -> str | None:
        """None if a DM with this user is allowed, else why not ("unknown" or "deleted")."""
        user = self._users.get(user_id)
        if user is None:
            return None if self.accept_any else "unknown"
        return "deleted" if user.deleted else None

    def _resolve(self, channel: str) -> tuple[str, str | None]:
        """The conversation id a channel argument names, and the error posting to it gives."""
        first = channel[:1]
        if first in ("U", "W"):
            user_id, dm = channel, "D" + channel
        elif first == "D":
            user_id, dm = channel[1:], channel
        else:
            return channel, None
        problem = self._check_user(user_id)
        if problem == "deleted":
            return dm, "account_inactive"
        if problem == "unknown":
            return dm, "channel_not_found"
        return dm, None

    def _chat_post_message(self, params: Params) -> Answer:
        channel = params.get("channel")
        if not channel:
            return _error("channel_not_found")
        target, error = self._resolve(str(channel))
        if error:
            return _error(error)
        text = params.get("text")
        blocks = _json_field(params.get("blocks"))
        attachments = _json_field(params.get("attachments"))
        if not text and not blocks and not attachments:
            return _error("no_text")
        metadata = _json_field(params.get("metadata"))
        if metadata is not None and (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            return _error("invalid_metadata_format")
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "text": text or "",
            "ts": ts,
            "channel": target,
        }
        if blocks:
            message["blocks"] = blocks
        if attachments:
            message["attachments"] = attachments
        if metadata:
            message["metadata"] = metadata
        if params.get("thread_ts"):
            message["thread_ts"] = str(params["thread_ts"])
        self._channels.setdefault(target, []).append(message)
        self._by_ts[(target, ts)] = message
        self._posted += 1
        now = (time.monotonic(), time.time())
        if self._first_post is None:
            self._first_post = now
        self._last_post = now
        return _ok({"ok": True, "channel": target, "ts": ts, "message": message})

    def _chat_update(self, params: Params) -> Answer:
        channel, ts = params.get("channel"), params.get("ts")
        if not channel:
            return _error("channel_not_found")
        if not ts:
            return _error("message_not_found")
        target, error = self._resolve(str(channel))
        if error:
            return _error(error)
        message = self._by_ts.get((target, str(ts)))
        if message is None:
            return _error("message_not_found")
        if "text" in params:
            message["text"] = params["text"] or ""
        for key in ("blocks", "attachments", "metadata"):
            if key in params:
                message[key] = _json_field(params[key])
        message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return _ok(
            {
                "ok": True,
                "channel": target,
                "ts": message["ts"],
                "text": message["text"],
                "message": message,
            }
        )

    def _conversations_open(self, params: Params) -> Answer:
        if params.get("channel"):
            return _ok({"ok": True, "channel": {"id": str(params["channel"])}})
        raw = params.get("users") or ""
        ids = [u.strip() for u in (raw if isinstance(raw, list) else str(raw).split(","))]
        ids = [u for u in ids if u]
        if not ids:
            return _error("users_list_not_supplied")
        for user_id in ids:
            problem = self._check_user(user_id)
            if problem == "unknown":
                return _error("user_not_found")
            if problem == "deleted":
                return _error("user_disabled")
        channel_id = "D" + ids[0] if len(ids) == 1 else "G" + "".join(sorted(ids))
        return _ok(
            {"ok": True, "no_op": False, "already_open": False, "channel": {"id": channel_id}}
        )

    def _conversations_history(self, params: Params) -> Answer:
        channel = params.get("channel")
        if not channel:
            return _error("channel_not_found")
        target, error = self._resolve(str(channel))
        if error == "channel_not_found":
            return _error(error)
        offset = _decode_cursor(params.get("cursor"))
        if offset is None:
            return _error("invalid_cursor")
        limit = _limit(params.get("limit"), HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT)
        oldest, latest = _ts_micros(params.get("oldest")), _ts_micros(params.get("latest"))
        inclusive = _truthy(params.get("inclusive", False))
        found = []
        for message in reversed(self._channels.get(target, [])):
            at = _ts_micros(message["ts"]) or 0
            if latest is not None and (at > latest or (at == latest and not inclusive)):
                continue
            if oldest is not None and (at < oldest or (at == oldest and not inclusive)):
                break
            found.append(message)
        page = found[offset : offset + limit]
        if not _truthy(params.get("include_all_metadata", False)):
            page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = offset + limit < len(found)
        return _ok(
            {
                "ok": True,
                "messages": page,
                "has_more": more,
                "pin_count": 0,
                "response_metadata": {
                    "next_cursor": _encode_cursor(offset + limit) if more else ""
                },
            }
        )

    def _users_list(self, params: Params) -> Answer:
        offset = _decode_cursor(params.get("cursor"))
        if offset is None:
            return _error("invalid_cursor")
        limit = _limit(params.get("limit"), USERS_LIST_DEFAULT_LIMIT, USERS_LIST_MAX_LIMIT)
        page = self._members[offset : offset + limit]
        more = offset + limit < len(self._members)
        return _ok(
            {
                "ok": True,
                "members": page,
                "cache_ts": int(time.time()),
                "response_metadata": {
                    "next_cursor": _encode_cursor(offset + limit) if more else ""
                },
            }
        )

    def _users_lookup_by_email(self, params: Params) -> Answer:
        user = self._by_email.get(str(params.get("email") or "").strip().lower())
        if user is None:
            return _error("users_not_found")
        return _ok({"ok": True, "user": user.to_member()})

    def _views_open(self, params: Params) -> Answer:
        if not params.get("trigger_id") and not params.get("interactivity_pointer"):
            return _error("invalid_arguments")
        view = _json_field(params.get("view"))
        if not isinstance(view, dict):
            return _error("invalid_arguments")
        self._views += 1
        return _ok({"ok": True, "view": {**view, "id": f"V{self._views:010d}", "team_id": TEAM_ID}})

    def _auth_test(self, params: Params) -> Answer:
        return _ok(
            {
                "ok": True,
                "url": "https://cadence-stand-in.slack.com/",
                "team": "Cadence stand-in",
                "user": "cadence",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        )


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


async def _read_params(request: web.Request) -> Params | None:
    """Query string plus body, JSON or form, the ways slack-sdk sends arguments; None if bad."""
    params: Params = dict(request.query) if request.query_string else {}
    if not request.body_exists:
        return params
    ctype = request.content_type
    if ctype.startswith("multipart/"):
        form = await request.post()
        params.update((k, v) for k, v in form.items() if isinstance(v, str))
        return params
    raw = await request.read()
    if not raw:
        return params
    if ctype == "application/json":
        try:
            body = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        params.update(body)
    else:
        params.update(
            urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        )
    return params


def create_app(workspace: SlackWorkspace) -> web.Application:
    """The aiohttp application: `/api/<method>` for clients, `/_control/...` for tests."""

    async def api(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _read_params(request)
        if params is None:
            return web.json_response({"ok": False, "error": "invalid_json"}, dumps=_dumps)
        header = request.headers.get("Authorization", "")
        token: str | None = header[7:].strip() if header[:7].lower() == "bearer " else None
        body_token = params.pop("token", None)
        if not token and body_token:
            token = str(body_token)
        status, body, headers = await workspace.call(method, params, token)
        return web.json_response(body, status=status, headers=headers, dumps=_dumps)

    async def read_json(request: web.Request) -> dict[str, Any]:
        if not request.body_exists:
            return {}
        data = await request.json()
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    def control(
        action: Callable[[web.Request], Awaitable[Any]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def view(request: web.Request) -> web.Response:
            try:
                result = await action(request)
            except (ValueError, TypeError, KeyError) as exc:
                return web.json_response({"ok": False, "error": str(exc)}, status=400)
            return web.json_response(result, dumps=_dumps)

        return view

    async def configure(request: web.Request) -> Any:
        return {"ok": True, "config": workspace.configure(**await read_json(request))}

    async def config(request: web.Request) -> Any:
        return workspace.config()

    async def fail(request: web.Request) -> Any:
        workspace.fail_next(Fault.from_dict(await read_json(request)))
        return {"ok": True}

    async def chaos(request: web.Request) -> Any:
        data = await read_json(request)
        workspace.set_chaos(data.get("rules", []), int(data.get("seed", 0)))
        return {"ok": True}

    async def requests(request: web.Request) -> Any:
        return [r.to_dict() for r in workspace.requests(request.query.get("method"))]

    async def messages(request: web.Request) -> Any:
        return workspace.messages(request.query.get("channel"))

    async def stats(request: web.Request) -> Any:
        return workspace.stats().to_dict()

    async def reset(request: web.Request) -> Any:
        workspace.reset()
        return {"ok": True}

    app = web.Application()
    app.router.add_route("*", "/api/{method}", api)
    app.router.add_post("/_control/configure", control(configure))
    app.router.add_get("/_control/config", control(config))
    app.router.add_post("/_control/fail", control(fail))
    app.router.add_post("/_control/chaos", control(chaos))
    app.router.add_get("/_control/requests", control(requests))
    app.router.add_get("/_control/messages", control(messages))
    app.router.add_get("/_control/stats", control(stats))
    app.router.add_post("/_control/reset", control(reset))
    return app


def _listen(host: str, port: int) -> socket.socket:
    """Bind before serving, so the port (OS-chosen when 0) is known at once."""
    return socket.create_server((host, port), backlog=1024)


async def _start(workspace: SlackWorkspace, sock: socket.socket) -> web.AppRunner:
    runner = web.AppRunner(
        create_app(workspace), access_log=None, handle_signals=False, shutdown_timeout=2.0
    )
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


def _url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


class SlackStandInControl(Protocol):
    """What both ways of running the stand-in offer, for code that takes either."""

    @property
    def url(self) -> str: ...

    @property
    def base_url(self) -> str: ...

    @property
    def token(self) -> str: ...

    def configure(
        self,
        *,
        token: str | None = None,
        rate_per_minute: float | None = None,
        burst: int | None = None,
        users: Iterable[SlackUser | Mapping[str, Any]] | None = None,
        accept_any: bool | None = None,
        method_rates: Mapping[str, float] | None = None,
        record: bool | None = None,
    ) -> dict[str, Any]: ...

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int | None = None,
        stall: float | None = None,
        error: str | None = None,
        method: str | None = None,
        late: float | None = None,
        retry_after: float | None = None,
    ) -> None: ...

    def set_chaos(self, rules: Iterable[Mapping[str, Any]], seed: int = 0) -> None: ...

    def requests(self, method: str | None = None) -> list[RecordedRequest]: ...

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]: ...

    def stats(self) -> SlackStats: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


class SlackStandIn:
    """The stand-in on a thread of this process, with its own event loop, for tests.

    Use as a context manager. Keyword arguments are the initial configuration (see
    `SlackWorkspace.configure`); `reset()` returns to it.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_per_minute: float = 0.0,
        burst: int = DEFAULT_BURST,
        users: Iterable[SlackUser | Mapping[str, Any]] = (),
        accept_any: bool | None = None,
        method_rates: Mapping[str, float] | None = None,
        record: bool = True,
    ) -> None:
        self._workspace = SlackWorkspace(
            token=token,
            rate_per_minute=rate_per_minute,
            burst=burst,
            users=users,
            accept_any=accept_any,
            method_rates=method_rates,
            record=record,
        )
        self._host, self._port_wanted = host, port
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the Slack stand-in is not running")
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return _url(self._host, self.port)

    @property
    def base_url(self) -> str:
        """What slack-sdk's clients take as `base_url` (with the trailing slash they need)."""
        return self.url + "/api/"

    @property
    def token(self) -> str:
        return self._call(lambda: self._workspace.token)

    def start(self) -> SlackStandIn:
        if self._thread is not None:
            raise RuntimeError("the Slack stand-in is already running")
        self._sock = _listen(self._host, self._port_wanted)
        self._ready.clear()
        self._thread = threading.Thread(target=self._serve, name="slack-stand-in", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._failure is not None or self._loop is None:
            self._thread.join(5)
            self._thread = None
            raise RuntimeError("the Slack stand-in did not start") from self._failure
        return self

    def _serve(self) -> None:
        assert self._sock is not None
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            runner = loop.run_until_complete(_start(self._workspace, self._sock))
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            loop.close()
            return
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._workspace.release_stalls()
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def close(self) -> None:
        """Stop serving: stalled calls are answered at once, then connections close."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._thread = self._loop = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the server's loop, where the workspace lives, and return its result."""
        loop = self._loop
        if loop is None:
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    def configure(
        self,
        *,
        token: str | None = None,
        rate_per_minute: float | None = None,
        burst: int | None = None,
        users: Iterable[SlackUser | Mapping[str, Any]] | None = None,
        accept_any: bool | None = None,
        method_rates: Mapping[str, float] | None = None,
        record: bool | None = None,
    ) -> dict[str, Any]:
        users_list = None if users is None else list(users)
        return self._call(
            lambda: self._workspace.configure(
                token=token,
                rate_per_minute=rate_per_minute,
                burst=burst,
                users=users_list,
                accept_any=accept_any,
                method_rates=method_rates,
                record=record,
            )
        )

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int | None = None,
        stall: float | None = None,
        error: str | None = None,
        method: str | None = None,
        late: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Make the next `count` calls fail; with no kind given, they answer HTTP 500."""
        fault = Fault(
            count, status=status, stall=stall, error=error, method=method, late=late,
            retry_after=retry_after,
        )  # fmt: skip
        self._call(lambda: self._workspace.fail_next(fault))

    def set_chaos(self, rules: Iterable[Mapping[str, Any]], seed: int = 0) -> None:
        given = [dict(r) for r in rules]
        self._call(lambda: self._workspace.set_chaos(given, seed))

    def requests(self, method: str | None = None) -> list[RecordedRequest]:
        return self._call(lambda: self._workspace.requests(method))

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        return self._call(lambda: self._workspace.messages(channel))

    def stats(self) -> SlackStats:
        return self._call(self._workspace.stats)

    def reset(self) -> None:
        self._call(self._workspace.reset)


class SlackStandInProcess:
    """The stand-in in a process of its own, driven over its HTTP control API.

    For benchmarks: in-process, the server would share the GIL with the client it measures.
    The child exits when this object closes or when this process dies (it watches its stdin).

    To measure a client against it, e.g. slack-sdk's AsyncWebClient sharing one aiohttp
    session with 32 calls in flight: start it (`record=False` for long runs), post N messages
    through `AsyncWebClient(token=slack.token, base_url=slack.base_url, session=session)`
    under an `asyncio.Semaphore(32)`, and divide N by the elapsed time;
    `slack.stats().posts_per_second` gives the server's own view of the same run.

    On the 2-core development machine, 5,000 posts that way ran at 2,300-5,100 calls/s
    (about 3,000 typically, swinging with other load), the client process being the
    bottleneck; a bare aiohttp client gets about 6,500 calls/s from the stand-in.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_per_minute: float = 0.0,
        burst: int = DEFAULT_BURST,
        users: Iterable[SlackUser | Mapping[str, Any]] = (),
        accept_any: bool | None = None,
        method_rates: Mapping[str, float] | None = None,
        record: bool = True,
        python: str = sys.executable,
        startup_timeout: float = 30.0,
    ) -> None:
        self._token, self._host, self._port_wanted = token, host, port
        self._python, self._startup_timeout = python, startup_timeout
        self._config: dict[str, Any] = {
            "rate_per_minute": rate_per_minute,
            "burst": burst,
            "users": [u.to_dict() if isinstance(u, SlackUser) else dict(u) for u in users],
            "accept_any": accept_any,
            "method_rates": dict(method_rates or {}),
            "record": record,
        }
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self.returncode: int | None = None
        """The child's exit status once closed: 0 when it shut down cleanly."""
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the Slack stand-in is not running")
        return self._port

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the Slack stand-in is not running")
        return self._proc.pid

    @property
    def url(self) -> str:
        return _url(self._host, self.port)

    @property
    def base_url(self) -> str:
        return self.url + "/api/"

    @property
    def token(self) -> str:
        return str(self._control("GET", "config")["token"])

    def start(self) -> SlackStandInProcess:
        if self._proc is not None:
            raise RuntimeError("the Slack stand-in is already running")
        command = [
            self._python,
            "-m",
            "cadence.bench.slack_standin",
            "--host",
            self._host,
            "--port",
            str(self._port_wanted),
            "--token",
            self._token,
            "--config",
            json.dumps(self._config),
            "--exit-on-stdin-eof",
        ]
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            self._port = self._read_port(self._proc)
        except BaseException:
            self.close()
            raise
        return self

    def _read_port(self, proc: subprocess.Popen[bytes]) -> int:
        assert proc.stdout is not None
        line = b""
        deadline = time.monotonic() + self._startup_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise RuntimeError("the Slack stand-in did not report its port in time")
                chunk = os.read(proc.stdout.fileno(), 64)
                if not chunk:
                    raise RuntimeError(f"the Slack stand-in exited early ({proc.wait()})")
                line += chunk
        return int(line.decode().strip())

    def close(self) -> None:
        """Close the child's stdin (it stops cleanly on EOF); terminate it if it lingers."""
        proc, self._proc, self._port = self._proc, None, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            self.returncode = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                self.returncode = proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                self.returncode = proc.wait()

    def __enter__(self) -> SlackStandInProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _control(self, verb: str, path: str, body: Any = None, **query: str) -> Any:
        url = f"{self.url}/_control/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=verb)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
            raise ValueError(f"stand-in control {path}: {detail}") from exc

    def configure(
        self,
        *,
        token: str | None = None,
        rate_per_minute: float | None = None,
        burst: int | None = None,
        users: Iterable[SlackUser | Mapping[str, Any]] | None = None,
        accept_any: bool | None = None,
        method_rates: Mapping[str, float] | None = None,
        record: bool | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "token": token,
            "rate_per_minute": rate_per_minute,
            "burst": burst,
            "accept_any": accept_any,
            "method_rates": None if method_rates is None else dict(method_rates),
            "record": record,
        }
        if users is not None:
            body["users"] = [u.to_dict() if isinstance(u, SlackUser) else dict(u) for u in users]
        answer = self._control(
            "POST", "configure", {k: v for k, v in body.items() if v is not None}
        )
        return dict(answer["config"])

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int | None = None,
        stall: float | None = None,
        error: str | None = None,
        method: str | None = None,
        late: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        fault = Fault(
            count, status=status, stall=stall, error=error, method=method, late=late,
            retry_after=retry_after,
        )  # fmt: skip
        self._control("POST", "fail", fault.to_dict())

    def set_chaos(self, rules: Iterable[Mapping[str, Any]], seed: int = 0) -> None:
        self._control("POST", "chaos", {"rules": [dict(r) for r in rules], "seed": seed})

    def requests(self, method: str | None = None) -> list[RecordedRequest]:
        query = {} if method is None else {"method": method}
        return [RecordedRequest.from_dict(r) for r in self._control("GET", "requests", **query)]

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        query = {} if channel is None else {"channel": channel}
        return list(self._control("GET", "messages", **query))

    def stats(self) -> SlackStats:
        return SlackStats.from_dict(self._control("GET", "stats"))

    def reset(self) -> None:
        self._control("POST", "reset")


async def _serve_until_stopped(args: argparse.Namespace) -> None:
    config: dict[str, Any] = {
        "rate_per_minute": args.rate_per_minute,
        "burst": args.burst,
        "record": not args.no_record,
    }
    config.update(json.loads(args.config))
    workspace = SlackWorkspace(token=args.token, **config)
    sock = _listen(args.host, args.port)
    runner = await _start(workspace, sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.exit_on_stdin_eof:

        def on_stdin() -> None:
            try:
                chunk = os.read(0, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                loop.remove_reader(0)
                stop.set()

        loop.add_reader(0, on_stdin)
    print(sock.getsockname()[1], flush=True)
    try:
        await stop.wait()
    finally:
        workspace.release_stalls()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cadence.bench.slack_standin",
        description="Serve a loopback stand-in for the Slack Web API; prints the port first.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 lets the OS choose")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bot token clients must send")
    parser.add_argument("--rate-per-minute", type=float, default=0.0, help="0 for no limit")
    parser.add_argument("--burst", type=int, default=DEFAULT_BURST)
    parser.add_argument("--no-record", action="store_true", help="count calls, keep no log")
    parser.add_argument(
        "--config",
        default="{}",
        help="JSON object of initial settings (users, accept_any, method_rates, ...)",
    )
    parser.add_argument(
        "--exit-on-stdin-eof", action="store_true", help="stop when stdin closes (parent gone)"
    )
    args = parser.parse_args(argv)
    asyncio.run(_serve_until_stopped(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Slack stand-in's vocabulary: users, injected faults, recorded calls, counters, the
rate buckets, and the small helpers for Slack's wire formats (cursors, timestamps, answers)."""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

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

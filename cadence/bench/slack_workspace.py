"""The Slack stand-in's workspace: its state and how each Web API method behaves, apart from
the HTTP server that serves it."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cadence.bench.slack_records import (
    BOT_ID,
    BOT_USER_ID,
    DEFAULT_BURST,
    DEFAULT_TOKEN,
    HISTORY_DEFAULT_LIMIT,
    HISTORY_MAX_LIMIT,
    TEAM_ID,
    USERS_LIST_DEFAULT_LIMIT,
    USERS_LIST_MAX_LIMIT,
    Answer,
    Fault,
    Params,
    RecordedRequest,
    SlackStats,
    SlackUser,
    _Bucket,
    _decode_cursor,
    _encode_cursor,
    _error,
    _json_field,
    _limit,
    _ok,
    _truthy,
    _ts_micros,
)
from cadence.delivery.channels.slack_app import NEEDED_SCOPES, SCOPE_OF_METHOD, SCOPES_HEADER


class SlackWorkspace:
    """The stand-in's state and the API methods' behaviour, independent of the HTTP server.

    Not thread-safe: everything runs on the server's event loop, and the thread-based
    `SlackStandIn` hands its control calls to that loop.

    Channel rules: a user id (`U...`/`W...`) or a DM id (`D` + user id) is a DM with that
    user. A deleted user in the directory is always refused (`account_inactive`); a user the
    directory does not know is accepted only in accept-any mode (the default, for benchmarks).
    Any other channel id is accepted as it is.

    Scopes: the token holds `scopes` (by default every scope Cadence needs), listed in the
    `x-oauth-scopes` header of every answer to it, as Slack does; a method that needs one it
    lacks is refused with `missing_scope`.
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
        scopes: Iterable[str] | None = None,
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
            "scopes": list(NEEDED_SCOPES if scopes is None else _scope_names(scopes)),
        }
        self.token = token
        self.scopes: tuple[str, ...] = NEEDED_SCOPES
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
        scopes: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Change only what is given. `rate_per_minute=0` turns chat.postMessage's limit off.

        Giving non-empty `users` without `accept_any` turns accept-any off, so the directory is
        enforced.
        `method_rates` limits other methods (e.g. `{"conversations.open": 50}`), with `burst`.
        Limits start with a full bucket whenever this is called. `scopes` replaces the
        token's granted scopes (an empty list grants none).
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
        if scopes is not None:
            self.scopes = _scope_names(scopes)
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
            "scopes": list(self.scopes),
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
        self.scopes = NEEDED_SCOPES
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
        # Slack names the token's scopes on every answer to an authenticated call.
        granted = {SCOPES_HEADER: ",".join(self.scopes)}
        status, body, headers = await self._authorised(method, params, received, fault)
        return status, body, {**granted, **(headers or {})}

    async def _authorised(
        self, method: str, params: Params, received: float, fault: Fault | None
    ) -> Answer:
        if fault is not None and fault.error is not None:
            return _error(fault.error)
        handler = self._methods.get(method)
        if handler is None:
            return _error("unknown_method")
        needed = SCOPE_OF_METHOD.get(method)
        if needed is not None and needed not in self.scopes:
            return _missing_scope(needed, self.scopes)
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


def _scope_names(scopes: Iterable[str]) -> tuple[str, ...]:
    if isinstance(scopes, str):
        raise ValueError("scopes must be a list of scope names, not one string")
    names = tuple(str(s).strip() for s in scopes)
    if not all(names):
        raise ValueError("a scope name must not be empty")
    return names


def _missing_scope(needed: str, granted: Iterable[str]) -> Answer:
    """Slack's refusal of a call the token has no scope for: which one, and what it has."""
    return 200, {"ok": False, "error": "missing_scope", "needed": needed,
                 "provided": ",".join(granted)}, None  # fmt: skip

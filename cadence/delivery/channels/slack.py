"""Slack: a direct message to each person, paced for the whole workspace.

A batch is sent with slack-sdk's AsyncWebClient sharing one aiohttp session, with many
requests in flight: fan-out speed comes from that, not from more worker processes. Nothing
sleeps long inside a worker: when the workspace is paused by a 429, what is left of the
batch is handed back as "retry later".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import redis
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from cadence.delivery.channels.base import Outcome, Outgoing, backoff
from cadence.delivery.formatting.slack import slack_message, slack_metadata
from cadence.delivery.pacing import ChannelSpacing, WorkspaceLimiter

log = logging.getLogger("cadence.delivery.channels.slack")
T = TypeVar("T")

# Errors about the recipient: another channel may still reach them.
UNREACHABLE = {"user_not_found", "users_not_found", "account_inactive", "channel_not_found",
               "user_disabled", "cannot_dm_bot"}  # fmt: skip
# Any other error is about us (the token, the message: invalid_auth, missing_scope,
# msg_too_long, ...): retrying cannot help and nobody is tried on another channel.
# How long a batch may wait for the workspace bucket before handing the rest back.
MAX_WAIT = 5.0
# The DM-history check: pages of this many messages, at most this many pages, starting this
# many seconds before the delivery was written.
HISTORY_PAGE = 200
HISTORY_MAX_PAGES = 50
HISTORY_CLOCK_MARGIN = 300.0


@dataclass
class SlackConfig:
    token: str = field(repr=False)
    api_url: str
    concurrency: int = 32
    timeout: float = 10.0
    max_lookups: int = 20  # users.lookupByEmail is Tier 3: a few per batch at most
    # Nothing new is started after this many seconds: the rest of the batch is handed back
    # well before `stuck_after`, so no other worker takes it while this one still posts.
    deadline: float = 120.0


@dataclass
class _Deferred(Exception):
    wait: float
    reason: str


# How long pacing (Redis) that cannot be reached is waited for before the rest of a batch
# is handed back: never post unpaced, never throw away what was already sent.
PACING_PATIENCE = 8.0


async def paced(call: Callable[[], T]) -> T:
    """Run a pacing call, waiting out a Redis that is briefly away (a restart)."""
    deadline = time.monotonic() + PACING_PATIENCE
    wait = 0.25
    while True:
        try:
            # In a thread: a Redis that does not answer must not stall the replies to
            # posts already in flight on this loop.
            return await asyncio.to_thread(call)
        except (redis.RedisError, OSError) as exc:
            if time.monotonic() + wait > deadline:
                raise _Deferred(5.0, f"pacing unavailable: {type(exc).__name__}") from exc
            log.warning("pacing unavailable (%s); waiting %.2f s", exc, wait)
            await asyncio.sleep(wait)
            wait = min(2.0, wait * 2)


@dataclass
class _Tokens:
    """Tokens taken from the shared bucket in chunks, handed out one per request.

    Every hand-out also looks at the workspace pause, so a 429 seen by any worker stops
    this one's posts too, not only once its chunk is used up.
    """

    limiter: WorkspaceLimiter
    chunk: int
    left: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Once a request was deferred, those queued behind it are deferred at once too.
    broken: _Deferred | None = None

    async def one(self) -> None:
        async with self.lock:
            if self.broken is not None:
                raise self.broken
            try:
                await self._one()
            except _Deferred as deferred:
                self.broken = deferred
                raise

    async def _one(self) -> None:
        waited = 0.0
        if self.left:
            paused = await paced(self.limiter.paused_for)
            if paused > 0:
                raise _Deferred(paused, "ratelimited")
        while self.left == 0:
            grant = await paced(lambda: self.limiter.take(self.chunk))
            self.left = grant.granted
            if self.left:
                break
            if waited + grant.wait > MAX_WAIT:
                raise _Deferred(grant.wait, "workspace rate limit")
            await asyncio.sleep(grant.wait)
            waited += grant.wait
        self.left -= 1


class SlackChannel:
    name = "slack"

    def __init__(
        self, config: SlackConfig, limiter: WorkspaceLimiter, spacing: ChannelSpacing
    ) -> None:
        self.config = config
        self.limiter = limiter
        self.spacing = spacing
        self._email_to_id: dict[str, str] = {}
        self._directory_loaded_at = 0.0

    def send(self, batch: Sequence[Outgoing]) -> list[Outcome]:
        return asyncio.run(self._send(batch))

    async def _send(self, batch: Sequence[Outgoing]) -> list[Outcome]:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        connector = aiohttp.TCPConnector(limit=self.config.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            client = AsyncWebClient(
                token=self.config.token,
                base_url=self.config.api_url,
                session=session,
                timeout=int(self.config.timeout),
                # Our own retries only: a library retry after a dropped connection could
                # post a message Slack had already accepted.
                retry_handlers=[],
            )
            return await self._send_with(client, batch)

    async def _send_with(self, client: AsyncWebClient, batch: Sequence[Outgoing]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        deadline = time.monotonic() + self.config.deadline
        out_of_time = _Deferred(1.0, "batch out of time")
        user_ids, learned = await self._resolve(client, batch, outcomes)
        ready = [o for o in batch if o.delivery_id not in outcomes]
        for item in [o for o in ready if o.maybe_sent]:
            if time.monotonic() > deadline:
                outcomes[item.delivery_id] = _deferred(item, out_of_time)
                continue
            found = await self._already_posted(client, item, user_ids[item.delivery_id])
            if found is not None:
                outcomes[item.delivery_id] = found
        ready = [o for o in ready if o.delivery_id not in outcomes]
        try:
            allowed = await paced(
                lambda: self.spacing.claim([user_ids[o.delivery_id] for o in ready])
            )
        except _Deferred as deferred:
            allowed = [False] * len(ready)
            for item in ready:
                outcomes[item.delivery_id] = _deferred(item, deferred)
        for item, ok in zip(ready, allowed, strict=True):
            if not ok and item.delivery_id not in outcomes:
                outcomes[item.delivery_id] = Outcome.defer(item.delivery_id, 1.0, "channel spacing")
        ready = [o for o in ready if o.delivery_id not in outcomes]
        tokens = _Tokens(self.limiter, chunk=min(self.config.concurrency, max(1, len(ready))))
        gate = asyncio.Semaphore(self.config.concurrency)
        stop: list[_Deferred] = []

        async def one(item: Outgoing) -> None:
            async with gate:
                try:
                    if not stop:
                        await tokens.one()
                except _Deferred as deferred:
                    stop.append(deferred)
                except Exception as exc:  # nothing was posted: hand it back untried
                    log.exception("pacing failed before delivery %d", item.delivery_id)
                    stop.append(_Deferred(5.0, f"pacing failed: {type(exc).__name__}"))
                if time.monotonic() > deadline and not stop:
                    stop.append(out_of_time)
                # Checked after the wait for a token too: a 429 may have come meanwhile.
                if stop:
                    outcomes[item.delivery_id] = _deferred(item, stop[0])
                    return
                try:
                    outcome = await self._post(client, item, user_ids[item.delivery_id])
                except Exception as exc:
                    # The request may have gone out: keep what is known, look before retrying.
                    log.exception("posting delivery %d failed", item.delivery_id)
                    reason = f"Slack post failed: {type(exc).__name__}: {exc}"
                    outcome = Outcome.retry(
                        item.delivery_id, backoff(item.attempt), reason, maybe_sent=True
                    )
                if outcome.deferred and outcome.reason == "ratelimited" and not stop:
                    stop.append(_Deferred(outcome.retry_after or 1.0, "ratelimited"))
                outcomes[item.delivery_id] = outcome

        await asyncio.gather(*(one(item) for item in ready))
        result = []
        for item in batch:
            outcome = outcomes[item.delivery_id]
            if outcome.kind == "sent" and item.delivery_id in learned:
                outcome = Outcome.sent(
                    outcome.delivery_id,
                    outcome.provider_id or "",
                    outcome.provider_channel,
                    slack_user_id=learned[item.delivery_id],
                )
            result.append(outcome)
        return result

    async def _post(self, client: AsyncWebClient, item: Outgoing, user_id: str) -> Outcome:
        text, blocks = slack_message(item)
        try:
            response = await client.chat_postMessage(
                channel=user_id,
                text=text,
                blocks=blocks,
                metadata=slack_metadata(item),
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            return self._api_error(item, exc)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # The request went out and no answer came: Slack may have posted it. Wait at
            # least one timeout before looking, so a post still in Slack's hands has landed.
            reason = f"no answer from Slack: {type(exc).__name__} {exc}".strip()
            delay = max(backoff(item.attempt), self.config.timeout)
            return Outcome.retry(item.delivery_id, delay, reason, maybe_sent=True)
        data: dict[str, Any] = response.data if isinstance(response.data, dict) else {}
        return Outcome.sent(item.delivery_id, str(data.get("ts")), str(data.get("channel")))

    def _api_error(self, item: Outgoing, exc: SlackApiError) -> Outcome:
        status = exc.response.status_code
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        if status == 429 or error == "ratelimited":
            retry_after = _retry_after(exc.response.headers)
            # Every worker holds off, not just this batch: no request storm. Waiting for the
            # limit is not a failed attempt.
            try:
                self.limiter.pause(retry_after)
            except (redis.RedisError, OSError) as pause_error:
                log.warning("could not share a %.0f s pause: %s", retry_after, pause_error)
            return Outcome.defer(item.delivery_id, retry_after, "ratelimited")
        if status >= 500 or error in (None, "internal_error", "fatal_error", "service_unavailable",
                                       "request_timeout"):  # fmt: skip
            # A 5xx can come after Slack accepted the post (a proxy timing out behind it):
            # give it a timeout's time to land before looking.
            return Outcome.retry(
                item.delivery_id,
                max(backoff(item.attempt), self.config.timeout),
                f"Slack answered {status} {error or ''}".strip(),
                maybe_sent=True,
            )
        if error in UNREACHABLE:
            return Outcome.failed(item.delivery_id, f"Slack: {error}", unreachable=True)
        return Outcome.failed(item.delivery_id, f"Slack: {error}")

    async def _resolve(
        self, client: AsyncWebClient, batch: Sequence[Outgoing], outcomes: dict[int, Outcome]
    ) -> tuple[dict[int, str], dict[int, str]]:
        """Slack user ids for the batch: stored ones, then the workspace directory (paged
        users.list, cached), then a few users.lookupByEmail. Those with none are unreachable."""
        user_ids: dict[int, str] = {}
        learned: dict[int, str] = {}
        missing = []
        for item in batch:
            if item.recipient.slack_user_id:
                user_ids[item.delivery_id] = item.recipient.slack_user_id
            else:
                missing.append(item)
        if not missing:
            return user_ids, learned
        try:
            await self._load_directory(client)
        except SlackApiError as exc:
            log.warning("users.list failed: %s", exc.response.get("error"))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("users.list failed: %s", exc)
        lookups = 0
        for item in missing:
            email = item.recipient.email.lower()
            found = self._email_to_id.get(email)
            if found is None and lookups < self.config.max_lookups:
                lookups += 1
                found = await self._lookup(client, email)
            if found is None:
                if lookups >= self.config.max_lookups and email not in self._email_to_id:
                    outcomes[item.delivery_id] = Outcome.defer(
                        item.delivery_id, 60.0, "Slack user lookups paced"
                    )
                else:
                    outcomes[item.delivery_id] = Outcome.failed(
                        item.delivery_id, f"no Slack account for {email}", unreachable=True
                    )
                continue
            user_ids[item.delivery_id] = found
            learned[item.delivery_id] = found
        return user_ids, learned

    async def _load_directory(self, client: AsyncWebClient) -> None:
        if time.monotonic() - self._directory_loaded_at < 600 and self._email_to_id:
            return
        mapping: dict[str, str] = {}
        cursor = None
        while True:
            page = await client.users_list(limit=200, cursor=cursor)
            members: list[dict[str, Any]] = page.get("members", [])
            for member in members:
                email = (member.get("profile") or {}).get("email")
                if email and not member.get("deleted") and not member.get("is_bot"):
                    mapping[email.lower()] = member["id"]
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        self._email_to_id = mapping
        self._directory_loaded_at = time.monotonic()

    async def _lookup(self, client: AsyncWebClient, email: str) -> str | None:
        try:
            found = await client.users_lookupByEmail(email=email)
        except (SlackApiError, TimeoutError, aiohttp.ClientError, OSError):
            return None
        user = found.get("user") or {}
        if user.get("deleted"):
            return None
        uid = user.get("id")
        if isinstance(uid, str):
            self._email_to_id[email] = uid
            return uid
        return None

    async def _already_posted(
        self, client: AsyncWebClient, item: Outgoing, user_id: str
    ) -> Outcome | None:
        """When an earlier attempt may have gone out, find it in the DM (by its metadata)
        instead of posting it a second time. Reads every page back to when the delivery was
        written; None when it is not there."""
        oldest = None
        if item.written_at is not None:
            # Slack's clock and ours may differ a little; looking further back costs nothing.
            oldest = f"{item.written_at.timestamp() - HISTORY_CLOCK_MARGIN:.6f}"
        try:
            opened = await client.conversations_open(users=user_id)
            channel = str((opened.get("channel") or {}).get("id"))
            cursor: str | None = None
            for _ in range(HISTORY_MAX_PAGES):
                history = await client.conversations_history(
                    channel=channel,
                    include_all_metadata=True,
                    limit=HISTORY_PAGE,
                    oldest=oldest,
                    cursor=cursor,
                )
                messages: list[dict[str, Any]] = history.get("messages", [])
                for message in messages:
                    payload = (message.get("metadata") or {}).get("event_payload") or {}
                    if str(payload.get("delivery_id")) == str(item.delivery_id):
                        return Outcome.sent(item.delivery_id, str(message.get("ts")), channel)
                cursor = (history.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    return None
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                return Outcome.defer(
                    item.delivery_id, _retry_after(exc.response.headers), "ratelimited"
                )
            return Outcome.retry(
                item.delivery_id,
                backoff(item.attempt),
                f"could not check DM history: {exc.response.get('error')}",
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Outcome.retry(
                item.delivery_id, backoff(item.attempt), f"could not check DM history: {exc!r}"
            )
        return Outcome.retry(
            item.delivery_id,
            backoff(item.attempt),
            f"could not check DM history: more than {HISTORY_MAX_PAGES} pages",
        )


def _deferred(item: Outgoing, deferred: _Deferred) -> Outcome:
    return Outcome.defer(item.delivery_id, deferred.wait, deferred.reason)


def _retry_after(headers: Any) -> float:
    try:
        return max(1.0, float(headers.get("Retry-After") or headers.get("retry-after") or 1))
    except (TypeError, ValueError):
        return 1.0

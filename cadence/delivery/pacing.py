"""Pacing shared by every worker: a workspace-wide token bucket and a pause after a 429.

Slack allows "several hundred" messages a minute per workspace and about one a second per
channel; exceeding either gets HTTP 429 with Retry-After. The bucket lives in Redis (one
Lua script, using Redis's own clock) so that any number of worker processes together stay
under the configured rate, and a 429 seen by one worker pauses all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

# KEYS: bucket hash, pause key. ARGV: tokens per second, burst, tokens wanted.
# Returns {granted, wait_ms}: how many tokens were taken, and how long until the next one.
_TAKE = """
local bucket, pause = KEYS[1], KEYS[2]
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local paused = redis.call('PTTL', pause)
if paused > 0 then return {0, paused} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', bucket, 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', bucket, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', bucket, math.ceil(burst / rate * 1000) + 60000)
local wait = 0
if granted < want then wait = math.ceil((1 - tokens) * 1000 / rate) end
return {granted, wait}
"""

# Extend the pause, never shorten it: two workers seeing 429s must not undo each other.
_PAUSE = """
local left = redis.call('PTTL', KEYS[1])
local want = tonumber(ARGV[1])
if left < want then redis.call('SET', KEYS[1], '1', 'PX', want) end
return want
"""


@dataclass(frozen=True)
class Grant:
    granted: int
    wait: float  # seconds until another token is due, when not all were granted


class WorkspaceLimiter:
    def __init__(self, client: redis.Redis, name: str, per_minute: float, burst: int = 10) -> None:
        if per_minute <= 0:
            raise ValueError("rate must be positive")
        self._client = client
        self._keys = [f"cadence:pace:{name}:bucket", f"cadence:pace:{name}:pause"]
        self._rate = per_minute / 60.0
        self._burst = max(1, burst)
        self._take = client.register_script(_TAKE)
        self._pause = client.register_script(_PAUSE)

    @property
    def per_second(self) -> float:
        return self._rate

    def take(self, want: int = 1) -> Grant:
        """Take up to `want` tokens now; never blocks."""
        granted, wait_ms = self._take(keys=self._keys, args=[self._rate, self._burst, want])
        return Grant(int(granted), int(wait_ms) / 1000.0)

    def pause(self, seconds: float) -> None:
        """Stop every worker sending for `seconds` (a 429's Retry-After)."""
        self._pause(keys=self._keys[1:], args=[max(1, int(seconds * 1000))])

    def paused_for(self) -> float:
        left = int(self._client.pttl(self._keys[1]))
        return max(0.0, left / 1000.0)


class ChannelSpacing:
    """At most one message per Slack channel per `gap` seconds, across all workers."""

    def __init__(self, client: redis.Redis, gap: float = 1.0) -> None:
        self._client = client
        self._gap_ms = max(0, int(gap * 1000))

    def claim(self, channels: Sequence[str]) -> list[bool]:
        """For each channel, whether this sender may post to it now (one round trip)."""
        if self._gap_ms == 0:
            return [True] * len(channels)
        pipe = self._client.pipeline(transaction=False)
        for channel in channels:
            pipe.set(f"cadence:pace:chan:{channel}", "1", nx=True, px=self._gap_ms)
        return [bool(ok) for ok in pipe.execute()]

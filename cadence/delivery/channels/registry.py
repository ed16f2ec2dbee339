"""Which channels exist and how each is built from settings. A new channel is a module
plus a line here."""

from __future__ import annotations

from cadence.config import KNOWN_CHANNELS, Settings, reveal
from cadence.delivery.broker import redis_client
from cadence.delivery.channels.base import Channel
from cadence.delivery.channels.log import LogChannel
from cadence.errors import CadenceError


def available_channels() -> list[str]:
    return list(KNOWN_CHANNELS)


def make_channel(name: str, settings: Settings, redis_url: str | None) -> Channel:
    """Build a channel, or explain which setting it is missing."""
    if name == "log":
        return LogChannel()
    if name == "slack":
        from cadence.delivery.channels.slack import SlackChannel, SlackConfig
        from cadence.delivery.pacing import ChannelSpacing, WorkspaceLimiter

        token = reveal(settings.slack_bot_token)
        if not token:
            raise CadenceError("Slack is not configured: set CADENCE_SLACK_BOT_TOKEN")
        if redis_url is None:
            raise CadenceError("Slack pacing needs Redis")
        client = redis_client(redis_url)
        return SlackChannel(
            SlackConfig(
                token=token,
                api_url=settings.slack_api_url,
                concurrency=settings.slack_concurrency,
                timeout=settings.slack_timeout_seconds,
                deadline=min(120.0, settings.stuck_after_seconds / 2),
            ),
            WorkspaceLimiter(client, "slack", settings.slack_rate_per_minute, settings.slack_burst),
            ChannelSpacing(client, settings.slack_channel_gap_seconds),
        )
    if name == "email":
        from cadence.delivery.channels.email import EmailChannel, parse_smtp_url

        smtp_url = reveal(settings.smtp_url)
        if not smtp_url:
            raise CadenceError("email is not configured: set CADENCE_SMTP_URL")
        return EmailChannel(parse_smtp_url(smtp_url), settings.email_from)
    raise CadenceError(f"unknown channel {name!r}")

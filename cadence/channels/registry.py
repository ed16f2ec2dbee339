"""Which channels exist. Adding one is a module plus a line here."""

from __future__ import annotations

from cadence.channels.base import Channel
from cadence.channels.log import LogChannel
from cadence.config import Settings
from cadence.errors import CadenceError


def available_channels() -> list[str]:
    return ["log"]


def make_channel(name: str, settings: Settings) -> Channel:
    if name == "log":
        return LogChannel()
    raise CadenceError(f"channel {name!r} is not available")

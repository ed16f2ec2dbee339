"""What every route needs, built once per app from settings and passed in explicitly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from sqlalchemy.orm import Session, sessionmaker

from cadence.clock import utcnow
from cadence.config import Settings

# Hands slow work to the workers: (task name, positional args).
TaskSender = Callable[[str, list[Any]], None]


@dataclass
class WebDeps:
    settings: Settings
    sessions: sessionmaker[Session]
    redis: redis.Redis
    send_task: TaskSender
    clock: Callable[[], datetime] = field(default=utcnow)

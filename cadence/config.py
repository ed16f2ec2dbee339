"""Settings from the environment (`CADENCE_*`), with defaults that need no set-up."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cadence.errors import CadenceError
from cadence.inputs import zone_shape_problem

DEFAULT_SECRET = "cadence-development-secret-change-me"
KNOWN_CHANNELS = ("slack", "email", "log")


class Settings(BaseSettings):
    """Everything Cadence reads from its environment.

    The same object is passed to the web app, the worker and the CLI, so that no module
    reaches for a global. Secrets are `SecretStr`, so a repr, a log line or a traceback shows
    `**********`; code that needs one asks for it with `reveal` or `.get_secret_value()`.
    """

    model_config = SettingsConfigDict(env_prefix="CADENCE_", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///./cadence.db"
    # Unset means: start (or reuse) an embedded Redis server under `state_dir`.
    redis_url: str | None = None
    state_dir: Path = Path(".cadence")
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    base_url: str = "http://127.0.0.1:8000"
    timezone: str = "UTC"
    slack_bot_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_signing_secret: SecretStr | None = None
    # A secret too: it usually carries the mail server's password.
    smtp_url: SecretStr | None = None
    email_from: str = "Cadence <cadence@localhost>"
    # The demo's inbox preview shows what everyone received, with no sign-in: demo only.
    demo_inbox: bool = False
    # How many proxies in front of the web app append to X-Forwarded-For; 0 trusts none,
    # so the client address is the socket's (sign-in throttling counts per address).
    trusted_proxy_hops: int = Field(default=0, ge=0, le=10)
    # A bearer token /metrics asks for when set; unset, production answers loopback only.
    metrics_token: SecretStr | None = None
    # Workspace-wide Slack pace, shared by all workers; Slack allows "several hundred".
    slack_rate_per_minute: float = Field(default=300.0, gt=0, le=100_000)
    slack_burst: int = Field(default=20, ge=1, le=10_000)
    # Slack allows about one message a second in any one conversation.
    slack_channel_gap_seconds: float = Field(default=1.0, ge=0, le=60)
    slack_concurrency: int = Field(default=32, ge=1, le=256)
    slack_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Reminders for people who have not acknowledged, unless a message says otherwise.
    remind_after_hours: float = Field(default=24.0, ge=0, le=24 * 60)
    max_reminders: int = Field(default=2, ge=0, le=20)
    escalate: bool = True
    # Reminders go out in working hours, in each recipient's own zone.
    work_start: str = "09:00"
    work_end: str = "17:30"
    work_days: str = "mon,tue,wed,thu,fri"
    # After this many attempts a delivery that keeps failing temporarily fails for good.
    max_attempts: int = Field(default=8, ge=1, le=100)

    tick_seconds: float = Field(default=5.0, gt=0, le=3600)
    plan_horizon_hours: float = Field(default=48.0, gt=0, le=24 * 366)
    batch_size: int = Field(default=200, ge=1, le=10_000)
    stuck_after_seconds: float = Field(default=300.0, gt=0)
    # How late an occurrence may still go out; older ones are recorded as missed instead
    # of being sent in a burst after an outage.
    max_lateness_hours: float = Field(default=12.0, gt=0)
    # The largest request body the web app reads (API, forms, Slack); more gets a 413.
    max_request_bytes: int = Field(default=1_048_576, ge=1024, le=1 << 30)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with changes, validated as the environment is.

        pydantic's own copy takes `update` unvalidated, so a secret given as plain text would
        stay plain text: printable, and without `get_secret_value()` for the code that uses it.
        """
        copied = super().model_copy(deep=deep)
        if not update:
            return copied
        values = {name: getattr(copied, name) for name in type(self).model_fields}
        return self.model_validate({**values, **update})

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # The shape first: the zone database would open a file named by the value.
        if problem := zone_shape_problem(value):
            raise ValueError(problem)
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @model_validator(mode="after")
    def _working_hours(self) -> Settings:
        from cadence.planning.followups import WorkingHours

        try:
            WorkingHours.parse(self.work_start, self.work_end, self.work_days)
        except CadenceError as exc:
            raise ValueError(str(exc)) from None
        return self

    @field_validator(
        "slack_bot_token", "slack_signing_secret", "smtp_url", "metrics_token", mode="before"
    )
    @classmethod
    def _unset_when_blank(cls, value: object) -> object:
        # An empty variable (compose files pass unset ones along as "") means "not set up",
        # not a secret of no characters.
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and not text.strip():
            return None
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("only sqlite:/// and postgresql:// URLs are supported")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "redis+socket://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or redis+socket://")
        return value


def reveal(secret: SecretStr | None) -> str | None:
    """The text of an optional secret, for the one call that needs it; None when it is unset
    or empty, so that `if not reveal(...)` reads as "not configured"."""
    if secret is None:
        return None
    return secret.get_secret_value() or None


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning pydantic's report into one readable CadenceError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "CADENCE_" + "_".join(str(p) for p in err["loc"]).upper()
            if name == "CADENCE_":
                name = "CADENCE_WORK_START/END/DAYS"
            lines.append(f"{name}: {err['msg']}")
        raise CadenceError("bad setting: " + "; ".join(lines)) from None

"""Secrets in settings: read like any setting, used where needed, never shown."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr

from cadence.config import DEFAULT_SECRET, Settings, load_settings, reveal
from cadence.delivery.channels.email import parse_smtp_url
from cadence.delivery.channels.slack import SlackConfig
from cadence.errors import CadenceError
from cadence.runtime import Runtime
from cadence.worker import send_policy_from

KEY = "settings-test-secret-key-0123456789abcdef"
TOKEN = "xoxb-settings-test-token"
SIGNING = "settings-test-signing-secret"
SMTP_PASSWORD = "settings-test-mail-password"
SMTP_URL = f"smtp://mailer:{SMTP_PASSWORD}@mail.example.com:587"
SECRETS = (KEY, TOKEN, SIGNING, SMTP_PASSWORD)


@pytest.fixture(autouse=True)
def _no_cadence_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("CADENCE_")]:
        monkeypatch.delenv(name)


def shown(*things: object) -> str:
    return " ".join(f"{thing!r} {thing!s}" for thing in things)


def test_secrets_from_the_environment_are_hidden_and_still_usable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CADENCE_SECRET_KEY", KEY)
    monkeypatch.setenv("CADENCE_SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("CADENCE_SLACK_SIGNING_SECRET", SIGNING)
    monkeypatch.setenv("CADENCE_SMTP_URL", SMTP_URL)
    settings = load_settings()
    everything = shown(
        settings,
        settings.model_dump(),
        settings.model_dump_json(),
        Runtime(settings),
        send_policy_from(settings),
        parse_smtp_url(SMTP_URL),
        SlackConfig(token=TOKEN, api_url=settings.slack_api_url),
    )
    assert "**********" in everything
    for secret in SECRETS:
        assert secret not in everything
    assert settings.secret_key.get_secret_value() == KEY
    assert reveal(settings.slack_bot_token) == TOKEN
    assert reveal(settings.slack_signing_secret) == SIGNING
    assert reveal(settings.smtp_url) == SMTP_URL


def test_a_copy_with_plain_text_secrets_still_hides_them() -> None:
    changed = Settings().model_copy(
        update={"secret_key": KEY, "slack_bot_token": TOKEN, "smtp_url": SMTP_URL}
    )
    assert isinstance(changed.secret_key, SecretStr)
    assert isinstance(changed.slack_bot_token, SecretStr)
    assert reveal(changed.smtp_url) == SMTP_URL
    assert not any(secret in shown(changed) for secret in SECRETS)
    # A copy is validated as the environment is.
    with pytest.raises(ValueError, match="unknown time zone"):
        Settings().model_copy(update={"timezone": "Mars/Olympus"})


def test_unset_and_blank_secrets_mean_not_configured() -> None:
    blank = Settings(slack_bot_token="", slack_signing_secret="  ", smtp_url=None)
    assert (blank.slack_bot_token, blank.slack_signing_secret, blank.smtp_url) == (None,) * 3
    assert reveal(None) is None
    assert Settings().secret_key.get_secret_value() == DEFAULT_SECRET


def test_a_bad_smtp_url_is_named_without_its_password() -> None:
    with pytest.raises(CadenceError) as info:
        parse_smtp_url(f"smtpx://mailer:{SMTP_PASSWORD}@mail.example.com")
    assert "smtpx://" in str(info.value)
    assert SMTP_PASSWORD not in str(info.value)

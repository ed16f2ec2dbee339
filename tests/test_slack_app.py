"""`cadence slack manifest` and `cadence slack check`, through the command line, against the
Slack stand-in over a real socket."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import cadence
from cadence.bench.slack_standin import SlackStandIn
from cadence.delivery.channels.slack_app import (
    NEEDED_SCOPES,
    SCOPE_OF_METHOD,
    SCOPES,
    UNSCOPED_METHODS,
    interactivity_warning,
    scope_table,
)
from tests.conftest import CliResult, run_main

TOKEN = "xoxb-slack-app-test-token-0123456789"
SECRET = "slack-app-test-signing-secret-abcdef"
BASE_URL = "https://cadence.example.com/"
README = Path(__file__).resolve().parents[1] / "README.md"
# What Cadence asks Slack for, written out: a change to the table must be meant.
EXPECTED_SCOPES = ["chat:write", "im:write", "im:history", "users:read", "users:read.email"]

Cli = Callable[..., CliResult]


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(token=TOKEN) as standin:
        yield standin


@pytest.fixture
def slack_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """`cadence ARGS` in this process, with only the CADENCE_* variables a test sets."""
    for name in list(os.environ):
        if name.startswith("CADENCE_"):
            monkeypatch.delenv(name)

    def run(*args: str, **env: str | None) -> CliResult:
        for name, value in env.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        return run_main(list(args), capsys)

    return run


def wired(slack: SlackStandIn, **changes: str | None) -> dict[str, str | None]:
    """The environment of a well set-up installation, with `changes`."""
    env: dict[str, str | None] = {
        "CADENCE_SLACK_BOT_TOKEN": TOKEN,
        "CADENCE_SLACK_API_URL": slack.base_url,
        "CADENCE_SLACK_SIGNING_SECRET": SECRET,
        "CADENCE_BASE_URL": BASE_URL,
        "CADENCE_SLACK_TIMEOUT_SECONDS": "5",
    }
    return {**env, **changes}


def no_secrets(result: CliResult) -> None:
    for secret in (TOKEN, SECRET):
        assert secret not in result.out and secret not in result.err


def problems(result: CliResult) -> list[str]:
    """The sentences after `error: ...:` on stderr, one per problem."""
    lines = result.err.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    return [line.strip() for line in lines[start + 1 :]]


# --- the manifest ------------------------------------------------------------------------


def test_the_manifest_is_yaml_for_this_installation(slack_cli: Cli) -> None:
    result = slack_cli("slack", "manifest", CADENCE_BASE_URL=BASE_URL)
    assert result.code == 0, result.err
    assert result.err == ""
    found = yaml.safe_load(result.out)
    assert found["display_information"]["name"] == "Cadence"
    assert found["display_information"]["description"]
    assert found["features"]["bot_user"] == {"display_name": "Cadence", "always_online": True}
    home = found["features"]["app_home"]
    assert home["messages_tab_enabled"] is True
    assert home["messages_tab_read_only_enabled"] is True
    assert found["oauth_config"]["scopes"]["bot"] == EXPECTED_SCOPES
    settings = found["settings"]
    assert settings["interactivity"] == {
        "is_enabled": True,
        "request_url": "https://cadence.example.com/slack/interactions",
    }
    assert settings["org_deploy_enabled"] is False
    assert settings["socket_mode_enabled"] is False

    header = result.out.split("display_information:")[0].splitlines()
    assert header and all(line.startswith("#") for line in header)
    comments = " ".join(header)
    for scope in SCOPES:
        assert scope.name in comments
        assert all(method in comments for method in scope.methods)
    assert "WARNING" not in comments


def test_the_manifest_warns_when_slack_cannot_reach_the_url(slack_cli: Cli) -> None:
    result = slack_cli("slack", "manifest", "--name", "Comms")
    assert result.code == 0, result.err
    found = yaml.safe_load(result.out)
    assert found["settings"]["interactivity"]["request_url"] == (
        "http://127.0.0.1:8000/slack/interactions"
    )
    assert found["display_information"]["name"] == "Comms"
    assert found["features"]["bot_user"]["display_name"] == "Comms"
    assert "# WARNING: Slack cannot send clicks to http://127.0.0.1:8000" in result.out
    assert result.err.startswith("warning: Slack cannot send clicks")
    assert "not https" in result.err and "this machine" in result.err

    too_long = slack_cli("slack", "manifest", "--name", "x" * 36)
    assert too_long.code == 2
    assert too_long.err.startswith("error: --name:")


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("https://cadence.example.com/slack/interactions", None),
        ("http://cadence.example.com/slack/interactions", "is not https"),
        ("https://localhost:8000/slack/interactions", "points at this machine"),
        ("https://[::1]/slack/interactions", "points at this machine"),
        ("https://10.1.2.3/slack/interactions", "is a private address"),
    ],
)
def test_which_interactivity_urls_slack_can_reach(url: str, warned: str | None) -> None:
    warning = interactivity_warning(url)
    assert (warning is None) == (warned is None)
    assert warned is None or (warning is not None and warned in warning)


def test_every_slack_method_cadence_calls_is_in_the_scope_table() -> None:
    """The one table must cover the code: a new Web API call needs a line (or a reason)."""
    root = Path(cadence.__file__).parent
    pattern = re.compile(r"\.((?:chat|conversations|users|views|auth|reactions|files)_\w+)\(")
    called = set()
    for path in root.rglob("*.py"):
        if "bench" in path.parts:
            continue  # the stand-in answers these methods; it does not call Slack
        for name in pattern.findall(path.read_text()):
            group, _, method = name.partition("_")
            called.add(f"{group}.{method}")
    assert called, "found no Slack calls at all: the pattern is wrong"
    assert called <= set(SCOPE_OF_METHOD) | set(UNSCOPED_METHODS)
    assert list(NEEDED_SCOPES) == EXPECTED_SCOPES


def test_the_readme_lists_the_scopes_from_the_table() -> None:
    assert scope_table() in README.read_text()


# --- the check ---------------------------------------------------------------------------


def test_a_good_set_up_passes(slack_cli: Cli, slack: SlackStandIn) -> None:
    result = slack_cli("slack", "check", **wired(slack))
    assert result.code == 0, result.err
    assert "Cadence stand-in (T0CADENCE)" in result.out
    assert "cadence (U0CADENCEBOT), bot B0CADENCEBOT" in result.out
    assert "(all 5 Cadence needs)" in result.out
    assert "https://cadence.example.com/slack/interactions" in result.out
    assert "warning" not in result.out and result.err == ""
    no_secrets(result)
    assert [r.method for r in slack.requests()] == ["auth.test"]

    as_json = slack_cli("slack", "check", "--format", "json", **wired(slack))
    assert as_json.code == 0, as_json.err
    report: dict[str, Any] = json.loads(as_json.out)
    assert report["ok"] is True
    assert report["team"] == {"name": "Cadence stand-in", "id": "T0CADENCE"}
    assert report["bot_user"] == {"name": "cadence", "id": "U0CADENCEBOT", "bot_id": "B0CADENCEBOT"}
    assert report["scopes"]["granted"] == EXPECTED_SCOPES
    assert report["scopes"]["missing"] == []
    assert (report["signing_secret_set"], report["problems"]) == (True, [])
    no_secrets(as_json)


def test_a_local_url_is_a_warning_not_a_failure(slack_cli: Cli, slack: SlackStandIn) -> None:
    result = slack_cli("slack", "check", **wired(slack, CADENCE_BASE_URL="http://localhost:8000"))
    assert result.code == 0, result.err
    assert "warning: Slack cannot send clicks to http://localhost:8000/slack/interactions" in (
        result.out
    )


def test_a_refused_token_fails(slack_cli: Cli, slack: SlackStandIn) -> None:
    wrong = "xoxb-not-the-right-token-9876543210"
    result = slack_cli("slack", "check", **wired(slack, CADENCE_SLACK_BOT_TOKEN=wrong))
    assert result.code == 2
    assert problems(result) == [
        "Slack refused CADENCE_SLACK_BOT_TOKEN (invalid_auth): copy the Bot User OAuth Token "
        "again from the app's OAuth & Permissions page, and reinstall the app if it was removed"
    ]
    assert wrong not in result.out + result.err
    no_secrets(result)


@pytest.mark.parametrize("lacking", EXPECTED_SCOPES)
def test_a_missing_scope_fails_and_is_named(
    slack_cli: Cli, slack: SlackStandIn, lacking: str
) -> None:
    slack.configure(scopes=[s for s in EXPECTED_SCOPES if s != lacking])
    result = slack_cli("slack", "check", **wired(slack))
    assert result.code == 2
    [sentence] = problems(result)
    assert sentence.startswith(f"The bot token lacks {lacking} (for ")
    assert "reinstall the app" in sentence
    no_secrets(result)

    report = json.loads(slack_cli("slack", "check", "--format", "json", **wired(slack)).out)
    assert report["ok"] is False
    assert report["scopes"]["missing"] == [lacking]


def test_an_unset_signing_secret_fails(slack_cli: Cli, slack: SlackStandIn) -> None:
    result = slack_cli("slack", "check", **wired(slack, CADENCE_SLACK_SIGNING_SECRET=None))
    assert result.code == 2
    assert "signing secret  not set" in result.out
    assert "cadence (U0CADENCEBOT)" in result.out  # the token was still checked
    [sentence] = problems(result)
    assert sentence.startswith("CADENCE_SLACK_SIGNING_SECRET is not set")
    no_secrets(result)


def test_no_token_fails_without_asking_slack(slack_cli: Cli, slack: SlackStandIn) -> None:
    result = slack_cli("slack", "check", **wired(slack, CADENCE_SLACK_BOT_TOKEN=""))
    assert result.code == 2
    [sentence] = problems(result)
    assert sentence.startswith("CADENCE_SLACK_BOT_TOKEN is not set")
    assert slack.requests() == []
    no_secrets(result)


def test_several_problems_are_all_said(slack_cli: Cli, slack: SlackStandIn) -> None:
    env = wired(slack, CADENCE_SLACK_BOT_TOKEN=None, CADENCE_SLACK_SIGNING_SECRET=None)
    result = slack_cli("slack", "check", "--format", "json", **env)
    assert result.code == 2
    assert len(json.loads(result.out)["problems"]) == len(problems(result)) == 2


def test_a_slack_that_does_not_answer_fails(slack_cli: Cli, slack: SlackStandIn) -> None:
    slack.fail_next(stall=30)
    env = wired(slack, CADENCE_SLACK_TIMEOUT_SECONDS="1")
    result = slack_cli("slack", "check", **env)
    assert result.code == 2
    [sentence] = problems(result)
    assert sentence.startswith(f"Slack's Web API at {slack.base_url} did not answer (no answer ")
    no_secrets(result)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_api_url_fails_with_one_sentence() -> None:
    """As a separate process: nothing but the verdict reaches stderr (no library logging)."""
    url = f"http://127.0.0.1:{_closed_port()}/api/"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENCE_")}
    env.update(
        CADENCE_SLACK_BOT_TOKEN=TOKEN,
        CADENCE_SLACK_API_URL=url,
        CADENCE_SLACK_SIGNING_SECRET=SECRET,
        CADENCE_BASE_URL=BASE_URL,
    )
    done = subprocess.run(
        [sys.executable, "-m", "cadence", "slack", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: the Slack app is not ready for Cadence:",
        f"  Slack's Web API at {url} did not answer (connection refused): check "
        "CADENCE_SLACK_API_URL and that this machine can reach Slack",
    ]
    for secret in (TOKEN, SECRET):
        assert secret not in done.stdout + done.stderr

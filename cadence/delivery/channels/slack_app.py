"""The Slack app Cadence runs as: its manifest, the bot scopes it asks for and why, and a
check of an installed app's token and settings against them.

`SCOPES` is the one list of what Cadence needs from Slack. The manifest asks for exactly
those scopes, `check_app` compares a token's granted scopes with them, the Slack stand-in
grants them by default, and the README's table is `scope_table()`: none can drift from what
the code calls.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import math
import textwrap
import urllib.error
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from cadence.config import Settings, reveal

APP_NAME = "Cadence"
# Slack's limit for an app's name.
NAME_MAX = 35
DESCRIPTION = "Your organisation's messages, on a cadence. Read each one here and say you got it."
INTERACTIONS_PATH = "/slack/interactions"
COMMENT_WIDTH = 92
# The response header in which Slack lists a token's granted scopes, on every Web API answer.
SCOPES_HEADER = "x-oauth-scopes"
# What Slack answers when the token itself is the trouble: wrong, revoked, or its app or
# workspace gone.
REFUSED_TOKEN = {"invalid_auth", "not_authed", "account_inactive", "token_revoked",
                 "token_expired", "not_allowed_token_type", "team_disabled"}  # fmt: skip

# slack-sdk logs a failed request as an error before raising it; `check_app` says the same
# in its own sentence, so its client's records are dropped unless logging is set up.
_client_log = logging.getLogger("cadence.delivery.channels.slack_app.client")
_client_log.addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Scope:
    """A bot scope, the Web API methods Slack refuses (`missing_scope`) without it, and why
    Cadence calls them."""

    name: str
    methods: tuple[str, ...]
    why: str


SCOPES: tuple[Scope, ...] = (
    Scope(
        "chat:write",
        ("chat.postMessage", "chat.update"),
        "send each person their messages, and mark a message Acknowledged in place",
    ),
    Scope(
        "im:write",
        ("conversations.open",),
        "open the direct message with a person, to read it back",
    ),
    Scope(
        "im:history",
        ("conversations.history",),
        "look in the direct message before sending again after a crash or a timeout, "
        "so nobody gets a message twice",
    ),
    Scope(
        "users:read",
        ("users.list",),
        "list the workspace's members, to find people's Slack ids in bulk",
    ),
    Scope(
        "users:read.email",
        ("users.lookupByEmail",),
        "match people to Slack accounts by email (users.list shows emails only with it)",
    ),
)
NEEDED_SCOPES: tuple[str, ...] = tuple(scope.name for scope in SCOPES)
SCOPE_OF_METHOD: dict[str, str] = {m: scope.name for scope in SCOPES for m in scope.methods}
# Called too, but allowed to any app: the question form, and the token check itself.
UNSCOPED_METHODS = ("views.open", "auth.test")


def interactivity_url(base_url: str) -> str:
    """Where Slack sends button clicks and the question form: CADENCE_BASE_URL's route."""
    return base_url.rstrip("/") + INTERACTIONS_PATH


def interactivity_warning(url: str) -> str | None:
    """A sentence when Slack could not reach `url` (it needs a public https address), else
    None. Only what the URL itself shows is judged: a public name may still be firewalled."""
    parts = urlsplit(url)
    reasons = []
    if parts.scheme.lower() != "https":
        reasons.append("is not https")
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        reasons.append("points at this machine")
    else:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None and address.is_loopback:
            reasons.append("points at this machine")
        elif address is not None and (
            address.is_private or address.is_link_local or address.is_unspecified
        ):
            reasons.append("is a private address")
    if not reasons:
        return None
    return (
        f"Slack cannot send clicks to {url}: it needs a public https:// address, and this one "
        f"{' and '.join(reasons)}; set CADENCE_BASE_URL to the address Slack reaches Cadence at"
    )


def manifest(base_url: str, name: str = APP_NAME) -> dict[str, Any]:
    """Slack's app manifest for an installation at `base_url`, as data.

    Staff read their messages in the app's Messages tab, read-only: Cadence does not read
    replies, so the tab must not invite any. No events are subscribed and Socket Mode is off:
    Slack only calls Cadence for interactivity.
    """
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise ValueError(f"the app's name must be 1 to {NAME_MAX} characters")
    return {
        "display_information": {"name": name, "description": DESCRIPTION},
        "features": {
            "app_home": {
                "home_tab_enabled": False,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": True,
            },
            "bot_user": {"display_name": name, "always_online": True},
        },
        "oauth_config": {"scopes": {"bot": list(NEEDED_SCOPES)}},
        "settings": {
            "interactivity": {"is_enabled": True, "request_url": interactivity_url(base_url)},
            "org_deploy_enabled": False,
            "socket_mode_enabled": False,
            "token_rotation_enabled": False,
        },
    }


def manifest_text(base_url: str, name: str = APP_NAME) -> str:
    """The manifest as YAML to paste into Slack, after a comment block saying why each
    scope is asked for (comments are the one thing a YAML dump cannot carry)."""
    width = max(len(scope.name) for scope in SCOPES)
    indent = "#   " + " " * (width + 2)
    lines = [
        f"# Slack app manifest for Cadence at {base_url.rstrip('/')}",
        "# Create the app from it at https://api.slack.com/apps: Create New App, From a manifest.",
        "#",
        "# Bot scopes, and why Cadence needs each:",
        *(
            line
            for scope in SCOPES
            for line in textwrap.wrap(
                f"{', '.join(scope.methods)}: {scope.why}",
                COMMENT_WIDTH,
                initial_indent=f"#   {scope.name:<{width}}  ",
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
        ),
        f"# {' and '.join(UNSCOPED_METHODS)} need no scope.",
    ]
    warning = interactivity_warning(interactivity_url(base_url))
    if warning is not None:
        lines += ["#", *textwrap.wrap(f"WARNING: {warning}", COMMENT_WIDTH, initial_indent="# ",
                                      subsequent_indent="# ", break_long_words=False,
                                      break_on_hyphens=False)]  # fmt: skip
    # A wide line, so that no value is folded over two lines.
    body = yaml.safe_dump(manifest(base_url, name), sort_keys=False, allow_unicode=True, width=1000)
    return "\n".join(lines) + "\n" + body


def scope_table() -> str:
    """The scopes as a Markdown table, for the README (a test keeps the two the same)."""
    rows = ["| scope | needed by | why |", "|---|---|---|"]
    rows += [
        f"| `{scope.name}` | {', '.join(f'`{m}`' for m in scope.methods)} | {scope.why} |"
        for scope in SCOPES
    ]
    return "\n".join(rows)


@dataclass
class SlackCheck:
    """What `check_app` found. `problems` stop Cadence working with Slack (one sentence
    each); `warnings` may, depending on what the URL alone cannot show. No secret is kept."""

    api_url: str
    interactivity_url: str
    token_set: bool = False
    signing_secret_set: bool = False
    team: str | None = None
    team_id: str | None = None
    bot_user: str | None = None
    bot_user_id: str | None = None
    bot_id: str | None = None
    # None when the token could not be checked, or Slack did not say.
    granted: tuple[str, ...] | None = None
    missing: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "api_url": self.api_url,
            "team": {"name": self.team, "id": self.team_id},
            "bot_user": {"name": self.bot_user, "id": self.bot_user_id, "bot_id": self.bot_id},
            "scopes": {
                "needed": list(NEEDED_SCOPES),
                "granted": None if self.granted is None else list(self.granted),
                "missing": list(self.missing),
            },
            "token_set": self.token_set,
            "signing_secret_set": self.signing_secret_set,
            "interactivity_url": self.interactivity_url,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
        }


def granted_scopes(headers: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The scopes in a Web API answer's `x-oauth-scopes` header; None when it is absent."""
    for key, value in headers.items():
        if key.lower() == SCOPES_HEADER:
            text = ",".join(value) if isinstance(value, list) else str(value)
            return tuple(s.strip() for s in text.split(",") if s.strip())
    return None


def missing_scopes_sentence(missing: Iterable[str]) -> str:
    """One sentence naming each missing scope and the calls that need it."""
    needs = {scope.name: scope for scope in SCOPES}
    named = [f"{m} (for {', '.join(needs[m].methods)})" for m in missing]
    return (
        f"The bot token lacks {', '.join(named)}: add "
        f"{'it' if len(named) == 1 else 'them'} under the app's OAuth & Permissions (or "
        "recreate it from `cadence slack manifest`), then reinstall the app to the workspace"
    )


def check_app(settings: Settings) -> SlackCheck:
    """Ask Slack (`auth.test`) about the bot token, and look over the other Slack settings.

    Every problem is gathered, not just the first, so one run shows all there is to fix.
    """
    url = interactivity_url(settings.base_url)
    report = SlackCheck(api_url=settings.slack_api_url, interactivity_url=url)
    token = reveal(settings.slack_bot_token)
    report.token_set = token is not None
    report.signing_secret_set = reveal(settings.slack_signing_secret) is not None
    if token is None:
        report.problems.append(
            "CADENCE_SLACK_BOT_TOKEN is not set: copy the app's Bot User OAuth Token "
            "(xoxb-...) from its OAuth & Permissions page"
        )
    else:
        _ask_slack(report, settings, token)
    if not report.signing_secret_set:
        report.problems.append(
            "CADENCE_SLACK_SIGNING_SECRET is not set, so Slack's button clicks would be "
            "refused: copy the Signing Secret from the app's Basic Information page"
        )
    warning = interactivity_warning(url)
    if warning is not None:
        report.warnings.append(warning)
    return report


def _ask_slack(report: SlackCheck, settings: Settings, token: str) -> None:
    # The sync client's timeout is whole seconds; rounding down could make it 0 (no wait).
    timeout = max(1, math.ceil(settings.slack_timeout_seconds))
    client = WebClient(
        token=token, base_url=settings.slack_api_url, timeout=timeout, logger=_client_log
    )
    try:
        answer = client.auth_test()
    except SlackApiError as exc:
        report.problems.append(_refusal(exc, settings.slack_api_url))
        return
    except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException,
            SlackRequestError, ValueError) as exc:  # fmt: skip
        report.problems.append(
            f"Slack's Web API at {settings.slack_api_url} did not answer ({_why(exc, timeout)}): "
            "check CADENCE_SLACK_API_URL and that this machine can reach Slack"
        )
        return
    report.team, report.team_id = _text(answer.get("team")), _text(answer.get("team_id"))
    report.bot_user, report.bot_user_id = _text(answer.get("user")), _text(answer.get("user_id"))
    report.bot_id = _text(answer.get("bot_id"))
    if report.bot_id is None:
        report.problems.append(
            "CADENCE_SLACK_BOT_TOKEN is not a bot token (Slack names no bot for it): use the "
            "app's Bot User OAuth Token (xoxb-...), not a user token"
        )
    report.granted = granted_scopes(answer.headers)
    if report.granted is None:
        report.warnings.append(
            f"Slack did not say which scopes the token has (no {SCOPES_HEADER} header), "
            "so they were not checked"
        )
        return
    report.missing = tuple(s for s in NEEDED_SCOPES if s not in report.granted)
    if report.missing:
        report.problems.append(missing_scopes_sentence(report.missing))


def _refusal(exc: SlackApiError, api_url: str) -> str:
    response = exc.response
    error = response.get("error") if isinstance(response.data, dict) else None
    if response.status_code == 200 and error in REFUSED_TOKEN:
        return (
            f"Slack refused CADENCE_SLACK_BOT_TOKEN ({error}): copy the Bot User OAuth Token "
            "again from the app's OAuth & Permissions page, and reinstall the app if it was "
            "removed"
        )
    return (
        f"Slack's Web API at {api_url} answered auth.test with HTTP {response.status_code}"
        f"{f' ({error})' if error else ''}: try again shortly, and check CADENCE_SLACK_API_URL"
    )


def _why(exc: BaseException, timeout: int) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    return str(reason) or type(reason).__name__


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None

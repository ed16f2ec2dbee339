"""`cadence slack manifest|check`: setting up the Slack app, and checking it is set up."""

from __future__ import annotations

import json
from enum import StrEnum

import typer

from cadence.config import load_settings
from cadence.delivery.channels.slack_app import (
    APP_NAME,
    NEEDED_SCOPES,
    SlackCheck,
    check_app,
    interactivity_url,
    interactivity_warning,
    manifest_text,
)
from cadence.errors import CadenceError, InputError

slack_app = typer.Typer(help="The Slack app: its manifest, and a check of its set-up.",
                        no_args_is_help=True)  # fmt: skip


class CheckFormat(StrEnum):
    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    app.add_typer(slack_app, name="slack")


@slack_app.command("manifest")
def manifest(
    name: str = typer.Option(APP_NAME, "--name", help="The app's name in Slack (35 at most)."),
) -> None:
    """Print the Slack app's manifest (YAML), to create the app from.

    Paste it into Slack's "Create New App, From a manifest". The scopes are the ones Cadence
    needs, and the interactivity URL comes from CADENCE_BASE_URL.
    """
    settings = load_settings()
    try:
        text = manifest_text(settings.base_url, name)
    except ValueError as exc:
        raise CadenceError(f"--name: {exc}") from None
    typer.echo(text, nl=False)
    warning = interactivity_warning(interactivity_url(settings.base_url))
    if warning is not None:
        # Also on stderr: the manifest is usually redirected to a file, comments and all.
        typer.echo(f"warning: {warning}", err=True)


@slack_app.command("check")
def check(
    fmt: CheckFormat = typer.Option(CheckFormat.text, "--format", help="text or json."),
) -> None:
    """Check the Slack app's token, scopes and signing secret.

    Asks Slack about CADENCE_SLACK_BOT_TOKEN (auth.test): its workspace, its bot, and whether
    it has every scope Cadence needs; checks that CADENCE_SLACK_SIGNING_SECRET is set and
    that Slack could reach the interactivity URL. Exit code 2, with one sentence per
    problem, if anything is missing.
    """
    report = check_app(load_settings())
    if fmt is CheckFormat.json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(_text(report), nl=False)
    if report.problems:
        raise InputError("the Slack app is not ready for Cadence:", report.problems)


def _text(report: SlackCheck) -> str:
    def both(name: str | None, ident: str | None) -> str:
        return f"{name or '?'} ({ident or '?'})"

    if report.granted is not None:
        extra = "" if report.missing else f" (all {len(NEEDED_SCOPES)} Cadence needs)"
        scopes = ", ".join(report.granted) + extra
    else:
        scopes = "not checked"
    rows = [
        ("Slack API", report.api_url),
        ("team", both(report.team, report.team_id) if report.team_id else "-"),
        ("bot user",
         f"{both(report.bot_user, report.bot_user_id)}, bot {report.bot_id or '?'}"
         if report.bot_user_id else "-"),
        ("scopes", scopes),
        ("missing", ", ".join(report.missing) or "-"),
        ("bot token", "set" if report.token_set else "not set"),
        ("signing secret", "set" if report.signing_secret_set else "not set"),
        ("interactivity", report.interactivity_url),
    ]  # fmt: skip
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    lines += [f"warning: {w}" for w in report.warnings]
    if not report.problems:
        lines.append("ok: the token, its scopes and the signing secret are all in place")
    return "\n".join(lines) + "\n"

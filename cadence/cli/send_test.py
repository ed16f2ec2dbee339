"""`cadence send-test MESSAGE --to EMAIL`."""

from __future__ import annotations

import typer

from cadence.cli.checks import broker_for
from cadence.cli.context import db_session, runtime
from cadence.cli.params import id_value
from cadence.clock import utcnow
from cadence.delivery.channels.base import Channel
from cadence.delivery.channels.registry import make_channel
from cadence.delivery.send_test import create_test_delivery, send_now
from cadence.worker import send_policy_from


def register(app: typer.Typer) -> None:
    app.command("send-test")(send_test)


def send_test(
    ctx: typer.Context,
    message_id: int = typer.Argument(..., parser=id_value, metavar="MESSAGE", help="Message id."),
    to: str = typer.Option(..., "--to", help="Email of a person in the directory."),
    channel: str | None = typer.Option(None, "--channel", help="Force one of its channels."),
    wording: int = typer.Option(
        0, "--wording", min=0, max=1000, help="Which wording: 0 is the body."
    ),
) -> None:
    """Send one real delivery of a message now, to see how it looks. Not counted in figures."""
    rt = runtime(ctx)
    now = utcnow()
    with db_session(ctx) as session:
        delivery_id = create_test_delivery(
            session, message_id, to, now, rt.settings.timezone, channel=channel, wording=wording
        )
    url, owned = broker_for(rt.settings)
    try:
        made: dict[str, Channel] = {}

        def channels(name: str) -> Channel:
            if name not in made:
                made[name] = make_channel(name, rt.settings, url)
            return made[name]

        results = send_now(rt.sessions, channels, delivery_id, send_policy_from(rt.settings), now)
    finally:
        if owned is not None:
            owned.stop()
    for r in results:
        detail = r.provider_id if r.status == "sent" else r.error
        typer.echo(f"delivery {r.delivery_id} by {r.channel}: {r.status} ({detail})")
    if not any(r.status == "sent" for r in results):
        raise typer.Exit(1)

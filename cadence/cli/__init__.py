"""The `cadence` command. Verbs are thin: they parse, call a module, and print. On top: may
import anything; only `cli/bench.py` imports the benchmarks."""

from __future__ import annotations

import sys

import typer

from cadence.errors import CadenceError

app = typer.Typer(
    name="cadence",
    help="Cadence: queue internal messages, deliver them on a cadence, measure what sticks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    # Imported here so each verb module can import `app` helpers without cycles.
    from cadence.cli import (
        acks,
        bench,
        deliveries,
        directory,
        health,
        launches,
        messages,
        processes,
        report,
        schedule,
        send_test,
        setup,
        slack,
        tokens,
        users,
        web,
    )

    for module in (
        setup,
        directory,
        messages,
        schedule,
        send_test,
        slack,
        deliveries,
        acks,
        launches,
        report,
        processes,
        health,
        bench,
        tokens,
        users,
        web,
    ):
        module.register(app)


@app.callback()
def _root() -> None:
    """Settings come from CADENCE_* environment variables; see the README."""


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input of any kind ends with a message on stderr and exit code 2.

    Usage errors are click's (exit 2 as well); CadenceError carries our own.
    """
    try:
        app(args=argv, prog_name="cadence")
    except CadenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

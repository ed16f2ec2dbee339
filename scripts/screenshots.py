"""Screenshots of the dashboard's pages for the README, taken from a running demo.

Runs `cadence demo` in an empty folder (its own SQLite database and embedded Redis), waits
for its first sends, signs in as the demo's comms user and its leader in headless Chromium,
and saves one PNG per page into scripts/screenshots/. Run it after changing a page:

    .venv/bin/python scripts/screenshots.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

OUT = Path(__file__).resolve().parent / "screenshots"
CHROMIUM = os.environ.get("CADENCE_TEST_CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SIGN_IN = re.compile(r"dashboard sign-in \((\w+)\): (\S+) / (\S+)")
ADDED = re.compile(r"added \w+ message (\d+): '(.*)'")


@dataclass
class Shot:
    name: str  # the PNG's name in scripts/screenshots/
    who: str  # "comms" or "leader"
    path: str  # where to go; "{Title}" is the id of the demo's message with that title
    then: Callable[[Page], None] | None = None  # something to do before the picture


def _compose(page: Page) -> None:
    """A weekly message for the leader's team, with two wordings and its previews."""
    page.fill("#title", "Own the outcome")
    page.fill(
        "#wording-0",
        "Hi {{ person.first_name }}: we fix the customer's **problem**, not just the ticket.",
    )
    page.fill("#wording-1", "{{ person.first_name }}, a closed ticket is not the goal.")
    page.check("input[name=team][value='Support/EMEA']")
    page.check("#day-TH")
    page.wait_for_selector("[data-preview=sends]")
    page.evaluate("window.scrollTo(0, 0)")


def _launch_too_soon(page: Page) -> None:
    """A launch to Support whose customers hear in an hour: the timeline check refuses it
    and offers the earliest customer time that works."""
    page.fill("#launch-title", "Refunds in the app")
    page.fill("#launch-body", "From Monday, customers can ask for a refund **in the app**.")
    page.fill("#launch-customer-copy", "You can now ask for a refund in the app.")
    page.get_by_label("Support", exact=True).check()
    page.uncheck("#launch-channel-slack")
    page.uncheck("#launch-channel-email")
    page.check("#launch-channel-log")
    soon = datetime.now() + timedelta(hours=1)
    page.fill("#launch-customer-at", soon.strftime("%Y-%m-%dT%H:%M"))
    page.locator("#launch-timeline [data-verdict=refused]").wait_for()
    page.evaluate("window.scrollTo(0, 0)")


def _add_a_note(page: Page) -> None:
    """Wait for the demo launch to brief the leader (a few minutes in), then add a note,
    so the page shows a briefing waiting for the team with the leader's words."""
    deadline = time.monotonic() + 360
    while page.locator(".briefing form").count() == 0:
        if time.monotonic() > deadline:
            raise SystemExit("the demo leader was not briefed within six minutes")
        time.sleep(5)
        page.reload()
    page.locator(".briefing textarea").first.fill(
        "Huddle at 10:00 by the whiteboard: I will walk us through the refund screens."
    )
    page.locator(".briefing button[type=submit]").first.click()
    page.wait_for_url("**noted=**")


SHOTS = [
    Shot("overview", "comms", "/dashboard"),
    Shot("teams", "comms", "/dashboard/teams"),
    Shot("message", "comms", "/dashboard/messages/{A name, not a number}"),
    Shot("launch", "comms", "/dashboard/launches/{Same-day refunds}"),
    Shot("compose", "leader", "/dashboard/compose", _compose),
    Shot("calendar", "comms", "/dashboard/calendar"),
    Shot("admin", "comms", "/dashboard/admin"),
    Shot("messages", "comms", "/dashboard/messages"),
    Shot("launch-edit", "comms", "/dashboard/launches/{Same-day refunds}/edit"),
    Shot("approvals", "comms", "/dashboard/approvals"),
    Shot("compose-launch", "comms", "/dashboard/compose/launch", _launch_too_soon),
    Shot("team", "leader", "/dashboard/my-team", _add_a_note),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Demo:
    process: subprocess.Popen[str]
    passwords: dict[str, str]  # role -> "email\npassword"
    ids: dict[str, str]  # message title -> id


def _start_demo(folder: Path, port: int) -> Demo:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENCE_")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "cadence", "demo", "--port", str(port), "--duration", "600"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    passwords: dict[str, str] = {}
    ids: dict[str, str] = {}
    sends = 0
    deadline = time.monotonic() + 120
    # Wait for both sign-ins and a few sends, so the figures have something to show.
    for line in demo.stdout:
        if found := SIGN_IN.search(line):
            passwords[found[1]] = f"{found[2]}\n{found[3]}"
        if found := ADDED.search(line):
            ids[found[2]] = found[1]
        if "  sent  " in line:
            sends += 1
        if len(passwords) == 2 and sends >= 12:
            break
        if time.monotonic() > deadline:
            demo.kill()
            raise SystemExit("the demo did not start sending within two minutes")
    # Keep reading what the demo prints, so its output never fills the pipe and stops it.
    threading.Thread(target=lambda: [None for _ in demo.stdout or ()], daemon=True).start()
    return Demo(demo, passwords, ids)


def take(shots: list[Shot]) -> list[Path]:
    OUT.mkdir(exist_ok=True)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    saved = []
    with tempfile.TemporaryDirectory() as folder:
        demo = _start_demo(Path(folder), port)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM,
                    args=BROWSER_ARGS,
                )
                pages: dict[str, Page] = {}
                for shot in shots:
                    if shot.who not in pages:
                        email, password = demo.passwords[shot.who].split("\n")
                        page = browser.new_page(viewport={"width": 1280, "height": 900})
                        page.goto(f"{base}/login")
                        page.fill("#email", email)
                        page.fill("#password", password)
                        page.click("button[type=submit]")
                        page.wait_for_url(f"{base}/dashboard")
                        pages[shot.who] = page
                    page = pages[shot.who]
                    page.goto(base + shot.path.format_map(demo.ids))
                    if shot.then is not None:
                        shot.then(page)
                    target = OUT / f"{shot.name}.png"
                    page.screenshot(path=str(target), full_page=True)
                    saved.append(target)
                browser.close()
        finally:
            demo.process.terminate()
            demo.process.wait(timeout=60)
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="take only these (by name)")
    args = parser.parse_args()
    shots = [s for s in SHOTS if not args.only or s.name in args.only]
    if not shots:
        raise SystemExit(f"no such screenshot; known: {', '.join(s.name for s in SHOTS)}")
    for path in take(shots):
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)


if __name__ == "__main__":
    main()

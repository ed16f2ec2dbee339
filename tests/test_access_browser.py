"""A leader's overview in a real browser: their tree's launches and nobody else's, on the
page and in the CSV it downloads; comms sees both trees."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from playwright.sync_api import Page

from tests.test_access import World, world  # noqa: F401  (the two-tree organisation)
from tests.test_browser import browser, page, sign_in  # noqa: F401  (headless Chromium)

SCREENSHOT = Path("/tmp/access-leader-overview.png")


def launches_csv(page: Page, saved_in: Path) -> list[dict[str, str]]:  # noqa: F811
    with page.expect_download() as info:
        page.locator("#launches a.csv").click()
    saved = saved_in / info.value.suggested_filename
    info.value.save_as(saved)
    return list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))


def test_a_leader_sees_only_their_trees_launches(
    page: Page,  # noqa: F811
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    sign_in(page, world.live, "lead.a@example.com")
    launches = page.locator("#launches")
    assert launches.get_by_text("Same-day refunds").count() == 1
    assert page.get_by_text("Quota relief").count() == 0
    assert page.get_by_text("Sales push").count() == 0
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
    rows = launches_csv(page, tmp_path)
    assert [r["title"] for r in rows] == ["Same-day refunds"]
    # Lead A's tree is three people; the launch went to everyone.
    assert rows[0]["audience"] == "3"


def test_comms_sees_both_trees_launches(
    page: Page,  # noqa: F811
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    sign_in(page, world.live, "comms@example.com")
    launches = page.locator("#launches")
    assert launches.get_by_text("Same-day refunds").count() == 1
    assert launches.get_by_text("Quota relief").count() == 1
    rows = launches_csv(page, tmp_path)
    assert sorted(r["title"] for r in rows) == ["Quota relief", "Same-day refunds"]
    assert {r["title"]: r["audience"] for r in rows} == {
        "Same-day refunds": "7",
        "Quota relief": "3",
    }

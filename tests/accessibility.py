"""An automated accessibility check for pages in headless Chromium: axe-core, fetched once
from the npm registry into a cache folder and injected into the page under test.

axe finds what a machine can (missing labels, duplicate ids, contrast, heading order, ARIA
misuse); it is run with the WCAG 2.1 A and AA rules plus axe's best practices. The page's
own Content-Security-Policy would refuse the injected script, so the checking context is
opened with `bypass_csp` (the pages' CSP is tested elsewhere, with JavaScript off).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

AXE_VERSION = "4.11.4"
CACHE = Path(os.environ.get("CADENCE_TEST_CACHE", Path.home() / ".cache" / "cadence-tests"))
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


@functools.cache
def axe_source() -> str:
    folder = CACHE / f"axe-core-{AXE_VERSION}"
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("the accessibility check needs npm to fetch axe-core", pytrace=False)
        folder.mkdir(parents=True, exist_ok=True)
        command = [npm, "install", "--no-save", "--no-audit", "--no-fund"]
        subprocess.run(
            [*command, "--prefix", str(folder), f"axe-core@{AXE_VERSION}"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return script.read_text(encoding="utf-8")


def violations(page: Page) -> list[str]:
    """One line per rule broken on the page as it stands, naming the elements."""
    page.add_script_tag(content=axe_source())
    found: list[dict[str, Any]] = page.evaluate(
        """async (rules) => {
            const result = await axe.run(document, {runOnly: {type: "tag", values: rules}});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 5).map(n => n.target.join(" ")),
            }));
        }""",
        RULES,
    )
    return [f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(v['targets'])}" for v in found]


def assert_accessible(page: Page) -> None:
    problems = violations(page)
    assert problems == [], f"{page.url} breaks accessibility rules:\n" + "\n".join(problems)

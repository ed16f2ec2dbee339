"""The README's pictures of the dashboard: each one it shows is in the repository, and each
one scripts/screenshots.py takes is shown, so a page added to the script is documented."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shots() -> list[str]:
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "scripts/screenshots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up by name while it loads.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return [shot.name for shot in module.SHOTS]


def test_every_picture_the_readme_shows_exists_and_every_shot_is_shown() -> None:
    readme = (ROOT / "README.md").read_text()
    shown = re.findall(r"!\[[^\]]*\]\((scripts/screenshots/[^)]+\.png)\)", readme)
    assert shown, "the README shows no pictures of the dashboard"
    missing = [path for path in shown if not (ROOT / path).is_file()]
    assert missing == []
    taken = {f"scripts/screenshots/{name}.png" for name in shots()}
    assert taken - set(shown) == set(), "taken by the script but not in the README"
    assert set(shown) - taken == set(), "in the README but not taken by the script"

"""The wheel carries everything Cadence opens at run time, and installed from it Cadence
behaves like the checkout: templates, migrations and samples come through the package."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.resources import files
from pathlib import Path

import cadence.templates
import pytest

from cadence.config import Settings
from cadence.rendering import environment

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "cadence").rglob("__init__.py")
    }
    assert listed == found | {"cadence.templates"}
    assert config["package-dir"] == {"cadence.templates": "templates"}


def test_templates_are_the_checkouts_own_in_an_editable_install() -> None:
    # Editing templates/ in a checkout takes effect without reinstalling.
    assert Path(cadence.templates.__file__).resolve().parent == ROOT / "templates"
    template = environment().get_template("launch/briefing.md")
    assert template.filename is not None
    assert Path(template.filename).resolve() == ROOT / "templates" / "launch" / "briefing.md"


def test_every_template_in_the_checkout_is_found_through_the_package() -> None:
    names = {
        path.relative_to(ROOT / "templates").as_posix()
        for path in (ROOT / "templates").rglob("*")
        if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts
    }
    assert names, "no templates found"
    assert set(environment().list_templates()) >= names
    for name in names:
        assert files("cadence.templates").joinpath(name).is_file(), name


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_wheel_installed_outside_the_checkout_serves_pages_and_sends(
    tmp_path: Path,
) -> None:
    """The same check CI runs, with the test environment's dependencies so no downloads."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "wheel_check.py"),
            "--duration",
            "25",
            "--reuse-dependencies",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=220,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "answered 200" in result.stdout
    sent = int(result.stdout.split("; ")[-1].split()[0])
    assert sent > 0


def test_the_runtime_never_imports_the_benchmarks_or_the_stand_ins(settings: Settings) -> None:
    """Every verb, the worker's tasks and the web app, built as the processes build them."""
    probe = """
import sys
from cadence.cli import app  # registers every verb
from cadence.config import Settings
from cadence.web.app import create_app
from cadence.worker import make_celery
settings = Settings(database_url=sys.argv[1], redis_url=sys.argv[2] or None)
url = sys.argv[2] or "redis://127.0.0.1:1/0"
make_celery(settings, url)
create_app(settings, url)
loaded = sorted(m for m in sys.modules if m.startswith(("cadence.bench", "aiosmtpd")))
print(",".join(loaded) or "none")
"""
    result = subprocess.run(
        [sys.executable, "-c", probe, settings.database_url, settings.redis_url or ""],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"

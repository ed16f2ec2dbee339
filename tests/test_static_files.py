"""The web's own assets: only plain names are looked up, nothing outside the folder."""

from __future__ import annotations

import httpx
import pytest

from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.runtime import Runtime
from cadence.web.deps import WebDeps
from tests.test_web import free_port, serve

NAMES = ["missing.js", "..%2Fbase.html", "%2E%2E%2Fweb%2Fbase.html", "base.html", "A.js", "x.py"]


def test_only_plain_asset_names_are_served(settings: Settings, runtime: Runtime) -> None:
    assert settings.redis_url is not None
    deps = WebDeps(
        settings=settings,
        sessions=runtime.sessions,
        redis=redis_client(settings.redis_url),
        send_task=lambda name, args: None,
    )
    with serve(deps, free_port()) as url, httpx.Client(base_url=url) as client:
        for name in NAMES:
            answer = client.get(f"/static/{name}")
            assert answer.status_code == 404, name
            assert "<html" not in answer.text.lower()


@pytest.mark.parametrize("name", NAMES)
def test_no_asset_outside_the_folder(name: str) -> None:
    from cadence.web.static_files import static_text

    assert static_text(name) is None

"""`/metrics` over real HTTP: protected by a bearer token when one is set, loopback only in
production without one, and read from the figure summaries with the same figures the
aggregate queries over every delivery and answer gave."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy.orm import Session

from cadence.bench.metrics import aggregate_figures
from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.figures import summaries
from cadence.runtime import Runtime
from cadence.web.deps import WebDeps
from tests.test_dashboard import NOW, start
from tests.test_web import free_port, serve

TOKEN = "Vx3kQ9_pLm2Rt8ZwYc4Hn7Js1Df6Gb0Ae5Ku-Xo"


@contextmanager
def metrics_server(
    settings: Settings, runtime: Runtime, host: str = "127.0.0.1", **changes: Any
) -> Iterator[str]:
    assert settings.redis_url is not None
    deps = WebDeps(
        settings=settings.model_copy(update=changes),
        sessions=runtime.sessions,
        redis=redis_client(settings.redis_url),
        send_task=lambda name, args: None,
        clock=lambda: NOW,
    )
    port = free_port()
    with serve(deps, port, host=host) as url:
        yield url


def test_a_token_is_required_when_set(settings: Settings, runtime: Runtime) -> None:
    with metrics_server(settings, runtime, metrics_token=TOKEN) as url, httpx.Client() as c:
        missing = c.get(f"{url}/metrics")
        wrong = c.get(f"{url}/metrics", headers={"Authorization": "Bearer nope"})
        basic = c.get(f"{url}/metrics", headers={"Authorization": f"Basic {TOKEN}"})
        right = c.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    for refused in (missing, wrong, basic):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "cadence_deliveries" not in refused.text
    assert right.status_code == 200 and "cadence_dispatcher_lag_seconds" in right.text


def _outside_address() -> str | None:
    """This machine's address on a non-loopback interface, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this picks the route's address
        except OSError:
            return None
        address: str = s.getsockname()[0]
    return None if address.startswith("127.") else address


def test_production_without_a_token_answers_loopback_only(
    settings: Settings, runtime: Runtime
) -> None:
    with (
        metrics_server(settings, runtime, host="0.0.0.0", env="production") as url,
        httpx.Client() as client,
    ):
        local = client.get(f"{url}/metrics")
        proxied = client.get(f"{url}/metrics", headers={"X-Forwarded-For": "198.51.100.7"})
        outside = _outside_address()
        remote = client.get(url.replace("127.0.0.1", outside) + "/metrics") if outside else None
    assert local.status_code == 200
    assert proxied.status_code == 403 and "CADENCE_METRICS_TOKEN" in proxied.text
    if remote is not None:
        assert remote.status_code == 403


def test_development_without_a_token_answers_anyone(settings: Settings, runtime: Runtime) -> None:
    with metrics_server(settings, runtime) as url, httpx.Client() as client:
        proxied = client.get(f"{url}/metrics", headers={"X-Forwarded-For": "198.51.100.7"})
    assert proxied.status_code == 200


def metric_values(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_the_figures_equal_the_aggregate_queries(
    settings: Settings, runtime: Runtime, session: Session
) -> None:
    with start(settings, runtime, session) as live, live.client() as client:
        summaries.catch_up(session)
        session.commit()
        scraped = metric_values(client.get("/metrics").text)
    old = aggregate_figures(session)
    assert old["deliveries"], "the data set has deliveries"
    got = {key: value for key, value in scraped.items() if key.startswith("cadence_deliveries{")}
    expected = {
        f'cadence_deliveries{{channel="{channel}",status="{status}"}}': float(count)
        for (status, channel), count in old["deliveries"].items()
    }
    assert got == expected
    for kind in ("ack", "question"):
        assert scraped[f'cadence_acknowledgements_total{{kind="{kind}"}}'] == float(
            old["answers"].get(kind, 0)
        )
    assert old["answers"]["ack"] > 0

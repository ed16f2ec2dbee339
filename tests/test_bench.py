"""The benchmarks run end to end and report what they measured (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest


def bench(*args: str) -> dict[str, Any]:
    """Run `cadence bench ARGS` in a process of its own and read the JSON it prints."""
    result = subprocess.run(
        [sys.executable, "-m", "cadence", "bench", *args],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


@pytest.mark.slow
def test_bench_fanout_reports_every_figure() -> None:
    figures = bench("fanout", "--recipients", "60", "--naive", "10")
    assert figures["cadence"]["sent"] == 60 and figures["cadence"]["failed"] == 0
    assert figures["naive_one_task_per_recipient"]["sent"] == 10
    for key in ("ceiling_per_second", "share_of_ceiling", "times_naive"):
        assert figures[key] > 0
    assert figures["cadence"]["worker_peak_pss_mb"] > 0


@pytest.mark.slow
def test_bench_dashboard_reports_every_page_and_its_baseline() -> None:
    figures = bench("dashboard", "--deliveries", "2000", "--runs", "2")
    assert figures["deliveries"] == 2020  # 100 staff and their leader, ten messages twice
    paths = ["/dashboard", "/dashboard/messages/1", "/dashboard/teams"]
    assert [(p["as"], p["path"]) for p in figures["pages"]] == [
        *(("comms", path) for path in paths),
        *(("leader", path) for path in paths),
    ]
    for page in figures["pages"]:
        assert page["median_ms"] > 0 and page["times_faster_than_baseline"] > 0
    assert figures["baseline"]["median_ms"] > 0
    refresh = figures["refresh_after_a_fan_out"]
    assert refresh["changes"] > 100 and refresh["changes_per_second"] > 0


def test_bench_templates_reports_the_limits_and_their_baseline() -> None:
    figures = bench("templates", "--recipients", "200", "--runs", "2")
    assert figures["limits"] == {"loop_steps": 1000, "operations": 20000, "output_chars": 40000}
    assert figures["ordinary"]["per_recipient_us"] > 0
    assert figures["ordinary"]["baseline_unbounded_per_recipient_us"] > 0
    for loop in figures["loops"].values():
        assert loop["refused_with"].startswith("body: refused:")
        assert loop["refuse_at_add_ms"] > 0 and loop["refuse_at_send_ms"] > 0
        # The baseline really ran the loop to the end.
        assert loop["baseline_output_chars"] >= 30_000
        assert loop["baseline_unbounded_render_ms"] > 0


def test_bench_rules_times_the_reported_rules_against_dateutil() -> None:
    figures = bench("rules", "--runs", "2", "--corpus", "40", "--baseline-timeout", "1")
    never = figures["reported"]["never_occurs"]
    assert "BYMONTH=2;BYMONTHDAY=30" in never["refused_with"]
    assert never["dateutil"]["ms"] == ">1 s"  # dateutil is still searching when stopped
    assert "TypeError" in figures["reported"]["out_of_range"]["dateutil"]["outcome"]
    corpus = figures["corpus"]
    assert corpus["rules"] == 40 and corpus["accepted"] > 0 and corpus["refused"] > 0
    assert corpus["slowest_ms"] > 0


@pytest.mark.slow
def test_bench_metrics_reports_the_scrape_and_its_baseline() -> None:
    figures = bench("metrics", "--deliveries", "2000", "--runs", "2")
    assert figures["people"] == 100 and figures["runs"] == 2
    assert figures["scrape_ms"] > 0 and figures["aggregate_queries_ms"] > 0

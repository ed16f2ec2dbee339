"""The fan-out benchmark runs end to end and reports what it measured (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_bench_fanout_reports_every_figure() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cadence", "bench", "fanout", "--recipients", "60",
         "--naive", "10"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["cadence"]["sent"] == 60 and figures["cadence"]["failed"] == 0
    assert figures["naive_one_task_per_recipient"]["sent"] == 10
    for key in ("ceiling_per_second", "share_of_ceiling", "times_naive"):
        assert figures[key] > 0
    assert figures["cadence"]["worker_peak_pss_mb"] > 0

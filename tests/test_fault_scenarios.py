"""Nothing lost, nothing twice, end to end: every scenario of `cadence bench faults` on the
database this suite runs on (SQLite, or PostgreSQL when CADENCE_TEST_DATABASE_URL is set),
with real processes, a Redis of its own that is restarted and flushed, and the stand-ins."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cadence.bench.faults import NAMES, faults
from tests.conftest import PG_URL


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("scenario", NAMES)
def test_no_one_is_lost_or_sent_twice(scenario: str) -> None:
    result = faults(recipients=150, scenarios=(scenario,), database_url=PG_URL, timeout=240)
    [row] = result["scenarios"]
    assert row["settled"], row
    assert row["lost"] == 0 and row["twice"] == 0, row
    assert row["recorded_sent"] == 150 and row["still_open"] == 0, row
    if row["requests_per_delivery"] is not None:
        assert row["requests_per_delivery"] >= 1.0


@pytest.mark.slow
def test_bench_faults_prints_its_table_and_refuses_unknown_scenarios() -> None:
    run = [sys.executable, "-m", "cadence", "bench", "faults"]
    done = subprocess.run(
        [*run, "--scenario", "two-beats", "--recipients", "40", "--format", "json"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)["scenarios"]
    assert set(row) >= {"scenario", "recipients", "lost", "twice", "requests_per_delivery",
                        "settle_seconds"}  # fmt: skip
    table = subprocess.run(
        [*run, "--scenario", "two-beats", "--recipients", "40"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("| scenario | recipients | lost | twice |")
    bad = subprocess.run(
        [*run, "--scenario", "meteor"], capture_output=True, text=True, check=False, timeout=60
    )
    assert bad.returncode == 2 and "unknown meteor" in bad.stderr

"""Percentiles from a histogram and one bucket equal percentile_cont over all the values."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadence.figures.percentiles import StaleHistogram, percentile
from cadence.figures.summaries import wait_bucket


def percentile_cont(values: Sequence[float], p: float) -> float:
    """PostgreSQL's percentile_cont, straight from its definition."""
    ordered = sorted(values)
    position = p * (len(ordered) - 1)
    low = math.floor(position)
    if low + 1 >= len(ordered):
        return ordered[low]
    return ordered[low] + (ordered[low + 1] - ordered[low]) * (position - low)


class Bucketed:
    """Values kept the way the summaries keep them: counted per bucket, read by bucket."""

    def __init__(self, values: Sequence[float]) -> None:
        self.by_bucket: dict[int, list[float]] = {}
        for v in values:
            self.by_bucket.setdefault(wait_bucket(v), []).append(v)
        self.reads: list[tuple[int, int, int]] = []

    def histogram(self) -> list[tuple[int, int]]:
        return sorted((b, len(vs)) for b, vs in self.by_bucket.items())

    def values_in(self, bucket: int, offset: int, limit: int) -> list[float]:
        self.reads.append((bucket, offset, limit))
        return sorted(self.by_bucket[bucket])[offset : offset + limit]


waits = st.lists(
    st.one_of(
        st.floats(min_value=0, max_value=10**7, allow_nan=False),
        st.integers(min_value=0, max_value=200_000).map(float),
        st.sampled_from([0.0, 60.0, 600.0, 1800.0, 3600.0]),
    ),
    min_size=1,
    max_size=300,
)


@given(values=waits, p=st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99, 1.0]))
def test_equals_percentile_cont(values: list[float], p: float) -> None:
    kept = Bucketed(values)
    found = percentile(kept.histogram(), p, kept.values_in)
    assert found == pytest.approx(percentile_cont(values, p), rel=1e-12, abs=1e-9)
    # At most two reads, of at most two values each: never the whole history.
    assert len(kept.reads) <= 2
    assert all(limit <= 2 for _, _, limit in kept.reads)


def test_interpolates_across_a_bucket_edge() -> None:
    kept = Bucketed([10.0, 20.0, 30.0, 40.0])  # four buckets of one value each
    assert percentile(kept.histogram(), 0.5, kept.values_in) == 25.0
    assert kept.reads == [(20, 0, 1), (30, 0, 1)]


def test_no_values_no_percentile() -> None:
    assert percentile([], 0.5, lambda *_: []) is None


def test_refuses_a_p_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile([(1, 1)], 1.5, lambda *_: [1.0])


def test_a_histogram_older_than_its_rows_says_so() -> None:
    # Rows that left a bucket, or a last bucket that lost its values, after the histogram
    # was read: the caller reads the histogram again.
    with pytest.raises(StaleHistogram, match="fewer values"):
        percentile([(1, 3)], 0.5, lambda *_: [])
    with pytest.raises(StaleHistogram, match="fewer values"):
        percentile([(1, 2)], 0.5, lambda bucket, offset, limit: [1.0])
    with pytest.raises(StaleHistogram):
        percentile(
            [(1, 1), (2, 1)], 0.5, lambda bucket, offset, limit: [] if bucket == 2 else [1.0]
        )

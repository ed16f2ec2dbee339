"""Exact percentiles from a histogram and a look into one bucket.

A percentile of millions of values needs only two of them: the values at the two ranks it
interpolates between. A histogram (bucket -> count, buckets in value order) says which
bucket holds each rank and how far into it; `values_in(bucket, offset, limit)` then reads
just those values, sorted, from the rows of that bucket. The result is the same as
PostgreSQL's percentile_cont over all the values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

#: values_in(bucket, offset, limit): the bucket's values, sorted, from `offset`, at most
#: `limit` of them.
ValuesIn = Callable[[int, int, int], Sequence[float]]


class StaleHistogram(ValueError):
    """The bucket holds fewer values than the histogram said: the rows changed between the
    two reads (a refresh committed in between). Read the histogram again."""


def _locate(histogram: Sequence[tuple[int, int]], rank: int) -> tuple[int, int, int]:
    """(index of the bucket holding `rank` (from 0), the rank's offset in it, its count)."""
    before = 0
    for index, (_, count) in enumerate(histogram):
        if rank < before + count:
            return index, rank - before, count
        before += count
    raise ValueError(f"rank {rank} is beyond the histogram's {before} values")


def percentile(histogram: Sequence[tuple[int, int]], p: float, values_in: ValuesIn) -> float | None:
    """The p-th quantile (0 <= p <= 1), linearly interpolated between the values at ranks
    floor and ceil of p x (n - 1); None for no values. `histogram` lists (bucket, count)
    in value order, without empty buckets."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be between 0 and 1, not {p}")
    n = sum(count for _, count in histogram)
    if n == 0:
        return None
    position = p * (n - 1)
    low = math.floor(position)
    fraction = position - low
    index, offset, count = _locate(histogram, low)
    bucket = histogram[index][0]
    wanted = 2 if fraction > 0 and offset + 1 < count else 1
    found = list(values_in(bucket, offset, wanted))
    if len(found) < wanted:
        raise StaleHistogram(f"bucket {bucket} holds fewer values than its count")
    if fraction == 0:
        return float(found[0])
    if len(found) > 1:
        high = found[1]
    else:
        if index + 1 >= len(histogram):
            raise StaleHistogram(f"no bucket after {bucket} for rank {low + 1}")
        following = list(values_in(histogram[index + 1][0], 0, 1))
        if not following:
            raise StaleHistogram(f"bucket {histogram[index + 1][0]} holds no values")
        high = following[0]
    return float(found[0]) + (float(high) - float(found[0])) * fraction

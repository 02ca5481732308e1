"""Bisection over integers and first crossings on a sparsity grid, shared by the bound
calculator, the measured limit and the Taylor one-shot model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._checks import PruningLimitsError, describe

#: Default sparsity grid of a first-crossing search: 41 points 0, 0.025, …, 1.
DEFAULT_GRID_POINTS = 41


def last_true(low: int, high: int, predicate: Callable[[int], bool]) -> int:
    """Largest ``m`` in ``[low, high)`` with ``predicate(m)``.

    The predicate must hold at ``low``, fail at ``high`` and change once in between; it is
    evaluated only strictly between the two ends (about ``log2(high − low)`` times).
    """
    while high - low > 1:
        mid = (low + high) // 2
        if predicate(mid):
            low = mid
        else:
            high = mid
    return low


def grid_counts(sparsities: Any, dim: int) -> np.ndarray:
    """Sorted distinct numbers of pruned weights ``round(s · D)`` of a sparsity grid, 0 included.

    ``sparsities=None`` gives :data:`DEFAULT_GRID_POINTS` evenly spaced points in [0, 1].
    """
    if sparsities is None:
        grid = np.linspace(0.0, 1.0, DEFAULT_GRID_POINTS)
    else:
        try:
            grid = np.asarray(sparsities, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            grid = np.zeros(0)
        if grid.size == 0 or not np.isfinite(grid).all() or grid.min() < 0 or grid.max() > 1:
            raise PruningLimitsError(f"sparsities must be numbers in [0, 1], got {describe(sparsities)}")
    return np.unique(np.concatenate([[0], np.round(grid * dim).astype(np.int64)]))


def first_crossing(counts: np.ndarray, within: Callable[[int], bool]) -> int:
    """Largest count before ``within`` first fails on the grid ``counts``, refined to one count.

    ``within`` must hold at ``counts[0]``. The first failing grid point is found in order, then
    the last passing count between it and its predecessor by bisection (:func:`last_true`).

    Raises:
        PruningLimitsError: ``within`` fails at ``counts[0]`` (e.g. a loss that is NaN), where
            there is no limit to find (the search read the grid's end before).
    """
    for i, m in enumerate(counts):
        if not within(int(m)):
            if i == 0:
                raise PruningLimitsError(
                    f"the limit search's check fails already at {int(m)} weights pruned: no limit to measure "
                    "(is a loss NaN or infinite?)"
                )
            return last_true(int(counts[i - 1]), int(m), within)
    return int(counts[-1])

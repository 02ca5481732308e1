"""Bisection over integers, shared by the bound calculator and the measured limit."""

from __future__ import annotations

from collections.abc import Callable


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

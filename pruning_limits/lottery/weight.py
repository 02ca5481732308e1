"""Weight pruning: the subset-sum construction of THEORY §7 and its smallest width, certified."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._checks import PruningLimitsError
from .error import certified_error
from .network import Stream, check_epsilon

#: Neurons of one sign class of one coordinate block that the subset-sum search uses (the first
#: ones of the stream); meet-in-the-middle enumerates 2^(k/2) sums per half, 2^20 at 40.
MAX_SUBSET_ITEMS = 40


def closest_subset_sum(values: np.ndarray, goal: float) -> tuple[float, np.ndarray]:
    """The subset of ``values`` whose sum is closest to ``goal``, exactly, by meet-in-the-middle.

    Returns the sum and a boolean mask. Enumerates ``2^ceil(k/2)`` sums per half and searches the
    sorted second half for each sum of the first: exact for any ``k`` (float64 sums).
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    k = values.shape[0]
    if k > 2 * 22:
        raise PruningLimitsError(f"subset-sum search over at most 44 values, got {k}")
    half = k // 2
    a_vals, b_vals = values[:half], values[half:]

    def all_sums(vals: np.ndarray) -> np.ndarray:
        sums = np.zeros(1)
        for v in vals:
            sums = np.concatenate([sums, sums + v])
        return sums  # index bit t set <=> vals[t] used

    sa, sb = all_sums(a_vals), all_sums(b_vals)
    order = np.argsort(sb, kind="stable")
    sb_sorted = sb[order]
    need = goal - sa
    pos = np.searchsorted(sb_sorted, need)
    best_err, best = math.inf, (0, 0)
    for cand in (pos - 1, pos):
        c = np.clip(cand, 0, len(sb_sorted) - 1)
        err = np.abs(need - sb_sorted[c])
        i = int(np.argmin(err))
        if err[i] < best_err:
            best_err, best = float(err[i]), (i, int(order[c[i]]))
    ia, ib = best
    mask = np.zeros(k, dtype=bool)
    mask[:half] = [(ia >> t) & 1 for t in range(half)]
    mask[half:] = [(ib >> t) & 1 for t in range(k - half)]
    return float(np.sum(values[mask])), mask


@dataclass(frozen=True)
class WeightCertificate:
    """A weight-pruned subnetwork of the first ``width`` neurons whose sup error is ``<= ε``.

    Attributes:
        width: stream width ``n`` (the certified upper bound on the width weight pruning needs).
        first_mask: 0/1 mask of the first layer, shape ``(width, d)`` (1 = kept).
        second_mask: 0/1 mask of the second layer, shape ``(width,)``.
        error: the certified sup error of the masked network.
        error_kind: ``"exact"`` (d <= 2) or ``"separable-bound"`` (d > 2).
        construction_bound: the construction's own bound ``sqrt(sum_j max(|w_j - P_j|, |w_j + Q_j|)^2)``.
    """

    width: int
    first_mask: np.ndarray
    second_mask: np.ndarray
    error: float
    error_kind: str
    construction_bound: float


def subset_sum_construction(stream: Stream, width: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Masks of the THEORY §7 construction on the first ``width`` neurons, and its error bound.

    Neuron ``i`` serves coordinate ``j = i mod d`` and is pruned to its single input weight
    ``u_ij``: it computes ``u_ij relu(x_j)`` (``u_ij > 0``) or ``|u_ij| relu(-x_j)``. Among the
    first :data:`MAX_SUBSET_ITEMS` neurons of each (coordinate, sign) class, the subset whose
    ``sum v_i |u_ij|`` is closest to ``w_j`` (positive class, coefficient ``P_j``) or ``-w_j``
    (negative class, ``Q_j``) is kept. The inner sum is then ``<w,x>`` up to
    ``sum_j (w_j - P_j) relu(x_j) - (w_j + Q_j) relu(-x_j)``, whose sup on the sphere is at most
    ``sqrt(sum_j max(|w_j - P_j|, |w_j + Q_j|)^2)`` (returned; non-increasing in ``width``, so
    bisection over the width is exact for the construction).
    """
    d = stream.dim
    first = stream.first[:width]
    second = stream.second[:width]
    first_mask = np.zeros((width, d), dtype=np.int8)
    second_mask = np.zeros(width, dtype=np.int8)
    dev = np.zeros(d)
    idx = np.arange(width)
    for j in range(d):
        block = idx[idx % d == j]
        for sign, goal in ((1.0, stream.w[j]), (-1.0, -stream.w[j])):
            members = block[np.sign(first[block, j]) == sign][:MAX_SUBSET_ITEMS]
            values = second[members] * np.abs(first[members, j])
            total, chosen = closest_subset_sum(values, goal)
            dev[j] = max(dev[j], abs(goal - total))
            kept = members[chosen]
            first_mask[kept, j] = 1
            second_mask[kept] = 1
    return first_mask, second_mask, float(np.linalg.norm(dev))


def weight_pruning_width(stream: Stream, epsilon: float, *, start: int | None = None) -> WeightCertificate:
    """Smallest stream width at which :func:`subset_sum_construction` reaches ``ε`` (bisection), certified.

    The construction's bound is non-increasing in the width, so galloping then bisection finds
    its smallest width exactly; the masked network's error is then computed independently
    (:func:`certified_error`) and must be ``<= ε``.

    Raises:
        PruningLimitsError: ``ε`` outside (0, 1), or no width up to the stream's reaches ``ε``.
    """
    epsilon = check_epsilon(epsilon)
    d = stream.dim
    limit = stream.width

    def ok(n: int) -> bool:
        return subset_sum_construction(stream, n)[2] <= epsilon

    lo = 0  # the construction fails at width 0 (error |w| = 1 > ε)
    hi = max(2 * d, start or 2 * d)
    while not ok(min(hi, limit)):
        if hi >= limit:
            raise PruningLimitsError(
                f"the weight-pruning construction does not reach ε = {epsilon:g} within {limit} neurons"
            )
        lo, hi = hi, min(2 * hi, limit)
    hi = min(hi, limit)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    first_mask, second_mask, bound = subset_sum_construction(stream, hi)
    err, kind = certified_error(stream.w, stream.first[:hi] * first_mask, stream.second[:hi] * second_mask, "R")
    if not err <= epsilon * (1 + 1e-12):
        raise PruningLimitsError(f"internal: construction error {err!r} exceeds ε = {epsilon!r}")
    return WeightCertificate(hi, first_mask, second_mask, err, kind, bound)

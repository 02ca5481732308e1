"""The second-order Taylor model of one-shot magnitude pruning: a diagnostic of the theory.

The pruning limit of Zhang et al. (2024) asks a geometric question: does the kept support hold
*some* point of the loss sublevel set (the kept weights may move)? One-shot pruning without
fine-tuning tests only the pruned point ``w^k`` itself. This module evaluates the local model of
exactly that, with no geometry in between:

    L(w^k) − L(w*) ≈ q(k) = gᵀd_k + ½ d_kᵀ H d_k,   d_k = w^k − w*,

``g`` and ``H`` the gradient and Hessian of the data loss at ``w*`` (one Hessian-vector product
per evaluated ``k``). Its first crossing of ``ε`` is what the quadratic model says one-shot
pruning achieves. Set beside the measured limit and the kinematic prediction it separates the two
approximations of the theory: if ``q`` crosses where the measurement does, the quadratic model
is adequate and any remaining gap lies in the geometric step (docs/validation.md). It is not a
substitute for the measurement: a forward pass per ``k`` measures the true loss more cheaply than
a Hessian-vector product models it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._checks import PruningLimitsError, check_positive
from ._search import first_crossing, grid_counts
from .lanczos import _as_float64
from .limits import _check_gradient, _check_weights
from .spectrum import _as_operator


@dataclass(frozen=True, eq=False)
class TaylorOneShot:
    """The Taylor model's one-shot limit and the terms it evaluated.

    Attributes:
        sparsity: largest sparsity before ``q`` first exceeds ``ε`` (grid, then bisection to one
            weight, as the measured limit by loss).
        epsilon: the loss tolerance.
        dim: number of prunable weights ``D``.
        num_pruned: the evaluated numbers of pruned weights, ascending.
        first_order: ``gᵀd_k`` at those points.
        second_order: ``½ d_kᵀ H d_k`` at those points.
        num_hvps: Hessian-vector products spent.
    """

    sparsity: float
    epsilon: float
    dim: int
    num_pruned: np.ndarray
    first_order: np.ndarray
    second_order: np.ndarray
    num_hvps: int

    @property
    def sparsities(self) -> np.ndarray:
        """The evaluated sparsities ``num_pruned / D``."""
        return self.num_pruned / self.dim

    @property
    def loss_change(self) -> np.ndarray:
        """``q(k) = gᵀd_k + ½ d_kᵀ H d_k`` at the evaluated points."""
        return self.first_order + self.second_order

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record."""
        return {
            "sparsity": self.sparsity,
            "epsilon": self.epsilon,
            "dim": self.dim,
            "num_pruned": self.num_pruned.tolist(),
            "first_order": self.first_order.tolist(),
            "second_order": self.second_order.tolist(),
            "num_hvps": self.num_hvps,
        }


def taylor_one_shot_limit(
    weights: Any,
    gradient: Any,
    hessian: Any,
    epsilon: float,
    *,
    sparsities: Any = None,
) -> TaylorOneShot:
    """First crossing of ``ε`` by the second-order Taylor model of one-shot magnitude pruning.

    Pruning the ``m`` smallest-magnitude weights (global magnitude order, ties in index order)
    gives ``d = −w`` on them and ``0`` elsewhere; the model is ``q(m) = gᵀd + ½ dᵀHd``. Like the
    measured limit (:func:`pruning_limits.lomp.sweep`), the limit is the first crossing: ``q`` is
    evaluated on the grid, then bisected to one weight between the last grid point below ``ε``
    and the first above it.

    Args:
        weights: the flat prunable weights ``w*`` (length ``D``).
        gradient: the data-loss gradient at ``w*`` (length ``D``), e.g. from
            :func:`pruning_limits.objective.loss_gradient`.
        hessian: the Hessian at ``w*``: anything with ``.matvec``/``.dim`` (a
            :class:`~pruning_limits.hessian.HessianOperator`), a dense square matrix (numpy or
            torch), or a callable ``v -> H v``.
        epsilon: the loss tolerance ``ε > 0``.
        sparsities: grid of sparsities in [0, 1]; default 41 points 0, 0.025, …, 1, the grid of
            the measured sweep.

    Returns:
        The :class:`TaylorOneShot` record.

    Raises:
        PruningLimitsError: on mismatched lengths, non-finite values, or a bad grid.
    """
    w = _check_weights(weights)
    dim = w.size
    g = _check_gradient(gradient, w)
    epsilon = check_positive("epsilon", epsilon)
    matvec, size, _ = _as_operator(hessian, dim)
    if size != dim:
        raise PruningLimitsError(f"hessian has dimension {size}, expected {dim} (one per weight)")
    counts = grid_counts(sparsities, dim)  # the grid of the measured sweep by default
    order = np.argsort(np.abs(w), kind="stable")
    memo: dict[int, tuple[float, float]] = {}

    def terms(m: int) -> tuple[float, float]:
        if m not in memo:
            d = np.zeros(dim)
            d[order[:m]] = -w[order[:m]]
            hd = _as_float64(matvec(d), dim) if m else np.zeros(dim)
            memo[m] = (float(g @ d), 0.5 * float(d @ hd))
        return memo[m]

    def within(m: int) -> bool:
        first, second = terms(m)
        return first + second <= epsilon

    for m in counts:  # the whole grid, for the curve
        terms(int(m))
    limit = first_crossing(counts, within)
    evaluated = np.array(sorted(memo), dtype=np.int64)
    return TaylorOneShot(
        sparsity=limit / dim,
        epsilon=epsilon,
        dim=dim,
        num_pruned=evaluated,
        first_order=np.array([memo[int(m)][0] for m in evaluated]),
        second_order=np.array([memo[int(m)][1] for m in evaluated]),
        num_hvps=int(np.count_nonzero(evaluated)),
    )

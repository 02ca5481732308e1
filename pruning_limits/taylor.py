"""The second-order Taylor model of one-shot magnitude pruning: a diagnostic, and a spectral candidate.

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

:func:`spectral_one_shot_limit` is the same one-shot model with ``½d_kᵀ|H|d_k`` estimated from the
spectrum alone (docs/theory.md §6b): a candidate prediction of one-shot pruning, not the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._checks import PruningLimitsError, check_fraction, check_nonnegative, check_positive
from ._search import first_crossing, grid_counts
from .lanczos import _as_float64
from .limits import (
    _check_gradient,
    _check_weights,
    _check_weights_and_spectrum,
    magnitude_distance_curve,
    magnitude_first_order_curve,
)
from .spectrum import Spectrum, _as_operator

#: Relative size below which an eigenvalue counts as flat in :func:`spectral_one_shot_limit`:
#: the default of :meth:`pruning_limits.spectrum.Spectrum.atom_at_zero`, kept as it was before
#: this model existed (docs/validation.md reports the model at 1e-8 and 1e-4 too).
DEFAULT_ATOM_TOL = 1e-6


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


@dataclass(frozen=True, eq=False)
class SpectralOneShot:
    """The one-shot limit of the Taylor model with the curvature term taken from the spectrum.

    Attributes:
        sparsity: largest sparsity before ``c_k + ½ R_k² κ`` first exceeds ``ε`` (exact in ``k``).
        epsilon: the loss tolerance.
        dim: number of prunable weights ``D``.
        curvature: ``κ = tr|H| / (D (1 − p₀))``, the mean curvature of the non-flat eigenspace.
        flat_fraction: ``p₀``, the spectral mass with ``|λ| ≤ atom_tol · max|λ|``.
        atom_tol: the relative threshold of ``p₀``.
        first_order_cost: ``c_k`` at the limit (running maximum of ``gᵀd_k``, as the gradient term).
        distance: ``R_k`` at the limit.
    """

    sparsity: float
    epsilon: float
    dim: int
    curvature: float
    flat_fraction: float
    atom_tol: float
    first_order_cost: float
    distance: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record."""
        return {
            "sparsity": self.sparsity,
            "epsilon": self.epsilon,
            "dim": self.dim,
            "curvature": self.curvature,
            "flat_fraction": self.flat_fraction,
            "atom_tol": self.atom_tol,
            "first_order_cost": self.first_order_cost,
            "distance": self.distance,
        }


def one_shot_crossing(weights: Any, gradient: Any, epsilon: float, curvature: float) -> tuple[int, float, float]:
    """Kept count at the first crossing of ``ε`` by ``c_k + ½ R_k² κ`` under global magnitude pruning.

    ``c_k`` is :func:`pruning_limits.limits.magnitude_first_order_curve` (non-decreasing as pruning
    proceeds) and ``R_k²`` :func:`pruning_limits.limits.magnitude_distance_curve`, so the model is
    monotone and its first crossing is exact over all ``k``.

    Returns:
        ``(kept, c_kept, R_kept)``: the fewest weights kept with the model still ``≤ ε``.
    """
    w = _check_weights(weights)
    g = _check_gradient(gradient, w)
    epsilon = check_positive("epsilon", epsilon)
    curvature = check_nonnegative("curvature", curvature)
    cost = magnitude_first_order_curve(w, g)
    distance_squared = magnitude_distance_curve(w)
    over = np.nonzero(cost + 0.5 * distance_squared * float(curvature) > epsilon)[0]  # index = kept
    kept = 0 if over.size == 0 else int(over.max()) + 1
    return kept, float(cost[kept]), float(np.sqrt(distance_squared[kept]))


def spectral_one_shot_limit(
    weights: Any,
    gradient: Any,
    spectrum: Spectrum,
    epsilon: float,
    *,
    atom_tol: float = DEFAULT_ATOM_TOL,
) -> SpectralOneShot:
    """One-shot limit of the Taylor model, its curvature term estimated from the spectrum alone.

    :func:`taylor_one_shot_limit` evaluates ``gᵀd_k + ½ d_kᵀHd_k`` with a Hessian-vector product per
    point. This model keeps the first-order term (one gradient) and replaces the curvature term by
    its expectation for a direction of length ``R_k`` drawn uniformly from the *non-flat*
    eigenspace of ``H``:

        ½ d_kᵀ|H|d_k  ≈  ½ R_k² · tr|H| / (D (1 − p₀)),

    ``p₀`` the spectral mass at zero (``|λ| ≤ atom_tol · max|λ|``). The premise, a hypothesis: the
    weights one-shot pruning removes near its limit are non-zero, and after l1 training the flat
    directions belong to the weights it has already set to zero (dead units and inputs), so the
    pruned direction lies in the non-flat part; the mean curvature over all ``D`` directions
    would dilute it by the flat ones. Like the paper's model it uses ``|H|`` for ``H``. It answers the question the measurement asks (is ``w^k`` itself within ε?), not the
    paper's (does the support hold *some* point of the sublevel set?); docs/validation.md compares
    both with one-shot pruning and docs/theory.md §6b states the assumptions.

    Args:
        weights: the flat prunable weights ``w*`` (length ``D``).
        gradient: the data-loss gradient at ``w*`` (length ``D``).
        spectrum: the Hessian's spectral measure (:class:`~pruning_limits.spectrum.Spectrum`, SLQ or
            exact) over the same ``D`` weights.
        epsilon: the loss tolerance ``ε > 0``.
        atom_tol: relative threshold of a flat eigenvalue, in (0, 1) (default :data:`DEFAULT_ATOM_TOL`).

    Returns:
        The :class:`SpectralOneShot` record.

    Raises:
        PruningLimitsError: on mismatched sizes, non-finite values or a bad threshold.
    """
    w = _check_weights_and_spectrum(weights, spectrum)
    atom_tol = check_fraction("atom_tol", atom_tol, open_low=True, open_high=True)
    flat = min(max(spectrum.atom_at_zero(atom_tol), 0.0), 1.0)
    mean_abs = spectrum.abs_trace().value / spectrum.dim
    # an all-flat spectrum has no curvature to spread: only the first-order term remains
    curvature = 0.0 if flat >= 1.0 or mean_abs <= 0 else mean_abs / (1.0 - flat)
    kept, cost, distance = one_shot_crossing(w, gradient, epsilon, curvature)
    return SpectralOneShot(
        sparsity=1.0 - kept / w.size,
        epsilon=float(epsilon),
        dim=int(w.size),
        curvature=float(curvature),
        flat_fraction=float(flat),
        atom_tol=float(atom_tol),
        first_order_cost=cost,
        distance=distance,
    )

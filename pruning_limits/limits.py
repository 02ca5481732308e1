"""The bound calculator: from a Hessian spectrum and the trained weights to the pruning limit.

Implements shared/THEORY.md §3-5 after Zhang, Zhang, Sun & Liu, "How Sparse Can We Prune A Deep
Network: A Fundamental Limit Perspective" (NeurIPS 2024, arXiv 2306.05857):

- ``R_k² = Σ_{i ∉ T_k} w_i²``, the squared distance from the trained weights to their pruning
  with ``k`` kept weights (global magnitude: the ``D − k`` smallest squared weights);
- ``δ(R)/D = ∫ 2ε / (2ε + |λ| R²) dμ_H(λ)`` on the spectrum's quadrature nodes;
- the predicted limit ``s* = max{s(k) : s(k) ≤ δ(R_k)/D}``, ``s(k) = 1 − k/D``, found exactly over
  the integer ``k`` by bisection (the condition is monotone in ``k``);
- the kinematic interval from ``δ/D ∓ a_η/√D`` (Amelunxen, Lotz, McCoy & Tropp 2014, Theorem I);
- the spread of ``s*`` over SLQ probes and the sharpness-only (trace) lower estimate;
- optionally the first-order (gradient) term the paper neglects: the tolerance left for the
  curvature after pruning to ``k`` weights is ``ε − c_k`` with ``c_k = ∇L(w*)ᵀ(w^k − w*)``
  (docs/validation.md tests this candidate cause and docs/theory.md explains it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ._checks import PruningLimitsError, check_choice, check_fraction, check_int, check_positive, describe, real_array
from ._search import last_true
from .geometry import ROUNDING_SLACK, delta_fraction, kinematic_margin
from ._jsonable import to_jsonable
from .spectrum import Spectrum

#: Default η of the kinematic interval (a 95 % statement, as in Amelunxen et al. 2014).
DEFAULT_ETA = 0.05

#: Half-width of the secant of :func:`knee_steepness`: ±1 point of sparsity.
KNEE_STEP = 0.01

#: ``d ln R/ds`` at ``s*`` below which the knee is called flat. Set from the suite's 21 l1-trained
#: runs (docs/validation.md, "How much the gap depends on the seed"): all 7 with a steepness
#: below 25 at ``s*`` were predicted more than 2 points above the measured limit, 12 of the 14
#: others within 2 points. On the 8 pre-registered networks (whose gaps were known when it was
#: set, so not a blind check) the 7 below it were predicted 1.3 to 6.6 points above (5 by more
#: than 2), the one above it 0.6. Tested blind on 9 new networks (docs/validation.md, "The
#: flat-knee note, tested blind"): the 6 below it +1.6 to +28.4 points, the 3 above it +0.2 to
#: +1.1. It is a warning level, not a correction of the prediction.
FLAT_KNEE = 25.0

#: What docs/validation.md measured below ``FLAT_KNEE`` (ranges of gaps, run counts) is read at run
#: time from ``pruning_limits/evidence.json`` (``regime.read_evidence``; which script writes which
#: section is in :mod:`pruning_limits.regime`).


@dataclass(frozen=True)
class Prediction:
    """A predicted pruning limit.

    Attributes:
        sparsity: predicted limit ``s*`` (fraction of prunable weights removed).
        density: ``1 − s*`` (fraction kept; the paper's "pruning ratio").
        interval: ``(s_low, s_high)`` from the approximate kinematic formula at level ``eta``.
        epsilon: loss tolerance ε.
        eta: failure probability of the kinematic interval.
        dim: number of prunable weights ``D``.
        criterion: ``"magnitude"``, ``"custom"`` (a precomputed ``R_k²`` curve) or the name of
            a structure (:func:`pruning_limits.structures.predict_structured`).
        kept: number of kept weights ``k`` at ``s*``.
        distance: ``R`` at ``s*`` (Euclidean distance from the trained to the pruned weights).
        probe_sparsities: ``s*`` re-solved on each SLQ probe alone.
        probe_spread: standard deviation (ddof=1) of ``probe_sparsities``; ``nan`` with one probe.
        trace_bound: sparsity solving ``s = 2εD / (2εD + R(s)² tr|H|)`` (never above ``s*``).
        margin: half-width ``a_η/√D`` added to and subtracted from ``δ/D``.
        gradient_term: whether the first-order cost ``c_k`` was subtracted from ε.
        first_order_cost: ``c_k`` at ``s*`` (0 without the gradient term).
        knee_steepness: ``d ln R/ds`` at ``s*`` (:func:`knee_steepness`); small values mean a flat
            knee, where docs/validation.md found the prediction furthest above the measurement.
        spectrum: :meth:`Spectrum.summary` of the spectrum used.
        num_hvps: Hessian-vector products spent (spectrum estimation).
        seconds: wall-clock time of the computation.
        first_order_limit: the largest sparsity at which the first-order cost leaves the
            curvature any tolerance, ``max{s(k) : c_k < ε}`` (1 without the gradient term):
            ``s*`` never exceeds it, whatever the spectrum (:func:`first_order_limit`).
        zero_fraction: ``s₀``, the largest sparsity with ``R = 0`` (:func:`zero_fraction` of the
            ``R_k²`` curve used): the fraction of weights already exactly zero under global
            magnitude pruning. :func:`predict_from_spectrum`'s ``s*`` is never below it, and
            ``d ln R/ds`` less than ``KNEE_MIN_SPARSITY`` above it says nothing of a knee
            (:data:`pruning_limits.regime.KNEE_MIN_SPARSITY`).
    """

    sparsity: float
    density: float
    interval: tuple[float, float]
    epsilon: float
    eta: float
    dim: int
    criterion: str
    kept: int
    distance: float
    probe_sparsities: tuple[float, ...]
    probe_spread: float
    trace_bound: float
    margin: float
    gradient_term: bool = False
    first_order_cost: float = 0.0
    knee_steepness: float = float("nan")
    spectrum: dict[str, Any] = field(default_factory=dict)
    num_hvps: int = 0
    seconds: float = 0.0
    first_order_limit: float = 1.0
    zero_fraction: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record (plain floats and lists; ``nan`` becomes ``None``)."""
        return to_jsonable(
            {
                "sparsity": self.sparsity,
                "density": self.density,
                "interval": list(self.interval),
                "epsilon": self.epsilon,
                "eta": self.eta,
                "dim": self.dim,
                "criterion": self.criterion,
                "kept": self.kept,
                "distance": self.distance,
                "probe_sparsities": list(self.probe_sparsities),
                "probe_spread": self.probe_spread,
                "trace_bound": self.trace_bound,
                "margin": self.margin,
                "gradient_term": self.gradient_term,
                "first_order_cost": self.first_order_cost,
                "first_order_limit": self.first_order_limit,
                "knee_steepness": self.knee_steepness,
                "zero_fraction": self.zero_fraction,
                "spectrum": self.spectrum,
                "num_hvps": self.num_hvps,
                "seconds": self.seconds,
            }
        )


@dataclass(frozen=True)
class LimitCurve:
    """Predicted limit as a function of ε (plain numpy arrays, one entry per ε)."""

    epsilon: np.ndarray
    sparsity: np.ndarray
    interval_low: np.ndarray
    interval_high: np.ndarray
    kept: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-serialisable record."""
        return {name: getattr(self, name).tolist() for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class FixedPointCurve:
    """What a plot of the fixed point needs: ``δ(R(s))/D`` and ``R(s)`` against ``s``.

    ``sparsity[i] = 1 − kept[i]/D`` are the exact sparsities of the evaluated ``k``; ``margin``
    is ``a_η/√D``. The predicted limit is where ``delta_fraction`` crosses the diagonal, up to
    the solver's rounding slack: ``feasible[i]`` is the solver's own test at ``kept[i]``
    (``D − k ≤ D·δ/D·ROUNDING_SLACK``, 8 ulps, :func:`pruning_limits.geometry.share_reached`;
    ``ε − c_k > 0`` with the gradient term), which reads a ``δ/D`` rounded a few ulps below an
    exact zero-eigenvalue tie as reached where ``sparsity ≤ delta_fraction`` does not. The
    feasible points are a prefix (``sparsity ≤ limit``); where ``D + 1 ≤ points`` every ``k``
    is drawn and ``limit`` is the largest feasible ``sparsity``.
    """

    sparsity: np.ndarray
    kept: np.ndarray
    delta_fraction: np.ndarray
    distance: np.ndarray
    margin: float
    limit: float
    feasible: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record."""
        return {
            "sparsity": self.sparsity.tolist(),
            "kept": self.kept.tolist(),
            "delta_fraction": self.delta_fraction.tolist(),
            "distance": self.distance.tolist(),
            "margin": float(self.margin),
            "limit": float(self.limit),
            "feasible": self.feasible.tolist(),
        }


# ---------------------------------------------------------------------------------------------
# R(s) and the monotone fixed-point search
# ---------------------------------------------------------------------------------------------


def magnitude_distance_curve(weights: Any) -> np.ndarray:
    """``R_k²`` for ``k = 0 … D`` under global magnitude pruning (THEORY §3).

    ``R_k²`` is the sum of the ``D − k`` smallest squared weights: a cumulative sum of the sorted
    squares, so it is non-increasing in ``k`` also in floating point, ``R_D² = 0``.

    Raises:
        PruningLimitsError: ``R_0² = Σ w²`` overflows float64 (``max |w|`` about 1.3e154 or
            more): ``|λ|·R²`` would be ``0·inf = NaN`` at a zero eigenvalue and the limit wrong
            without a word, so such weights are refused (rescale them, and ε by the square).
    """
    w = _check_weights(weights)
    with np.errstate(over="ignore"):  # an overflow is refused below, in one line
        squares = np.sort(w**2)
        cumulative = np.concatenate([[0.0], np.cumsum(squares)])
    refuse_overflowing_squares(float(cumulative[-1]), w)  # the partial sums grow: the last is the first to overflow
    return cumulative[::-1].copy()


def refuse_overflowing_squares(total: float, weights: np.ndarray) -> None:
    """Refuse finite ``weights`` whose sum of squares ``total`` (``R_0²``) overflowed float64.

    Shared by :func:`magnitude_distance_curve` and :func:`pruning_limits.structures.distance_curve`,
    which compute ``total`` under ``np.errstate(over="ignore")`` (no numpy warning).

    Args:
        total: ``Σ w²`` as computed in float64 (``inf`` where it overflowed; squares of finite
            weights are never NaN).
        weights: the float64 weights (for the message).

    Raises:
        PruningLimitsError: ``total`` is infinite: one line with ``max |w|`` and the hint to rescale.
    """
    if math.isinf(total):
        raise PruningLimitsError(
            f"weights too large: max |w| = {float(np.max(np.abs(weights))):.4g}, and R² = Σ w² of the {weights.size} weights "
            f"overflows float64 (about 1.8e308); rescale the weights (and ε by the square of the factor)"
        )


def zero_fraction(distance_squared: Any) -> float:
    """``s₀``: the largest sparsity at which ``R = 0``, ``(number of k with R_k² = 0, less one)/D`` (0 where none is).

    Under global magnitude pruning (:func:`magnitude_distance_curve`) it is the fraction of
    weights already exactly zero: pruning them moves nothing, so ``R_k² = 0`` for ``k ≥ D(1 − s₀)``.
    ``s*`` never lies below it (``δ/D = 1`` where ``R = 0``, and pruning zeros costs no
    first-order loss), and just above it ``d ln R/ds`` is large for a network without a knee too
    (:data:`pruning_limits.regime.KNEE_MIN_SPARSITY`).

    Args:
        distance_squared: ``R_k²`` for ``k = 0..D`` kept weights, finite, non-negative and
            non-increasing in ``k`` (a custom curve with ``R_D² > 0`` has ``s₀ = 0``).

    Returns:
        ``s₀`` in ``[0, 1]``.
    """
    r2 = _check_distance_curve(distance_squared)
    return max(int(np.count_nonzero(r2 == 0)) - 1, 0) / (r2.size - 1)


def _check_distance_curve(distance_squared: Any) -> np.ndarray:
    """``R_k²`` for ``k = 0..D`` as float64, after checking it is finite, non-negative and non-increasing in ``k``."""
    r2 = real_array(distance_squared, "distance_squared")
    if r2.ndim != 1 or r2.size < 2:
        raise PruningLimitsError(f"distance_squared must be a 1-D array of R_k² for k = 0..D, got shape {r2.shape}")
    if not np.isfinite(r2).all():
        bad = int(np.flatnonzero(~np.isfinite(r2))[0])
        raise PruningLimitsError(f"distance_squared must hold finite R_k², got R_{bad}² = {r2[bad]}")
    rises = np.flatnonzero(np.diff(r2) > 0)
    if rises.size or r2[-1] < 0:  # R_k² = Σ of the pruned w²: non-negative, falling as k (kept) grows
        where = f"R_{rises[0] + 1}² = {r2[rises[0] + 1]:.4g} > R_{rises[0]}² = {r2[rises[0]]:.4g}" if rises.size else f"R_D² = {r2[-1]:.4g}"
        raise PruningLimitsError(
            f"distance_squared must be R_k² for k = 0..D kept weights, non-negative and non-increasing in k, got {where}"
        )
    return r2


def knee_steepness(distance_squared: Any, sparsity: float, *, step: float = KNEE_STEP) -> float:
    """``d ln R/ds`` at ``sparsity``: how sharp the knee of ``R(s)`` is there.

    The secant of ``ln R`` over ``sparsity ± step``, clipped to ``[0, 1]``, between the whole
    numbers of kept weights nearest to its ends (at least one weight apart) and divided by the
    sparsities those reach, so it stays exact for small ``D``; where ``R = 0`` at its low end
    (only zeros pruned there: an already sparse network), from the first sparsity with ``R > 0``.
    Where it is small
    the limit sits on a flat stretch of ``R(s)``, and an error of the loss model by a factor
    ``F`` moves the limit by about ``ln F / (2 d ln R/ds)``: on the networks of
    docs/validation.md the prediction's gap to the measured limit grew as this fell.

    Args:
        distance_squared: ``R_k²`` for ``k = 0..D`` kept weights (:func:`magnitude_distance_curve`).
        sparsity: where to take the slope, in ``[0, 1]``.
        step: half-width of the secant (default 0.01: ±1 point of sparsity).

    Returns:
        The slope; NaN where the whole secant has ``R = 0`` (``sparsity + step`` prunes only
        zeros) or no weight is non-zero.
    """
    r2 = _check_distance_curve(distance_squared)
    sparsity = check_fraction("sparsity", sparsity)
    step = check_fraction("step", step, open_low=True)
    dim = r2.size - 1
    low, high = max(sparsity - step, 0.0), min(sparsity + step, 1.0)
    kept_low, kept_high = (int(round((1.0 - s) * dim)) for s in (low, high))  # more kept at lower sparsity
    if kept_low == kept_high:  # both ends on one weight: take its neighbours
        kept_low, kept_high = min(dim, kept_low + 1), max(0, kept_high - 1)
    # R = 0 while only zeros are pruned (an already sparse network, or nothing pruned): the secant
    # starts where R turns positive, the sharpest knee there is, not an undefined one
    last_positive = int(np.count_nonzero(r2 > 0)) - 1  # R_k² is non-increasing: positive for k ≤ this
    if kept_low > last_positive:
        kept_low = last_positive
        if kept_low == kept_high:
            kept_high -= 1
    if kept_high < 0 or kept_low <= kept_high:  # no positive R, or the whole secant among zeros
        return float("nan")
    at_low, at_high = float(r2[kept_low]), float(r2[kept_high])
    return 0.5 * (math.log(at_high) - math.log(at_low)) / ((kept_low - kept_high) / dim)


def magnitude_first_order_curve(weights: Any, gradient: Any) -> np.ndarray:
    """First-order loss change ``c_k`` of global magnitude pruning to ``k`` kept, ``k = 0 … D``.

    ``c_k = ∇L(w*)ᵀ(w^k − w*) = −Σ_{i pruned} g_i w_i``, accumulated over the weights in
    ascending order of magnitude (stable order for ties), then replaced by its running maximum
    from ``k = D`` (where ``c_D = 0``) downwards. The running maximum makes ``ε − c_k``
    non-increasing as pruning proceeds, so the fixed point stays unique; it never credits a
    first-order loss decrease, which the quadratic model could not bound anyway. At an
    l1-regularised optimum ``g_i = −λ·sign(w_i)`` on the non-zero weights, so ``c_k`` is about
    ``λ Σ_{i pruned} |w_i|``.
    """
    w = _check_weights(weights)
    g = _check_gradient(gradient, w)
    order = np.argsort(np.abs(w), kind="stable")
    by_pruned = np.maximum.accumulate(np.concatenate([[0.0], np.cumsum(-g[order] * w[order])]))
    return by_pruned[::-1].copy()  # index k = number kept = D − number pruned


def first_order_limit(epsilon: float, cost: Any) -> float:
    """The sparsity ``max{s(k) : ε − c_k > 0}``, a ceiling on ``s*`` that no spectrum moves.

    With the gradient term ``s*`` is the largest ``s(k)`` with ``ε_k = ε − c_k > 0`` and
    ``s(k) ≤ δ(R_k; ε_k)/D`` (docs/theory.md §6a); the first condition alone gives this ceiling,
    which ``s*`` reaches when ``δ/D`` is large there (e.g. a Hessian that is zero). Near it ``ε_k``
    tends to 0 and ``δ(R_k; ε_k)/D`` depends on the spectrum at the scale ``2ε_k/R_k² → 0``,
    which no quadrature resolves; docs/theory.md ("Why large networks did not settle") measures
    how far below the ceiling ``s*`` then sits.

    Args:
        epsilon: the loss tolerance ε > 0.
        cost: ``c_k`` for ``k = 0 … D`` kept (:func:`magnitude_first_order_curve` or
            :func:`first_order_curve`: non-increasing in ``k``, ``c_D = 0``), or ``None``
            (the paper's model: no ceiling below 1).

    Returns:
        ``1 − k₀/D`` with ``k₀`` the smallest ``k`` whose ``c_k < ε``.
    """
    epsilon = check_positive("epsilon", epsilon)
    if cost is None:
        return 1.0
    c = real_array(cost, "cost")
    if c.ndim != 1 or c.size < 2 or not np.isfinite(c).all():
        raise PruningLimitsError(f"cost must be a finite 1-D array c_0 … c_D, got {describe(cost)}")
    if c[-1] != 0 or (np.diff(c) > 0).any():
        raise PruningLimitsError("cost must fall to c_D = 0 and never grow with k (a running maximum from k = D down)")
    dim = c.size - 1
    return 1.0 - _smallest_feasible(dim, lambda k: epsilon - float(c[k]) > 0) / dim


def _check_weights(weights: Any) -> np.ndarray:
    w = real_array(weights, "weights")
    if w.ndim != 1 or w.size == 0:
        raise PruningLimitsError(f"weights must be a non-empty 1-D array, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise PruningLimitsError("weights contain NaN or infinite values")
    return w


def _check_gradient(gradient: Any, w: np.ndarray) -> np.ndarray:
    """The data-loss gradient as a float64 array with one finite entry per weight of ``w``."""
    g = real_array(gradient, "gradient")
    if g.shape != w.shape:
        raise PruningLimitsError(f"gradient must have one entry per weight ({w.size}), got shape {g.shape}")
    if not np.isfinite(g).all():
        raise PruningLimitsError("gradient contains NaN or infinite values")
    return g


def _squared_distances(weights: np.ndarray, criterion: Any, dim: int) -> tuple[np.ndarray, str]:
    if isinstance(criterion, str):
        check_choice("criterion", criterion, ("magnitude",))
        return magnitude_distance_curve(weights), "magnitude"
    try:
        r2 = np.asarray(criterion, dtype=np.float64)
    except (TypeError, ValueError):
        raise PruningLimitsError(
            f"criterion must be 'magnitude' or an array of R_k² for k = 0..D, got {describe(criterion)}"
        ) from None
    if r2.shape != (dim + 1,):
        raise PruningLimitsError(f"criterion array must hold R_k² for k = 0..D ({dim + 1} values), got shape {r2.shape}")
    if not np.isfinite(r2).all() or (r2 < 0).any():
        raise PruningLimitsError("criterion array R_k² must be finite and non-negative")
    if (np.diff(r2) > 0).any():
        raise PruningLimitsError("criterion array R_k² must be non-increasing in k (nested supports)")
    return r2, "custom"


def _smallest_feasible(dim: int, feasible: Callable[[int], bool]) -> int:
    """Smallest ``k ∈ [0, D]`` with ``feasible(k)``, for a predicate monotone in ``k`` and true at ``D``."""
    return last_true(-1, dim, lambda k: not feasible(k)) + 1


def _solve(
    nodes: np.ndarray,
    weights: np.ndarray,
    epsilon: float,
    r2: np.ndarray,
    offset: float = 0.0,
    cost: np.ndarray | None = None,
) -> int:
    """Smallest ``k`` with ``(D − k)/D ≤ clip(δ(R_k; ε − c_k)/D + offset, 0, 1)`` (``c = cost``, default 0).

    Compared in counts, ``D − k ≤ D·bound·ROUNDING_SLACK``: the rounding rule of
    :func:`pruning_limits.geometry.share_reached` (8 ulps, which an exact zero-eigenvalue tie
    needs: ``s*`` came out one weight short of ``7/9``), without the rounding of ``(D − k)/D``.
    It adds at most ``8·2⁻⁵²·D ≪ 1`` to ``D·bound``, so the result moves by one weight at most,
    and as a constant factor on a bound that does not decrease in ``k`` it keeps the condition
    monotone.
    """
    return _smallest_feasible(r2.size - 1, lambda k: _feasible(nodes, weights, epsilon, r2, k, offset, cost))


def _feasible(
    nodes: np.ndarray, weights: np.ndarray, epsilon: float, r2: np.ndarray, k: int, offset: float = 0.0,
    cost: np.ndarray | None = None,
) -> bool:
    """The condition of :func:`_solve` at ``k`` kept: ``ε_k = ε − c_k > 0`` and ``D − k ≤ D·clip(δ/D + offset)·ROUNDING_SLACK``."""
    dim = r2.size - 1
    eps_k = epsilon if cost is None else epsilon - float(cost[k])
    if eps_k <= 0:
        return False
    bound = delta_fraction(nodes, weights, eps_k, float(r2[k])) + offset
    return dim - k <= dim * min(max(bound, 0.0), 1.0) * ROUNDING_SLACK  # geometry.share_reached, in counts


def _solve_trace(epsilon: float, r2: np.ndarray, abs_trace: float, cost: np.ndarray | None = None) -> int:
    """Smallest ``k`` with ``(D − k)/D ≤ 2ε_k D / (2ε_k D + R_k² tr|H|)``, ``ε_k = ε − c_k``."""
    dim = r2.size - 1

    def feasible(k: int) -> bool:
        eps_k = epsilon if cost is None else epsilon - float(cost[k])
        if eps_k <= 0:
            return False
        two_eps_d, curvature = 2.0 * eps_k * dim, float(r2[k]) * abs_trace
        if math.isinf(two_eps_d + curvature):  # ε or R² near the float64 limit: the same share, scaled
            share = 1.0 / (1.0 + (float(r2[k]) / eps_k) * (abs_trace / (2.0 * dim)))
            return (dim - k) / dim <= share
        return (dim - k) / dim <= two_eps_d / (two_eps_d + curvature)

    return _smallest_feasible(dim, feasible)


def _check_weights_and_spectrum(weights: Any, spectrum: Any) -> np.ndarray:
    """The weights as a float64 array, after checking ``spectrum`` is a Spectrum of the same dimension."""
    if not isinstance(spectrum, Spectrum):
        raise PruningLimitsError(f"spectrum must be a pruning_limits.spectrum.Spectrum, got {describe(spectrum)}")
    w = _check_weights(weights)
    if w.size != spectrum.dim:
        raise PruningLimitsError(
            f"weights and spectrum differ in dimension: {w.size} weights, spectrum of dim {spectrum.dim}"
        )
    return w


def _prepare(
    weights: Any, spectrum: Any, epsilon: Any, eta: Any, criterion: Any, gradient: Any = None, order: Any = None,
    allowed: Any = None,
):
    w = _check_weights_and_spectrum(weights, spectrum)
    epsilon = check_positive("epsilon", epsilon)
    eta = check_fraction("eta", eta, open_low=True, open_high=True)
    r2, name = _squared_distances(w, criterion, spectrum.dim)
    return w, epsilon, eta, r2, name, _cost_curve(w, name, gradient, order, allowed)


def _cost_curve(w: np.ndarray, name: str, gradient: Any, order: Any, allowed: Any) -> np.ndarray | None:
    """First-order costs ``c_k`` along the pruning order of criterion ``name`` (``None`` without a gradient)."""
    if gradient is None:
        return None
    if name == "magnitude":
        return magnitude_first_order_curve(w, gradient)
    if order is None:
        raise PruningLimitsError("gradient needs criterion='magnitude' or the order of the custom R_k² curve (order=)")
    return first_order_curve(w, gradient, _check_order(order, w.size), allowed)


def _check_order(order: Any, dim: int) -> np.ndarray:
    """``order`` as an int64 permutation of ``0..D-1``."""
    o = np.asarray(order)
    if o.shape != (dim,) or not np.issubdtype(o.dtype, np.integer) or not np.array_equal(np.sort(o), np.arange(dim)):
        raise PruningLimitsError(f"order must be a permutation of the {dim} weight indices, got {describe(order)}")
    return o.astype(np.int64)


def first_order_curve(weights: Any, gradient: Any, order: Any, allowed: Any = None) -> np.ndarray:
    """First-order cost ``c_k`` (:func:`magnitude_first_order_curve`) along any removal ``order``.

    ``order`` lists the flat weight indices, first pruned first; ``c_k`` accumulates
    ``−g_i w_i`` over the first ``D − k`` of them, then takes the running maximum from ``k = D``
    downwards, exactly as for the magnitude order.

    With ``allowed`` (ascending numbers of pruned weights at which the order sits on an allowed
    point of a structure, 0 first; :attr:`pruning_limits.structures.StructuredOrder.allowed`)
    the running maximum runs over the allowed counts only: with ``m`` pruned, ``c`` is the
    largest accumulated cost at an allowed count ``≤ m``. Prefixes inside a group (part of a
    neuron) are no allowed point, and their cost does not enter.
    """
    w = _check_weights(weights)
    g = _check_gradient(gradient, w)
    o = _check_order(order, w.size)
    cumulative = np.concatenate([[0.0], np.cumsum(-g[o] * w[o])])
    if allowed is None:
        return np.maximum.accumulate(cumulative)[::-1].copy()
    counts = np.asarray(allowed)
    if (
        counts.ndim != 1 or counts.size == 0 or not np.issubdtype(counts.dtype, np.integer) or counts[0] != 0
        or (np.diff(counts) <= 0).any() or counts[-1] > w.size
    ):
        raise PruningLimitsError(f"allowed must be ascending counts in [0, {w.size}] starting at 0, got {describe(allowed)}")
    at_allowed = np.maximum.accumulate(cumulative[counts])
    # with m pruned: the last allowed count <= m
    last = np.searchsorted(counts, np.arange(w.size + 1), side="right") - 1
    return at_allowed[last][::-1].copy()


# ---------------------------------------------------------------------------------------------
# Public calculator
# ---------------------------------------------------------------------------------------------


def predict_from_spectrum(
    weights: Any,
    spectrum: Spectrum,
    epsilon: float,
    *,
    eta: float = DEFAULT_ETA,
    criterion: str | Sequence[float] | np.ndarray = "magnitude",
    gradient: Any = None,
    order: Any = None,
    allowed: Any = None,
) -> Prediction:
    """Predicted pruning limit from a spectrum and the trained weights (pure maths, no model).

    Args:
        weights: flat array of the ``D`` prunable weights (length must equal ``spectrum.dim``).
        spectrum: spectral measure of the Hessian (exact or SLQ).
        epsilon: loss tolerance ε > 0.
        eta: failure probability of the kinematic interval, default 0.05 (Amelunxen et al. 2014).
        criterion: ``"magnitude"`` (global magnitude pruning, THEORY §3) or a precomputed array
            of ``R_k²`` for ``k = 0..D`` (non-increasing), e.g. from a structured criterion.
        gradient: the data-loss gradient at the trained weights (flat, same order as
            ``weights``). When given, the first-order cost ``c_k`` of pruning
            (:func:`magnitude_first_order_curve`) is subtracted from ε at every ``k``; ``None``
            (default) is the paper's model, which neglects it.
        order: with a custom ``criterion`` curve and a ``gradient``: the removal order the curve
            follows (flat indices, first pruned first; e.g.
            :attr:`pruning_limits.structures.StructuredOrder.order`), for :func:`first_order_curve`.
        allowed: with ``order``: the structure's allowed counts, over which
            :func:`first_order_curve` takes its running maximum (default: every count).

    Returns:
        :class:`Prediction`. ``s*`` is the largest ``s(k) = 1 − k/D`` with
        ``s(k) ≤ δ(R_k)/D`` (the smallest feasible ``k``), solved exactly over integer ``k``.
    """
    start = time.perf_counter()
    _, epsilon, eta, r2, name, cost = _prepare(weights, spectrum, epsilon, eta, criterion, gradient, order, allowed)
    dim = spectrum.dim
    nodes, quad = spectrum.nodes, spectrum.weights
    margin = kinematic_margin(eta) / math.sqrt(dim)

    kept = _solve(nodes, quad, epsilon, r2, cost=cost)
    kept_low = _solve(nodes, quad, epsilon, r2, -margin, cost)  # smaller δ ⇒ more kept ⇒ lower sparsity
    kept_high = _solve(nodes, quad, epsilon, r2, +margin, cost)
    probe_kept = [_solve(nodes[j : j + 1], quad[j : j + 1], epsilon, r2, cost=cost) for j in range(spectrum.probes)]
    probe_sparsities = tuple(1.0 - k / dim for k in probe_kept)
    spread = float(np.std(probe_sparsities, ddof=1)) if len(probe_sparsities) > 1 else float("nan")
    kept_trace = _solve_trace(epsilon, r2, spectrum.abs_trace().value, cost)

    sparsity = 1.0 - kept / dim
    return Prediction(
        sparsity=sparsity,
        density=kept / dim,
        interval=(1.0 - kept_low / dim, 1.0 - kept_high / dim),
        epsilon=epsilon,
        eta=eta,
        dim=dim,
        criterion=name,
        kept=int(kept),
        distance=math.sqrt(float(r2[kept])),
        probe_sparsities=probe_sparsities,
        probe_spread=spread,
        trace_bound=1.0 - kept_trace / dim,
        margin=margin,
        gradient_term=cost is not None,
        first_order_cost=0.0 if cost is None else float(cost[kept]),
        knee_steepness=knee_steepness(r2, sparsity),
        spectrum=spectrum.summary(),
        num_hvps=int(spectrum.num_hvps),
        seconds=time.perf_counter() - start,
        first_order_limit=first_order_limit(epsilon, cost),
        zero_fraction=zero_fraction(r2),
    )


def sparsity_estimator(
    weights: Any,
    epsilons: Sequence[float],
    *,
    gradient: Any = None,
    criterion: str | Sequence[float] | np.ndarray = "magnitude",
    order: Any = None,
    allowed: Any = None,
) -> Callable[[Spectrum], tuple[float, ...]]:
    """``spectrum -> (s*(ε) for ε in epsilons)``, with ``R_k²`` (and ``c_k``) computed once.

    The same ``s*`` as :func:`predict_from_spectrum` (``criterion``, ``gradient``, ``order`` and
    ``allowed`` as there; global magnitude by default) for many spectra of one network: what an
    adaptive SLQ monitor evaluates at every
    checkpoint (:mod:`pruning_limits.adaptive`), without re-sorting the weights each time. It
    gives the answer alone: until 2026-12-05 a ``gradient`` also brought the paper's-model
    values, which the monitor then waited for; on every network from D = 78 336 up they never
    settled, and ``benchmarks/adaptive_stop.py`` measures the stop without them
    (docs/theory.md, "Adaptive stop").
    """
    w = _check_weights(weights)
    eps_values = [check_positive("epsilon", float(e)) for e in real_array(epsilons, "epsilons").ravel()]
    if not eps_values:
        raise PruningLimitsError("epsilons must hold at least one value")
    r2, name = _squared_distances(w, criterion, w.size)
    cost = _cost_curve(w, name, gradient, order, allowed)

    def estimate(spectrum: Spectrum) -> tuple[float, ...]:
        _check_weights_and_spectrum(w, spectrum)
        return tuple(1.0 - _solve(spectrum.nodes, spectrum.weights, e, r2, cost=cost) / spectrum.dim for e in eps_values)

    return estimate


def limit_curve(
    weights: Any,
    spectrum: Spectrum,
    epsilons: Sequence[float] | np.ndarray,
    *,
    eta: float = DEFAULT_ETA,
    criterion: str | Sequence[float] | np.ndarray = "magnitude",
    gradient: Any = None,
    order: Any = None,
    allowed: Any = None,
) -> LimitCurve:
    """Predicted limit ``s*`` and its kinematic interval for each ε in ``epsilons``.

    Args:
        weights: flat array of the ``D`` prunable weights (length must equal ``spectrum.dim``).
        spectrum: spectral measure of the Hessian.
        epsilons: the loss tolerances, each a finite number > 0.
        eta: failure probability of the kinematic interval.
        criterion: ``"magnitude"`` or an array of ``R_k²`` (as in :func:`predict_from_spectrum`).
        gradient: the data-loss gradient (the gradient term), or ``None``.
        order: with a custom ``criterion`` curve and a ``gradient``: its removal order (as in
            :func:`predict_from_spectrum`).
        allowed: with ``order``: a structure's allowed counts (default: every count).

    Returns:
        :class:`LimitCurve`; entry ``i`` is :func:`predict_from_spectrum`'s ``s*`` and interval at
        ``epsilons[i]``.
    """
    eps_values = real_array(epsilons, "epsilons").ravel()
    if eps_values.size == 0:
        raise PruningLimitsError("epsilons must hold at least one value")
    _, _, eta, r2, _, cost = _prepare(weights, spectrum, float(eps_values[0]), eta, criterion, gradient, order, allowed)
    dim = spectrum.dim
    margin = kinematic_margin(eta) / math.sqrt(dim)
    nodes, quad = spectrum.nodes, spectrum.weights
    rows = []
    for eps in eps_values:
        eps = check_positive("epsilon", float(eps))
        rows.append(
            (
                _solve(nodes, quad, eps, r2, cost=cost),
                _solve(nodes, quad, eps, r2, -margin, cost),
                _solve(nodes, quad, eps, r2, +margin, cost),
            )
        )
    kept = np.array([r[0] for r in rows], dtype=np.int64)
    return LimitCurve(
        epsilon=eps_values.copy(),
        sparsity=1.0 - kept / dim,
        interval_low=1.0 - np.array([r[1] for r in rows]) / dim,
        interval_high=1.0 - np.array([r[2] for r in rows]) / dim,
        kept=kept,
    )


def fixed_point_curve(
    weights: Any,
    spectrum: Spectrum,
    epsilon: float,
    *,
    points: int = 201,
    eta: float = DEFAULT_ETA,
    criterion: str | Sequence[float] | np.ndarray = "magnitude",
    gradient: Any = None,
    order: Any = None,
    allowed: Any = None,
) -> FixedPointCurve:
    """``δ(R(s))/D`` and ``R(s)`` on ``points`` sparsities from 0 to 1 (``k = ⌊(1 − s)D⌋``).

    With ``gradient`` (and ``order``, as in :func:`predict_from_spectrum`) δ uses ``ε − c_k``;
    where that is ≤ 0 no sparsity is feasible and ``δ/D`` is reported as 0. A structure's
    prediction takes ``c_k`` at its allowed counts only (``allowed``, as in
    :func:`predict_from_spectrum`): pass the same ``allowed`` here, or the curve counts the cost
    of part of a group and crosses the diagonal elsewhere than the prediction.

    Args:
        weights: flat array of the ``D`` prunable weights.
        spectrum: spectral measure of the Hessian.
        epsilon: loss tolerance ε > 0.
        points: number of sparsities evaluated (``D + 1`` or more evaluates every ``k``).
        eta: failure probability of the kinematic interval.
        criterion: ``"magnitude"`` or an array of ``R_k²`` (as in :func:`predict_from_spectrum`).
        gradient: the data-loss gradient (the gradient term), or ``None``.
        order: the removal order of a custom ``criterion`` curve.
        allowed: a structure's allowed counts (default: every count).

    Returns:
        :class:`FixedPointCurve`; its ``limit`` is the prediction's ``s*``, its ``feasible`` the
        solver's test at each drawn ``k`` (the crossing, with the solver's rounding slack).
    """
    _, epsilon, eta, r2, _, cost = _prepare(weights, spectrum, epsilon, eta, criterion, gradient, order, allowed)
    points = check_int("points", points, 2)
    dim = spectrum.dim
    steps = points - 1
    # k = ⌊(1 − i/steps)·D⌋ in integer arithmetic, deduplicated for D < points.
    kept = np.unique((dim * (steps - np.arange(points))) // steps)[::-1]
    nodes, quad = spectrum.nodes, spectrum.weights
    eps_k = np.full(kept.size, epsilon) if cost is None else epsilon - cost[kept]
    fractions = np.array(
        [delta_fraction(nodes, quad, e, float(r2[k])) for e, k in zip(eps_k, kept)]
    )
    limit = 1.0 - _solve(nodes, quad, epsilon, r2, cost=cost) / dim
    return FixedPointCurve(
        sparsity=1.0 - kept / dim,
        kept=kept.astype(np.int64),
        delta_fraction=fractions,
        distance=np.sqrt(r2[kept]),
        margin=kinematic_margin(eta) / math.sqrt(dim),
        limit=limit,
        feasible=np.array([_feasible(nodes, quad, epsilon, r2, int(k), cost=cost) for k in kept], dtype=bool),
    )
